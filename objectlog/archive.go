package objectlog

// The columnar archive: one partition's committed records rewritten into
// Parquet files, sorted by offset, for cheap long-term storage, for fetches of
// old offsets, and for SQL engines (DuckDB, Spark, Trino) reading the bucket
// as a hive-partitioned dataset. ARCHIVE.md is the format's reference; this
// file holds the row schema, the object keys and the writer, and
// archive_reader.go the reader.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// archiveCRCKey is the footer key-value entry holding each row group's
// CRC32C (Castagnoli) over its bytes, as 8 hex digits, comma-separated.
const archiveCRCKey = "strata.row_group_crc32c"

// ArchiveRoot is the key prefix under which every archive file lives.
const ArchiveRoot = "archive/"

// archiveOffsetDigits is how wide offsets are written in archive keys: the
// decimal width of math.MaxInt64, so that keys of one partition sort by offset
// in a listing (S3 lists keys in byte order).
const archiveOffsetDigits = 19

// maxTopicNameLen is Kafka's limit on topic names (Topic.MAX_NAME_LENGTH).
const maxTopicNameLen = 249

// Timestamp type names as Kafka spells them (TimestampType.name), the
// values of the timestamp_type column.
const (
	TimestampTypeCreate    = "CreateTime"
	TimestampTypeLogAppend = "LogAppendTime"
)

// Kafka timestamps are milliseconds; the archive stores microseconds, so
// only milliseconds within int64 microseconds (about ±292,000 years) fit.
const (
	archiveMicrosPerMilli = 1000
	archiveMaxMillis      = math.MaxInt64 / archiveMicrosPerMilli
	archiveMinMillis      = math.MinInt64 / archiveMicrosPerMilli
)

// ArchiveOptions defaults (see there).
const (
	archiveDefaultGroupSize = 4 << 20
	archiveDefaultGroupRecs = 64 << 10
	archiveDefaultFileSize  = 128 << 20
)

// archiveRow is one record as a Parquet row. The column names, types and
// order are the archive format (ARCHIVE.md); changing them is a new format.
type archiveRow struct {
	Offset int64 `parquet:"offset"`
	// Timestamp is microseconds since the Unix epoch, UTC: Kafka's
	// milliseconds times 1000, so SQL engines see a TIMESTAMP.
	Timestamp int64 `parquet:"timestamp,timestamp(microsecond)"`
	// Key and Value: nil is null, a pointer to an empty slice is empty.
	// Pointers, because parquet-go v0.32.0 loses a null among runs of
	// empty and null []byte (TestArchiveNullAfterEmpty).
	Key     *[]byte         `parquet:"key,optional"`
	Value   *[]byte         `parquet:"value,optional"`
	Headers []archiveHeader `parquet:"headers,list"`

	// The batch the record came in: what a fetch needs to rebuild it.
	BatchBaseOffset      int64  `parquet:"batch_base_offset"`
	BatchLastOffsetDelta int32  `parquet:"batch_last_offset_delta"`
	BatchFirstTimestamp  int64  `parquet:"batch_first_timestamp,timestamp(microsecond)"`
	BatchMaxTimestamp    int64  `parquet:"batch_max_timestamp,timestamp(microsecond)"`
	PartitionLeaderEpoch int32  `parquet:"partition_leader_epoch"`
	ProducerID           int64  `parquet:"producer_id"`
	ProducerEpoch        int16  `parquet:"producer_epoch"`
	BaseSequence         int32  `parquet:"base_sequence"`
	TimestampType        string `parquet:"timestamp_type,enum,dict"`
	Transactional        bool   `parquet:"transactional"`
}

type archiveHeader struct {
	Key   string  `parquet:"key"`
	Value *[]byte `parquet:"value,optional"`
}

// ArchiveBatch is what the archive keeps of the RecordBatch a record came in:
// enough to rebuild a RecordBatch v2 with the same base offset, producer
// fields and timestamp type (EncodeArchiveBatches).
type ArchiveBatch struct {
	BaseOffset int64
	// LastOffsetDelta is as the original batch stated it, even if some of
	// its records are not in the archive (a compacted topic).
	LastOffsetDelta int32
	// FirstTimestamp and MaxTimestamp are the batch header's, in
	// milliseconds since the Unix epoch. In a LogAppendTime batch the
	// records' timestamps are MaxTimestamp and FirstTimestamp is the
	// producer's.
	FirstTimestamp       int64
	MaxTimestamp         int64
	PartitionLeaderEpoch int32
	// ProducerID, ProducerEpoch and BaseSequence are -1 for a producer that
	// is not idempotent.
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	LogAppendTime bool
	Transactional bool
}

