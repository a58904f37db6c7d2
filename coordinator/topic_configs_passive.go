package coordinator

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// PassiveConfig is a Kafka topic config (Kafka 3.x/4.x TopicConfig and
// LogConfig) that Strata accepts, validates with Kafka's type and range,
// keeps on the topic and reports back, but does not act on: it tunes a
// broker's local log files, its replicas or its tiered storage, none of
// which Strata has (every agent serves every partition from the object
// store, and the index is the only copy of the log's order). Clients set
// them as a matter of course: Kafka Streams sets message.timestamp.type on
// every internal topic and segment.bytes/segment.ms on repartition topics;
// consoles send min.insync.replicas. Refusing them would refuse the client.
type PassiveConfig struct {
	Name string
	// Type is Kafka's ConfigDef type: "int", "long", "boolean", "string"
	// or "list".
	Type string
	// Default is Kafka's default, as DescribeConfigs shows it.
	Default string
	// Min and Max bound "int" and "long" values (Kafka's atLeast/between).
	Min, Max int64
	// In lists the values a "string" may take (Kafka's ValidString.in).
	In []string
	// NoEffect says why the config changes nothing on Strata.
	NoEffect string
}

// maxLong is Java's Long.MAX_VALUE, Kafka's default of the limits it
// leaves off.
const maxLong = "9223372036854775807"

// passiveConfigs is sorted by name.
var passiveConfigs = []PassiveConfig{
	{Name: "file.delete.delay.ms", Type: "long", Default: "60000", Min: 0, Max: math.MaxInt64,
		NoEffect: "the janitor deletes unreferenced objects on its own schedule (--janitor-interval)"},
	{Name: "flush.messages", Type: "long", Default: maxLong, Min: 1, Max: math.MaxInt64,
		NoEffect: "a record is acknowledged only once its segment is in the object store; there is no local fsync to tune"},
	{Name: "flush.ms", Type: "long", Default: maxLong, Min: 0, Max: math.MaxInt64,
		NoEffect: "a record is acknowledged only once its segment is in the object store (the agent's --flush-interval)"},
	{Name: "follower.replication.throttled.replicas", Type: "list", Default: "",
		NoEffect: "there are no follower replicas: the object store keeps the copies"},
	{Name: "index.interval.bytes", Type: "int", Default: "4096", Min: 0, Max: math.MaxInt32,
		NoEffect: "there are no local offset indexes: the Redis index maps every batch"},
	{Name: "leader.replication.throttled.replicas", Type: "list", Default: "",
		NoEffect: "there is no replication between brokers to throttle"},
	{Name: "local.retention.bytes", Type: "long", Default: "-2", Min: -2, Max: math.MaxInt64,
		NoEffect: "there is no local tier: every byte is in the object store"},
	{Name: "local.retention.ms", Type: "long", Default: "-2", Min: -2, Max: math.MaxInt64,
		NoEffect: "there is no local tier: every byte is in the object store"},
	{Name: "max.compaction.lag.ms", Type: "long", Default: maxLong, Min: 1, Max: math.MaxInt64,
		NoEffect: "not enforced: the cleaner runs by min.cleanable.dirty.ratio and delete.retention.ms only"},
	{Name: "message.downconversion.enable", Type: "boolean", Default: "true",
		NoEffect: "batches are served as stored; Fetch versions that need the old message formats are not served"},
	{Name: "message.timestamp.after.max.ms", Type: "long", Default: maxLong, Min: 0, Max: math.MaxInt64,
		NoEffect: "not enforced: a batch's timestamps are kept as the producer wrote them"},
	{Name: "message.timestamp.before.max.ms", Type: "long", Default: maxLong, Min: 0, Max: math.MaxInt64,
		NoEffect: "not enforced: a batch's timestamps are kept as the producer wrote them"},
	{Name: "message.timestamp.difference.max.ms", Type: "long", Default: maxLong, Min: 0, Max: math.MaxInt64,
		NoEffect: "not enforced (Kafka 3.x; KIP-937 replaced it): a batch's timestamps are kept as the producer wrote them"},
	{Name: "message.timestamp.type", Type: "string", Default: "CreateTime", In: []string{"CreateTime"},
		NoEffect: "CreateTime is what Strata does; LogAppendTime is refused: batches are stored byte for byte, so the broker cannot stamp them"},
	{Name: "min.insync.replicas", Type: "int", Default: "1", Min: 1, Max: math.MaxInt32,
		NoEffect: "an acknowledged record is in the object store, whatever acks asked; there are no in-sync replicas to count"},
	{Name: "preallocate", Type: "boolean", Default: "false",
		NoEffect: "there are no local segment files to preallocate"},
	{Name: "remote.log.copy.disable", Type: "boolean", Default: "false",
		NoEffect: "every segment is written to the object store; there is no copy from a local tier to stop"},
	{Name: "remote.log.delete.on.disable", Type: "boolean", Default: "false",
		NoEffect: "the object store is the only tier; it is never disabled"},
	{Name: "remote.storage.enable", Type: "boolean", Default: "false",
		NoEffect: "every topic's log is in the object store already, whatever the value"},
	{Name: "segment.bytes", Type: "int", Default: "1073741824", Min: 1 << 20, Max: math.MaxInt32,
		NoEffect: "segments are shared by every partition and flushed by the agent's --segment-max-bytes and --flush-interval"},
	{Name: "segment.index.bytes", Type: "int", Default: "10485760", Min: 4, Max: math.MaxInt32,
		NoEffect: "there are no local offset indexes: the Redis index maps every batch"},
	{Name: "segment.jitter.ms", Type: "long", Default: "0", Min: 0, Max: math.MaxInt64,
		NoEffect: "segments are shared by every partition and flushed by the agent's --flush-interval"},
	{Name: "segment.ms", Type: "long", Default: "604800000", Min: 1, Max: math.MaxInt64,
		NoEffect: "segments are shared by every partition and flushed by the agent's --flush-interval"},
	{Name: "unclean.leader.election.enable", Type: "boolean", Default: "false",
		NoEffect: "there are no replicas to elect from: every agent serves every partition from the same committed log"},
}

