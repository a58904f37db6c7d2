// Package objectlog owns Strata's immutable objects: the Bucket interface and
// its backends (filesystem, minio-go, aws-sdk-go-v2), the segment format that
// one agent flush writes, the Parquet archive format that compaction writes
// (ARCHIVE.md), and the shared acceptance suite every backend passes.
//
// It must not import coordinator, agent, or Connect: it knows nothing of
// offsets as the index assigns them beyond what a reader is told.
package objectlog
