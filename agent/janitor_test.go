package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// manualJanitor turns the janitor loop off: the tests run passes with
// RunJanitor at the times they choose.
func manualJanitor(c *agent.Config) { c.JanitorInterval = 0 }

// produceTo writes one record to a partition and returns its offset.
func produceTo(t testing.TB, ta *testAgent, topic string, p int32, value string) int64 {
	t.Helper()
	r := rec("", value)
	r.Partition = &p
	resp, err := produce(t.Context(), ta.producer, topic, r)
	if err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, p, err)
	}
	return resp.Topics[0].Results[0].Offset
}

// readFrom fetches a partition from offset to the high watermark.
func readFrom(t testing.TB, ta *testAgent, topic string, p int32, offset int64) (map[int64]string, error) {
	t.Helper()
	out := map[int64]string{}
	for {
		resp, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: p, Offset: offset}))
		if err != nil {
			return out, err
		}
		for _, r := range resp.Msg.Records {
			out[r.Offset] = string(r.Value)
		}
		if resp.Msg.NextOffset >= resp.Msg.HighWatermark {
			return out, nil
		}
		offset = resp.Msg.NextOffset
	}
}

// indexKeys counts the index's keys matching pattern (embedded index).
func indexKeys(t testing.TB, ta *testAgent, pattern string) int {
	t.Helper()
	keys, err := ta.index.Client().Keys(t.Context(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func topicID(t testing.TB, ta *testAgent, name string) coordinator.Topic {
	t.Helper()
	tp, err := ta.index.DescribeTopic(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestJanitorRetentionBoundsObjectsAndIndex(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, manualJanitor)
	// retention.bytes 1: Kafka keeps the newest entry whole.
	ta.createTopic(t, "bounded", 1, map[string]string{"retention.bytes": "1"})
	ta.createTopic(t, "forever", 1, map[string]string{"retention.ms": "-1"})
	const flushes = 60
	var last int64
	for i := range flushes {
		last = produceTo(t, ta, "bounded", 0, fmt.Sprintf("v%d", i))
		produceTo(t, ta, "forever", 0, fmt.Sprintf("f%d", i))
	}
	if n := ta.segments(t); n < flushes {
		t.Fatalf("%d segments before the janitor, want at least %d", n, flushes)
	}
	bounded := topicID(t, ta, "bounded")
	segsKey := fmt.Sprintf("{t:%s:0}:segs", bounded.ID)
	if n, _ := ta.index.Client().HLen(t.Context(), segsKey).Result(); n != flushes {
		t.Fatalf("segs has %d fields before the janitor, want %d", n, flushes)
	}

	// Right now nothing may go: every object is younger than the grace periods.
	rep, err := ta.agent.RunJanitor(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.EntriesRemoved != flushes-1 || rep.SegmentsDeleted != 0 {
		t.Fatalf("first pass: %+v, want %d entries removed and no segment deleted", rep, flushes-1)
	}
	// The log start moved: below it is OUT_OF_RANGE, the last record reads.
	if _, err := readFrom(t, ta, "bounded", 0, 0); connect.CodeOf(err) != connect.CodeOutOfRange {
		t.Fatalf("fetch below the log start: %v, want OUT_OF_RANGE", err)
	}
	if got, err := readFrom(t, ta, "bounded", 0, last); err != nil || got[last] != fmt.Sprintf("v%d", flushes-1) {
		t.Fatalf("fetch at %d: %v, %v", last, got, err)
	}

	// Two hours on, the grace periods have passed: every "bounded" segment
	// goes but the one its last entry points at; "forever" keeps all its own.
	rep, err = ta.agent.RunJanitor(t.Context(), time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.SegmentsDeleted != flushes-1 || rep.OrphansDeleted != 0 || rep.BytesReclaimed <= 0 {
		t.Fatalf("second pass: %+v, want %d segments deleted", rep, flushes-1)
	}
	if n := ta.segments(t); n != flushes+1 {
		t.Fatalf("%d segments left, want %d", n, flushes+1)
	}
	if got, err := readFrom(t, ta, "forever", 0, 0); err != nil || len(got) != flushes {
		t.Fatalf("\"forever\" read back %d records (%v), want %d", len(got), err, flushes)
	}
	// A deleted topic's segments and index keys go too.
	forever := topicID(t, ta, "forever")
	if _, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: "forever"})); err != nil {
		t.Fatal(err)
	}
	rep, err = ta.agent.RunJanitor(t.Context(), time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.SegmentsDeleted != flushes || rep.TopicsPurged != 1 {
		t.Fatalf("after deleting \"forever\": %+v, want %d segments deleted and the topic purged", rep, flushes)
	}
	if n := indexKeys(t, ta, "*"+forever.ID.String()+"*"); n != 0 {
		t.Fatalf("%d index keys of the deleted topic left", n)
	}
	if n := ta.segments(t); n != 1 {
		t.Fatalf("%d segments left, want 1", n)
	}
	if n, _ := ta.index.Client().HLen(t.Context(), segsKey).Result(); n != 1 {
		t.Fatalf("segs has %d fields after the janitor, want 1", n)
	}
	if n := indexKeys(t, ta, "{s:*}:refs"); n != 1 {
		t.Fatalf("%d refs keys left, want 1", n)
	}
	if n := indexKeys(t, ta, "{t:"+topicID(t, ta, "bounded").ID.String()+"*"); n > 4 {
		t.Fatalf("%d index keys for the bounded partition, want at most meta, log, time, segs", n)
	}
	if got, err := readFrom(t, ta, "bounded", 0, last); err != nil || got[last] != fmt.Sprintf("v%d", flushes-1) {
		t.Fatalf("fetch at %d after GC: %v, %v", last, got, err)
	}
}

func TestJanitorDeletesOrphansAfterGrace(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, manualJanitor)
	ta.createTopic(t, "t", 1, nil)
	produceTo(t, ta, "t", 0, "committed")
	var committed string
	for info, err := range ta.store.List(t.Context(), "segments/") {
		if err != nil {
			t.Fatal(err)
		}
		committed = info.Key
	}
	// An upload whose commit never happened: a copy of a real segment
	// under a fresh key, so its footer names a live partition.
	rc, err := ta.store.Get(t.Context(), committed)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	orphan := "segments/01ORPHAN0000000000000000000.seg"
	if err := ta.store.PutIfAbsent(t.Context(), orphan, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// Junk under the prefix that is no segment is left alone.
	if err := ta.store.PutIfAbsent(t.Context(), "segments/README", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		after      time.Duration
		wantOrphan bool
	}{{0, true}, {30 * time.Minute, true}, {2 * time.Hour, false}} {
		rep, err := ta.agent.RunJanitor(t.Context(), time.Now().Add(tc.after))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ta.store.Attributes(t.Context(), orphan)
		if exists := err == nil; exists != tc.wantOrphan {
			t.Fatalf("%v on: orphan exists %v, want %v (%+v)", tc.after, exists, tc.wantOrphan, rep)
		}
		if !tc.wantOrphan && (rep.OrphansDeleted != 1 || rep.SegmentsDeleted != 1) {
			t.Fatalf("report %+v, want one orphan deleted", rep)
		}
	}
	for _, key := range []string{committed, "segments/README"} {
		if _, err := ta.store.Attributes(t.Context(), key); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if got, err := readFrom(t, ta, "t", 0, 0); err != nil || got[0] != "committed" {
		t.Fatalf("read back: %v, %v", got, err)
	}
}

func TestJanitorLeaseOneAtATime(t *testing.T) {
	t.Parallel()
	store := objectlog.NewMemBucket()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgentOn(t, store, index, manualJanitor)
	b := startAgentOn(t, store, index, manualJanitor)
	lease, err := index.AcquireLease(t.Context(), "janitor", "someone-else", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, ta := range []*testAgent{a, b} {
		if rep, err := ta.agent.RunJanitor(t.Context(), time.Now()); err != nil || !rep.Skipped {
			t.Fatalf("pass while another holds the lease: %+v, %v", rep, err)
		}
	}
	if err := index.ReleaseLease(t.Context(), lease); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.agent.RunJanitor(t.Context(), time.Now()); err != nil || rep.Skipped {
		t.Fatalf("pass with the lease free: %+v, %v", rep, err)
	}
}

// TestJanitorConcurrentProduceAndDeletion runs producers, DeleteRecords and
// janitor passes at once, then checks that every index entry points at an
// object that exists and that every acked offset at or above the log start
// reads back. The janitor's clock runs ahead by the orphan grace less a
// margin, so objects become collectable seconds after their upload instead
// of an hour; the margin is far above an in-memory flush's upload-to-commit
// time, which is what the real grace period covers.
func TestJanitorConcurrentProduceAndDeletion(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) {
		c.JanitorInterval = 0
		c.UnreferencedGrace = time.Second
	})
	ta.createTopic(t, "t", 3, map[string]string{"retention.bytes": "300"})
	// "keep" shares every other segment with "t" and keeps all of it: those
	// old segments stay in use while "t" releases them.
	ta.createTopic(t, "keep", 1, nil)
	id := topicID(t, ta, "t").ID
	const margin = 5 * time.Second
	ctx := t.Context()
	stop := time.Now().Add(10 * time.Second)
	running := func() bool { return time.Now().Before(stop) }

	var mu sync.Mutex
	acked := map[int32]map[int64]string{0: {}, 1: {}, 2: {}}
	keepAcked := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; running(); i++ {
				p := int32(i % 3)
				r := rec("", fmt.Sprintf("w%d-%d", w, i))
				r.Partition = &p
				k := rec("", fmt.Sprintf("k%d-%d", w, i))
				req := &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "t", Records: []*stratav1.Record{r}}}}
				if i%2 == 0 {
					req.Topics = append(req.Topics, &stratav1.TopicRecords{Topic: "keep", Records: []*stratav1.Record{k}})
				}
				resp, err := ta.producer.Produce(ctx, connect.NewRequest(req))
				if err != nil {
					t.Errorf("produce: %v", err)
					return
				}
				mu.Lock()
				acked[p][resp.Msg.Topics[0].Results[0].Offset] = string(r.Value)
				if i%2 == 0 {
					keepAcked[resp.Msg.Topics[1].Results[0].Offset] = string(k.Value)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	var deleted atomic.Int64
	wg.Go(func() {
		for running() {
			st, err := ta.index.PartitionState(ctx, id, 0)
			if err == nil && st.HighWatermark > 5 {
				_, err = ta.index.DeleteRecords(ctx, id, 0, st.HighWatermark-5)
			}
			if err != nil {
				t.Errorf("delete records: %v", err)
			}
			rep, err := ta.agent.RunJanitor(ctx, time.Now().Add(time.Hour-margin))
			if err != nil {
				t.Errorf("janitor: %v", err)
			}
			deleted.Add(rep.SegmentsDeleted)
			time.Sleep(50 * time.Millisecond)
		}
	})
	wg.Wait()
	got, err := readFrom(t, ta, "keep", 0, 0)
	if err != nil {
		t.Fatalf("read keep: %v", err)
	}
	for off, v := range keepAcked {
		if got[off] != v {
			t.Fatalf("keep offset %d: read %q, acked %q", off, got[off], v)
		}
	}
	if deleted.Load() == 0 {
		t.Fatal("the janitor deleted nothing: the test did not exercise deletion")
	}
	keepID := topicID(t, ta, "keep").ID
	for _, tp := range []struct {
		id uuid.UUID
		p  int32
	}{{id, 0}, {id, 1}, {id, 2}, {keepID, 0}} {
		entries, _, err := ta.index.Lookup(t.Context(), tp.id, tp.p, 0, 1<<40)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) {
			st, _ := ta.index.PartitionState(t.Context(), tp.id, tp.p)
			entries, _, err = ta.index.Lookup(t.Context(), tp.id, tp.p, st.LogStartOffset, 1<<40)
		}
		if err != nil {
			t.Fatal(err)
		}
		// The block cache would hide a deleted object from reads: ask the store.
		for _, e := range entries {
			if _, err := ta.store.Attributes(t.Context(), e.SegmentKey); err != nil {
				t.Fatalf("topic %s partition %d entry at %d points at %s: %v", tp.id, tp.p, e.BaseOffset, e.SegmentKey, err)
			}
		}
	}
	for p := range int32(3) {
		st, err := ta.index.PartitionState(t.Context(), id, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readFrom(t, ta, "t", p, st.LogStartOffset)
		if err != nil {
			t.Fatalf("read partition %d from %d: %v", p, st.LogStartOffset, err)
		}
		n := 0
		for off, v := range acked[p] {
			if off < st.LogStartOffset {
				continue
			}
			n++
			if got[off] != v {
				t.Fatalf("partition %d offset %d: read %q, acked %q", p, off, got[off], v)
			}
		}
		if n == 0 {
			t.Fatalf("partition %d: no acked offset at or above the log start %d", p, st.LogStartOffset)
		}
	}
}

func TestJanitorConfigRefusesShortOrphanGrace(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	cfg := agent.DefaultConfig()
	cfg.AdminListen = ""
	cfg.CommitTimeout = 10 * time.Second
	cfg.OrphanGrace = time.Minute
	_, err = agent.New(t.Context(), cfg, objectlog.NewMemBucket(), index, nil)
	if err == nil || !strings.Contains(err.Error(), "orphan-grace (1m0s) must exceed commit-timeout plus a minute (1m10s)") {
		t.Fatalf("New with a 1m orphan grace: %v", err)
	}
}

func TestDeleteRecordsRPC(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, manualJanitor)
	ta.createTopic(t, "t", 2, nil)
	for i := range 3 {
		produceTo(t, ta, "t", 0, fmt.Sprint(i))
	}
	del := func(parts ...*stratav1.DeleteRecordsPartition) (*stratav1.DeleteRecordsResponse, error) {
		resp, err := ta.admin.DeleteRecords(t.Context(), connect.NewRequest(&stratav1.DeleteRecordsRequest{Topic: "t", Partitions: parts}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	part := func(p int32, before int64) *stratav1.DeleteRecordsPartition {
		return &stratav1.DeleteRecordsPartition{Partition: p, BeforeOffset: before}
	}
	resp, err := del(part(0, 1), part(1, -1))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(resp.Partitions[0].LogStartOffset, resp.Partitions[0].HighWatermark, resp.Partitions[1].LogStartOffset); got != "1 3 0" {
		t.Fatalf("bounds %s, want 1 3 0", got)
	}
	for _, tc := range []struct {
		parts []*stratav1.DeleteRecordsPartition
		code  connect.Code
		msg   string
	}{
		{nil, connect.CodeInvalidArgument, "no partitions"},
		{[]*stratav1.DeleteRecordsPartition{part(0, 2), part(0, 2)}, connect.CodeInvalidArgument, "partition 0 given twice"},
		{[]*stratav1.DeleteRecordsPartition{part(0, -2)}, connect.CodeInvalidArgument, "offset -2"},
		{[]*stratav1.DeleteRecordsPartition{part(2, 0)}, connect.CodeNotFound, "partitions 0 to 1"},
		{[]*stratav1.DeleteRecordsPartition{part(0, 4)}, connect.CodeOutOfRange, "high watermark 3"},
	} {
		_, err := del(tc.parts...)
		if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: %v, want %v with %q", tc.parts, err, tc.code, tc.msg)
		}
	}
	// A fetch below the new log start is OUT_OF_RANGE with both bounds.
	_, err = readFrom(t, ta, "t", 0, 0)
	if connect.CodeOf(err) != connect.CodeOutOfRange || !strings.Contains(err.Error(), "log start 1") || !strings.Contains(err.Error(), "high watermark 3") {
		t.Fatalf("fetch below the log start: %v", err)
	}
}

// TestJanitorRemovesStaleTempFiles: the temporary file of a put killed
// midway on the filesystem store (invisible to listings) is removed by the
// orphan pass once older than --orphan-grace, and not before.
func TestJanitorRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	store, err := objectlog.NewFSBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	ta := startAgentOn(t, store, index, manualJanitor)
	ta.createTopic(t, "t", 1, nil)
	produceTo(t, ta, "t", 0, "committed")
	tmp := filepath.Join(store.Dir(), "segments", ".strata-tmp-killed") // objectlog's temporary names
	if err := os.WriteFile(tmp, []byte("half a segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after   time.Duration
		removed bool
	}{{30 * time.Minute, false}, {2 * time.Hour, true}} {
		rep, err := ta.agent.RunJanitor(t.Context(), time.Now().Add(tc.after))
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(tmp)
		if gone := errors.Is(err, os.ErrNotExist); gone != tc.removed {
			t.Fatalf("%v on: removed %v, want %v (%+v)", tc.after, gone, tc.removed, rep)
		}
		if want := map[bool]int64{false: 0, true: 1}[tc.removed]; rep.TempFilesDeleted != want {
			t.Fatalf("%v on: report %+v, want %d temporary files deleted", tc.after, rep, want)
		}
	}
	if got, err := readFrom(t, ta, "t", 0, 0); err != nil || got[0] != "committed" {
		t.Fatalf("read back: %v, %v", got, err)
	}
}
