package kafka_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Tests that speak the wire protocol by hand: what real clients rarely do
// (versions out of range, unknown APIs, oversize frames, pipelining) must
// still get Kafka's answers.

type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// frame builds a request frame: header v1 (v2 when flexible) and body.
func frame(key, version int16, corr int32, clientID string, flexible bool, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if flexible {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (rc *rawConn) send(corr int32, clientID string, req kmsg.Request) {
	rc.t.Helper()
	if _, err := rc.c.Write(frame(req.Key(), req.GetVersion(), corr, clientID, req.IsFlexible(), req.AppendTo(nil))); err != nil {
		rc.t.Fatal(err)
	}
}

// recv reads one response frame: its correlation id and the rest.
func (rc *rawConn) recv() (int32, []byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(rc.br, size[:]); err != nil {
		return 0, nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.br, b); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

// decode reads a response body for req, skipping the header's tagged fields
// for flexible versions (never for ApiVersions: its header is always v0).
func decode[R kmsg.Response](t *testing.T, req kmsg.Request, body []byte) R {
	t.Helper()
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		if len(body) == 0 || body[0] != 0 {
			t.Fatalf("flexible response header: want an empty tag section, got %x", body[:min(len(body), 1)])
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decoding %s v%d response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp.(R)
}

func roundTrip[R kmsg.Response](t *testing.T, rc *rawConn, clientID string, req kmsg.Request) R {
	t.Helper()
	rc.send(7, clientID, req)
	corr, body, err := rc.recv()
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	if corr != 7 {
		t.Fatalf("correlation id %d, want 7", corr)
	}
	return decode[R](t, req, body)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// makeBatch encodes a RecordBatch v2 of the values, CRC and all.
func makeBatch(values ...string) []byte {
	var recs []byte
	for i, v := range values {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = []byte(v)
		enc := r.AppendTo(nil) // length 0: one varint byte to replace
		recs = binary.AppendVarint(recs, int64(len(enc)-1))
		recs = append(recs, enc[1:]...)
	}
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.LastOffsetDelta = int32(len(values) - 1)
	b.FirstTimestamp = time.Now().UnixMilli()
	b.MaxTimestamp = b.FirstTimestamp
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.NumRecords = int32(len(values))
	b.Records = recs
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

func produceRequest(version int16, acks int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(version)
	req.Acks, req.TimeoutMillis = acks, 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition, p.Records = partition, records
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func createTopic(t *testing.T, c *cluster, name string, partitions int32) {
	t.Helper()
	rc := dial(t, c.addrs[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, -1
	req.Topics = append(req.Topics, rt)
	resp := roundTrip[*kmsg.CreateTopicsResponse](t, rc, "test", req)
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create %s: %v", name, kerr.ErrorForCode(code))
	}
}

func TestApiVersionsAdvertisesServedAPIsOnly(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])
	for _, v := range []int16{0, 3, 4} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(v)
		req.ClientSoftwareName, req.ClientSoftwareVersion = "strata-test", "1.0"
		resp := roundTrip[*kmsg.ApiVersionsResponse](t, rc, "test", req)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: %v", v, kerr.ErrorForCode(resp.ErrorCode))
		}
		keys := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			keys[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		for _, k := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.ListOffsets, kmsg.Metadata, kmsg.ApiVersions,
			kmsg.CreateTopics, kmsg.DeleteTopics, kmsg.DeleteRecords, kmsg.InitProducerID, kmsg.OffsetForLeaderEpoch,
			kmsg.DescribeConfigs, kmsg.AlterConfigs, kmsg.CreatePartitions, kmsg.IncrementalAlterConfigs,
			kmsg.DescribeCluster, kmsg.DescribeTopicPartitions,
			kmsg.FindCoordinator, kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.LeaveGroup, kmsg.OffsetCommit,
			kmsg.OffsetFetch, kmsg.DescribeGroups, kmsg.ListGroups, kmsg.DeleteGroups, kmsg.OffsetDelete} {
			if _, ok := keys[int16(k)]; !ok {
				t.Errorf("v%d: %s not advertised", v, k.Name())
			}
		}
		// What web consoles call (consoles_test.go), at the versions served.
		for k, want := range map[kmsg.Key][2]int16{kmsg.DescribeLogDirs: {1, 4}, kmsg.DescribeACLs: {1, 3}, kmsg.CreateACLs: {1, 3},
			kmsg.DeleteACLs: {1, 3}, kmsg.ListPartitionReassignments: {0, 0}, kmsg.DescribeClientQuotas: {0, 1},
			kmsg.DescribeTransactions: {0, 0}} {
			if r := keys[int16(k)]; r != want {
				t.Errorf("v%d: %s versions %v, want %v", v, k.Name(), r, want)
			}
		}
		// Not served, so not advertised: no producer or transaction
		// listing, no quota or reassignment changes.
		for _, k := range []kmsg.Key{kmsg.DescribeProducers, kmsg.ListTransactions,
			kmsg.AlterClientQuotas, kmsg.AlterPartitionAssignments} {
			if r, ok := keys[int16(k)]; ok {
				t.Errorf("v%d: %s advertised at %v, but not served", v, k.Name(), r)
			}
		}
		// KIP-848: franz-go speaks it only to brokers with
		// ConsumerGroupHeartbeat v1 (Kafka 4.0's).
		if r := keys[int16(kmsg.ConsumerGroupHeartbeat)]; r != [2]int16{0, 1} {
			t.Errorf("v%d: ConsumerGroupHeartbeat versions %v, want 0-1", v, r)
		}
		if r := keys[int16(kmsg.ConsumerGroupDescribe)]; r != [2]int16{0, 0} {
			t.Errorf("v%d: ConsumerGroupDescribe versions %v, want 0", v, r)
		}
		// Transaction protocol version 1: KIP-890 part 2's versions
		// (AddPartitionsToTxn v4+, EndTxn v4+, TxnOffsetCommit v4+) would
		// make clients rely on a server side not built.
		for _, k := range []kmsg.Key{kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.TxnOffsetCommit} {
			if r := keys[int16(k)]; r != [2]int16{0, 3} {
				t.Errorf("v%d: %s versions %v, want 0-3", v, k.Name(), r)
			}
		}
		if r := keys[int16(kmsg.Metadata)]; r != [2]int16{0, 12} {
			t.Errorf("Metadata versions %v", r)
		}
		// Static membership (KIP-345) needs JoinGroup v5+; batched
		// coordinator keys (KIP-699) FindCoordinator v4+.
		if r := keys[int16(kmsg.JoinGroup)]; r[1] < 5 {
			t.Errorf("JoinGroup versions %v, want v5+ advertised", r)
		}
		if r := keys[int16(kmsg.FindCoordinator)]; r != [2]int16{0, 5} {
			t.Errorf("FindCoordinator versions %v", r)
		}
	}
}

func TestApiVersionsTooHighAnswersV0(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])
	// A version from the future, sent with a flexible header as a client
	// newer than us would: the answer is a v0 response (header v0 too) with
	// UNSUPPORTED_VERSION and the versions we serve.
	body := []byte{0x0c, 'f', 'u', 't', 'u', 'r', 'e', '-', 'c', 'l', 'i', 'e', 'n', 't', 0x02, '9', 0}
	if _, err := rc.c.Write(frame(int16(kmsg.ApiVersions), 99, 42, "future", true, body)); err != nil {
		t.Fatal(err)
	}
	corr, rest, err := rc.recv()
	if err != nil || corr != 42 {
		t.Fatalf("corr %d err %v", corr, err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if err := resp.ReadFrom(rest); err != nil {
		t.Fatalf("the answer is not an ApiVersions v0 response: %v", err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	if !slices.ContainsFunc(resp.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool {
		return k.ApiKey == int16(kmsg.ApiVersions) && k.MinVersion == 0 && k.MaxVersion == 4
	}) {
		t.Fatalf("ApiVersions 0-4 not in the list: %+v", resp.ApiKeys)
	}
	// The connection is still usable.
	req := kmsg.NewPtrApiVersionsRequest()
	if r := roundTrip[*kmsg.ApiVersionsResponse](t, rc, "x", req); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
}

func TestUnsupportedAPIsAnswerUnsupportedVersion(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])

	// A transaction API at KIP-890 part 2's version, not served.
	et := kmsg.NewPtrEndTxnRequest()
	et.SetVersion(4)
	et.TransactionalID = "tx"
	if r := roundTrip[*kmsg.EndTxnResponse](t, rc, "x", et); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("EndTxn v4: error %d, want UNSUPPORTED_VERSION", r.ErrorCode)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(6) // share groups (KIP-932): not served
	fc.CoordinatorKeys = []string{"g"}
	// v4+ carry the error per key asked.
	if r := roundTrip[*kmsg.FindCoordinatorResponse](t, rc, "x", fc); len(r.Coordinators) != 1 ||
		r.Coordinators[0].Key != "g" || r.Coordinators[0].ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("FindCoordinator v6: %+v, want UNSUPPORTED_VERSION for key g", r.Coordinators)
	}
	// A served API at a version above the range (Metadata v13 has a
	// top-level error code).
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(13)
	if r := roundTrip[*kmsg.MetadataResponse](t, rc, "x", md); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("Metadata v13: error %d, want UNSUPPORTED_VERSION", r.ErrorCode)
	}
	// And the connection still serves what is served.
	md.SetVersion(12)
	if r := roundTrip[*kmsg.MetadataResponse](t, rc, "x", md); len(r.Brokers) != 1 {
		t.Fatalf("Metadata v12 after the errors: %+v", r)
	}

	// An API key nobody knows cannot be answered in any readable form: the
	// connection is closed (and logged), never left hanging.
	rc2 := dial(t, c.addrs[0])
	if _, err := rc2.c.Write(frame(9999, 0, 1, "x", false, nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rc2.recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("unknown key: got %v, want the connection closed", err)
	}
}

func TestOversizeFrameClosesConnection(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	for _, size := range []uint32{100<<20 + 1, 1 << 31, 0xffffffff, 3} {
		rc := dial(t, c.addrs[0])
		// Only the size goes out: the server must refuse on the size alone,
		// not wait for (or allocate) the bytes it announces.
		if _, err := rc.c.Write(binary.BigEndian.AppendUint32(nil, size)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := rc.recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("frame size %d: got %v, want the connection closed", size, err)
		}
	}
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	c.core.ProduceDelay = 100 * time.Millisecond // the produces' answers come late
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])

	reqs := []kmsg.Request{
		produceRequest(9, -1, topic, 0, makeBatch("a", "b")),
		kmsg.NewPtrMetadataRequest(),
		produceRequest(9, 1, topic, 0, makeBatch("c")),
		kmsg.NewPtrApiVersionsRequest(),
		produceRequest(9, 0, topic, 0, makeBatch("d")), // acks=0: no answer
		produceRequest(9, -1, topic, 0, makeBatch("e")),
	}
	reqs[1].SetVersion(12)
	for i, r := range reqs {
		rc.send(int32(i), "pipeline", r)
	}
	wantCorr := []int32{0, 1, 2, 3, 5}
	wantBase := map[int32]int64{0: 0, 2: 2, 5: 4}
	for _, want := range wantCorr {
		corr, body, err := rc.recv()
		if err != nil {
			t.Fatal(err)
		}
		if corr != want {
			t.Fatalf("answer with correlation id %d, want %d: answers must follow request order", corr, want)
		}
		if base, ok := wantBase[corr]; ok {
			resp := decode[*kmsg.ProduceResponse](t, reqs[corr], body)
			p := resp.Topics[0].Partitions[0]
			if p.ErrorCode != 0 || p.BaseOffset != base {
				t.Fatalf("produce %d: error %d base offset %d, want base %d (produces keep request order)", corr, p.ErrorCode, p.BaseOffset, base)
			}
		}
	}
}

func TestProduceErrors(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 2)
	rc := dial(t, c.addrs[0])

	corrupt := makeBatch("x")
	corrupt[len(corrupt)-1] ^= 0xff // a record byte: covered by the CRC
	truncated := makeBatch("x")
	truncated = truncated[:len(truncated)-1]
	two := append(makeBatch("x"), makeBatch("y")...)
	oldMagic := makeBatch("x")
	oldMagic[16] = 1

	for _, tc := range []struct {
		name      string
		acks      int16
		partition int32
		records   []byte
		want      *kerr.Error
	}{
		{"crc", -1, 0, corrupt, kerr.CorruptMessage},
		{"truncated", -1, 0, truncated, kerr.CorruptMessage},
		{"no records", -1, 0, nil, kerr.CorruptMessage},
		{"two batches", -1, 0, two, kerr.InvalidRecord},
		{"magic 1", -1, 0, oldMagic, kerr.InvalidRecord},
		{"unknown partition", -1, 7, makeBatch("x"), kerr.UnknownTopicOrPartition},
		{"bad acks", 2, 0, makeBatch("x"), kerr.InvalidRequiredAcks},
	} {
		resp := roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(9, tc.acks, topic, tc.partition, tc.records))
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != tc.want.Code || p.BaseOffset != -1 {
			t.Errorf("%s: error %v base %d, want %s", tc.name, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, tc.want.Message)
		}
		if p.ErrorMessage == nil {
			t.Errorf("%s: no error message at v9", tc.name)
		}
	}
	// The unknown topic, at a version without error messages.
	resp := roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(7, -1, topic+"-none", 0, makeBatch("x")))
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic: %v", kerr.ErrorForCode(code))
	}
	// Produce v2 (message sets v0/v1) is listed for librdkafka's sake but
	// not served.
	resp = roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(2, -1, topic, 0, makeBatch("x")))
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnsupportedVersion.Code {
		t.Errorf("produce v2: %v, want UNSUPPORTED_VERSION", kerr.ErrorForCode(code))
	}
}

