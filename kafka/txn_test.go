package kafka_test

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions (KIP-98) through the front-end over the fake core, which
// keeps the transactional ids' state: franz-go's transactional producer,
// and each API's errors as Kafka answers them.

// A franz-go transactional producer commits and aborts; its batches are
// stored with the transactional flag, and a second producer with the same
// transactional id fences the first.
func TestKgoTransactionalProducer(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	topic := topicName(t)
	createTopic(t, c, topic, 2)

	prod := newClient(t, c, kgo.TransactionalID("app-1"), kgo.DefaultProduceTopic(topic))
	for _, commit := range []bool{true, false, true} {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			r := &kgo.Record{Partition: p, Value: []byte("v")}
			if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("transactional produce: %v", err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("EndTransaction(commit %v): %v", commit, err)
		}
	}
	stored := c.core.StoredBatches(topic)
	if len(stored) != 6 {
		t.Fatalf("%d batches stored, want 6", len(stored))
	}
	for i, raw := range stored {
		if binary.BigEndian.Uint16(raw[21:])&0x10 == 0 {
			t.Fatalf("batch %d stored without the transactional flag", i)
		}
	}

	// A second producer of the same transactional id fences the first.
	newer := newClient(t, c, kgo.TransactionalID("app-1"), kgo.DefaultProduceTopic(topic))
	if err := newer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := newer.ProduceSync(ctx, &kgo.Record{Value: []byte("new")}).FirstErr(); err != nil {
		t.Fatalf("the newer producer: %v", err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie")}).FirstErr()
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the fenced producer's produce: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	if err := newer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the newer producer's commit: %v", err)
	}
}

// txnBatch is makeBatch with the transactional flag and a producer.
func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	raw := makeBatch(values...)
	binary.BigEndian.PutUint16(raw[21:], binary.BigEndian.Uint16(raw[21:])|0x10)
	binary.BigEndian.PutUint64(raw[43:], uint64(pid))
	binary.BigEndian.PutUint16(raw[51:], uint16(epoch))
	binary.BigEndian.PutUint32(raw[53:], uint32(seq))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

func TestTxnAPIErrors(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 2)
	rc := dial(t, c.addrs[0])

	initID := func(tid string) (int64, int16) {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(4)
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(tid), 60000
		resp := roundTrip[*kmsg.InitProducerIDResponse](t, rc, "x", req)
		if resp.ErrorCode != 0 {
			t.Fatalf("InitProducerId(%s): %v", tid, kerr.ErrorForCode(resp.ErrorCode))
		}
		return resp.ProducerID, resp.ProducerEpoch
	}
	addParts := func(version int16, tid string, pid int64, epoch int16, topic string, parts ...int32) []int16 {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(version)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = tid, pid, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, parts
		req.Topics = append(req.Topics, rt)
		resp := roundTrip[*kmsg.AddPartitionsToTxnResponse](t, rc, "x", req)
		var codes []int16
		for _, p := range resp.Topics[0].Partitions {
			codes = append(codes, p.ErrorCode)
		}
		return codes
	}
	endTxn := func(version int16, tid string, pid int64, epoch int16, commit bool) int16 {
		t.Helper()
		req := kmsg.NewPtrEndTxnRequest()
		req.SetVersion(version)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = tid, pid, epoch, commit
		return roundTrip[*kmsg.EndTxnResponse](t, rc, "x", req).ErrorCode
	}
	produce := func(tid *string, raw []byte, partition int32) int16 {
		t.Helper()
		req := produceRequest(9, -1, topic, partition, raw)
		req.TransactionID = tid
		return roundTrip[*kmsg.ProduceResponse](t, rc, "x", req).Topics[0].Partitions[0].ErrorCode
	}
	want := func(what string, got int16, err *kerr.Error) {
		t.Helper()
		if got != err.Code {
			t.Errorf("%s: %v, want %s", what, kerr.ErrorForCode(got), err.Message)
		}
	}

	// An id no producer holds.
	want("AddPartitionsToTxn of an unknown id", addParts(3, "nobody", 5, 0, topic, 0)[0], kerr.InvalidProducerIDMapping)

	pid, epoch := initID("tx")
	want("EndTxn with nothing open", endTxn(3, "tx", pid, epoch, true), kerr.InvalidTxnState)
	// A partition that does not exist: it is UNKNOWN_TOPIC_OR_PARTITION,
	// the others of the request are not attempted.
	codes := addParts(3, "tx", pid, epoch, topic, 0, 7)
	want("AddPartitionsToTxn, existing partition", codes[0], kerr.OperationNotAttempted)
	want("AddPartitionsToTxn, missing partition", codes[1], kerr.UnknownTopicOrPartition)
	// Nothing was added: a transactional batch is refused.
	tid := kmsg.StringPtr("tx")
	want("transactional produce to a partition not added", produce(tid, txnBatch(pid, epoch, 0, "a"), 0), kerr.InvalidTxnState)
	want("transactional produce without a transactional id", produce(nil, txnBatch(pid, epoch, 0, "a"), 0), kerr.TransactionalIDAuthorizationFailed)

	for _, code := range addParts(3, "tx", pid, epoch, topic, 0) {
		want("AddPartitionsToTxn", code, &kerr.Error{Message: "NONE", Code: 0})
	}
	want("transactional produce to the added partition", produce(tid, txnBatch(pid, epoch, 0, "a"), 0), &kerr.Error{Message: "NONE", Code: 0})
	want("transactional produce to partition 1, not added", produce(tid, txnBatch(pid, epoch, 0, "b"), 1), kerr.InvalidTxnState)

	// Offsets of a group not added are refused; added, they are committed
	// with the transaction.
	txnCommit := func(group string, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(3)
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", group, pid, epoch
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return roundTrip[*kmsg.TxnOffsetCommitResponse](t, rc, "x", req).Topics[0].Partitions[0].ErrorCode
	}
	want("TxnOffsetCommit of a group not added", txnCommit("g", 42), kerr.InvalidTxnState)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.SetVersion(3)
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx", pid, epoch, "g"
	want("AddOffsetsToTxn", roundTrip[*kmsg.AddOffsetsToTxnResponse](t, rc, "x", ao).ErrorCode, &kerr.Error{Message: "NONE", Code: 0})
	want("TxnOffsetCommit", txnCommit("g", 42), &kerr.Error{Message: "NONE", Code: 0})
	adm := kadm.NewClient(newClient(t, c))
	offsets, err := adm.FetchOffsets(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := offsets.Lookup(topic, 0); ok {
		t.Fatalf("an offset of an open transaction is visible: %+v", offsets)
	}
	want("EndTxn commit", endTxn(3, "tx", pid, epoch, true), &kerr.Error{Message: "NONE", Code: 0})
	offsets, err = adm.FetchOffsets(t.Context(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(topic, 0); !ok || o.At != 42 {
		t.Fatalf("after the commit, offset %+v, want 42", o)
	}

	// A newer epoch fences the older: PRODUCER_FENCED from v2 on,
	// INVALID_PRODUCER_EPOCH before (KIP-588), and on produce.
	_, newEpoch := initID("tx")
	if newEpoch != epoch+1 {
		t.Fatalf("the second InitProducerId answered epoch %d, want %d", newEpoch, epoch+1)
	}
	want("AddPartitionsToTxn v3, fenced", addParts(3, "tx", pid, epoch, topic, 0)[0], kerr.ProducerFenced)
	want("AddPartitionsToTxn v1, fenced", addParts(1, "tx", pid, epoch, topic, 0)[0], kerr.InvalidProducerEpoch)
	want("EndTxn v3, fenced", endTxn(3, "tx", pid, epoch, false), kerr.ProducerFenced)
	want("EndTxn v0, fenced", endTxn(0, "tx", pid, epoch, false), kerr.InvalidProducerEpoch)
	want("transactional produce, fenced", produce(tid, txnBatch(pid, epoch, 1, "z"), 0), kerr.InvalidProducerEpoch)

	// A transaction timeout over transaction.max.timeout.ms.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.SetVersion(4)
	req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr("tx-long"), int32((16 * time.Minute).Milliseconds())
	want("InitProducerId with a 16-minute timeout", roundTrip[*kmsg.InitProducerIDResponse](t, rc, "x", req).ErrorCode, kerr.InvalidTransactionTimeout)
}
