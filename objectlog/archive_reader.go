package objectlog

// Reading archive files through a Bucket: the footer with one ranged GET of
// the tail, then one row group with one ranged GET of its column chunks.
//
// Archive files come from the store, so every size in them is checked
// before anything is allocated from it. parquet-go trusts its input (list
// lengths in the Thrift footer, page sizes and value counts in page
// headers become allocations), so this reader walks the Thrift bytes and
// the page headers itself first, bounding each length by the bytes that
// remain, and checks that every zstd frame states a content size within
// the page's. Only then does parquet-go decode the rows.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Limits a reader holds archive files to. Files the ArchiveWriter makes with
// its defaults are far below them; they bound what a corrupt or hostile file
// can make a reader allocate.
const (
	// ArchiveMaxFooterBytes bounds the Parquet footer (file metadata).
	ArchiveMaxFooterBytes = 4 << 20
	// ArchiveMaxRowGroupBytes bounds a row group's column chunks,
	// uncompressed.
	ArchiveMaxRowGroupBytes = 512 << 20
	// ArchiveMaxRowGroupValues bounds the values of one column chunk (rows,
	// or header entries for the headers columns).
	ArchiveMaxRowGroupValues = 32 << 20

	parquetMagic      = "PAR1"
	parquetTailLen    = 8 // footer length (uint32 LE) + magic
	archiveTailGuess  = 64 << 10
	thriftMaxDepth    = 32
	minArchiveFileLen = len(parquetMagic) + parquetTailLen
)

// archiveCorrupt is a FormatError about an archive file.
func archiveCorrupt(off int64, format string, args ...any) error {
	return corruptf("archive", off, format, args...)
}

// archiveLayout is the expected schema, taken from a file the writer makes,
// so that the check follows the row struct.
var archiveLayout = sync.OnceValues(func() ([]format.SchemaElement, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[archiveRow](&buf)
	if err := w.Close(); err != nil {
		return nil, err
	}
	md := w.File().Metadata()
	return slices.Clone(md.Schema), nil
})

// archiveLeaf is one leaf column of the expected schema.
type archiveLeaf struct {
	path     []string
	typ      format.Type
	repeated bool // under the headers list: more values than rows
}

var archiveLeaves = sync.OnceValues(func() ([]archiveLeaf, error) {
	schema, err := archiveLayout()
	if err != nil {
		return nil, err
	}
	var leaves []archiveLeaf
	var walk func(i int, path []string, repeated bool) int
	walk = func(i int, path []string, repeated bool) int {
		e := schema[i]
		p := append(slices.Clone(path), e.Name)
		rep := repeated || e.RepetitionType.Valid && e.RepetitionType.V == format.Repeated
		if e.NumChildren.V == 0 {
			leaves = append(leaves, archiveLeaf{path: p, typ: e.Type.V, repeated: rep})
			return i + 1
		}
		next := i + 1
		for range e.NumChildren.V {
			next = walk(next, p, rep)
		}
		return next
	}
	next := 1
	for range schema[0].NumChildren.V {
		next = walk(next, nil, false)
	}
	return leaves, nil
})

// ArchiveReader reads one archive file. It holds the file's metadata, so
// reading a row group costs one ranged GET. It is safe for concurrent use.
type ArchiveReader struct {
	b    BucketReader
	key  string
	size int64
	// tail is the file's last bytes, holding the footer and its length.
	tail   []byte
	md     format.FileMetaData
	info   ArchiveFileInfo
	leaves []archiveLeaf
	// crcs are the row groups' CRC32C.
	crcs []uint32
	// skipCRC is for fuzzing only (archive_export_test.go).
	skipCRC bool
}

// OpenArchive reads an archive file's footer: a HEAD for its size, a
// ranged GET of its last 64 KiB, and another GET if the footer is larger.
// The key must be one ArchiveKey makes, and the file's offsets must match
// it. A file that is not a well-formed archive is an error wrapping
// ErrCorrupt.
func OpenArchive(ctx context.Context, b BucketReader, key string) (*ArchiveReader, error) {
	parts, err := ParseArchiveKey(key)
	if err != nil {
		return nil, err
	}
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	r := &ArchiveReader{b: b, key: key, size: attrs.Size}
	if r.leaves, err = archiveLeaves(); err != nil {
		return nil, err
	}
	if err := r.readFooter(ctx); err != nil {
		return nil, fmt.Errorf("archive %s: %w", key, err)
	}
	if err := r.checkMetadata(parts); err != nil {
		return nil, fmt.Errorf("archive %s: %w", key, err)
	}
	return r, nil
}

// Info describes the file: its key, offsets, timestamps and row groups, as
// the writer reported them.
func (r *ArchiveReader) Info() ArchiveFileInfo {
	info := r.info
	info.RowGroups = slices.Clone(info.RowGroups)
	return info
}

