package coordinator_test

import (
	"bytes"
	"cmp"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
)

func TestGroupSaveLoadCompareAndSet(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		st, err := r.LoadGroup(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != 0 || st.Data != nil {
			t.Fatalf("unknown group loaded as %+v, want version 0 and no data", st)
		}

		// Bytes that are not UTF-8 and hold NULs must come back as they went.
		first := []byte{0, 0xff, 'a', 0, 0xfe}
		v1, err := r.SaveGroup(ctx, "g", 0, first)
		if err != nil {
			t.Fatal(err)
		}
		if v1 == 0 {
			t.Fatal("first save returned version 0")
		}
		if st, err = r.LoadGroup(ctx, "g"); err != nil || st.Version != v1 || !bytes.Equal(st.Data, first) {
			t.Fatalf("load after save: %+v, %v; want version %d data %q", st, err, v1, first)
		}

		if _, err := r.SaveGroup(ctx, "g", 0, []byte("lost")); !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("save expecting no state: got %v, want ErrConflict", err)
		}
		v2, err := r.SaveGroup(ctx, "g", v1, []byte("second"))
		if err != nil {
			t.Fatal(err)
		}
		if v2 == v1 {
			t.Fatalf("version did not move from %d", v1)
		}
		if _, err := r.SaveGroup(ctx, "g", v1, []byte("lost")); !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("save with a stale version: got %v, want ErrConflict", err)
		}
		if st, _ = r.LoadGroup(ctx, "g"); string(st.Data) != "second" {
			t.Fatalf("a refused save changed the data to %q", st.Data)
		}

		// A group made again after a delete never hands out an old version,
		// so a writer that slept through the delete cannot win a CAS.
		if err := r.DeleteGroup(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		v3, err := r.SaveGroup(ctx, "g", 0, []byte("reborn"))
		if err != nil {
			t.Fatal(err)
		}
		if v3 == v1 || v3 == v2 {
			t.Fatalf("recreated group reused version %d (earlier %d, %d)", v3, v1, v2)
		}
		if _, err := r.SaveGroup(ctx, "g", v2, []byte("stale")); !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("save with a version from before the delete: got %v, want ErrConflict", err)
		}
	})
}

func TestGroupSaveConcurrentIncrements(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		const n = 16
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				// The protocol's loop: load, change, save; on a conflict,
				// start over from a fresh load.
				for {
					st, err := r.LoadGroup(t.Context(), "counter")
					if err != nil {
						t.Error(err)
						return
					}
					count := 0
					if st.Data != nil {
						if count, err = strconv.Atoi(string(st.Data)); err != nil {
							t.Error(err)
							return
						}
					}
					_, err = r.SaveGroup(t.Context(), "counter", st.Version, []byte(strconv.Itoa(count+1)))
					if errors.Is(err, coordinator.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
					}
					return
				}
			})
		}
		wg.Wait()
		st, err := r.LoadGroup(t.Context(), "counter")
		if err != nil {
			t.Fatal(err)
		}
		if string(st.Data) != strconv.Itoa(n) {
			t.Fatalf("counter is %q after %d increments", st.Data, n)
		}
	})
}

func TestGroupMembers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		if ms, err := r.ListMembers(ctx, "g"); err != nil || len(ms) != 0 {
			t.Fatalf("members of an unknown group: %v, %v", ms, err)
		}
		put := func(id string, epoch int32, data []byte, ttl time.Duration) {
			t.Helper()
			if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: id, Epoch: epoch, Data: data}, ttl); err != nil {
				t.Fatal(err)
			}
		}
		put("m2", 3, nil, shortTTL)
		put("m1", 1, []byte{0, 1, 0xff}, longTTL)

		before := time.Now()
		ms, err := r.ListMembers(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].ID != "m1" || ms[1].ID != "m2" {
			t.Fatalf("members %+v, want m1 and m2 in order", ms)
		}
		if ms[0].Epoch != 1 || !bytes.Equal(ms[0].Data, []byte{0, 1, 0xff}) || ms[1].Epoch != 3 || ms[1].Data != nil {
			t.Fatalf("members %+v do not hold what was put", ms)
		}
		if !ms[0].Expires.After(before.Add(longTTL - time.Second)) {
			t.Fatalf("m1 expires %v, want about %v from now", ms[0].Expires, longTTL)
		}

		time.Sleep(expired)
		// The upsert: a new epoch and data replace the old ones.
		put("m1", 2, []byte("v2"), longTTL)
		ms, err = r.ListMembers(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if len(ms) != 2 {
			t.Fatalf("expired member not listed: %+v", ms)
		}
		if ms[0].Epoch != 2 || string(ms[0].Data) != "v2" || !ms[0].Expires.After(now) {
			t.Fatalf("m1 after upsert: %+v", ms[0])
		}
		if !ms[1].Expires.Before(now) {
			t.Fatalf("m2 expires %v, after now %v", ms[1].Expires, now)
		}

		if err := r.RemoveMember(ctx, "g", "m2"); err != nil {
			t.Fatal(err)
		}
		if err := r.RemoveMember(ctx, "g", "m2"); !errors.Is(err, coordinator.ErrNotFound) {
			t.Fatalf("removing twice: got %v, want ErrNotFound", err)
		}
		if ms, err = r.ListMembers(ctx, "g"); err != nil || len(ms) != 1 || ms[0].ID != "m1" {
			t.Fatalf("after remove: %+v, %v", ms, err)
		}
	})
}

