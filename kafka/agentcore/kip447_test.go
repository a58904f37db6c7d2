package agentcore

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratabroker/strata/objectlog"
)

// Issue 13 over the wire, with kmsg requests against an agent: KIP-447's
// member checks in TxnOffsetCommit v3, OffsetFetch's RequireStable, the
// committed leader epoch, and KIP-360's InitProducerId with a known
// producer id and epoch.

// wireClient is a kgo client to the agent, with the test's context.
type wireClient struct {
	t    *testing.T
	ctx  context.Context
	addr string
	cl   *kgo.Client
	v7   *kgo.Client // OffsetFetch v7
}

// at is a client that sends the API key at version at most (kgo sends the
// highest version both sides have, whatever the request's SetVersion).
func (w *wireClient) at(key kmsg.Key, version int16) *kgo.Client {
	w.t.Helper()
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(key), version)
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.MaxVersions(v))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

func newWireClient(t *testing.T, addr string) *wireClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	w := &wireClient{t: t, ctx: ctx, addr: addr, cl: cl}
	w.v7 = w.at(kmsg.OffsetFetch, 7)
	return w
}

func (w *wireClient) createTopic(name string, partitions int32) {
	w.t.Helper()
	if _, err := kadm.NewClient(w.cl).CreateTopic(w.ctx, partitions, -1, nil, name); err != nil {
		w.t.Fatal(err)
	}
}

// joinClassic joins a classic group as its only member (leader) with the
// instance id ("" for none) and syncs an empty assignment: member id and
// generation.
func (w *wireClient) joinClassic(group, instance string) (string, int32) {
	w.t.Helper()
	member := ""
	for range 2 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		if instance != "" {
			req.InstanceID = kmsg.StringPtr(instance)
		}
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		meta := kmsg.NewConsumerMemberMetadata()
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta.AppendTo(nil)}}
		resp, err := req.RequestWith(w.ctx, w.cl)
		if err != nil {
			w.t.Fatal(err)
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			member = resp.MemberID
			continue
		}
		if resp.ErrorCode != 0 {
			w.t.Fatalf("JoinGroup: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Group, sync.MemberID, sync.Generation = group, resp.MemberID, resp.Generation
		sync.InstanceID = req.InstanceID
		sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
		assignment := kmsg.NewConsumerMemberAssignment()
		sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: resp.MemberID, MemberAssignment: assignment.AppendTo(nil)}}
		sresp, err := sync.RequestWith(w.ctx, w.cl)
		if err != nil || sresp.ErrorCode != 0 {
			w.t.Fatalf("SyncGroup: %v %v", err, kerr.ErrorForCode(sresp.ErrorCode))
		}
		return resp.MemberID, resp.Generation
	}
	w.t.Fatal("JoinGroup kept asking for a member id")
	return "", 0
}

// initProducer is InitProducerId at version with the pair the producer
// has (-1, -1: none): the error code and the new pair.
func (w *wireClient) initProducer(version int16, tid string, pid int64, epoch int16) (int16, int64, int16) {
	w.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	if tid != "" {
		req.TransactionalID = kmsg.StringPtr(tid)
	}
	req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = 60000, pid, epoch
	resp, err := req.RequestWith(w.ctx, w.at(kmsg.InitProducerID, version))
	if err != nil {
		w.t.Fatal(err)
	}
	if resp.Version != version {
		w.t.Fatalf("InitProducerId answered at v%d, want v%d", resp.Version, version)
	}
	return resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch
}

type wireProducer struct {
	tid   string
	pid   int64
	epoch int16
}