func (r *ArchiveReader) readRange(ctx context.Context, off, n int64) ([]byte, error) {
	rc, err := r.b.GetRange(ctx, r.key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// The object is shorter than its HEAD said: replaced or cut.
			return nil, archiveCorrupt(off, "reading bytes %d..%d: %v", off, off+n, err)
		}
		return nil, fmt.Errorf("reading bytes %d..%d: %w", off, off+n, err)
	}
	return buf, nil
}

func (r *ArchiveReader) readFooter(ctx context.Context) error {
	if r.size < int64(minArchiveFileLen) {
		return archiveCorrupt(0, "object of %d bytes is smaller than an empty Parquet file (%d)", r.size, minArchiveFileLen)
	}
	n := min(r.size, archiveTailGuess)
	tail, err := r.readRange(ctx, r.size-n, n)
	if err != nil {
		return err
	}
	end := tail[len(tail)-parquetTailLen:]
	if string(end[4:]) != parquetMagic {
		return archiveCorrupt(r.size-4, "trailing magic %q, want %q: not a Parquet file (or encrypted)", end[4:], parquetMagic)
	}
	footerLen := int64(binary.LittleEndian.Uint32(end[:4]))
	maxLen := min(r.size-int64(minArchiveFileLen), ArchiveMaxFooterBytes)
	if footerLen == 0 || footerLen > maxLen {
		return archiveCorrupt(r.size-8, "footer length %d outside 1..%d (the object is %d bytes; the limit is %d)", footerLen, maxLen, r.size, ArchiveMaxFooterBytes)
	}
	if need := footerLen + parquetTailLen; need > n {
		if tail, err = r.readRange(ctx, r.size-need, need); err != nil {
			return err
		}
	} else {
		tail = tail[n-need:]
	}
	r.tail = tail
	footer := tail[:footerLen]
	footerOff := r.size - parquetTailLen - footerLen
	if err := thriftCheck(footer, footerOff, "footer"); err != nil {
		return err
	}
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), footer, &r.md); err != nil {
		return archiveCorrupt(footerOff, "footer: %v", err)
	}
	return nil
}

// checkMetadata checks the footer against the archive schema and the
// object's size, and derives Info from the row group statistics.
func (r *ArchiveReader) checkMetadata(parts ArchiveKeyParts) error {
	md := &r.md
	footerOff := r.size - int64(len(r.tail))
	want, err := archiveLayout()
	if err != nil {
		return err
	}
	if len(md.Schema) != len(want) {
		return archiveCorrupt(footerOff, "schema has %d elements, an archive file %d", len(md.Schema), len(want))
	}
	for i := range want {
		g, w := &md.Schema[i], &want[i]
		if g.Name != w.Name || g.Type != w.Type || g.RepetitionType != w.RepetitionType || g.NumChildren != w.NumChildren {
			return archiveCorrupt(footerOff, "schema element %d is %q (type %v, %d children), want %q (type %v, %d children)",
				i, g.Name, g.Type.V, g.NumChildren.V, w.Name, w.Type.V, w.NumChildren.V)
		}
	}
	if md.EncryptionAlgorithm.Value != nil {
		return archiveCorrupt(footerOff, "encrypted files are not archive files")
	}
	if len(md.RowGroups) == 0 {
		return archiveCorrupt(footerOff, "no row groups: an archive file holds at least one record")
	}
	info := ArchiveFileInfo{Key: r.key, ArchiveKeyParts: parts, Size: r.size}
	prevEnd := int64(len(parquetMagic))
	for i := range md.RowGroups {
		g, err := r.checkRowGroup(i, prevEnd, footerOff)
		if err != nil {
			return err
		}
		if i > 0 && g.FirstOffset <= info.RowGroups[i-1].LastOffset {
			return archiveCorrupt(footerOff, "row group %d starts at offset %d, not after row group %d's last offset %d", i, g.FirstOffset, i-1, info.RowGroups[i-1].LastOffset)
		}
		if i == 0 {
			info.MinTimestamp, info.MaxTimestamp = g.MinTimestamp, g.MaxTimestamp
		}
		info.MinTimestamp = min(info.MinTimestamp, g.MinTimestamp)
		info.MaxTimestamp = max(info.MaxTimestamp, g.MaxTimestamp)
		info.Records += g.Records
		info.RowGroups = append(info.RowGroups, g)
		prevEnd = g.ByteOffset + g.ByteLength
	}
	if md.NumRows != info.Records {
		return archiveCorrupt(footerOff, "file says %d rows, its row groups %d", md.NumRows, info.Records)
	}
	first, last := info.RowGroups[0].FirstOffset, info.RowGroups[len(info.RowGroups)-1].LastOffset
	if first != parts.FirstOffset || last != parts.LastOffset {
		return archiveCorrupt(footerOff, "file holds offsets %d..%d, its key says %d..%d", first, last, parts.FirstOffset, parts.LastOffset)
	}
	crcs, err := rowGroupCRCs(md, len(info.RowGroups))
	if err != nil {
		return archiveCorrupt(footerOff, "%v", err)
	}
	r.info, r.crcs = info, crcs
	return nil
}