// ArchiveBatchOf returns what the archive keeps of b.
func ArchiveBatchOf(b *Batch) ArchiveBatch {
	return ArchiveBatch{
		BaseOffset:           b.BaseOffset,
		LastOffsetDelta:      b.LastOffsetDelta,
		FirstTimestamp:       b.FirstTimestamp,
		MaxTimestamp:         b.MaxTimestamp,
		PartitionLeaderEpoch: b.PartitionLeaderEpoch,
		ProducerID:           b.ProducerID,
		ProducerEpoch:        b.ProducerEpoch,
		BaseSequence:         b.BaseSequence,
		LogAppendTime:        b.Attrs.LogAppendTime(),
		Transactional:        b.Attrs.Transactional(),
	}
}

// ArchiveRecord is one archived record with the batch it came in.
type ArchiveRecord struct {
	DecodedRecord
	Batch ArchiveBatch
}

// ArchivePartition names the partition a writer archives. TopicID tells a
// recreated topic of the same name apart from the deleted one.
type ArchivePartition struct {
	Topic     string
	TopicID   uuid.UUID
	Partition int32
}

// ArchiveKeyParts is what an archive key says.
type ArchiveKeyParts struct {
	ArchivePartition
	// FirstOffset and LastOffset are the offsets of the file's first and
	// last records (inclusive).
	FirstOffset, LastOffset int64
	// Generation is 0 for a file the compactor wrote from hot segments, and
	// for a file the log cleaner rewrote (a compacted topic), the cleaning
	// pass's lease token: a rewritten file may hold the same first and last
	// offsets as the file it replaces, and keys are create-only.
	Generation int64
}

// validTopicName checks a topic name as Kafka does (Topic.validate): 1 to
// 249 characters of [a-zA-Z0-9._-], and neither "." nor "..". Only such
// names are safe in a hive path segment without escaping.
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("objectlog: topic name %q is not allowed", name)
	}
	if len(name) > maxTopicNameLen {
		return fmt.Errorf("objectlog: topic name is %d characters long; the limit is %d", len(name), maxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("objectlog: topic name %q has %q at %d; allowed are [a-zA-Z0-9._-]", name, c, i)
		}
	}
	return nil
}

// ArchivePartitionPrefix returns the key prefix of one partition's archive
// files, "archive/topic=<name>/partition=<p>/", for listing them in offset
// order.
func ArchivePartitionPrefix(topic string, partition int32) (string, error) {
	if err := validTopicName(topic); err != nil {
		return "", err
	}
	if partition < 0 {
		return "", fmt.Errorf("objectlog: partition %d is negative", partition)
	}
	return fmt.Sprintf("%stopic=%s/partition=%d/", ArchiveRoot, topic, partition), nil
}

// ArchiveKey returns the object key of an archive file:
// archive/topic=<name>/partition=<p>/<first>-<last>-<topic id>.parquet, the
// offsets zero-padded to 19 digits so that a partition's files list in
// offset order; a cleaned file (Generation > 0) ends
// <topic id>-c<generation>.parquet. The hive-style directories let SQL
// engines read topic and partition as columns.
func ArchiveKey(k ArchiveKeyParts) (string, error) {
	prefix, err := ArchivePartitionPrefix(k.Topic, k.Partition)
	if err != nil {
		return "", err
	}
	if k.FirstOffset < 0 || k.LastOffset < k.FirstOffset {
		return "", fmt.Errorf("objectlog: archive offsets %d..%d (want 0 <= first <= last)", k.FirstOffset, k.LastOffset)
	}
	if k.Generation < 0 {
		return "", fmt.Errorf("objectlog: archive generation %d is negative", k.Generation)
	}
	gen := ""
	if k.Generation > 0 {
		gen = "-c" + strconv.FormatInt(k.Generation, 10)
	}
	return fmt.Sprintf("%s%0*d-%0*d-%s%s.parquet", prefix, archiveOffsetDigits, k.FirstOffset,
		archiveOffsetDigits, k.LastOffset, k.TopicID, gen), nil
}

