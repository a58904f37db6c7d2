package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics live in the default registry, served on the admin port.
var (
	metricProducedRecords = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_produced_records_total", Help: "Records acknowledged to producers."})
	metricProducedBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_produced_bytes_total", Help: "Key, value and header bytes of records acknowledged to producers."})
	metricProduceRejected = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_produce_rejected_total", Help: "Produces refused because the buffer stayed full."})
	metricFlushSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_flush_seconds", Help: "Seal to commit of one segment.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	metricPuts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_store_puts_total", Help: "Segment objects uploaded (attempted)."})
	metricPutBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_store_put_bytes_total", Help: "Bytes of segment objects uploaded."})
	metricPutSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_store_put_seconds", Help: "Segment upload latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	metricGets = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_store_gets_total", Help: "Ranged GETs issued by the block cache."})
	metricGetBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_store_get_bytes_total", Help: "Bytes read from the store by the block cache."})
	metricCacheHits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cache_hits_total", Help: "Block cache hits."})
	metricCacheMisses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cache_misses_total", Help: "Block cache misses."})
	metricCommitSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_index_commit_seconds", Help: "Segment commit latency in the index.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14)})
	metricCommits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_index_commits_total", Help: "Segments committed to the index (one pipelined round trip each, retries aside)."})
	metricCommitChunks = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_index_commit_chunks_total", Help: "Partition chunks committed to the index: one Lua script each."})
	metricFetchedRecords = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_fetched_records_total", Help: "Records served to fetches and subscriptions."})
)

// Janitor metrics (janitor.go).
var (
	metricJanitorPasses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_janitor_passes_total", Help: "Janitor passes this agent ran while holding the janitor lease."})
	metricJanitorErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_janitor_errors_total", Help: "Janitor passes that stopped on an error."})
	metricRetentionEntries = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_retention_entries_removed_total", Help: "Index entries removed by retention.ms and retention.bytes."})
	metricSegmentsDeleted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_janitor_objects_deleted_total", Help: "Segment objects deleted by the janitor, orphans included."})
	metricOrphansDeleted = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_janitor_orphans_deleted_total", Help: "Uploaded segments that no commit ever appended, deleted after --orphan-grace."})
	metricBytesReclaimed = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_janitor_bytes_reclaimed_total", Help: "Bytes of the segment objects the janitor deleted."})
)

// Log cleaner metrics (cleaner.go, topics with cleanup.policy compact).
var (
	metricCleanerRecordsRemoved = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cleaner_records_removed_total", Help: "Archived records the log cleaner removed: superseded by a later record of their key, tombstones past delete.retention.ms, and records without a key."})
	metricCleanerBytesRemoved = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cleaner_bytes_removed_total", Help: "Archive bytes (row groups) the log cleaner's rewrites left out: the replaced files' bytes less the rewritten ones'."})
	metricCleanerPasses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cleaner_partitions_cleaned_total", Help: "Partitions the log cleaner rewrote."})
	metricCleanerErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_cleaner_errors_total", Help: "Cleaning passes that ended with an error on some partition."})
)

// Compaction metrics (compactor.go).
var (
	metricCompactedRecords = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_compaction_records_total", Help: "Records the compactor moved from hot segments into the Parquet archive."})
	metricCompactedBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_compaction_bytes_total", Help: "Hot segment chunk bytes the compactor replaced by archive files."})
	metricArchiveFiles = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_compaction_files_written_total", Help: "Archive (Parquet) files the compactor uploaded."})
	metricArchiveBytes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_compaction_file_bytes_total", Help: "Bytes of the archive files the compactor uploaded."})
	metricCompactionErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_compaction_errors_total", Help: "Compaction passes that ended with an error on some partition."})
	metricCompactionLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_compaction_lag_seconds", Help: "Per partition: how far past the topic's archive.after.ms the oldest hot record compaction could archive is (0 when nothing waits; a transaction marker or aborted data ending the log waits for later data and is not counted)."},
		[]string{"topic", "partition"})
)
