package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator answers the same live broker for a key on every broker
// and at every version, spreads keys over the brokers, and batches keys
// from v4 on (KIP-699).
func TestFindCoordinator(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", "", "")
	byAddr := map[int32]string{}
	for _, b := range c.brokers {
		byAddr[b.ID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	var keys []string
	for i := range 30 {
		keys = append(keys, fmt.Sprintf("group-%d", i))
	}
	want := map[string]int32{}
	used := map[int32]bool{}
	for i, addr := range c.addrs {
		rc := dial(t, addr)
		batch := kmsg.NewPtrFindCoordinatorRequest()
		batch.SetVersion(4)
		batch.CoordinatorKeys = keys
		resp := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", batch)
		if len(resp.Coordinators) != len(keys) {
			t.Fatalf("broker %d: %d answers for %d keys", i, len(resp.Coordinators), len(keys))
		}
		for j, co := range resp.Coordinators {
			if co.Key != keys[j] || co.ErrorCode != 0 {
				t.Fatalf("broker %d key %s: %+v", i, keys[j], co)
			}
			if got := fmt.Sprintf("%s:%d", co.Host, co.Port); byAddr[co.NodeID] != got {
				t.Fatalf("key %s: node %d at %s, the broker is at %s", co.Key, co.NodeID, got, byAddr[co.NodeID])
			}
			if w, ok := want[co.Key]; ok && w != co.NodeID {
				t.Fatalf("key %s: broker %d answers node %d, another said %d", co.Key, i, co.NodeID, w)
			}
			want[co.Key] = co.NodeID
			used[co.NodeID] = true
		}
		// v0-3: one key, the same answer.
		for _, v := range []int16{0, 1, 3} {
			one := kmsg.NewPtrFindCoordinatorRequest()
			one.SetVersion(v)
			one.CoordinatorKey = keys[i]
			r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", one)
			if r.ErrorCode != 0 || r.NodeID != want[keys[i]] {
				t.Fatalf("v%d key %s: node %d error %d, want node %d", v, keys[i], r.NodeID, r.ErrorCode, want[keys[i]])
			}
		}
		// A transactional id is a key too; an unknown key type is not.
		txn := kmsg.NewPtrFindCoordinatorRequest()
		txn.SetVersion(3)
		txn.CoordinatorKey, txn.CoordinatorType = "tx-1", 1
		if r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", txn); r.ErrorCode != 0 || r.NodeID < 1 {
			t.Fatalf("transaction key: %+v", r)
		}
		txn.CoordinatorType = 7
		if r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", txn); r.ErrorCode != kerr.InvalidRequest.Code || r.NodeID != -1 {
			t.Fatalf("key type 7: %+v, want INVALID_REQUEST", r)
		}
		empty := kmsg.NewPtrFindCoordinatorRequest()
		empty.SetVersion(2)
		if r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", empty); r.ErrorCode != kerr.InvalidGroupID.Code {
			t.Fatalf("empty group id: error %d, want INVALID_GROUP_ID", r.ErrorCode)
		}
	}
	if len(used) != len(c.brokers) {
		t.Fatalf("30 groups are coordinated by %d of %d brokers: not spread", len(used), len(c.brokers))
	}
	// With no live broker the answer is retriable.
	c.core.SetBrokers()
	rc := dial(t, c.addrs[0])
	one := kmsg.NewPtrFindCoordinatorRequest()
	one.SetVersion(3)
	one.CoordinatorKey = "g"
	if r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", one); r.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("no brokers: error %d, want COORDINATOR_NOT_AVAILABLE", r.ErrorCode)
	}
}

// Simple commits (generation -1) through kadm, over the fake's offsets:
// the handlers' encoding of OffsetCommit, OffsetFetch (one group and many),
// ListGroups, OffsetDelete and DeleteGroups.
func TestSimpleOffsetCommitFetchDelete(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c))
	topic := topicName(t)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10, LeaderEpoch: -1, Metadata: "m0"})
	os.Add(kadm.Offset{Topic: topic, Partition: 2, At: 12, LeaderEpoch: -1})
	os.Add(kadm.Offset{Topic: "no-such-topic", Partition: 0, At: 1, LeaderEpoch: -1})
	resp, err := adm.CommitOffsets(ctx, "g1", os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resp.Lookup(topic, 0); r.Err != nil {
		t.Fatalf("commit p0: %v", r.Err)
	}
	if r, _ := resp.Lookup("no-such-topic", 0); r.Err != kerr.UnknownTopicOrPartition {
		t.Fatalf("commit to an unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
	}
	got, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := got.Lookup(topic, 0); o.At != 10 || o.Metadata != "m0" {
		t.Fatalf("fetched p0: %+v", o)
	}
	if o, _ := got.Lookup(topic, 2); o.At != 12 {
		t.Fatalf("fetched p2: %+v", o)
	}
	if _, ok := got.Lookup(topic, 1); ok {
		t.Fatalf("p1 was never committed, fetched %+v", got)
	}
	// kadm's FetchManyOffsets uses OffsetFetch v8's groups.
	many := adm.FetchManyOffsets(ctx, "g1", "g-none")
	if o, _ := many["g1"].Fetched.Lookup(topic, 2); many["g1"].Err != nil || o.At != 12 {
		t.Fatalf("v8 fetch of g1: %+v", many["g1"])
	}
	if many["g-none"].Err != nil || len(many["g-none"].Fetched) != 0 {
		t.Fatalf("v8 fetch of a group with nothing: %+v", many["g-none"])
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed["g1"]; !ok {
		t.Fatalf("ListGroups: %+v", listed)
	}
	del := kadm.TopicsSet{}
	del.Add(topic, 0)
	dresp, err := adm.DeleteOffsets(ctx, "g1", del)
	if err != nil {
		t.Fatal(err)
	}
	if err := dresp[topic][0]; err != nil {
		t.Fatalf("OffsetDelete p0: %v", err)
	}
	got, _ = adm.FetchOffsets(ctx, "g1")
	if _, ok := got.Lookup(topic, 0); ok {
		t.Fatalf("p0 still committed after OffsetDelete: %+v", got)
	}
	dg, err := adm.DeleteGroups(ctx, "g1", "g-none")
	if err != nil {
		t.Fatal(err)
	}
	if dg["g1"].Err != nil || dg["g-none"].Err != kerr.GroupIDNotFound {
		t.Fatalf("DeleteGroups: g1 %v, g-none %v (want GROUP_ID_NOT_FOUND)", dg["g1"].Err, dg["g-none"].Err)
	}
}