// ParseArchiveKey reads a key ArchiveKey made. Anything else is an error.
func ParseArchiveKey(key string) (ArchiveKeyParts, error) {
	bad := func(why string) (ArchiveKeyParts, error) {
		return ArchiveKeyParts{}, fmt.Errorf("objectlog: %q is not an archive key: %s", key, why)
	}
	rest, ok := strings.CutPrefix(key, ArchiveRoot+"topic=")
	if !ok {
		return bad("want prefix " + ArchiveRoot + "topic=")
	}
	topic, rest, ok := strings.Cut(rest, "/partition=")
	if !ok {
		return bad("no /partition=")
	}
	if err := validTopicName(topic); err != nil {
		return bad(err.Error())
	}
	part, name, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no file name after the partition")
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != part {
		return bad("partition " + strconv.Quote(part) + " is not a non-negative integer")
	}
	base, ok := strings.CutSuffix(name, ".parquet")
	const uuidLen = 36
	var gen int64
	if fixed := 2*archiveOffsetDigits + 2 + uuidLen; ok && len(base) > fixed {
		g, isGen := strings.CutPrefix(base[fixed:], "-c")
		n, err := strconv.ParseInt(g, 10, 64)
		if !isGen || err != nil || n <= 0 || strconv.FormatInt(n, 10) != g {
			return bad("file name is not <19-digit first>-<19-digit last>-<topic id>[-c<generation>].parquet")
		}
		gen, base = n, base[:fixed]
	}
	if !ok || len(base) != 2*archiveOffsetDigits+2+uuidLen || base[archiveOffsetDigits] != '-' || base[2*archiveOffsetDigits+1] != '-' {
		return bad("file name is not <19-digit first>-<19-digit last>-<topic id>[-c<generation>].parquet")
	}
	first, err1 := parseOffsetDigits(base[:archiveOffsetDigits])
	last, err2 := parseOffsetDigits(base[archiveOffsetDigits+1 : 2*archiveOffsetDigits+1])
	id, err3 := uuid.Parse(base[2*archiveOffsetDigits+2:])
	if err := errors.Join(err1, err2, err3); err != nil {
		return bad(err.Error())
	}
	if last < first {
		return bad("last offset before first")
	}
	return ArchiveKeyParts{
		ArchivePartition: ArchivePartition{Topic: topic, TopicID: id, Partition: int32(p)},
		FirstOffset:      first, LastOffset: last, Generation: gen,
	}, nil
}

