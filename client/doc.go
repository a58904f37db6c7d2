// Package client holds Go clients of Strata's public API that do more than
// one RPC: the consumer-group member, GroupConsumer, and the Producer.
//
// A Producer batches records per partition (Linger, BatchMaxBytes), places
// them with Kafka's default partitioner (murmur2 of the key, sticky
// partitions for records without one), pipelines requests on one
// ProduceStream with up to 5 batches in flight per partition, retries
// retryable errors and calls one promise per record with its offset or
// error. It is idempotent by default (InitProducerId, sequence numbers per
// partition, KIP-98): retries never duplicate a record nor reorder a
// partition.
//
// A GroupConsumer joins a group through GroupService (server-side
// assignment, see proto/strata/v1/group.proto), reads the partitions the
// group gives it with ConsumerService.Fetch long polls, and commits its
// positions with GroupService.CommitOffsets, at least once (after the
// application processed a batch) or at most once (before Poll returns it).
//
// The membership runs in a background goroutine that heartbeats, but every
// change it learns (partitions assigned, revoked or lost) is applied inside
// Poll, Commit or Close on the application's goroutine, as Kafka's consumer
// runs its rebalance callbacks inside poll: a partition is never taken away
// while the application processes a batch of it.
//
// It is a top-level package, beside the ones the design names (cmd, agent,
// objectlog, coordinator), because it is what users import: the CLI is one
// of its users, not its owner.
//
// The package talks to agents only through the public API (the generated
// Connect clients); it must not import agent, coordinator or objectlog, so
// that it stays what any outside program could have written. (It shares
// internal/kafkahash with the agent: Kafka's hash, not Strata's internals.)
package client
