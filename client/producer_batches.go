package client

// The Producer's batch path (ProducerService.ProduceBatchesStream): each
// partition's batch travels as one Kafka RecordBatch v2 that the producer
// encoded, with its producer id, epoch and base sequence in the batch
// header, and is answered per partition: a batch's error is its own, never
// its request's.

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// batchRequestLocked lays the batches out as one ProduceBatches request,
// one entry per batch in their order, taking each batch's producer fields
// for this attempt; encodeRequest builds the message.
func (p *Producer) batchRequestLocked(batches []*producerBatch, now time.Time) *produceRequest {
	p.nextReqID++
	req := &produceRequest{id: p.nextReqID, batches: batches, frames: make([]batchFrame, len(batches)), sent: now}
	for i, b := range batches {
		req.frames[i] = batchFrame{pid: -1, epoch: -1, seq: -1}
		if p.cfg.idempotent {
			req.frames[i] = batchFrame{pid: p.pid, epoch: p.epoch, seq: b.seq}
		}
	}
	return req
}

// encodeRequest encodes (and compresses) the records of each batch not
// encoded yet, and frames every batch for this attempt. Only the sender
// calls it, on batches it has taken and not yet handed to a stream.
func (p *Producer) encodeRequest(r *produceRequest) {
	msg := &stratav1.ProduceBatchesRequest{Partitions: make([]*stratav1.PartitionRecordBatches, len(r.batches))}
	for i, b := range r.batches {
		if b.body == nil {
			body := encodeBody(b.records, p.comp, p.cfg.batchCodec)
			b.body = &body
		}
		f := r.frames[i]
		msg.Partitions[i] = &stratav1.PartitionRecordBatches{
			Topic:         b.part.topic,
			Partition:     b.part.partition,
			RecordBatches: b.body.frame(make([]byte, 0, batchHeaderLen+len(b.body.records)), f.pid, f.epoch, f.seq),
		}
	}
	r.batchMsg = &stratav1.ProduceBatchesStreamRequest{RequestId: r.id, Request: msg}
}

// batchesAnsweredLocked takes a ProduceBatches answer: each batch is
// acknowledged, or fails, retries or is split on its own error.
func (p *Producer) batchesAnsweredLocked(req *produceRequest, resp *stratav1.ProduceBatchesResponse) {
	results := resp.GetPartitions()
	if len(results) != len(req.batches) {
		p.requestFailedLocked(req, connect.NewError(connect.CodeInternal,
			fmt.Errorf("the agent answered %d partitions for the %d sent", len(results), len(req.batches))))
		return
	}
	var acked []*producerBatch
	for i, b := range req.batches {
		res := results[i]
		if e := res.GetError(); e != nil {
			if e.GetLimitExceeded().GetName() == "max.message.bytes" && len(b.records) > 1 {
				p.splitBatchLocked(b)
				continue
			}
			p.requestFailedLocked(&produceRequest{batches: []*producerBatch{b}}, partitionError(e))
			continue
		}
		if len(res.GetBaseOffsets()) != 1 {
			p.requestFailedLocked(&produceRequest{batches: []*producerBatch{b}}, connect.NewError(connect.CodeInternal,
				fmt.Errorf("the agent answered %d base offsets for one batch", len(res.GetBaseOffsets()))))
			continue
		}
		p.backoff = p.cfg.retryBackoffMin
		b.base = res.GetBaseOffsets()[0]
		b.state = batchDone
		b.part.inflight--
		b.part.acked = true
		p.popDoneLocked(b.part)
		acked = append(acked, b)
	}
	p.undrainLocked(acked)
}

// splitBatchLocked splits a batch the agent refused as over the topic's
// max.message.bytes (so it was not written) in two, and queues both, as
// Kafka's producer splits a batch answered MESSAGE_TOO_LARGE: the topic's
// limit is on a batch, the producer's BatchMaxBytes may be larger. Its
// sequence numbers stay, shared between the halves. The partition's later
// batches in flight come back with a gap and follow them.
func (p *Producer) splitBatchLocked(b *producerBatch) {
	part := b.part
	half := len(b.records) / 2
	rest := &producerBatch{part: part, records: b.records[half:], created: b.created, sealed: b.sealed, epoch: b.epoch, lastErr: b.lastErr}
	b.records = b.records[:half:half]
	if b.sealed {
		rest.seq = addSeq(b.seq, half)
	}
	b.bytes = 0
	for _, r := range b.records {
		b.bytes += r.size
	}
	for _, r := range rest.records {
		rest.bytes += r.size
	}
	b.body, b.state = nil, batchQueued
	part.inflight--
	part.draining = true
	for i, c := range part.batches {
		if c == b {
			part.batches = append(part.batches[:i+1], append([]*producerBatch{rest}, part.batches[i+1:]...)...)
			break
		}
	}
	p.log.Info("batch over the topic's max.message.bytes; split in two", "topic", part.topic, "partition", part.partition, "records", half+len(rest.records))
	p.undrainLocked([]*producerBatch{b})
}

// partitionError is a partition's error in a batch answer as a
// *connect.Error, its details attached as a failed call has them.
func partitionError(e *stratav1.PartitionError) error {
	err := connect.NewError(codeOf(e.GetCode()), errors.New(e.GetMessage()))
	for _, m := range []proto.Message{e.GetInfo(), e.GetLimitExceeded(), e.GetOffsetOutOfRange()} {
		if !m.ProtoReflect().IsValid() {
			continue
		}
		if d, derr := connect.NewErrorDetail(m); derr == nil {
			err.AddDetail(d)
		}
	}
	return err
}

// codeOf reads a Connect code's string form; unknown for anything else.
func codeOf(s string) connect.Code {
	var code connect.Code
	if code.UnmarshalText([]byte(s)) != nil {
		return connect.CodeUnknown
	}
	return code
}