func parseOffsetDigits(s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("offset %q has a non-digit", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// ArchiveRowGroup locates one row group of an archive file: what an index
// entry pointing at (file, row group) needs, and what a reader fetches.
// Row groups hold whole batches, so a fetch never needs two.
type ArchiveRowGroup struct {
	// FirstOffset and LastOffset are the offsets of the group's first and
	// last records.
	FirstOffset, LastOffset int64
	// MinTimestamp and MaxTimestamp are over the group's records, in ms.
	MinTimestamp, MaxTimestamp int64
	Records                    int64
	// ByteOffset and ByteLength are the range of the group's column chunks
	// in the file: the one ranged GET that reads the group.
	ByteOffset, ByteLength int64
}

// ArchiveFileInfo describes a finished archive file.
type ArchiveFileInfo struct {
	Key string
	ArchiveKeyParts
	// Size is the file's length in bytes.
	Size    int64
	Records int64
	// MinTimestamp and MaxTimestamp are over the file's records, in ms.
	MinTimestamp, MaxTimestamp int64
	// RowGroups are in offset order, not overlapping.
	RowGroups []ArchiveRowGroup
}

// ArchiveFile is a finished archive file: its bytes, ready to upload under
// Info.Key with PutIfAbsent, and what it holds.
type ArchiveFile struct {
	Info ArchiveFileInfo
	Data []byte
}

// ArchiveOptions bound the files an ArchiveWriter makes. Zero fields take
// the defaults.
type ArchiveOptions struct {
	// RowGroupBytes: a row group is closed at the first batch boundary at
	// which its records' keys, values and headers reach this many bytes
	// (uncompressed). Default 4 MiB, so that a fetch reads a few MiB.
	RowGroupBytes int64
	// RowGroupRecords: a row group is also closed at the first batch
	// boundary at which it holds this many records. Default 65536.
	RowGroupRecords int64
	// FileBytes: a file is closed after a row group once one more row group
	// of RowGroupBytes could pass this size. Files exceed it only when a
	// single row group does (one batch larger than the limit). Default
	// 128 MiB.
	FileBytes int64
	// Generation goes into the files' keys (ArchiveKeyParts.Generation):
	// 0 for the compactor, the pass's lease token for the log cleaner.
	Generation int64
	// BetterCompression compresses with zstd's "better" level (about zstd
	// level 7) instead of its default (level 3): on JSON records about 17%
	// smaller files for two to three times the CPU when writing
	// (BenchmarkArchiveWrite); reading costs the same.
	BetterCompression bool
}

func (o ArchiveOptions) withDefaults() (ArchiveOptions, error) {
	if o.RowGroupBytes < 0 || o.RowGroupRecords < 0 || o.FileBytes < 0 || o.Generation < 0 {
		return o, fmt.Errorf("objectlog: archive options %+v: negative limit", o)
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = archiveDefaultGroupSize
	}
	if o.RowGroupRecords == 0 {
		o.RowGroupRecords = archiveDefaultGroupRecs
	}
	if o.FileBytes == 0 {
		o.FileBytes = archiveDefaultFileSize
	}
	return o, nil
}

// archiveRowOverhead approximates the bytes a row's fixed-width columns take
// before compression, so that groups of tiny records are bounded too.
const archiveRowOverhead = 48

// archiveGroupMetaBytes is about what one row group adds to the footer and
// page index (measured: 2 to 3 KiB for the 18 columns).
const archiveGroupMetaBytes = 3 << 10

// ArchiveWriter turns one partition's committed records, in offset order and
// batch by batch, into archive files. A compactor reads the partition's
// chunks in offset order (ReadChunk, then DecodeChunk with the chunk's base
// offset), leaves out control batches and aborted transactions, calls
// Append(ArchiveBatchOf(&batch), records) for each batch, and Close at the
// end.
//
// The writer calls emit, from Append or Close, with each finished file: the
// caller uploads it (PutIfAbsent under Info.Key) and indexes its row groups
// (Info.RowGroups). The file's Data is the caller's. An error from emit
// fails the writer and is returned. It is not safe for concurrent use.
type ArchiveWriter struct {
	part ArchivePartition
	opts ArchiveOptions
	emit func(ArchiveFile) error

	buf    bytes.Buffer
	pw     *parquet.GenericWriter[archiveRow]
	rows   []archiveRow
	file   ArchiveFileInfo
	group  ArchiveRowGroup
	gbytes int64
	next   int64 // the lowest offset the next record may have
	err    error

	fileOpen  bool
	groupEnds []int64 // where each row group of the open file ends in buf
}

// NewArchiveWriter returns a writer for one partition.
func NewArchiveWriter(p ArchivePartition, opts ArchiveOptions, emit func(ArchiveFile) error) (*ArchiveWriter, error) {
	if _, err := ArchivePartitionPrefix(p.Topic, p.Partition); err != nil {
		return nil, err
	}
	if emit == nil {
		return nil, errors.New("objectlog: archive writer needs an emit function")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &ArchiveWriter{part: p, opts: o, emit: emit}, nil
}

// Append adds the records of one batch, in offset order. Records must be
// committed (the compactor leaves out aborted transactions and control
// batches, which have no place in the archive), each offset must lie in the
// batch and be above every offset appended before, and timestamps must fit
// in microseconds. After an error the writer is unusable.
func (w *ArchiveWriter) Append(b ArchiveBatch, recs []DecodedRecord) error {
	if w.err != nil {
		return w.err
	}
	if err := w.checkBatch(b, recs); err != nil {
		return err
	}
	if !w.fileOpen {
		w.openFile()
	}
	tsType := TimestampTypeCreate
	if b.LogAppendTime {
		tsType = TimestampTypeLogAppend
	}
	w.rows = w.rows[:0]
	for i := range recs {
		r := &recs[i]
		row := archiveRow{
			Offset:               r.Offset,
			Timestamp:            r.Timestamp * archiveMicrosPerMilli,
			Key:                  nullable(&r.Key),
			Value:                nullable(&r.Value),
			BatchBaseOffset:      b.BaseOffset,
			BatchLastOffsetDelta: b.LastOffsetDelta,
			BatchFirstTimestamp:  b.FirstTimestamp * archiveMicrosPerMilli,
			BatchMaxTimestamp:    b.MaxTimestamp * archiveMicrosPerMilli,
			PartitionLeaderEpoch: b.PartitionLeaderEpoch,
			ProducerID:           b.ProducerID,
			ProducerEpoch:        b.ProducerEpoch,
			BaseSequence:         b.BaseSequence,
			TimestampType:        tsType,
			Transactional:        b.Transactional,
		}
		if len(r.Headers) > 0 {
			row.Headers = make([]archiveHeader, len(r.Headers))
			for j, h := range r.Headers {
				row.Headers[j] = archiveHeader{Key: h.Key, Value: nullable(&r.Headers[j].Value)}
				w.gbytes += int64(len(h.Key) + len(h.Value))
			}
		}
		w.rows = append(w.rows, row)
		w.gbytes += int64(len(r.Key)+len(r.Value)) + archiveRowOverhead
		w.noteRecord(r.Offset, r.Timestamp)
	}
	// The writer copies the values into its column buffers, so the
	// caller's slices are free again when Append returns.
	if _, err := w.pw.Write(w.rows); err != nil {
		return w.fail(fmt.Errorf("objectlog: archive write: %w", err))
	}
	clear(w.rows)
	w.next = recs[len(recs)-1].Offset + 1
	if w.gbytes >= w.opts.RowGroupBytes || w.group.Records >= w.opts.RowGroupRecords {
		return w.endGroup()
	}
	return nil
}

// nullable is nil for a nil slice and p otherwise.
func nullable(p *[]byte) *[]byte {
	if *p == nil {
		return nil
	}
	return p
}

// deref is the slice p points at, nil if p is nil.
func deref(p *[]byte) []byte {
	if p == nil {
		return nil
	}
	if *p == nil {
		return []byte{}
	}
	return *p
}

func (w *ArchiveWriter) checkBatch(b ArchiveBatch, recs []DecodedRecord) error {
	if len(recs) == 0 {
		return fmt.Errorf("objectlog: archive append of batch %d: no records", b.BaseOffset)
	}
	if b.BaseOffset < 0 || b.LastOffsetDelta < 0 || b.BaseOffset > math.MaxInt64-int64(b.LastOffsetDelta) {
		return fmt.Errorf("objectlog: archive append: batch base offset %d, last offset delta %d", b.BaseOffset, b.LastOffsetDelta)
	}
	for _, ts := range []int64{b.FirstTimestamp, b.MaxTimestamp} {
		if ts < archiveMinMillis || ts > archiveMaxMillis {
			return fmt.Errorf("objectlog: archive append of batch %d: timestamp %d ms does not fit in microseconds", b.BaseOffset, ts)
		}
	}
	last := b.BaseOffset + int64(b.LastOffsetDelta)
	prev := w.next - 1
	for i := range recs {
		r := &recs[i]
		if r.Offset <= prev || r.Offset < b.BaseOffset || r.Offset > last {
			return fmt.Errorf("objectlog: archive append: record offset %d, want above %d and within its batch %d..%d", r.Offset, prev, b.BaseOffset, last)
		}
		if r.Timestamp < archiveMinMillis || r.Timestamp > archiveMaxMillis {
			return fmt.Errorf("objectlog: archive append: record %d timestamp %d ms does not fit in microseconds", r.Offset, r.Timestamp)
		}
		prev = r.Offset
	}
	return nil
}

func (w *ArchiveWriter) fail(err error) error {
	w.err = err
	return err
}

func (w *ArchiveWriter) openFile() {
	w.buf.Reset()
	level := zstd.SpeedDefault
	if w.opts.BetterCompression {
		level = zstd.SpeedBetterCompression
	}
	opts := []parquet.WriterOption{
		parquet.Compression(&zstd.Codec{Level: level}),
		parquet.CreatedBy("strata", "archive-v1", ""),
		// Unbuffered: the output is memory already, and each row group's
		// bytes must be in buf after its Flush for its checksum.
		parquet.WriteBufferSize(0),
		parquet.KeyValueMetadata("strata.topic", w.part.Topic),
		parquet.KeyValueMetadata("strata.topic_id", w.part.TopicID.String()),
		parquet.KeyValueMetadata("strata.partition", strconv.Itoa(int(w.part.Partition))),
		// Statistics of keys, values and headers say nothing a reader
		// uses and would copy whole values into the footer.
		parquet.SkipPageStatistics("key"), parquet.SkipPageStatistics("value"),
		parquet.SkipPageStatistics("headers", "list", "element", "key"),
		parquet.SkipPageStatistics("headers", "list", "element", "value"),
		parquet.SkipPageBounds("key"), parquet.SkipPageBounds("value"),
		parquet.SkipPageBounds("headers", "list", "element", "key"),
		parquet.SkipPageBounds("headers", "list", "element", "value"),
	}
	// A fresh writer per file: parquet-go's Reset does not clear all of a
	// closed file's metadata.
	w.pw = parquet.NewGenericWriter[archiveRow](&w.buf, opts...)
	w.file = ArchiveFileInfo{ArchiveKeyParts: ArchiveKeyParts{ArchivePartition: w.part, FirstOffset: -1, Generation: w.opts.Generation}}
	w.group = ArchiveRowGroup{FirstOffset: -1}
	w.groupEnds = w.groupEnds[:0]
	w.fileOpen = true
}

func (w *ArchiveWriter) noteRecord(offset, ts int64) {
	g := &w.group
	if g.Records == 0 {
		g.FirstOffset, g.MinTimestamp, g.MaxTimestamp = offset, ts, ts
	}
	g.LastOffset = offset
	g.MinTimestamp = min(g.MinTimestamp, ts)
	g.MaxTimestamp = max(g.MaxTimestamp, ts)
	g.Records++
}

// endGroup writes the pending row group and closes the file if another
// group could take it past FileBytes.
func (w *ArchiveWriter) endGroup() error {
	if w.group.Records == 0 {
		return nil
	}
	if err := w.pw.Flush(); err != nil {
		return w.fail(fmt.Errorf("objectlog: archive row group: %w", err))
	}
	f := &w.file
	w.groupEnds = append(w.groupEnds, int64(w.buf.Len()))
	g := w.group
	if f.Records == 0 {
		f.FirstOffset, f.MinTimestamp, f.MaxTimestamp = g.FirstOffset, g.MinTimestamp, g.MaxTimestamp
	}
	f.LastOffset = g.LastOffset
	f.MinTimestamp = min(f.MinTimestamp, g.MinTimestamp)
	f.MaxTimestamp = max(f.MaxTimestamp, g.MaxTimestamp)
	f.Records += g.Records
	f.RowGroups = append(f.RowGroups, g)
	w.group = ArchiveRowGroup{FirstOffset: -1}
	w.gbytes = 0
	// The footer and page index, written at close, take about
	// archiveGroupMetaBytes per row group: count them in.
	groups := int64(len(f.RowGroups)) + 1
	if w.pw.Size()+groups*archiveGroupMetaBytes+w.opts.RowGroupBytes > w.opts.FileBytes {
		return w.closeFile()
	}
	return nil
}

// closeFile writes the footer and hands the file to emit.
func (w *ArchiveWriter) closeFile() error {
	// Parquet checksums pages but not their headers; a CRC32C of each row
	// group's bytes lets a reader reject any damage to them before a
	// decoder sees it.
	crcs := make([]string, len(w.groupEnds))
	start := int64(len(parquetMagic))
	for i, end := range w.groupEnds {
		crcs[i] = fmt.Sprintf("%08x", crc32Castagnoli(w.buf.Bytes()[start:end]))
		start = end
	}
	w.pw.SetKeyValueMetadata(archiveCRCKey, strings.Join(crcs, ","))
	if err := w.pw.Close(); err != nil {
		return w.fail(fmt.Errorf("objectlog: archive footer: %w", err))
	}
	f := w.file
	md := w.pw.File().Metadata()
	if len(md.RowGroups) != len(f.RowGroups) {
		return w.fail(fmt.Errorf("objectlog: archive writer: %d row groups written, %d counted", len(md.RowGroups), len(f.RowGroups)))
	}
	for i := range md.RowGroups {
		start, end := rowGroupRange(&md.RowGroups[i])
		if want := w.groupEnds[i]; end != want {
			return w.fail(fmt.Errorf("objectlog: archive writer: row group %d ends at byte %d, its checksum was taken to %d", i, end, want))
		}
		f.RowGroups[i].ByteOffset, f.RowGroups[i].ByteLength = start, end-start
	}
	f.Size = int64(w.buf.Len())
	key, err := ArchiveKey(f.ArchiveKeyParts)
	if err != nil {
		return w.fail(err)
	}
	f.Key = key
	data := bytes.Clone(w.buf.Bytes())
	w.buf.Reset()
	w.file = ArchiveFileInfo{}
	w.fileOpen = false
	if err := w.emit(ArchiveFile{Info: f, Data: data}); err != nil {
		return w.fail(err)
	}
	return nil
}

// Close writes the last row group and file. The writer is unusable after.
func (w *ArchiveWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	defer func() { w.err = errArchiveWriterClosed }()
	if !w.fileOpen {
		return nil
	}
	if err := w.endGroup(); err != nil {
		return err
	}
	if w.fileOpen {
		return w.closeFile()
	}
	return nil
}

var errArchiveWriterClosed = errors.New("objectlog: archive writer closed")
