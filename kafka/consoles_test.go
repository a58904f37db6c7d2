package kafka_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/kafka"
)

// The admin APIs web consoles (AKHQ, Kafdrop, Kafka UI) call besides the
// topic ones: log dir sizes, ACLs, client quotas, reassignments.

func describeLogDirs(t *testing.T, rc *rawConn, version int16, topics []kmsg.DescribeLogDirsRequestTopic) *kmsg.DescribeLogDirsResponse {
	t.Helper()
	req := kmsg.NewPtrDescribeLogDirsRequest()
	req.SetVersion(version)
	req.Topics = topics
	resp := roundTrip[*kmsg.DescribeLogDirsResponse](t, rc, "console", req)
	if resp.ErrorCode != 0 || len(resp.Dirs) != 1 {
		t.Fatalf("v%d: error %d, %d dirs; want no error and one dir", version, resp.ErrorCode, len(resp.Dirs))
	}
	d := resp.Dirs[0]
	if d.ErrorCode != 0 || d.Dir != kafka.LogDir {
		t.Fatalf("v%d: dir %q error %d", version, d.Dir, d.ErrorCode)
	}
	if version >= 4 && (d.TotalBytes != -1 || d.UsableBytes != -1) {
		t.Errorf("v%d: total %d usable %d bytes, want -1 (unknown)", version, d.TotalBytes, d.UsableBytes)
	}
	return resp
}

// Each broker reports the partitions Metadata says it leads, sized by the
// bytes stored, so the sum over brokers counts every partition once.
func TestDescribeLogDirsSizesByLeader(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", "")
	topic := topicName(t)
	const partitions = 8
	createTopic(t, c, topic, partitions)
	rc := dial(t, c.addrs[0])
	want := map[int32]int64{}
	for p := range int32(partitions) {
		want[p] = 0
	}
	for _, p := range []int32{0, 3, 3, 5} {
		batch := makeBatch("a", "bb", "ccc")
		resp := roundTrip[*kmsg.ProduceResponse](t, rc, "p", produceRequest(9, -1, topic, p, batch))
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("produce to %d: %v", p, kerr.ErrorForCode(code))
		}
		want[p] += int64(len(batch))
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	leaders := map[int32]int32{}
	for _, tp := range roundTrip[*kmsg.MetadataResponse](t, rc, "console", md).Topics {
		for _, p := range tp.Partitions {
			leaders[p.Partition] = p.Leader
		}
	}

	for _, version := range []int16{1, 2, 3, 4} {
		got := map[int32]int64{}
		for _, b := range c.brokers {
			c.core.SetNodeID(b.ID)
			resp := describeLogDirs(t, rc, version, nil)
			for _, dt := range resp.Dirs[0].Topics {
				if dt.Topic != topic {
					t.Fatalf("v%d: topic %q listed", version, dt.Topic)
				}
				for _, dp := range dt.Partitions {
					if _, twice := got[dp.Partition]; twice {
						t.Errorf("v%d: partition %d reported by two brokers", version, dp.Partition)
					}
					if leaders[dp.Partition] != b.ID {
						t.Errorf("v%d: broker %d reported partition %d, which Metadata says %d leads", version, b.ID, dp.Partition, leaders[dp.Partition])
					}
					if dp.OffsetLag != 0 || dp.IsFuture {
						t.Errorf("v%d: partition %d offset lag %d future %v", version, dp.Partition, dp.OffsetLag, dp.IsFuture)
					}
					got[dp.Partition] = dp.Size
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("v%d: sizes over all brokers %v, want %v", version, got, want)
		}
	}

	// Named topics and partitions: only those, and only those that exist.
	for _, b := range c.brokers {
		c.core.SetNodeID(b.ID)
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{3, 99}
		missing := kmsg.NewDescribeLogDirsRequestTopic()
		missing.Topic, missing.Partitions = "no-such-topic", []int32{0}
		resp := describeLogDirs(t, rc, 4, []kmsg.DescribeLogDirsRequestTopic{rt, missing})
		var listed []int32
		for _, dt := range resp.Dirs[0].Topics {
			for _, dp := range dt.Partitions {
				listed = append(listed, dp.Partition)
				if dt.Topic != topic || dp.Partition != 3 || dp.Size != want[3] {
					t.Errorf("broker %d: %s/%d size %d listed, want only %s/3 size %d", b.ID, dt.Topic, dp.Partition, dp.Size, topic, want[3])
				}
			}
		}
		if leads := leaders[3] == b.ID; leads != slices.Contains(listed, 3) {
			t.Errorf("broker %d (leader of 3: %v) listed %v", b.ID, leads, listed)
		}
		// An empty list (not null) asks for nothing.
		if resp := describeLogDirs(t, rc, 4, []kmsg.DescribeLogDirsRequestTopic{}); len(resp.Dirs[0].Topics) != 0 {
			t.Errorf("broker %d: an empty topic list answered %+v", b.ID, resp.Dirs[0].Topics)
		}
	}
}

// No authorizer: every ACL request is SECURITY_DISABLED, as Kafka answers
// without authorizer.class.name.
func TestAclsSecurityDisabled(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])
	for _, v := range []int16{1, 2, 3} {
		dr := kmsg.NewPtrDescribeACLsRequest()
		dr.SetVersion(v)
		dr.ResourceType, dr.ResourcePatternType, dr.Operation, dr.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		resp := roundTrip[*kmsg.DescribeACLsResponse](t, rc, "console", dr)
		if resp.ErrorCode != kerr.SecurityDisabled.Code || resp.ErrorMessage == nil || len(resp.Resources) != 0 {
			t.Errorf("DescribeAcls v%d: error %d %v, %d resources; want SECURITY_DISABLED and none", v, resp.ErrorCode, resp.ErrorMessage, len(resp.Resources))
		}

		cr := kmsg.NewPtrCreateACLsRequest()
		cr.SetVersion(v)
		for _, name := range []string{"a", "b"} {
			cc := kmsg.NewCreateACLsRequestCreation()
			cc.ResourceType, cc.ResourceName, cc.ResourcePatternType = kmsg.ACLResourceTypeTopic, name, kmsg.ACLResourcePatternTypeLiteral
			cc.Principal, cc.Host, cc.Operation, cc.PermissionType = "User:x", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
			cr.Creations = append(cr.Creations, cc)
		}
		cresp := roundTrip[*kmsg.CreateACLsResponse](t, rc, "console", cr)
		if len(cresp.Results) != 2 {
			t.Fatalf("CreateAcls v%d: %d results for 2 creations", v, len(cresp.Results))
		}
		for _, r := range cresp.Results {
			if r.ErrorCode != kerr.SecurityDisabled.Code {
				t.Errorf("CreateAcls v%d: error %d, want SECURITY_DISABLED", v, r.ErrorCode)
			}
		}

		del := kmsg.NewPtrDeleteACLsRequest()
		del.SetVersion(v)
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		del.Filters = append(del.Filters, f)
		dresp := roundTrip[*kmsg.DeleteACLsResponse](t, rc, "console", del)
		if len(dresp.Results) != 1 || dresp.Results[0].ErrorCode != kerr.SecurityDisabled.Code || len(dresp.Results[0].MatchingACLs) != 0 {
			t.Errorf("DeleteAcls v%d: %+v, want one SECURITY_DISABLED result matching nothing", v, dresp.Results)
		}
	}
}