func (w *wireClient) beginOffsets(p wireProducer, group string) {
	w.t.Helper()
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = p.tid, p.pid, p.epoch, group
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil || resp.ErrorCode != 0 {
		w.t.Fatalf("AddOffsetsToTxn: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
}

// txnCommit is TxnOffsetCommit v3 of one partition's offset: the code.
func (w *wireClient) txnCommit(p wireProducer, group, member, instance string, generation int32, topic string, partition int32, offset int64, leaderEpoch int32) int16 {
	w.t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = p.tid, p.pid, p.epoch, group
	req.MemberID, req.Generation = member, generation
	if instance != "" {
		req.InstanceID = kmsg.StringPtr(instance)
	}
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = partition, offset, leaderEpoch
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{rp}}}
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil {
		w.t.Fatal(err)
	}
	if resp.Version != 3 {
		w.t.Fatalf("TxnOffsetCommit answered at v%d, want v3", resp.Version)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func (w *wireClient) endTxn(p wireProducer, commit bool) int16 {
	w.t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = p.tid, p.pid, p.epoch, commit
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.ErrorCode
}

// fetched is one partition of an OffsetFetch answer.
type fetched struct {
	offset      int64
	leaderEpoch int32
	code        int16
}

// offsetFetch is OffsetFetch v7 (partitions nil: every committed one).
func (w *wireClient) offsetFetch(group, topic string, partitions []int32, requireStable bool) map[int32]fetched {
	w.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group, req.RequireStable = group, requireStable
	if partitions != nil {
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: topic, Partitions: partitions}}
	}
	resp, err := req.RequestWith(w.ctx, w.v7)
	if err == nil && resp.Version != 7 {
		w.t.Fatalf("OffsetFetch answered at v%d, want v7", resp.Version)
	}
	if err != nil || resp.ErrorCode != 0 {
		w.t.Fatalf("OffsetFetch: %v %v", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	out := map[int32]fetched{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = fetched{p.Offset, p.LeaderEpoch, p.ErrorCode}
		}
	}
	return out
}

// offsetFetchV8 is OffsetFetch v8 (groups) of one group's partitions.
func (w *wireClient) offsetFetchV8(group, topic string, partitions []int32, requireStable bool) map[int32]fetched {
	w.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = requireStable
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: topic, Partitions: partitions}}}}
	resp, err := req.RequestWith(w.ctx, w.cl)
	if err == nil && resp.Version < 8 {
		w.t.Fatalf("OffsetFetch answered at v%d, want v8+", resp.Version)
	}
	if err != nil || resp.Groups[0].ErrorCode != 0 {
		w.t.Fatalf("OffsetFetch v8: %v %+v", err, resp)
	}
	out := map[int32]fetched{}
	for _, t := range resp.Groups[0].Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = fetched{p.Offset, p.LeaderEpoch, p.ErrorCode}
		}
	}
	return out
}

