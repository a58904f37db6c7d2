// Package agent is Strata's stateless server core, protocol-agnostic: the
// produce batcher that turns records from every partition into one segment
// object per flush, the fetch reader with its block cache and long polls,
// topics, consumer groups, idempotent producers and transactions, the
// compactor and the janitor. It offers them as a Go API to the two
// front-ends, which are peers over it (DESIGN.md, "The layout"): the
// Connect API in agent/connectapi and the Kafka listener in kafka (through
// kafka/agentcore). It imports neither, nor Connect, nor Kafka's wire
// format: `go list -deps ./agent` names no connectrpc package.
//
// It depends on objectlog (objects and the segment format) and coordinator
// (the metadata index), never the other way round.
//
// The Go API takes two shapes. Where an operation is exactly a public API
// RPC, its method has the RPC's name and takes and returns the RPC's
// protobuf messages (package stratav1: plain Go structs, not Connect),
// e.g. Produce, Fetch, ListOffsets, CreateTopic, Heartbeat, EndTxn; the
// Connect front-end's handlers only unwrap, call and wrap. Streams are
// split: StartProduce appends one request and returns the wait for its
// commit (ProduceStream's loop is the front-end's), and Subscribe runs a
// subscription over callbacks (SubscribeStream). The public API's batch
// calls (ProduceBatches, FetchBatches: core_batch_rpcs.go) are methods of
// the same kind over the Kafka listener's batch path. Where another protocol
// needs another shape, the methods take plain Go and coordinator types:
// core_batches.go appends a client's encoded RecordBatches byte for byte
// through the same batcher and reads stored batches back whole through the
// same index lookups, block cache and long polls as Fetch (loadEntry,
// partitionGone are shared); core_cluster.go lists live agents with their
// Kafka listeners and node ids, the cluster id, topics and producer ids
// over the same index calls as the RPC methods; core_groups.go is Kafka's
// classic group protocol (join, sync, heartbeat, leave, commits fenced by
// generation) over the same group keys, leases and committed offsets as
// the native groups, with protocol metadata and assignments as opaque bytes,
// and core_groups_offsets.go Kafka's offset commits and fetches and the
// describing, listing and deleting of groups of both kinds;
// core_consumer_groups.go is KIP-848's consumer protocol over the native
// groups themselves; core_txn.go is the transaction calls (txn.go's) with
// Go types, and the check of a Kafka client's transactional RecordBatch
// against its transaction.
//
// Errors are plain Go errors (errors.go): sentinels matched with
// errors.Is (ErrInvalid, ErrTooLarge, ErrUnknownTopicOrPartition, ...,
// and the index's and the store's, wrapped), and the types OffsetRangeError
// and LimitError that carry an offset's bounds and a broken limit's name,
// limit and actual value. Each front-end maps them to its protocol's codes
// in one table of its own.
//
// Files follow the API: produce.go and producer_id.go (ProducerService's
// Produce and InitProducerId for idempotent producers), fetch.go,
// subscribe.go and list_offsets.go (ConsumerService), admin.go and
// delete_records.go (AdminService), group_service.go over group.go
// (GroupService, KIP-848-style groups); topics.go is the topic metadata
// cache; batcher.go is the write path behind Produce, cache.go the block
// cache, entry_loads.go the read path's loads and fetches ahead of a
// reader (issue 12), hub.go the fan-out of the index's watermark notifications;
// janitor.go the janitor (retention, deleted topics, deletion of
// unreferenced and orphaned segment and archive objects); compactor.go
// moves old records into the Parquet archive, cleaner.go is the log
// cleaner of compacted topics (cleanup.policy compact), and
// archive_read.go reads archived offsets back for the read path. txn.go is ProducerService's
// transaction RPCs (KIP-98) and their control markers, read_committed.go
// the read_committed reads, txn_reaper.go the abort of transactions past
// their timeout.
package agent