// No quotas and no reassignments: empty answers without errors; a quota
// filter Kafka refuses is refused alike.
func TestClientQuotasAndReassignmentsEmpty(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])
	str := func(s string) *string { return &s }
	comp := func(typ string, mt kmsg.QuotasMatchType, match *string) kmsg.DescribeClientQuotasRequestComponent {
		c := kmsg.NewDescribeClientQuotasRequestComponent()
		c.EntityType, c.MatchType, c.Match = typ, mt, match
		return c
	}
	for _, v := range []int16{0, 1} {
		for _, tc := range []struct {
			name       string
			components []kmsg.DescribeClientQuotasRequestComponent
			code       int16
		}{
			{"all", nil, 0},
			{"any user", []kmsg.DescribeClientQuotasRequestComponent{comp("user", kmsg.QuotasMatchTypeAny, nil)}, 0},
			{"one client", []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", kmsg.QuotasMatchTypeExact, str("app"))}, 0},
			{"exact without match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", kmsg.QuotasMatchTypeExact, nil)}, kerr.InvalidRequest.Code},
			{"default with match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", kmsg.QuotasMatchTypeDefault, str("x"))}, kerr.InvalidRequest.Code},
			{"twice", []kmsg.DescribeClientQuotasRequestComponent{comp("user", kmsg.QuotasMatchTypeAny, nil), comp("user", kmsg.QuotasMatchTypeAny, nil)}, kerr.InvalidRequest.Code},
			{"ip and user", []kmsg.DescribeClientQuotasRequestComponent{comp("ip", kmsg.QuotasMatchTypeAny, nil), comp("user", kmsg.QuotasMatchTypeAny, nil)}, kerr.InvalidRequest.Code},
			{"unknown type", []kmsg.DescribeClientQuotasRequestComponent{comp("tenant", kmsg.QuotasMatchTypeAny, nil)}, kerr.UnsupportedVersion.Code},
			{"unknown match", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 7, nil)}, kerr.UnsupportedVersion.Code},
		} {
			req := kmsg.NewPtrDescribeClientQuotasRequest()
			req.SetVersion(v)
			req.Components = tc.components
			resp := roundTrip[*kmsg.DescribeClientQuotasResponse](t, rc, "console", req)
			if resp.ErrorCode != tc.code {
				t.Errorf("v%d %s: error %d, want %d", v, tc.name, resp.ErrorCode, tc.code)
			}
			// Entries are an empty list on success and null on an error,
			// as Kafka sends them.
			if (resp.Entries == nil) != (tc.code != 0) || len(resp.Entries) != 0 {
				t.Errorf("v%d %s: entries %#v", v, tc.name, resp.Entries)
			}
			if tc.code != 0 && resp.ErrorMessage == nil {
				t.Errorf("v%d %s: no error message", v, tc.name)
			}
		}
	}

	createTopic(t, c, topicName(t), 2)
	lr := kmsg.NewPtrListPartitionReassignmentsRequest()
	lr.TimeoutMillis = 30000
	for _, topics := range [][]kmsg.ListPartitionReassignmentsRequestTopic{nil, {{Topic: topicName(t), Partitions: []int32{0, 1}}, {Topic: "no-such-topic", Partitions: []int32{0}}}} {
		lr.Topics = topics
		resp := roundTrip[*kmsg.ListPartitionReassignmentsResponse](t, rc, "console", lr)
		if resp.ErrorCode != 0 || len(resp.Topics) != 0 {
			t.Errorf("ListPartitionReassignments %v: error %d, topics %+v; want none in progress", topics, resp.ErrorCode, resp.Topics)
		}
	}
}