// A group of more members than the list script reads in one batch (1000)
// lists every member with its own epoch and data.
func TestGroupListManyMembers(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		const n = 2101
		for i := range n {
			var data []byte
			if i%3 != 0 {
				data = []byte("d" + strconv.Itoa(i))
			}
			m := coordinator.GroupMember{ID: "m" + strconv.Itoa(100000+i), Epoch: int32(i + 1), Data: data}
			if err := r.PutMember(ctx, "big", m, longTTL); err != nil {
				t.Fatal(err)
			}
		}
		ms, err := r.ListMembers(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != n {
			t.Fatalf("listed %d members, want %d", len(ms), n)
		}
		for i, m := range ms {
			var want []byte
			if i%3 != 0 {
				want = []byte("d" + strconv.Itoa(i))
			}
			if m.ID != "m"+strconv.Itoa(100000+i) || m.Epoch != int32(i+1) || !bytes.Equal(m.Data, want) || !m.Expires.After(time.Now()) {
				t.Fatalf("member %d is %+v, want id m%d, epoch %d, data %q, live", i, m, 100000+i, i+1, want)
			}
		}
	})
}

func TestGroupCommitOffsetsFencing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "live", Epoch: 5}, longTTL); err != nil {
			t.Fatal(err)
		}
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "lapsed", Epoch: 1}, shortTTL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)

		tp0 := coordinator.TopicPartition{Topic: "orders", Partition: 0}
		tp1 := coordinator.TopicPartition{Topic: "orders", Partition: 1}
		cases := []struct {
			name  string
			fence *coordinator.MemberFence
			want  error // nil: the commit lands
		}{
			{"no fence", nil, nil},
			{"current epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 5}, nil},
			{"older epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 4}, coordinator.ErrFenced},
			{"newer epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 6}, coordinator.ErrFenced},
			{"unknown member", &coordinator.MemberFence{MemberID: "ghost", Epoch: 5}, coordinator.ErrFenced},
			{"expired lease", &coordinator.MemberFence{MemberID: "lapsed", Epoch: 1}, coordinator.ErrFenced},
		}
		// Cases run in order on one group; each commits offsets no earlier
		// case used, so a refused commit that wrote anything shows.
		for i, c := range cases {
			offset := int64(100 * (i + 1))
			err := r.CommitOffsets(ctx, "g", c.fence, map[coordinator.TopicPartition]coordinator.CommittedOffset{
				tp0: {Offset: offset},
				tp1: {Offset: offset + 1},
			})
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
			}
			got, err := r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{tp0, tp1})
			if err != nil {
				t.Fatal(err)
			}
			landed0, landed1 := got[tp0].Offset == offset, got[tp1].Offset == offset+1
			if landed0 != landed1 {
				t.Fatalf("%s: half a commit landed: %v", c.name, got)
			}
			if landed0 != (c.want == nil) {
				t.Fatalf("%s: commit landed = %v, want %v", c.name, landed0, c.want == nil)
			}
		}
	})
}