func TestTxnOffsetCommitMemberChecksWire(t *testing.T) {
	t.Parallel()
	w := newWireClient(t, kafkaAgents(t, 1)[0])
	const topic, group = "k447", "k447-classic"
	w.createTopic(topic, 2)
	member, gen := w.joinClassic(group, "instance-1")
	code, pid, epoch := w.initProducer(4, "k447-app", -1, -1)
	if code != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(code))
	}
	p := wireProducer{"k447-app", pid, epoch}
	w.beginOffsets(p, group)

	// Refused: nothing is staged, so RequireStable sees nothing pending.
	for _, c := range []struct {
		name, member, instance string
		generation             int32
		want                   *kerr.Error
	}{
		{"unknown member", "ghost", "", gen, kerr.UnknownMemberID},
		{"no member at a generation", "", "", gen, kerr.UnknownMemberID},
		{"older generation", member, "instance-1", gen - 1, kerr.IllegalGeneration},
		{"newer generation", member, "instance-1", gen + 1, kerr.IllegalGeneration},
		{"another instance", member, "instance-2", gen, kerr.FencedInstanceID},
	} {
		if code := w.txnCommit(p, group, c.member, c.instance, c.generation, topic, 0, 99, -1); code != c.want.Code {
			t.Fatalf("%s: %v, want %v", c.name, kerr.ErrorForCode(code), c.want)
		}
		if got := w.offsetFetch(group, topic, []int32{0}, true)[0]; got.code != 0 || got.offset != -1 {
			t.Fatalf("%s: refused commit shows in OffsetFetch: %+v", c.name, got)
		}
	}
	// Accepted: the member at its generation, and a producer that names
	// no member (clients before KIP-447).
	if code := w.txnCommit(p, group, member, "instance-1", gen, topic, 0, 5, 3); code != 0 {
		t.Fatalf("the member at its generation: %v", kerr.ErrorForCode(code))
	}
	if code := w.txnCommit(p, group, "", "", -1, topic, 1, 7, -1); code != 0 {
		t.Fatalf("no member named: %v", kerr.ErrorForCode(code))
	}

	// Pending: RequireStable answers UNSTABLE_OFFSET_COMMIT per partition,
	// without it the offsets are what was committed before (none).
	for _, got := range []map[int32]fetched{w.offsetFetch(group, topic, []int32{0, 1}, true), w.offsetFetchV8(group, topic, []int32{0, 1}, true)} {
		for _, p := range []int32{0, 1} {
			if got[p].code != kerr.UnstableOffsetCommit.Code || got[p].offset != -1 {
				t.Fatalf("partition %d, require stable, pending: %+v, want UNSTABLE_OFFSET_COMMIT", p, got[p])
			}
		}
	}
	if got := w.offsetFetch(group, topic, []int32{0, 1}, false); got[0].code != 0 || got[0].offset != -1 || got[1].offset != -1 {
		t.Fatalf("not require stable, pending: %+v, want -1 without error", got)
	}
	if code := w.endTxn(p, true); code != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
	}
	got := w.offsetFetch(group, topic, []int32{0, 1}, true)
	if got[0] != (fetched{5, 3, 0}) || got[1] != (fetched{7, -1, 0}) {
		t.Fatalf("after the commit: %+v, want 5 (leader epoch 3) and 7 (-1)", got)
	}

	// A committed offset with a transaction pending on it: unstable in a
	// fetch of every partition too (topics null), stable without it.
	w.beginOffsets(p, group)
	if code := w.txnCommit(p, group, member, "instance-1", gen, topic, 1, 8, -1); code != 0 {
		t.Fatalf("second transaction: %v", kerr.ErrorForCode(code))
	}
	got = w.offsetFetch(group, topic, nil, true)
	if got[0] != (fetched{5, 3, 0}) || got[1].code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("every partition, require stable: %+v, want 0 stable and 1 unstable", got)
	}
	if code := w.endTxn(p, false); code != 0 {
		t.Fatalf("EndTxn abort: %v", kerr.ErrorForCode(code))
	}
	if got := w.offsetFetch(group, topic, nil, true); got[1] != (fetched{7, -1, 0}) {
		t.Fatalf("after the abort: %+v, want 7 again", got[1])
	}

	// OffsetCommit v8 keeps the committed leader epoch too.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.MemberID, oc.Generation, oc.InstanceID = group, member, gen, kmsg.StringPtr("instance-1")
	ocp := kmsg.NewOffsetCommitRequestTopicPartition()
	ocp.Partition, ocp.Offset, ocp.LeaderEpoch = 1, 9, 4
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{ocp}}}
	if resp, err := oc.RequestWith(w.ctx, w.at(kmsg.OffsetCommit, 8)); err != nil || resp.Version != 8 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("OffsetCommit: %v %+v", err, resp)
	}
	if got := w.offsetFetch(group, topic, []int32{1}, false); got[1] != (fetched{9, 4, 0}) {
		t.Fatalf("after OffsetCommit with leader epoch 4: %+v", got[1])
	}
}

