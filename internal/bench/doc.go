// Package bench is Strata's benchmark harness, behind `strata bench`: load
// generators in the spirit of the OpenMessaging Benchmark, and the raw
// ceilings of the store and index an agent runs on.
//
//	Produce  producers at a target rate (or flat out), ack latency
//	Consume  catch-up reads of a backlog, read throughput
//	E2E      producers and tailing consumers, produce-to-consume latency
//	Store    PUT, GET, ranged GET and Redis round trips, without an agent
//
// Produce, Consume and E2E drive an agent over the public Connect API
// (Config.Dial, built by cmd/strata from --addr and --protocol): its
// per-record calls (ProduceStream, Subscribe, Fetch) or, with
// Config.Batches, its batch calls (ProduceBatchesStream and FetchBatches,
// which carry Kafka record batches; batch.go), or, with Config.Kafka set, a
// Kafka listener with franz-go's kgo client. All report the same Result
// (its JSON is what `strata bench --json` prints and internal/benchreport
// reads), so their figures compare directly.
//
// The three client benchmarks share one shape: a warm-up whose results are
// thrown away, then a measured window of Config.Duration. Each goroutine
// keeps its own latency histogram (internal/hdr), merged at the end.
// Latencies of rate-limited producers count from the moment a request was
// due, not when it went out, so a stalled agent shows as latency rather than
// as fewer requests (coordinated omission). Every record value starts with
// its due time in Unix nanoseconds (8 bytes, big endian): that is how e2e
// consumers measure produce-to-consume latency.
//
// What it owns: the load generators, the statistics and the result types and
// their human summaries. What it does not own: flags, help texts, exit codes
// and the Connect clients' construction, which are cmd/strata's wiring.
// Mistakes in the settings come back as *FlagError so the CLI can point at
// --help.
//
// What it must not import: cmd/strata, the agent's internals or its
// front-ends (agent/, kafka/): it talks to an agent only through the public
// API and the Kafka protocol, as a user's client would. Store uses
// objectlog.OpenBucket and coordinator.Open, the agent's own clients of the
// store and index, on purpose: it measures what they get. Its tests may
// start an agent, or a kafka.Server over internal/kafkafake.
package bench