// DescribeTransactions (kafka-transactions.sh describe): the core's state
// of each id asked, its partitions grouped by topic; an unknown id is
// TRANSACTIONAL_ID_NOT_FOUND.
func TestDescribeTransactions(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	rc := dial(t, c.addrs[0])
	a, b := topicName(t)+"-a", topicName(t)+"-b"
	createTopic(t, c, a, 2)
	createTopic(t, c, b, 1)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.TransactionalID, ip.TransactionTimeoutMillis, ip.ProducerID, ip.ProducerEpoch = kmsg.StringPtr("tx-app"), 30000, -1, -1
	init := roundTrip[*kmsg.InitProducerIDResponse](t, rc, "tx", ip)
	if init.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(init.ErrorCode))
	}
	describe := func(ids ...string) []kmsg.DescribeTransactionsResponseTransactionState {
		t.Helper()
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = ids
		resp := roundTrip[*kmsg.DescribeTransactionsResponse](t, rc, "console", req)
		if len(resp.TransactionStates) != len(ids) {
			t.Fatalf("%d states for %d ids", len(resp.TransactionStates), len(ids))
		}
		return resp.TransactionStates
	}
	if st := describe("tx-app")[0]; st.ErrorCode != 0 || st.State != "Empty" || st.StartTimestamp != -1 || len(st.Topics) != 0 ||
		st.ProducerID != init.ProducerID || st.TimeoutMillis != 30000 {
		t.Fatalf("before any transaction: %+v", st)
	}

	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.SetVersion(3)
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "tx-app", init.ProducerID, init.ProducerEpoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: b, Partitions: []int32{0}}, {Topic: a, Partitions: []int32{1, 0}}}
	for _, tr := range roundTrip[*kmsg.AddPartitionsToTxnResponse](t, rc, "tx", add).Topics {
		for _, p := range tr.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("add %s/%d: %v", tr.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	states := describe("tx-app", "nobody")
	st := states[0]
	if st.ErrorCode != 0 || st.TransactionalID != "tx-app" || st.State != "Ongoing" || st.StartTimestamp <= 0 || st.ProducerEpoch != init.ProducerEpoch {
		t.Fatalf("open transaction: %+v", st)
	}
	var got []string
	for _, tp := range st.Topics {
		for _, p := range tp.Partitions {
			got = append(got, fmt.Sprintf("%s/%d", tp.Topic, p))
		}
	}
	if want := []string{a + "/0", a + "/1", b + "/0"}; !slices.Equal(got, want) {
		t.Errorf("partitions %v, want %v grouped by topic", got, want)
	}
	if u := states[1]; u.TransactionalID != "nobody" || u.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Errorf("unknown id: %+v, want TRANSACTIONAL_ID_NOT_FOUND", u)
	}
}