func fetchRequest(version int16, topic string, id [16]byte, offset int64, maxWait time.Duration, minBytes int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.MaxWaitMillis, req.MinBytes = int32(maxWait/time.Millisecond), minBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	p := kmsg.NewFetchRequestTopicPartition()
	p.FetchOffset, p.PartitionMaxBytes = offset, 1<<20
	rt.Partitions = append(rt.Partitions, p)
	req.Topics = append(req.Topics, rt)
	return req
}

func TestFetch(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])
	batch := makeBatch("a", "b", "c")
	if r := roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(9, -1, topic, 0, slices.Clone(batch))); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.Topics[0].Partitions[0].ErrorCode))
	}

	// Sessionless (id 0, epoch -1) at v12: the whole batch back, byte for byte.
	resp := roundTrip[*kmsg.FetchResponse](t, rc, "x", fetchRequest(12, topic, [16]byte{}, 1, 0, 0))
	p := resp.Topics[0].Partitions[0]
	if resp.ErrorCode != 0 || resp.SessionID != 0 || p.ErrorCode != 0 || p.HighWatermark != 3 || p.LastStableOffset != 3 || p.LogStartOffset != 0 {
		t.Fatalf("fetch: %+v", resp)
	}
	if !slices.Equal(p.RecordBatches, batch) {
		t.Fatalf("fetched batch differs from the one produced:\n%x\n%x", p.RecordBatches, batch)
	}

	// At the high watermark with no wait: an empty record set, not null.
	resp = roundTrip[*kmsg.FetchResponse](t, rc, "x", fetchRequest(12, topic, [16]byte{}, 3, 0, 1))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.RecordBatches == nil || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch at the high watermark: error %d batches %v (nil: %v), want empty and not null", p.ErrorCode, p.RecordBatches, p.RecordBatches == nil)
	}

	// Past the end: OFFSET_OUT_OF_RANGE with the bounds.
	resp = roundTrip[*kmsg.FetchResponse](t, rc, "x", fetchRequest(12, topic, [16]byte{}, 9, 0, 1))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 3 {
		t.Fatalf("fetch past the end: %+v", p)
	}

	// A session we never created: FETCH_SESSION_ID_NOT_FOUND.
	req := fetchRequest(12, topic, [16]byte{}, 0, 0, 0)
	req.SessionID, req.SessionEpoch = 1234, 1
	if r := roundTrip[*kmsg.FetchResponse](t, rc, "x", req); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// A request for a new session (id 0, epoch 0) is answered in full with
	// session id 0: no session was created.
	req = fetchRequest(12, topic, [16]byte{}, 0, 0, 0)
	req.SessionEpoch = 0
	if r := roundTrip[*kmsg.FetchResponse](t, rc, "x", req); r.ErrorCode != 0 || r.SessionID != 0 || len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("new-session request: %+v", r)
	}

	// v13+ name topics by id.
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	id := roundTrip[*kmsg.MetadataResponse](t, rc, "x", md).Topics[0].TopicID
	resp = roundTrip[*kmsg.FetchResponse](t, rc, "x", fetchRequest(16, "", id, 0, 0, 0))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || !slices.Equal(p.RecordBatches, batch) || resp.Topics[0].TopicID != id {
		t.Fatalf("fetch by topic id: %+v", resp)
	}
	resp = roundTrip[*kmsg.FetchResponse](t, rc, "x", fetchRequest(16, "", [16]byte{1}, 0, 0, 0))
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("fetch by an unknown id: %v", kerr.ErrorForCode(p.ErrorCode))
	}

	// Long poll: a fetch at the end waits for the next produce.
	rc.send(100, "x", fetchRequest(12, topic, [16]byte{}, 3, 30*time.Second, 1))
	producer := dial(t, c.addrs[0])
	roundTrip[*kmsg.ProduceResponse](t, producer, "x", produceRequest(9, -1, topic, 0, makeBatch("d")))
	corr, body, err := rc.recv()
	if err != nil || corr != 100 {
		t.Fatalf("long poll: corr %d err %v", corr, err)
	}
	lp := decode[*kmsg.FetchResponse](t, fetchRequest(12, topic, [16]byte{}, 3, 0, 1), body)
	if p := lp.Topics[0].Partitions[0]; p.HighWatermark != 4 || len(p.RecordBatches) == 0 {
		t.Fatalf("long poll answered without the new batch: %+v", p)
	}
}

