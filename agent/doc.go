// Package agent is Strata's stateless server: the produce batcher that turns
// records from every partition into one segment object per flush, the fetch
// reader with its block cache and long polls, and the Connect handlers for
// the public API. It is the only package that knows Connect.
//
// It depends on objectlog (objects and the segment format) and coordinator
// (the metadata index), never the other way round. Errors from both map to
// Connect codes, and to the typed error details of errors.proto, in one
// place, errors.go.
//
// Files follow the API: produce.go and producer_id.go (ProducerService,
// the latter InitProducerId for idempotent producers), fetch.go,
// subscribe.go and list_offsets.go (ConsumerService), admin.go
// (AdminService); topics.go is the topic metadata cache; batcher.go is the
// write path behind Produce, cache.go the block cache, hub.go the fan-out of
// the index's watermark notifications, server.go the HTTP wiring (TLS,
// CORS), tlscert.go the API port's certificate and its reloading;
// delete_records.go is AdminService.DeleteRecords and janitor.go the
// janitor (retention, deleted topics, deletion of unreferenced and orphaned
// segment and archive objects); compactor.go moves old records into the
// Parquet archive, and archive_read.go reads archived offsets back for the
// read path. txn.go is ProducerService's transaction RPCs (KIP-98)
// and their control markers, read_committed.go the read_committed reads,
// txn_reaper.go the abort of transactions past their timeout.
//
// Besides the Connect handlers it exports a Go API for other protocol
// front-ends (the Kafka listener, through kafka/agentcore), in plain Go and
// coordinator types, knowing nothing of Kafka's wire format:
// core_batches.go appends a client's encoded RecordBatches byte for byte
// through the same batcher and reads stored batches back whole through the
// same index lookups, block cache and long polls as Fetch (loadEntry,
// partitionGone are shared); core_cluster.go lists live agents with their
// Kafka listeners and node ids, the cluster id, topics and producer ids
// over the same index calls as AdminService; core_groups.go is Kafka's
// classic group protocol (join, sync, heartbeat, leave, commits fenced by
// generation) over the same group keys, leases and committed offsets as
// the native groups, with protocol metadata and assignments as opaque bytes,
// and core_groups_offsets.go Kafka's offset commits and fetches and the
// describing, listing and deleting of groups of both kinds.
package agent