// rowGroupCRCs reads the checksums the writer stored in the footer.
func rowGroupCRCs(md *format.FileMetaData, groups int) ([]uint32, error) {
	for _, kv := range md.KeyValueMetadata {
		if kv.Key != archiveCRCKey {
			continue
		}
		if len(kv.Value) != groups*9-1 {
			return nil, fmt.Errorf("%s of %d bytes for %d row groups", archiveCRCKey, len(kv.Value), groups)
		}
		crcs := make([]uint32, groups)
		for i := range crcs {
			v, err := strconv.ParseUint(kv.Value[i*9:i*9+8], 16, 32)
			if err != nil || i+1 < groups && kv.Value[i*9+8] != ',' {
				return nil, fmt.Errorf("%s: entry %d is not 8 hex digits and a comma", archiveCRCKey, i)
			}
			crcs[i] = uint32(v)
		}
		return crcs, nil
	}
	return nil, fmt.Errorf("no %s entry: not written by Strata's archive writer", archiveCRCKey)
}

// rowGroupRange is the byte range of a row group's column chunks.
func rowGroupRange(g *format.RowGroup) (start, end int64) {
	start, end = math.MaxInt64, 0
	for i := range g.Columns {
		s, e := columnChunkRange(&g.Columns[i].MetaData)
		start, end = min(start, s), max(end, e)
	}
	return start, end
}

func columnChunkRange(m *format.ColumnMetaData) (start, end int64) {
	start = m.DataPageOffset
	if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < start {
		start = m.DictionaryPageOffset
	}
	return start, start + m.TotalCompressedSize
}

func (r *ArchiveReader) checkRowGroup(i int, prevEnd, footerOff int64) (ArchiveRowGroup, error) {
	g := &r.md.RowGroups[i]
	bad := func(format string, args ...any) (ArchiveRowGroup, error) {
		return ArchiveRowGroup{}, archiveCorrupt(footerOff, "row group %d: %s", i, fmt.Sprintf(format, args...))
	}
	if g.NumRows < 1 || g.NumRows > ArchiveMaxRowGroupValues {
		return bad("%d rows, want 1..%d", g.NumRows, ArchiveMaxRowGroupValues)
	}
	if len(g.Columns) != len(r.leaves) {
		return bad("%d column chunks, want %d", len(g.Columns), len(r.leaves))
	}
	var uncompressed int64
	out := ArchiveRowGroup{Records: g.NumRows, ByteOffset: prevEnd}
	next := prevEnd
	for j := range g.Columns {
		c := &g.Columns[j]
		m := &c.MetaData
		leaf := r.leaves[j]
		if c.FilePath != "" || len(c.EncryptedColumnMetadata) > 0 {
			return bad("column %d is in another file or encrypted", j)
		}
		if !slices.Equal(m.PathInSchema, leaf.path) || m.Type != leaf.typ {
			return bad("column %d is %v of type %v, want %v of type %v", j, m.PathInSchema, m.Type, leaf.path, leaf.typ)
		}
		if m.Codec != format.Uncompressed && m.Codec != format.Zstd {
			return bad("column %d compressed with %v; archive files use zstd or none", j, m.Codec)
		}
		if m.NumValues < 0 || m.NumValues > ArchiveMaxRowGroupValues || !leaf.repeated && m.NumValues != g.NumRows || m.NumValues < g.NumRows {
			return bad("column %d has %d values for %d rows (limit %d)", j, m.NumValues, g.NumRows, ArchiveMaxRowGroupValues)
		}
		if m.TotalUncompressedSize < 0 || m.TotalUncompressedSize > ArchiveMaxRowGroupBytes-uncompressed {
			return bad("column chunks take more than %d bytes uncompressed", ArchiveMaxRowGroupBytes)
		}
		uncompressed += m.TotalUncompressedSize
		if m.DictionaryPageOffset < 0 || m.DataPageOffset < 0 || m.TotalCompressedSize <= 0 || m.TotalCompressedSize > footerOff {
			return bad("column %d: pages at %d (dictionary %d), %d bytes", j, m.DataPageOffset, m.DictionaryPageOffset, m.TotalCompressedSize)
		}
		start, end := columnChunkRange(m)
		// Chunks follow each other, as a Parquet writer lays them out.
		if start != next || end > footerOff || (m.DictionaryPageOffset > 0 && m.DataPageOffset >= end) {
			return bad("column %d spans bytes %d..%d, want it to start at %d and end by the footer at %d", j, start, end, next, footerOff)
		}
		next = end
	}
	out.ByteLength = next - prevEnd
	minOff, maxOff, err := int64Stats(&g.Columns[0].MetaData)
	if err != nil {
		return bad("offset column: %v", err)
	}
	minTS, maxTS, err := int64Stats(&g.Columns[1].MetaData)
	if err != nil {
		return bad("timestamp column: %v", err)
	}
	if minOff < 0 || maxOff-minOff < g.NumRows-1 {
		return bad("offsets %d..%d cannot hold %d distinct offsets", minOff, maxOff, g.NumRows)
	}
	out.FirstOffset, out.LastOffset = minOff, maxOff
	out.MinTimestamp, out.MaxTimestamp = floorDiv(minTS, archiveMicrosPerMilli), floorDiv(maxTS, archiveMicrosPerMilli)
	return out, nil
}

