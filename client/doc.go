// Package client holds Go clients of Strata's public API that do more than
// one RPC: the consumer-group member, GroupConsumer, and the Producer.
//
// A Producer batches records per partition (Linger, BatchMaxBytes), places
// them with Kafka's default partitioner (murmur2 of the key, sticky
// partitions for records without one), pipelines requests with up to 5
// batches in flight per partition, retries retryable errors and calls one
// promise per record with its offset or error. It is idempotent by default
// (InitProducerId, sequence numbers per partition, KIP-98): retries never
// duplicate a record nor reorder a partition.
//
// Which call carries the records depends on the producer's mode:
//   - Plain and idempotent producers (the default) take the batch path:
//     each partition's batch is encoded here as one Kafka RecordBatch v2,
//     compressed as BatchCompression says, with the producer id, epoch and
//     base sequence in its header, and sent on
//     ProducerService.ProduceBatchesStream, which stores it byte for byte
//     and answers each partition on its own. A batch refused as over the
//     topic's max.message.bytes is split in two and sent again.
//   - Transactional producers (TransactionalID) send records on
//     ProducerService.ProduceStream with the transactional id, which the
//     agent batches itself: the agent checks a transactional batch against
//     the open transaction only on that call.
//
// A GroupConsumer joins a group through GroupService (server-side
// assignment, see proto/strata/v1/group.proto), reads all the partitions
// the group gives it with one ConsumerService.FetchBatches long poll at a
// time, decodes the record batches itself (control batches, and under
// ReadCommitted the batches of aborted transactions, dropped, as Kafka's
// consumers do), and commits its positions with GroupService.CommitOffsets,
// at least once (after the application processed a batch) or at most once
// (before Poll returns it).
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
// Record batches are therefore encoded and decoded with franz-go (kmsg,
// kbin, and kgo's compressors and ProcessFetchPartition), as a Kafka
// client does, not with objectlog's segment code.
package client