// PassiveConfigs returns the Kafka topic configs Strata accepts without
// effect, sorted by name.
func PassiveConfigs() []PassiveConfig { return slices.Clone(passiveConfigs) }

func passiveConfig(name string) (PassiveConfig, bool) {
	i, ok := slices.BinarySearchFunc(passiveConfigs, name, func(c PassiveConfig, n string) int { return strings.Compare(c.Name, n) })
	if !ok {
		return PassiveConfig{}, false
	}
	return passiveConfigs[i], true
}

// parse validates v as Kafka's ConfigDef does for c's type and range and
// returns it in the form the index keeps and DescribeConfigs reports; ""
// is the default. Errors: ErrInvalidConfig naming the key and the limit.
func (c PassiveConfig) parse(v string) (string, error) {
	v = strings.TrimSpace(v) // Kafka trims every value it parses
	if v == "" {
		return c.Default, nil
	}
	switch c.Type {
	case "int", "long":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < c.Min || n > c.Max {
			return "", fmt.Errorf("%w: %s must be an integer between %d and %d, got %q", ErrInvalidConfig, c.Name, c.Min, c.Max, v)
		}
		return strconv.FormatInt(n, 10), nil
	case "boolean":
		switch strings.ToLower(v) {
		case "true", "false":
			return strings.ToLower(v), nil
		}
		return "", fmt.Errorf("%w: %s must be true or false, got %q", ErrInvalidConfig, c.Name, v)
	case "string":
		if c.Name == "message.timestamp.type" && v == "LogAppendTime" {
			return "", fmt.Errorf("%w: %s=LogAppendTime is not supported: batches are stored byte for byte as the producer sent them, so only CreateTime is", ErrInvalidConfig, c.Name)
		}
		if !slices.Contains(c.In, v) {
			return "", fmt.Errorf("%w: %s must be one of %v, got %q", ErrInvalidConfig, c.Name, c.In, v)
		}
		return v, nil
	case "list":
		return parseThrottledReplicas(c.Name, v)
	}
	return "", fmt.Errorf("%w: %s has unknown type %q", ErrInvalidConfig, c.Name, c.Type)
}

// parseThrottledReplicas checks Kafka's ThrottledReplicaListValidator
// form: "*", or a comma-separated list of partition:broker pairs.
func parseThrottledReplicas(key, v string) (string, error) {
	if v == "*" {
		return v, nil
	}
	var out []string
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		p, b, ok := strings.Cut(e, ":")
		_, perr := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		_, berr := strconv.ParseInt(strings.TrimSpace(b), 10, 32)
		if !ok || perr != nil || berr != nil {
			return "", fmt.Errorf("%w: %s must be \"*\" or a list of partition:broker pairs such as 0:1,1:2, got %q", ErrInvalidConfig, key, v)
		}
		out = append(out, strings.TrimSpace(p)+":"+strings.TrimSpace(b))
	}
	return strings.Join(out, ","), nil
}

// PassiveValues is a set of passive config values by key, immutable and
// comparable: its keys sorted, each "key=value" on its own line (keys
// hold no '=' and validated values no newline).
type PassiveValues struct{ s string }

// Map returns the values by key; nil when there are none.
func (p PassiveValues) Map() map[string]string {
	if p.s == "" {
		return nil
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(p.s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		m[k] = v
	}
	return m
}

// Get returns key's value, if it is set.
func (p PassiveValues) Get(key string) (string, bool) {
	v, ok := p.Map()[key]
	return v, ok
}

// passiveValuesOf is the PassiveValues holding m.
func passiveValuesOf(m map[string]string) PassiveValues {
	lines := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, k+"="+m[k])
	}
	return PassiveValues{strings.Join(lines, "\n")}
}

// PassiveValue is the value of the passive config key on c: its own, or
// Kafka's default.
func (c TopicConfig) PassiveValue(key string) string {
	if v, ok := c.Passive.Get(key); ok {
		return v
	}
	p, _ := passiveConfig(key)
	return p.Default
}