func TestZoneAwareMetadata(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "zone-a", "zone-b", "zone-b")
	topic := topicName(t)
	createTopic(t, c, topic, 12)
	rc := dial(t, c.addrs[0])
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)

	for _, tc := range []struct {
		clientID string
		want     []int32
	}{
		{"billing,zone=zone-b", []int32{2, 3}},
		{"zone=zone-a", []int32{1}},
		{"zone=zone-c", []int32{1, 2, 3}}, // no agent there: all of them
		{"myzone=zone-a", []int32{1, 2, 3}},
		{"", []int32{1, 2, 3}},
	} {
		resp := roundTrip[*kmsg.MetadataResponse](t, rc, tc.clientID, md)
		var ids []int32
		for _, b := range resp.Brokers {
			ids = append(ids, b.NodeID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("client id %q: brokers %v, want %v", tc.clientID, ids, tc.want)
		}
		for _, tp := range resp.Topics {
			for _, p := range tp.Partitions {
				if !slices.Contains(tc.want, p.Leader) {
					t.Errorf("client id %q: partition %d led by %d, not one of %v", tc.clientID, p.Partition, p.Leader, tc.want)
				}
			}
		}
	}
}

func TestDescribeTopicPartitionsPages(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	createTopic(t, c, "dtp-a", 3)
	createTopic(t, c, "dtp-b", 2)
	rc := dial(t, c.addrs[0])
	var seen []string
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.ResponsePartitionLimit = 2
	for _, name := range []string{"dtp-b", "dtp-a"} {
		rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
		rt.Topic = name
		req.Topics = append(req.Topics, rt)
	}
	for range 10 {
		resp := roundTrip[*kmsg.DescribeTopicPartitionsResponse](t, rc, "x", req)
		for _, tp := range resp.Topics {
			for _, p := range tp.Partitions {
				seen = append(seen, *tp.Topic+"/"+string(rune('0'+p.Partition)))
				if p.LeaderID != 1 || p.LeaderEpoch != -1 {
					t.Errorf("partition %+v", p)
				}
			}
		}
		if resp.NextCursor == nil {
			break
		}
		req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	want := []string{"dtp-a/0", "dtp-a/1", "dtp-a/2", "dtp-b/0", "dtp-b/1"}
	if !slices.Equal(seen, want) {
		t.Fatalf("pages gave %v, want %v", seen, want)
	}
}

func TestFetchMaxBytes(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 2)
	rc := dial(t, c.addrs[0])
	big := string(make([]byte, 1000))
	for p := range int32(2) {
		for range 3 {
			r := roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(9, -1, topic, p, makeBatch(big)))
			if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatal(kerr.ErrorForCode(code))
			}
		}
	}
	batchSize := len(makeBatch(big))
	fetch := func(partitionMax, requestMax int32) []int {
		req := fetchRequest(12, topic, [16]byte{}, 0, 0, 0)
		req.MaxBytes = requestMax
		p1 := req.Topics[0].Partitions[0]
		p1.Partition = 1
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, p1)
		for i := range req.Topics[0].Partitions {
			req.Topics[0].Partitions[i].PartitionMaxBytes = partitionMax
		}
		resp := roundTrip[*kmsg.FetchResponse](t, rc, "x", req)
		var batches []int
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 || len(p.RecordBatches)%batchSize != 0 {
				t.Fatalf("partition %d: error %d, %d bytes: not whole batches", p.Partition, p.ErrorCode, len(p.RecordBatches))
			}
			batches = append(batches, len(p.RecordBatches)/batchSize)
		}
		return batches
	}
	for _, tc := range []struct {
		partitionMax, requestMax int32
		want                     []int
	}{
		{1 << 20, 1 << 20, []int{3, 3}},
		{int32(2 * batchSize), 1 << 20, []int{2, 2}},           // per partition
		{1 << 20, int32(4 * batchSize), []int{3, 1}},           // per request
		{10, 10, []int{1, 0}},                                  // the first batch always comes (KIP-74)
		{int32(batchSize), int32(batchSize + 10), []int{1, 0}}, // no room for a second
	} {
		if got := fetch(tc.partitionMax, tc.requestMax); !slices.Equal(got, tc.want) {
			t.Errorf("partition max %d, request max %d: batches %v, want %v", tc.partitionMax, tc.requestMax, got, tc.want)
		}
	}
}

