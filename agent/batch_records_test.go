package agent

import (
	"encoding/binary"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

// header is a RecordBatch v2 header alone, enough for batchRecords.
func header(base int64, lastOffsetDelta, count int32, attrs objectlog.BatchAttrs, producerID int64) []byte {
	b := make([]byte, batchHeaderBytes)
	binary.BigEndian.PutUint64(b, uint64(base))
	binary.BigEndian.PutUint32(b[8:], batchHeaderBytes-12)
	b[16] = 2
	binary.BigEndian.PutUint16(b[batchAttributesAt:], uint16(attrs))
	binary.BigEndian.PutUint32(b[batchLastOffsetDeltaAt:], uint32(lastOffsetDelta))
	binary.BigEndian.PutUint64(b[batchProducerIDAt:], uint64(producerID))
	binary.BigEndian.PutUint32(b[batchRecordCountAt:], uint32(count))
	return b
}

func TestBatchRecords(t *testing.T) {
	const control, transactional = objectlog.BatchAttrs(0x20), objectlog.BatchAttrs(0x10)
	var batches []byte
	batches = append(batches, header(0, 9, 10, 0, -1)...)                    // 0-9
	batches = append(batches, header(10, 9, 4, 0, -1)...)                    // 10-19, compacted: 4 records left
	batches = append(batches, header(20, 1, 2, transactional, 7)...)         // 20-21, producer 7
	batches = append(batches, header(22, 0, 1, control|transactional, 7)...) // 22, its marker
	batches = append(batches, header(23, 2, 3, transactional, 8)...)         // 23-25, producer 8
	aborted7 := func(pid, base int64) bool { return pid == 7 && base >= 20 && base <= 22 }
	for _, c := range []struct {
		from    int64
		aborted func(int64, int64) bool
		want    int
	}{
		{0, nil, 10 + 4 + 2 + 3},
		{-1 << 63, nil, 19},
		{4, nil, 6 + 4 + 2 + 3},   // offsets 4-9 of the first batch
		{18, nil, 2 + 2 + 3},      // at most 18 and 19 of the compacted one
		{12, nil, 4 + 2 + 3},      // never more than its count
		{24, nil, 2},              // 24 and 25
		{0, aborted7, 10 + 4 + 3}, // producer 7's transaction aborted
		{30, nil, 0},
	} {
		if got := batchRecords(batches, c.from, c.aborted); got != c.want {
			t.Errorf("from %d (aborted filter %v): %d records, want %d", c.from, c.aborted != nil, got, c.want)
		}
	}
	if got := batchRecords(batches[:len(batches)-1], 0, nil); got != 16 {
		t.Errorf("a truncated last header: %d records, want the 16 before it", got)
	}
}
