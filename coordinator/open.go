package coordinator

// Options returns the options the index runs with (after defaults).
func (r *Redis) Options() Options { return r.opts }