func TestOffsetForLeaderEpochAndDescribeCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "a", "b")
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])
	roundTrip[*kmsg.ProduceResponse](t, rc, "x", produceRequest(9, -1, topic, 0, makeBatch("a", "b")))

	// Every epoch runs to the end of the log: no truncation, ever.
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	for _, p := range []int32{0, 5} {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch = p, 3
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := roundTrip[*kmsg.OffsetForLeaderEpochResponse](t, rc, "x", req)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 2 || p.LeaderEpoch != 3 {
		t.Fatalf("partition 0: %+v, want epoch 3 ending at 2", p)
	}
	if p := resp.Topics[0].Partitions[1]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("partition 5: %v", kerr.ErrorForCode(p.ErrorCode))
	}

	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.SetVersion(1)
	dc.EndpointType = 1
	r := roundTrip[*kmsg.DescribeClusterResponse](t, rc, "svc,zone=b", dc)
	if r.ErrorCode != 0 || r.ClusterID != "strata-test" || len(r.Brokers) != 1 || r.Brokers[0].NodeID != 2 ||
		r.Brokers[0].Rack == nil || *r.Brokers[0].Rack != "b" || r.ControllerID != 2 {
		t.Fatalf("DescribeCluster from zone b: %+v", r)
	}
	dc.EndpointType = 2
	if r := roundTrip[*kmsg.DescribeClusterResponse](t, rc, "x", dc); r.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controllers endpoint: %v", kerr.ErrorForCode(r.ErrorCode))
	}
}