// int64Stats returns a column chunk's min and max statistics.
func int64Stats(m *format.ColumnMetaData) (int64, int64, error) {
	s := &m.Statistics
	if len(s.MinValue) != 8 || len(s.MaxValue) != 8 {
		return 0, 0, fmt.Errorf("min/max statistics of %d and %d bytes, want 8", len(s.MinValue), len(s.MaxValue))
	}
	lo, hi := int64(binary.LittleEndian.Uint64(s.MinValue)), int64(binary.LittleEndian.Uint64(s.MaxValue))
	if lo > hi {
		return 0, 0, fmt.Errorf("min %d above max %d", lo, hi)
	}
	return lo, hi, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// RowGroupFor returns the row group holding offset, or, when offset falls
// between two groups (records a compacted topic dropped), the next group.
// ok is false when offset is past the file's last offset.
func (r *ArchiveReader) RowGroupFor(offset int64) (int, bool) {
	gs := r.info.RowGroups
	i := sort.Search(len(gs), func(i int) bool { return gs[i].LastOffset >= offset })
	return i, i < len(gs)
}

// ReadFrom returns the file's records from offset on, reading only the one
// row group that holds offset (or the next one, see RowGroupFor): the
// records with an offset >= offset up to the group's end, stopping before
// the keys, values and headers passed maxBytes but always returning at
// least one record, as a Kafka fetch does (KIP-74). maxBytes <= 0 means no
// limit. A caller wanting more reads on from the last offset + 1. An offset
// past the file's last returns no records.
func (r *ArchiveReader) ReadFrom(ctx context.Context, offset int64, maxBytes int) ([]ArchiveRecord, error) {
	i, ok := r.RowGroupFor(offset)
	if !ok {
		return nil, nil
	}
	recs, err := r.ReadRowGroup(ctx, i)
	if err != nil {
		return nil, err
	}
	start := sort.Search(len(recs), func(i int) bool { return recs[i].Offset >= offset })
	recs = recs[start:]
	if maxBytes > 0 {
		total := 0
		for j := range recs {
			total += archiveRecordSize(&recs[j])
			if j > 0 && total > maxBytes {
				return recs[:j], nil
			}
		}
	}
	return recs, nil
}

func archiveRecordSize(r *ArchiveRecord) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// ReadRowGroup returns every record of row group i, in offset order, with
// one ranged GET of the group's bytes.
func (r *ArchiveReader) ReadRowGroup(ctx context.Context, i int) ([]ArchiveRecord, error) {
	if i < 0 || i >= len(r.info.RowGroups) {
		return nil, fmt.Errorf("objectlog: archive %s: row group %d of %d", r.key, i, len(r.info.RowGroups))
	}
	g := r.info.RowGroups[i]
	data, err := r.readRange(ctx, g.ByteOffset, g.ByteLength)
	if err != nil {
		return nil, fmt.Errorf("archive %s: row group %d: %w", r.key, i, err)
	}
	recs, err := r.decodeRowGroup(i, data)
	if err != nil {
		return nil, fmt.Errorf("archive %s: row group %d: %w", r.key, i, err)
	}
	return recs, nil
}

func (r *ArchiveReader) decodeRowGroup(i int, data []byte) (recs []ArchiveRecord, err error) {
	g := r.info.RowGroups[i]
	mg := &r.md.RowGroups[i]
	if got := crc32Castagnoli(data); got != r.crcs[i] && !r.skipCRC {
		return nil, archiveCorrupt(g.ByteOffset, "row group crc32c %08x, the footer says %08x", got, r.crcs[i])
	}
	for j := range mg.Columns {
		if err := checkColumnPages(&mg.Columns[j].MetaData, data, g.ByteOffset); err != nil {
			return nil, fmt.Errorf("column %v: %w", mg.Columns[j].MetaData.PathInSchema, err)
		}
	}
	// The pages are checked; should parquet-go still find something it
	// cannot decode and panic rather than fail, the file is corrupt all
	// the same, and one bad file must not take the process down.
	defer func() {
		if p := recover(); p != nil {
			recs, err = nil, archiveCorrupt(g.ByteOffset, "decoding rows: %v", p)
		}
	}()
	ra := &archiveReaderAt{regions: []archiveRegion{
		{off: g.ByteOffset, data: data},
		{off: r.size - int64(len(r.tail)), data: r.tail},
	}}
	f, err := parquet.OpenFile(ra, r.size, parquet.SkipMagicBytes(true), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, archiveCorrupt(g.ByteOffset, "opening: %v", err)
	}
	groups := f.RowGroups()
	if len(groups) != len(r.md.RowGroups) || groups[i].NumRows() != g.Records {
		return nil, archiveCorrupt(g.ByteOffset, "parquet-go sees %d row groups", len(groups))
	}
	rows := make([]archiveRow, g.Records)
	if err := readArchiveColumns(f.Schema(), groups[i], r.leaves, rows, g.ByteOffset); err != nil {
		return nil, err
	}
	return rowsToRecords(rows, g)
}

// rowsToRecords turns rows into records, checking what the writer
// guarantees: offsets ascending within the group's range and each within
// its batch, whole milliseconds, the batch fields equal across a batch.
func rowsToRecords(rows []archiveRow, g ArchiveRowGroup) ([]ArchiveRecord, error) {
	recs := make([]ArchiveRecord, len(rows))
	nh := 0
	for i := range rows {
		nh += len(rows[i].Headers)
	}
	headers := make([]Header, 0, nh)
	prev := g.FirstOffset - 1
	for i := range rows {
		row := &rows[i]
		bad := func(format string, args ...any) ([]ArchiveRecord, error) {
			return nil, archiveCorrupt(g.ByteOffset, "row %d (offset %d): %s", i, row.Offset, fmt.Sprintf(format, args...))
		}
		if row.Offset <= prev || row.Offset > g.LastOffset {
			return bad("offset not in %d..%d", prev+1, g.LastOffset)
		}
		prev = row.Offset
		if row.Timestamp%archiveMicrosPerMilli != 0 || row.BatchFirstTimestamp%archiveMicrosPerMilli != 0 || row.BatchMaxTimestamp%archiveMicrosPerMilli != 0 {
			return bad("timestamps %d, %d and %d µs are not all whole milliseconds", row.Timestamp, row.BatchFirstTimestamp, row.BatchMaxTimestamp)
		}
		b := ArchiveBatch{
			BaseOffset:           row.BatchBaseOffset,
			LastOffsetDelta:      row.BatchLastOffsetDelta,
			FirstTimestamp:       row.BatchFirstTimestamp / archiveMicrosPerMilli,
			MaxTimestamp:         row.BatchMaxTimestamp / archiveMicrosPerMilli,
			PartitionLeaderEpoch: row.PartitionLeaderEpoch,
			ProducerID:           row.ProducerID,
			ProducerEpoch:        row.ProducerEpoch,
			BaseSequence:         row.BaseSequence,
			Transactional:        row.Transactional,
		}
		switch row.TimestampType {
		case TimestampTypeCreate:
		case TimestampTypeLogAppend:
			b.LogAppendTime = true
		default:
			return bad("timestamp type %q", row.TimestampType)
		}
		if b.BaseOffset < 0 || b.LastOffsetDelta < 0 || row.Offset < b.BaseOffset || row.Offset-b.BaseOffset > int64(b.LastOffsetDelta) {
			return bad("outside its batch %d (last offset delta %d)", b.BaseOffset, b.LastOffsetDelta)
		}
		if i > 0 && recs[i-1].Batch.BaseOffset == b.BaseOffset && recs[i-1].Batch != b {
			return bad("batch fields differ from the previous record of batch %d", b.BaseOffset)
		}
		if i > 0 && recs[i-1].Batch.BaseOffset > b.BaseOffset {
			return bad("batch %d after batch %d", b.BaseOffset, recs[i-1].Batch.BaseOffset)
		}
		rec := &recs[i]
		rec.Offset, rec.Timestamp = row.Offset, row.Timestamp/archiveMicrosPerMilli
		rec.Key, rec.Value, rec.Batch = deref(row.Key), deref(row.Value), b
		if len(row.Headers) > 0 {
			start := len(headers)
			for _, h := range row.Headers {
				headers = append(headers, Header{Key: h.Key, Value: deref(h.Value)})
			}
			rec.Headers = headers[start:len(headers):len(headers)]
		}
	}
	return recs, nil
}

// archiveReaderAt serves parquet-go the bytes already fetched: the tail and
// one row group. A read anywhere else means the metadata pointed outside
// what was checked: corrupt.
type archiveReaderAt struct{ regions []archiveRegion }

type archiveRegion struct {
	off  int64
	data []byte
}

func (ra *archiveReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for _, r := range ra.regions {
		if off >= r.off && off-r.off <= int64(len(r.data)) && int64(len(p)) <= int64(len(r.data))-(off-r.off) {
			return copy(p, r.data[off-r.off:]), nil
		}
	}
	return 0, archiveCorrupt(off, "read of %d bytes outside the fetched row group and footer", len(p))
}

// checkColumnPages walks a column chunk's pages in data (the row group's
// bytes, starting at file offset base) and checks every size a page header
// gives against the chunk before parquet-go allocates from it.
func checkColumnPages(m *format.ColumnMetaData, data []byte, base int64) error {
	start, end := columnChunkRange(m)
	chunk := data[start-base : end-base]
	var values, uncompressed int64
	sawData := false
	for pos := 0; pos < len(chunk); {
		at := start + int64(pos)
		n, err := thriftLen(chunk[pos:], at, "page header")
		if err != nil {
			return err
		}
		var h format.PageHeader
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), chunk[pos:pos+n], &h); err != nil {
			return archiveCorrupt(at, "page header: %v", err)
		}
		pos += n
		if h.CompressedPageSize < 0 || int(h.CompressedPageSize) > len(chunk)-pos {
			return archiveCorrupt(at, "page of %d bytes, %d left in the column chunk", h.CompressedPageSize, len(chunk)-pos)
		}
		if h.UncompressedPageSize < 0 || int64(h.UncompressedPageSize) > m.TotalUncompressedSize-uncompressed {
			return archiveCorrupt(at, "page of %d bytes uncompressed, past the chunk's %d", h.UncompressedPageSize, m.TotalUncompressedSize)
		}
		uncompressed += int64(h.UncompressedPageSize)
		page := chunk[pos : pos+int(h.CompressedPageSize)]
		pos += int(h.CompressedPageSize)
		compressed := m.Codec != format.Uncompressed
		levels := 0
		switch h.Type {
		case format.DictionaryPage:
			if sawData || !h.DictionaryPageHeader.Valid || h.DictionaryPageHeader.V.NumValues < 0 || int64(h.DictionaryPageHeader.V.NumValues) > m.NumValues {
				return archiveCorrupt(at, "dictionary page misplaced or with a bad value count")
			}
		case format.DataPage:
			if !h.DataPageHeader.Valid || h.DataPageHeader.V.NumValues < 0 || int64(h.DataPageHeader.V.NumValues) > m.NumValues-values {
				return archiveCorrupt(at, "data page value count past the chunk's %d", m.NumValues)
			}
			values += int64(h.DataPageHeader.V.NumValues)
			sawData = true
		case format.DataPageV2:
			v := &h.DataPageHeaderV2
			if !v.Valid || v.V.NumValues < 0 || int64(v.V.NumValues) > m.NumValues-values || v.V.NumNulls < 0 || v.V.NumNulls > v.V.NumValues ||
				v.V.NumRows < 0 || v.V.NumRows > v.V.NumValues ||
				v.V.DefinitionLevelsByteLength < 0 || v.V.RepetitionLevelsByteLength < 0 ||
				int64(v.V.DefinitionLevelsByteLength)+int64(v.V.RepetitionLevelsByteLength) > int64(len(page)) {
				return archiveCorrupt(at, "data page v2 header: counts or level lengths out of range")
			}
			values += int64(v.V.NumValues)
			levels = int(v.V.DefinitionLevelsByteLength + v.V.RepetitionLevelsByteLength)
			if v.V.IsCompressed.Valid && !v.V.IsCompressed.V {
				compressed = false
			}
			sawData = true
		default:
			return archiveCorrupt(at, "page type %v is not written to archive files", h.Type)
		}
		if compressed {
			if err := checkZstdFrames(page[levels:], int64(h.UncompressedPageSize)-int64(levels), at); err != nil {
				return err
			}
		} else if int(h.UncompressedPageSize) != len(page) {
			return archiveCorrupt(at, "uncompressed page of %d bytes says %d", len(page), h.UncompressedPageSize)
		}
	}
	if values != m.NumValues {
		return archiveCorrupt(start, "pages hold %d values, the column chunk says %d", values, m.NumValues)
	}
	return nil
}

