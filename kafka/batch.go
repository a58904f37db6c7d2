package kafka

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// RecordBatch v2 header layout (Kafka's DefaultRecordBatch), byte offsets:
//
//	0 baseOffset int64          8 batchLength int32      12 partitionLeaderEpoch int32
//	16 magic int8               17 crc uint32 (CRC-32C of bytes 21..end)
//	21 attributes int16         23 lastOffsetDelta int32 27 firstTimestamp int64
//	35 maxTimestamp int64       43 producerId int64      51 producerEpoch int16
//	53 baseSequence int32       57 records count int32   61 records...
const (
	batchHeaderBytes   = 61
	batchLengthOffset  = 8
	batchOverheadBytes = 12 // baseOffset and batchLength, not counted in batchLength
	attrTransactional  = 0x10
	attrControl        = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseProduceBatch checks the records of one partition of a Produce request
// (v3+) the way Kafka does and returns its header: exactly one batch
// (INVALID_RECORD otherwise), magic 2 (INVALID_RECORD), a length that matches
// the bytes (CORRUPT_MESSAGE), a good CRC-32C (CORRUPT_MESSAGE), at least one
// record and no control batch from a client (INVALID_RECORD).
func parseProduceBatch(raw []byte) (Batch, error) {
	if len(raw) < batchHeaderBytes {
		return Batch{}, fmt.Errorf("%w: %d bytes, shorter than a record batch header (%d)", ErrCorruptMessage, len(raw), batchHeaderBytes)
	}
	length := int64(int32(binary.BigEndian.Uint32(raw[batchLengthOffset:])))
	size := length + batchOverheadBytes
	switch {
	case size < batchHeaderBytes || size > int64(len(raw)):
		return Batch{}, fmt.Errorf("%w: batch length %d does not fit the %d bytes sent", ErrCorruptMessage, length, len(raw))
	case size < int64(len(raw)):
		return Batch{}, fmt.Errorf("%w: produce requests of version 3 or later must hold exactly one record batch per partition", ErrInvalidRecord)
	}
	if magic := raw[16]; magic != 2 {
		return Batch{}, fmt.Errorf("%w: record batch magic %d; produce version 3 or later needs magic 2", ErrInvalidRecord, magic)
	}
	if want, got := binary.BigEndian.Uint32(raw[17:]), crc32.Checksum(raw[21:], castagnoli); want != got {
		return Batch{}, fmt.Errorf("%w: CRC-32C %08x, batch says %08x", ErrCorruptMessage, got, want)
	}
	attrs := binary.BigEndian.Uint16(raw[21:])
	b := Batch{
		Raw:            raw,
		Records:        int32(binary.BigEndian.Uint32(raw[23:])) + 1,
		FirstTimestamp: int64(binary.BigEndian.Uint64(raw[27:])),
		MaxTimestamp:   int64(binary.BigEndian.Uint64(raw[35:])),
		ProducerID:     int64(binary.BigEndian.Uint64(raw[43:])),
		ProducerEpoch:  int16(binary.BigEndian.Uint16(raw[51:])),
		BaseSequence:   int32(binary.BigEndian.Uint32(raw[53:])),
		Transactional:  attrs&attrTransactional != 0,
		Control:        attrs&attrControl != 0,
	}
	if count := int32(binary.BigEndian.Uint32(raw[57:])); b.Records <= 0 || count <= 0 {
		return Batch{}, fmt.Errorf("%w: a record batch must hold at least one record (lastOffsetDelta %d, count %d)", ErrInvalidRecord, b.Records-1, count)
	}
	if b.Control {
		return Batch{}, fmt.Errorf("%w: clients may not produce control batches", ErrInvalidRecord)
	}
	return b, nil
}