func TestDeleteTopicsByID(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	id := roundTrip[*kmsg.MetadataResponse](t, rc, "x", md).Topics[0].TopicID

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.SetVersion(6)
	req.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: id}, {TopicID: [16]byte{9}}}
	resp := roundTrip[*kmsg.DeleteTopicsResponse](t, rc, "x", req)
	if r := resp.Topics[0]; r.ErrorCode != 0 || r.Topic == nil || *r.Topic != topic || r.TopicID != id {
		t.Fatalf("delete by id: %+v", r)
	}
	if r := resp.Topics[1]; r.ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("delete by an unknown id: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	// Metadata by the old id: gone.
	md.Topics = []kmsg.MetadataRequestTopic{{TopicID: id}}
	if r := roundTrip[*kmsg.MetadataResponse](t, rc, "x", md); r.Topics[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("metadata of a deleted id: %v", kerr.ErrorForCode(r.Topics[0].ErrorCode))
	}
}

func TestAcksZeroFailureClosesConnection(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 1)
	rc := dial(t, c.addrs[0])
	// A good acks=0 produce: no answer, the next request's answer comes first.
	rc.send(1, "x", produceRequest(9, 0, topic, 0, makeBatch("a")))
	rc.send(2, "x", kmsg.NewPtrApiVersionsRequest())
	if corr, _, err := rc.recv(); err != nil || corr != 2 {
		t.Fatalf("after an acks=0 produce: corr %d err %v, want the ApiVersions answer (2)", corr, err)
	}
	// A failing one closes the connection, as Kafka does, so the client
	// learns of the failure it was not told about.
	rc.send(3, "x", produceRequest(9, 0, topic+"-none", 0, makeBatch("a")))
	_, _, err := rc.recv()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("after a failed acks=0 produce: %v, want the connection closed", err)
	}
}