func TestGroupFetchAndDeleteOffsets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		if got, err := r.FetchOffsets(ctx, "g", nil); err != nil || len(got) != 0 {
			t.Fatalf("offsets of an unknown group: %v, %v", got, err)
		}
		given := time.UnixMilli(1_700_000_000_123)
		// Colons in topic names and metadata must survive the encoding.
		a0 := coordinator.TopicPartition{Topic: "a", Partition: 0}
		a1 := coordinator.TopicPartition{Topic: "a", Partition: 1}
		odd := coordinator.TopicPartition{Topic: "ns:b:c", Partition: 7}
		commit := map[coordinator.TopicPartition]coordinator.CommittedOffset{
			a0:  {Offset: 10, Metadata: "m:0:x"},
			a1:  {Offset: 0, CommitTime: given},
			odd: {Offset: 1 << 40, Metadata: ""},
		}
		before := time.Now()
		if err := r.CommitOffsets(ctx, "g", nil, commit); err != nil {
			t.Fatal(err)
		}
		all, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := slices.SortedFunc(maps.Keys(all), compareTP), slices.SortedFunc(maps.Keys(commit), compareTP); !slices.Equal(got, want) {
			t.Fatalf("fetched %v, want %v", got, want)
		}
		for tp, want := range commit {
			got := all[tp]
			if got.Offset != want.Offset || got.Metadata != want.Metadata {
				t.Errorf("%v: got %+v, want %+v", tp, got, want)
			}
		}
		if !all[a1].CommitTime.Equal(given) {
			t.Errorf("given commit time came back as %v, want %v", all[a1].CommitTime, given)
		}
		// A zero commit time is the server's now (miniredis: the real clock).
		if ct := all[a0].CommitTime; ct.Before(before.Add(-time.Minute)) || ct.After(time.Now().Add(time.Minute)) {
			t.Errorf("server commit time %v is not about now", ct)
		}

		some, err := r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{odd, {Topic: "a", Partition: 9}})
		if err != nil {
			t.Fatal(err)
		}
		if len(some) != 1 || some[odd].Offset != 1<<40 {
			t.Fatalf("fetch some: %v, want only %v", some, odd)
		}

		if err := r.DeleteOffsets(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.FetchOffsets(ctx, "g", nil); len(got) != 3 {
			t.Fatalf("an empty delete removed offsets: %v", got)
		}
		if err := r.DeleteOffsets(ctx, "g", []coordinator.TopicPartition{a0, {Topic: "never", Partition: 0}}); err != nil {
			t.Fatal(err)
		}
		got, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[a0]; ok || len(got) != 2 {
			t.Fatalf("after deleting %v: %v", a0, got)
		}
	})
}

func compareTP(a, b coordinator.TopicPartition) int {
	return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

func TestGroupListAndDelete(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		listIs := func(want ...string) {
			t.Helper()
			got, err := r.ListGroups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("groups %v, want %v", got, want)
			}
		}
		listIs()

		tp := coordinator.TopicPartition{Topic: "t", Partition: 0}
		offsets := map[coordinator.TopicPartition]coordinator.CommittedOffset{tp: {Offset: 1}}
		// Each kind of first write makes a group: a member, state, offsets.
		if err := r.PutMember(ctx, "with-member", coordinator.GroupMember{ID: "m"}, longTTL); err != nil {
			t.Fatal(err)
		}
		if _, err := r.SaveGroup(ctx, "with-state", 0, []byte("s")); err != nil {
			t.Fatal(err)
		}
		if err := r.CommitOffsets(ctx, "with-offsets", nil, offsets); err != nil {
			t.Fatal(err)
		}
		if err := r.PutMember(ctx, "with-lapsed", coordinator.GroupMember{ID: "m"}, shortTTL); err != nil {
			t.Fatal(err)
		}
		// A refused first write must not make a group appear.
		if err := r.CommitOffsets(ctx, "ghost", &coordinator.MemberFence{MemberID: "m"}, offsets); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("fenced commit to an unknown group: %v", err)
		}
		listIs("with-lapsed", "with-member", "with-offsets", "with-state")

		err := r.DeleteGroup(ctx, "with-member")
		if !errors.Is(err, coordinator.ErrGroupNotEmpty) || !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("delete a group with a live member: got %v, want ErrGroupNotEmpty", err)
		}
		if err := r.DeleteGroup(ctx, "ghost"); !errors.Is(err, coordinator.ErrNotFound) {
			t.Fatalf("delete an unknown group: got %v, want ErrNotFound", err)
		}

		time.Sleep(expired) // with-lapsed's only member lapses
		for _, g := range []string{"with-offsets", "with-state", "with-lapsed"} {
			if err := r.DeleteGroup(ctx, g); err != nil {
				t.Fatalf("delete %s: %v", g, err)
			}
		}
		listIs("with-member")
		if err := r.DeleteGroup(ctx, "with-offsets"); !errors.Is(err, coordinator.ErrNotFound) {
			t.Fatalf("deleting twice: got %v, want ErrNotFound", err)
		}

		// Nothing of a deleted group is left behind.
		if got, err := r.FetchOffsets(ctx, "with-offsets", nil); err != nil || len(got) != 0 {
			t.Fatalf("offsets after delete: %v, %v", got, err)
		}
		if st, err := r.LoadGroup(ctx, "with-state"); err != nil || st.Version != 0 || st.Data != nil {
			t.Fatalf("state after delete: %+v, %v", st, err)
		}
		if ms, err := r.ListMembers(ctx, "with-lapsed"); err != nil || len(ms) != 0 {
			t.Fatalf("members after delete: %+v, %v", ms, err)
		}

		// A group whose last member left, with no state or offsets, is gone.
		if err := r.RemoveMember(ctx, "with-member", "m"); err != nil {
			t.Fatal(err)
		}
		listIs()
	})
}