// zstdMaxBlock is the most one zstd block decompresses to (RFC 8878
// 3.1.1.2.4, Block_Maximum_Size): a decoder fails a block past it.
const zstdMaxBlock = 128 << 10

// checkZstdFrames bounds what data, zstd frames, decompresses to: a frame's
// stated content size (the decoder fails a frame that passes it), or for a
// frame without one (a writer leaves it out under 256 bytes) what its
// blocks can hold: raw and RLE blocks their size, compressed blocks at most
// a full block. The total may pass limit by at most one block.
func checkZstdFrames(data []byte, limit int64, at int64) error {
	var total int64
	for len(data) > 0 {
		var h zstd.Header
		if err := h.Decode(data); err != nil {
			return archiveCorrupt(at, "zstd frame header: %v", err)
		}
		if h.Skippable {
			n := int64(h.HeaderSize) + int64(h.SkippableSize)
			if n > int64(len(data)) {
				return archiveCorrupt(at, "zstd skippable frame of %d bytes, %d left", n, len(data))
			}
			data = data[n:]
			continue
		}
		pos := h.HeaderSize
		var blocks int64
		for {
			if len(data)-pos < 3 {
				return archiveCorrupt(at, "zstd block header truncated")
			}
			bh := uint32(data[pos]) | uint32(data[pos+1])<<8 | uint32(data[pos+2])<<16
			pos += 3
			size := int(bh >> 3)
			switch (bh >> 1) & 3 {
			case 0: // raw
				blocks += int64(size)
			case 1: // RLE: one byte repeated size times
				blocks += int64(size)
				size = 1
			case 2:
				blocks += zstdMaxBlock
			case 3:
				return archiveCorrupt(at, "zstd reserved block type")
			}
			if size > len(data)-pos {
				return archiveCorrupt(at, "zstd block of %d bytes, %d left", size, len(data)-pos)
			}
			pos += size
			if bh&1 != 0 {
				break
			}
		}
		if h.HasCheckSum {
			pos += 4
		}
		if pos > len(data) {
			return archiveCorrupt(at, "zstd checksum truncated")
		}
		if h.HasFCS {
			blocks = int64(min(h.FrameContentSize, math.MaxInt32))
		}
		if total += blocks; total > limit+zstdMaxBlock {
			return archiveCorrupt(at, "zstd frames may decompress to more than the page's %d bytes", limit)
		}
		data = data[pos:]
	}
	return nil
}