// Fetch answers past a MiB are written from buffers shared by all
// connections (largeResponses): answers of different sizes and contents,
// on two connections in turn, each arrive whole and byte for byte.
func TestFetchLargeAnswersOnSharedBuffers(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	topic := topicName(t)
	createTopic(t, c, topic, 2)
	conns := []*rawConn{dial(t, c.addrs[0]), dial(t, c.addrs[0])}
	var produced [2][]byte // each partition's batches, base offsets set
	for p := range int32(2) {
		for i := range 3 {
			v := strings.Repeat(string(rune('a'+int(p)*3+i)), 400<<10+int(p)*1000)
			batch := makeBatch(v)
			r := roundTrip[*kmsg.ProduceResponse](t, conns[0], "x", produceRequest(9, -1, topic, p, slices.Clone(batch)))
			if code := r.Topics[0].Partitions[0].ErrorCode; code != 0 {
				t.Fatal(kerr.ErrorForCode(code))
			}
			binary.BigEndian.PutUint64(batch, uint64(i))
			produced[p] = append(produced[p], batch...)
		}
	}
	for round := range 4 {
		p := int32(round % 2)
		req := fetchRequest(12, topic, [16]byte{}, 0, 0, 0)
		req.Topics[0].Partitions[0].Partition = p
		req.Topics[0].Partitions[0].PartitionMaxBytes = 4 << 20
		resp := roundTrip[*kmsg.FetchResponse](t, conns[round/2%2], "x", req)
		got := resp.Topics[0].Partitions[0]
		if got.ErrorCode != 0 || !bytes.Equal(got.RecordBatches, produced[p]) {
			t.Fatalf("round %d, partition %d: error %d, %d bytes, want the %d bytes produced", round, p, got.ErrorCode, len(got.RecordBatches), len(produced[p]))
		}
	}
}