func TestGroupInvalidArguments(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		ok := coordinator.TopicPartition{Topic: "t", Partition: 0}
		cases := []struct {
			name string
			call func() error
		}{
			{"load empty group", func() error { _, err := r.LoadGroup(ctx, ""); return err }},
			{"save negative version", func() error { _, err := r.SaveGroup(ctx, "g", -1, nil); return err }},
			{"put empty member id", func() error { return r.PutMember(ctx, "g", coordinator.GroupMember{}, time.Second) }},
			{"put zero ttl", func() error { return r.PutMember(ctx, "g", coordinator.GroupMember{ID: "m"}, 0) }},
			{"remove empty member id", func() error { return r.RemoveMember(ctx, "g", "") }},
			{"commit negative partition", func() error {
				return r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{{Topic: "t", Partition: -1}: {}})
			}},
			{"commit empty topic", func() error {
				return r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{{}: {}})
			}},
			{"commit fence without member", func() error {
				return r.CommitOffsets(ctx, "g", &coordinator.MemberFence{}, map[coordinator.TopicPartition]coordinator.CommittedOffset{ok: {}})
			}},
			{"fetch empty topic", func() error { _, err := r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{{}}); return err }},
			{"delete offsets empty group", func() error { return r.DeleteOffsets(ctx, "", []coordinator.TopicPartition{ok}) }},
			{"delete empty group", func() error { return r.DeleteGroup(ctx, "") }},
		}
		for _, c := range cases {
			if err := c.call(); !errors.Is(err, coordinator.ErrInvalid) {
				t.Errorf("%s: got %v, want ErrInvalid", c.name, err)
			}
		}
		// Refused calls write nothing, not even the group's name.
		if gs, err := r.ListGroups(ctx); err != nil || len(gs) != 0 {
			t.Errorf("invalid calls left groups %v, %v", gs, err)
		}
	})
}

// Negative offsets are stored as given, as Kafka's OffsetCommit stores them
// (admin tools commit -1 and -2 for clients to resolve), and read back.
func TestGroupNegativeOffsets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		want := map[coordinator.TopicPartition]coordinator.CommittedOffset{
			{Topic: "t", Partition: 0}: {Offset: -1, Metadata: "latest"},
			{Topic: "t", Partition: 1}: {Offset: -2, Metadata: "earliest"},
		}
		if err := r.CommitOffsets(ctx, "g", nil, want); err != nil {
			t.Fatal(err)
		}
		got, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil || len(got) != len(want) {
			t.Fatalf("fetch: %v %v", got, err)
		}
		for tp, w := range want {
			if g := got[tp]; g.Offset != w.Offset || g.Metadata != w.Metadata {
				t.Errorf("%v: got %+v, want %+v", tp, g, w)
			}
		}
	})
}

// Group writes run their script with EVALSHA inside a pipeline, which cannot
// fall back to EVAL by itself; a server that lost its script cache (restart,
// SCRIPT FLUSH) must not fail them. The flush runs on a private miniredis: on
// the shared servers it would pull scripts from under other tests.
func TestGroupWritesSurviveScriptFlush(t *testing.T) {
	t.Parallel()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	r := mustRedis(t, redis.NewClient(&redis.Options{Addr: m.Addr()}), coordinator.Options{})
	ctx := t.Context()
	tp := coordinator.TopicPartition{Topic: "t", Partition: 0}
	writes := []struct {
		name string
		call func() error
	}{
		{"put member", func() error { return r.PutMember(ctx, "g", coordinator.GroupMember{ID: "m", Epoch: 1}, longTTL) }},
		{"put member again", func() error { return r.PutMember(ctx, "g", coordinator.GroupMember{ID: "m", Epoch: 1}, longTTL) }},
		{"save group", func() error { _, err := r.SaveGroup(ctx, "g", 0, []byte("s")); return err }},
		{"fenced commit", func() error {
			return r.CommitOffsets(ctx, "g", &coordinator.MemberFence{MemberID: "m", Epoch: 1},
				map[coordinator.TopicPartition]coordinator.CommittedOffset{tp: {Offset: 42}})
		}},
	}
	for _, w := range writes {
		if err := r.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := w.call(); err != nil {
			t.Fatalf("%s after SCRIPT FLUSH: %v", w.name, err)
		}
	}
	got, err := r.FetchOffsets(ctx, "g", nil)
	if err != nil || got[tp].Offset != 42 {
		t.Fatalf("offsets %v, %v; want 42", got, err)
	}
}