// A consumer group's (KIP-848) member commits in a transaction at its
// member epoch; a stale one is ILLEGAL_GENERATION, as Kafka answers it for
// TxnOffsetCommit (STALE_MEMBER_EPOCH is not among its errors).
func TestTxnOffsetCommitConsumerGroupWire(t *testing.T) {
	t.Parallel()
	w := newWireClient(t, kafkaAgents(t, 1)[0])
	const topic, group = "k447c", "k447-consumer"
	w.createTopic(topic, 2)
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch, hb.SubscribedTopicNames = group, "cm", 0, []string{topic}
	hb.RebalanceTimeoutMillis, hb.Topics = 30000, []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	hr, err := hb.RequestWith(w.ctx, w.cl)
	if err != nil || hr.ErrorCode != 0 || hr.MemberEpoch <= 0 {
		t.Fatalf("ConsumerGroupHeartbeat: %v %+v", err, hr)
	}
	code, pid, epoch := w.initProducer(4, "k447c-app", -1, -1)
	if code != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(code))
	}
	p := wireProducer{"k447c-app", pid, epoch}
	w.beginOffsets(p, group)
	if code := w.txnCommit(p, group, "cm", "", hr.MemberEpoch-1, topic, 0, 3, -1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("stale member epoch: %v, want ILLEGAL_GENERATION", kerr.ErrorForCode(code))
	}
	if code := w.txnCommit(p, group, "nobody", "", hr.MemberEpoch, topic, 0, 3, -1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := w.txnCommit(p, group, "cm", "", hr.MemberEpoch, topic, 0, 3, -1); code != 0 {
		t.Fatalf("member at its epoch: %v", kerr.ErrorForCode(code))
	}
	if code := w.endTxn(p, true); code != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
	}
	if got := w.offsetFetch(group, topic, []int32{0}, true); got[0] != (fetched{3, -1, 0}) {
		t.Fatalf("after the commit: %+v", got[0])
	}
}

