package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Issue 13, the front-end's part: OffsetFetch's RequireStable (v7+,
// KIP-447) answers UNSTABLE_OFFSET_COMMIT per partition while a
// transaction has offsets pending on it, and only when asked; the
// committed leader epoch goes back as it was committed; TxnOffsetCommit v3
// passes its member on to the core (the fake has no members: unknown).
func TestOffsetFetchRequireStable(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 2)
	rc := dial(t, c.addrs[0])

	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.TransactionalID, ip.TransactionTimeoutMillis = kmsg.StringPtr("stable"), 60000
	ipr := roundTrip[*kmsg.InitProducerIDResponse](t, rc, "x", ip)
	if ipr.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ipr.ErrorCode))
	}
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.SetVersion(3)
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "stable", ipr.ProducerID, ipr.ProducerEpoch, "g"
	if code := roundTrip[*kmsg.AddOffsetsToTxnResponse](t, rc, "x", ao).ErrorCode; code != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(code))
	}
	txnCommit := func(member string, generation int32) int16 {
		t.Helper()
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.SetVersion(3)
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "stable", "g", ipr.ProducerID, ipr.ProducerEpoch
		req.MemberID, req.Generation = member, generation
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 1, 11, 6
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{rp}}}
		return roundTrip[*kmsg.TxnOffsetCommitResponse](t, rc, "x", req).Topics[0].Partitions[0].ErrorCode
	}
	if code := txnCommit("m", 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("TxnOffsetCommit v3 naming a member the core does not know: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := txnCommit("", -1); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}

	fetch := func(version int16, requireStable bool) map[int32]kmsg.OffsetFetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.SetVersion(version)
		req.Group, req.RequireStable = "g", requireStable
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: []int32{0, 1}}}
		resp := roundTrip[*kmsg.OffsetFetchResponse](t, rc, "x", req)
		out := map[int32]kmsg.OffsetFetchResponseTopicPartition{}
		for _, p := range resp.Topics[0].Partitions {
			out[p.Partition] = p
		}
		return out
	}
	got := fetch(7, true)
	if got[1].ErrorCode != kerr.UnstableOffsetCommit.Code || got[1].Offset != -1 || got[0].ErrorCode != 0 || got[0].Offset != -1 {
		t.Fatalf("v7 require stable: %+v, want partition 1 UNSTABLE_OFFSET_COMMIT, 0 without error", got)
	}
	for _, v := range []int16{6, 7} { // v6 has no RequireStable
		if got := fetch(v, false); got[1].ErrorCode != 0 || got[1].Offset != -1 {
			t.Fatalf("v%d not require stable: %+v, want -1 without error", v, got[1])
		}
	}
	v8 := kmsg.NewPtrOffsetFetchRequest()
	v8.SetVersion(8)
	v8.RequireStable = true
	v8.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: []int32{1}}}}}
	if p := roundTrip[*kmsg.OffsetFetchResponse](t, rc, "x", v8).Groups[0].Topics[0].Partitions[0]; p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("v8 require stable: %+v, want UNSTABLE_OFFSET_COMMIT", p)
	}

	et := kmsg.NewPtrEndTxnRequest()
	et.SetVersion(3)
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = "stable", ipr.ProducerID, ipr.ProducerEpoch, true
	if code := roundTrip[*kmsg.EndTxnResponse](t, rc, "x", et).ErrorCode; code != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
	}
	if got := fetch(7, true); got[1].ErrorCode != 0 || got[1].Offset != 11 || got[1].LeaderEpoch != 6 {
		t.Fatalf("after the commit: %+v, want 11 with leader epoch 6", got[1])
	}
}