// thriftCheck walks Thrift compact-protocol bytes holding exactly one struct
// and checks that every list, map and binary length fits in the bytes left,
// so that a decoder preallocating from them allocates at most in proportion
// to the input.
func thriftCheck(b []byte, at int64, what string) error {
	n, err := thriftLen(b, at, what)
	if err != nil {
		return err
	}
	if n != len(b) {
		return archiveCorrupt(at+int64(n), "%s: %d bytes after the struct", what, len(b)-n)
	}
	return nil
}

// thriftLen returns the length of the compact-protocol struct at b's start.
func thriftLen(b []byte, at int64, what string) (int, error) {
	w := thriftWalker{b: b}
	if err := w.value(12, 0); err != nil {
		return 0, archiveCorrupt(at+int64(w.pos), "%s: %v", what, err)
	}
	return w.pos, nil
}

type thriftWalker struct {
	b   []byte
	pos int
}

var errThriftTruncated = errors.New("truncated")

func (w *thriftWalker) byte() (byte, error) {
	if w.pos >= len(w.b) {
		return 0, errThriftTruncated
	}
	c := w.b[w.pos]
	w.pos++
	return c, nil
}

func (w *thriftWalker) uvarint() (uint64, error) {
	v, n := binary.Uvarint(w.b[w.pos:])
	if n <= 0 {
		return 0, errors.New("bad varint")
	}
	w.pos += n
	return v, nil
}

