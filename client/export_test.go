package client

// RecordPath makes a Producer send records on ProduceStream, the path
// transactional producers take, instead of record batches: the benchmark
// compares the two.
func RecordPath() ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.recordPath = true })
}