// KIP-360: InitProducerId v3+ with the producer id and epoch the producer
// has bumps that epoch, aborting an open transaction, only when the pair
// is the transactional id's current one; another pair is a zombie's.
func TestInitProducerIDKnownProducerWire(t *testing.T) {
	t.Parallel()
	w := newWireClient(t, kafkaAgents(t, 1)[0])
	const topic, group = "k360", "k360-group"
	w.createTopic(topic, 1)
	code, pid, e0 := w.initProducer(4, "k360-app", -1, -1)
	if code != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(code))
	}
	code, pid1, e1 := w.initProducer(4, "k360-app", pid, e0)
	if code != 0 || pid1 != pid || e1 != e0+1 {
		t.Fatalf("bump of the current pair: %v, %d/%d; want %d/%d", kerr.ErrorForCode(code), pid1, e1, pid, e0+1)
	}
	// A retry of that bump (its answer lost) gets the same pair back.
	if code, rpid, re := w.initProducer(4, "k360-app", pid, e0); code != 0 || rpid != pid || re != e1 {
		t.Fatalf("retried bump: %v, %d/%d; want %d/%d unchanged", kerr.ErrorForCode(code), rpid, re, pid, e1)
	}
	// A new producer of the id (no pair) fences every holder: the old
	// pairs are a zombie's now.
	code, _, e1 = w.initProducer(4, "k360-app", -1, -1)
	if code != 0 {
		t.Fatalf("InitProducerId of a new producer: %v", kerr.ErrorForCode(code))
	}
	for _, c := range []struct {
		version int16
		pid     int64
		epoch   int16
		want    *kerr.Error
	}{
		{4, pid, e1 - 1, kerr.ProducerFenced},       // the fenced holder
		{3, pid, e1 - 1, kerr.InvalidProducerEpoch}, // v3 predates PRODUCER_FENCED
		{4, pid, e0, kerr.ProducerFenced},           // older still
		{4, pid + 1000, e1, kerr.ProducerFenced},    // another producer id
	} {
		if code, _, _ := w.initProducer(c.version, "k360-app", c.pid, c.epoch); code != c.want.Code {
			t.Fatalf("v%d with %d/%d: %v, want %v", c.version, c.pid, c.epoch, kerr.ErrorForCode(code), c.want)
		}
	}
	// The refusals bumped nothing: the current pair still bumps, and
	// aborts the transaction it left open.
	p := wireProducer{"k360-app", pid, e1}
	w.beginOffsets(p, group)
	if code := w.txnCommit(p, group, "", "", -1, topic, 0, 4, -1); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	if got := w.offsetFetch(group, topic, []int32{0}, true); got[0].code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("pending: %+v", got[0])
	}
	code, _, e2 := w.initProducer(4, "k360-app", pid, e1)
	if code != 0 || e2 != e1+1 {
		t.Fatalf("bump with a transaction open: %v, epoch %d; want %d", kerr.ErrorForCode(code), e2, e1+1)
	}
	if got := w.offsetFetch(group, topic, []int32{0}, true); got[0] != (fetched{-1, -1, 0}) {
		t.Fatalf("after the bump aborted the transaction: %+v, want no offset", got[0])
	}
	if code := w.endTxn(p, true); code == 0 {
		t.Fatal("the bumped-over epoch committed")
	}
	// A transactional id nobody holds takes any pair (its state expired).
	if code, _, _ := w.initProducer(4, "k360-new", 12345, 7); code != 0 {
		t.Fatalf("unknown transactional id with a pair: %v", kerr.ErrorForCode(code))
	}

	// An idempotent producer keeps its id with the epoch bumped, and its
	// sequences start again at 0.
	code, ipid, ie := w.initProducer(4, "", -1, -1)
	if code != 0 {
		t.Fatalf("idempotent InitProducerId: %v", kerr.ErrorForCode(code))
	}
	produce := func(epoch int16, seq int32) (int16, int64) {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = 0
		rp.Records = segmentBatch(t, objectlogSpec(ipid, epoch, seq))
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{rp}}}
		resp, err := req.RequestWith(w.ctx, w.cl)
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Topics[0].Partitions[0]
		return r.ErrorCode, r.BaseOffset
	}
	for seq := range int32(2) {
		if code, _ := produce(ie, seq); code != 0 {
			t.Fatalf("produce seq %d: %v", seq, kerr.ErrorForCode(code))
		}
	}
	code, ipid2, ie2 := w.initProducer(4, "", ipid, ie)
	if code != 0 || ipid2 != ipid || ie2 != ie+1 {
		t.Fatalf("idempotent bump: %v, %d/%d; want %d/%d", kerr.ErrorForCode(code), ipid2, ie2, ipid, ie+1)
	}
	if code, off := produce(ie2, 0); code != 0 || off != 2 {
		t.Fatalf("sequence 0 at the new epoch: %v at %d, want offset 2", kerr.ErrorForCode(code), off)
	}
	if code, _ := produce(ie, 2); code == 0 {
		t.Fatal("the old epoch still produces")
	}
}

func objectlogSpec(pid int64, epoch int16, seq int32) objectlog.BatchSpec {
	return objectlog.BatchSpec{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
}

// A committed leader epoch goes back to franz-go as it was committed, and
// its validation (OffsetForLeaderEpoch) neither resets the group consumer
// nor loops: it resumes at the committed offset.
func TestCommittedLeaderEpochWithKgo(t *testing.T) {
	t.Parallel()
	w := newWireClient(t, kafkaAgents(t, 1)[0])
	const topic, group = "epochs", "epochs-group"
	w.createTopic(topic, 1)
	for i := range 10 {
		if err := w.cl.ProduceSync(w.ctx, &kgo.Record{Topic: topic, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(w.cl)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: 5})
	if resp, err := adm.CommitOffsets(w.ctx, group, offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	fetched, err := adm.FetchOffsets(w.ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(topic, 0); !ok || o.At != 4 || o.LeaderEpoch != 5 {
		t.Fatalf("fetched %+v, want offset 4 with leader epoch 5", o)
	}
	// A reset would start at the end and read nothing.
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []int64
	for len(got) < 6 {
		fs := cl.PollFetches(w.ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consuming from the committed offset after %v: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Offset) })
	}
	if got[0] != 4 || got[len(got)-1] != 9 {
		t.Fatalf("consumed offsets %v, want 4 to 9", got)
	}
}