// length reads a size and checks that count items of at least one byte
// each fit in the bytes left.
func (w *thriftWalker) length(v uint64, what string) (int, error) {
	if left := uint64(len(w.b) - w.pos); v > left {
		return 0, fmt.Errorf("%s of %d, only %d bytes left", what, v, left)
	}
	return int(v), nil
}

// value skips one value of compact type t.
func (w *thriftWalker) value(t byte, depth int) error {
	if depth > thriftMaxDepth {
		return fmt.Errorf("nested deeper than %d", thriftMaxDepth)
	}
	switch t {
	case 1, 2: // bool in a list or map (in a struct the type is the value)
		_, err := w.byte()
		return err
	case 3: // i8
		_, err := w.byte()
		return err
	case 4, 5, 6: // i16, i32, i64 as zigzag varints
		_, err := w.uvarint()
		return err
	case 7: // double
		if len(w.b)-w.pos < 8 {
			return errThriftTruncated
		}
		w.pos += 8
		return nil
	case 8: // binary
		v, err := w.uvarint()
		if err != nil {
			return err
		}
		n, err := w.length(v, "binary")
		if err != nil {
			return err
		}
		w.pos += n
		return nil
	case 9, 10: // list, set
		h, err := w.byte()
		if err != nil {
			return err
		}
		size := uint64(h >> 4)
		if size == 15 {
			if size, err = w.uvarint(); err != nil {
				return err
			}
		}
		n, err := w.length(size, "list")
		if err != nil {
			return err
		}
		for range n {
			if err := w.value(h&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 11: // map
		size, err := w.uvarint()
		if err != nil {
			return err
		}
		if size == 0 {
			return nil
		}
		kv, err := w.byte()
		if err != nil {
			return err
		}
		n, err := w.length(size, "map")
		if err != nil {
			return err
		}
		for range n {
			if err := w.value(kv>>4, depth+1); err != nil {
				return err
			}
			if err := w.value(kv&0x0f, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 12: // struct
		for {
			h, err := w.byte()
			if err != nil {
				return err
			}
			if h == 0 {
				return nil
			}
			if h>>4 == 0 { // long form: field id follows as a zigzag i16
				if _, err := w.uvarint(); err != nil {
					return err
				}
			}
			switch ft := h & 0x0f; ft {
			case 1, 2: // bool: the type is the value
			default:
				if err := w.value(ft, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("unknown type %d", t)
}

// EncodeArchiveBatches appends to dst the records as Kafka RecordBatch v2
// batches, one per run of records from the same batch, each with the
// original base offset, last offset delta, first and max timestamps, leader epoch,
// producer id, epoch, base sequence, timestamp type and transactional bit,
// compressed with codec: what a Kafka fetch of archived offsets returns. A
// batch whose first records are not in recs (a fetch from the middle of a
// batch, or a compacted topic) keeps its base offset, and its records their
// offset deltas, as Kafka's log cleaner leaves them.
func EncodeArchiveBatches(dst []byte, recs []ArchiveRecord, codec Codec) ([]byte, error) {
	if !codec.Valid() {
		return dst, fmt.Errorf("objectlog: unknown codec %d", codec)
	}
	var comp compressor
	var raw []byte
	var khdrs []kmsg.Header
	for start := 0; start < len(recs); {
		b := recs[start].Batch
		end := start + 1
		for end < len(recs) && recs[end].Batch.BaseOffset == b.BaseOffset {
			end++
		}
		group := recs[start:end]
		first := b.FirstTimestamp
		attrs := BatchAttrs(codec) & attrCodecMask
		if b.LogAppendTime {
			attrs |= attrLogAppendTime
		}
		if b.Transactional {
			attrs |= attrTransactional
		}
		raw = raw[:0]
		for i := range group {
			r := &group[i]
			delta := r.Offset - b.BaseOffset
			if delta < 0 || delta > int64(b.LastOffsetDelta) || i > 0 && r.Offset <= group[i-1].Offset {
				return dst, fmt.Errorf("objectlog: record offset %d outside batch %d..%d or out of order", r.Offset, b.BaseOffset, b.BaseOffset+int64(b.LastOffsetDelta))
			}
			tsDelta := r.Timestamp - first
			n := 1 + varlongLen(tsDelta) + varlongLen(delta) + nullableBytesLen(r.Key) + nullableBytesLen(r.Value) + varlongLen(int64(len(r.Headers)))
			khdrs = khdrs[:0]
			for _, h := range r.Headers {
				n += varlongLen(int64(len(h.Key))) + len(h.Key) + nullableBytesLen(h.Value)
				khdrs = append(khdrs, kmsg.Header{Key: h.Key, Value: h.Value})
			}
			if n > math.MaxInt32 {
				return dst, fmt.Errorf("objectlog: record %d of %d bytes exceeds the Kafka limit", r.Offset, n)
			}
			kr := kmsg.Record{Length: int32(n), TimestampDelta64: tsDelta, OffsetDelta: int32(delta), Key: r.Key, Value: r.Value, Headers: khdrs}
			raw = kr.AppendTo(raw)
		}
		pos := len(dst)
		hdr := kmsg.RecordBatch{
			FirstOffset:          b.BaseOffset,
			PartitionLeaderEpoch: b.PartitionLeaderEpoch,
			Magic:                batchMagic,
			Attributes:           int16(attrs),
			LastOffsetDelta:      b.LastOffsetDelta,
			FirstTimestamp:       first,
			MaxTimestamp:         b.MaxTimestamp,
			ProducerID:           b.ProducerID,
			ProducerEpoch:        b.ProducerEpoch,
			FirstSequence:        b.BaseSequence,
			NumRecords:           int32(len(group)),
		}
		out := hdr.AppendTo(dst)
		out, err := comp.compress(codec, out, raw)
		if err != nil {
			return dst, err
		}
		if len(out)-pos-batchLengthBase > math.MaxInt32 {
			return dst, fmt.Errorf("objectlog: batch of %d bytes exceeds the RecordBatch limit", len(out)-pos)
		}
		batch := out[pos:]
		binary.BigEndian.PutUint32(batch[batchLengthOffset:], uint32(len(batch)-batchLengthBase))
		binary.BigEndian.PutUint32(batch[batchCRCOffset:], crc32Castagnoli(batch[batchCRCStart:]))
		dst = out
		start = end
	}
	return dst, nil
}

func crc32Castagnoli(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
