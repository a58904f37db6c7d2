package coordinator_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// TestGroupRenewMemberIsConditional: a renewal never creates a member or
// revives one whose lease expired or that was removed, and moves the
// epoch only from the one it names.
func TestGroupRenewMemberIsConditional(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "live", Epoch: 5}, longTTL); err != nil {
			t.Fatal(err)
		}
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "lapsed", Epoch: 1}, shortTTL); err != nil {
			t.Fatal(err)
		}
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "gone", Epoch: 2}, longTTL); err != nil {
			t.Fatal(err)
		}
		if err := r.RemoveMember(ctx, "g", "gone"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)

		if err := r.RenewMember(ctx, "g", coordinator.GroupMember{ID: "live", Epoch: 6}, 5, longTTL); err != nil {
			t.Fatalf("renew a live member at its epoch: %v", err)
		}
		refused := []struct {
			name  string
			m     coordinator.GroupMember
			from  int32
			cause string
		}{
			{"stale epoch", coordinator.GroupMember{ID: "live", Epoch: 7}, 5, "epoch"},
			{"expired lease", coordinator.GroupMember{ID: "lapsed", Epoch: 1}, 1, "expired"},
			{"removed member", coordinator.GroupMember{ID: "gone", Epoch: 2}, 2, "not in group"},
			{"never joined", coordinator.GroupMember{ID: "ghost", Epoch: 1}, 1, "not in group"},
		}
		for _, c := range refused {
			err := r.RenewMember(ctx, "g", c.m, c.from, longTTL)
			if !errors.Is(err, coordinator.ErrFenced) {
				t.Fatalf("%s: renew got %v, want ErrFenced", c.name, err)
			}
		}
		members, err := r.ListMembers(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]coordinator.GroupMember{}
		for _, m := range members {
			got[m.ID] = m
		}
		if len(got) != 2 {
			t.Fatalf("members after the refused renewals: %+v; want only live and lapsed", members)
		}
		if m := got["live"]; m.Epoch != 6 || time.Until(m.Expires) < longTTL-5*time.Second {
			t.Fatalf("live member = %+v, want epoch 6 and a renewed lease", m)
		}
		if m := got["lapsed"]; m.Expires.After(time.Now()) {
			t.Fatalf("the refused renewal revived the expired member: %+v", m)
		}
	})
}

// TestGroupOffsetsCarryTopicID: a committed offset keeps the id of the
// topic it was committed to, and DeleteTopicOffsets forgets only those of
// one topic id.
func TestGroupOffsetsCarryTopicID(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		oldID, newID := uuid.New(), uuid.New()
		t0 := coordinator.TopicPartition{Topic: "orders", Partition: 0}
		t1 := coordinator.TopicPartition{Topic: "orders", Partition: 1}
		t2 := coordinator.TopicPartition{Topic: "orders", Partition: 2}
		other := coordinator.TopicPartition{Topic: "audit", Partition: 0}
		err := r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
			t0:    {Offset: 5, Metadata: "@a:b:c", TopicID: oldID},
			t1:    {Offset: 6, TopicID: newID},
			t2:    {Offset: 7, Metadata: "1:2"}, // no topic id
			other: {Offset: 8, TopicID: oldID},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[coordinator.TopicPartition]coordinator.CommittedOffset{
			t0: {Offset: 5, Metadata: "@a:b:c", TopicID: oldID}, t1: {Offset: 6, TopicID: newID},
			t2: {Offset: 7, Metadata: "1:2"}, other: {Offset: 8, TopicID: oldID},
		}
		for tp, w := range want {
			g := got[tp]
			if g.Offset != w.Offset || g.Metadata != w.Metadata || g.TopicID != w.TopicID {
				t.Fatalf("%v: fetched %+v, want %+v", tp, g, w)
			}
		}

		n, err := r.DeleteTopicOffsets(ctx, "g", oldID, []coordinator.TopicPartition{t0, t1, t2})
		if err != nil || n != 1 {
			t.Fatalf("delete the old topic's offsets: %d, %v; want 1 deleted", n, err)
		}
		got, err = r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{t0, t1, t2, other})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[t0]; ok {
			t.Fatalf("offset of the deleted topic id survived: %+v", got[t0])
		}
		if got[t1].Offset != 6 || got[t2].Offset != 7 || got[other].Offset != 8 {
			t.Fatalf("offsets of another topic id, none, or a partition not named were deleted: %+v", got)
		}
		if n, err := r.DeleteTopicOffsets(ctx, "g", uuid.Nil, []coordinator.TopicPartition{t1, t2}); err != nil || n != 1 {
			t.Fatalf("delete the offsets without an id: %d, %v; want 1", n, err)
		}
		if got, _ = r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{t1, t2}); len(got) != 1 || got[t1].Offset != 6 {
			t.Fatalf("after deleting the offsets without an id: %+v; want only %v", got, t1)
		}
	})
}

// TestDeleteTopicForgetsGroupOffsets: deleting a topic deletes every
// group's committed offsets of it, as Kafka does, and leaves those of a
// topic made again under the name alone.
func TestDeleteTopicForgetsGroupOffsets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		old, err := r.CreateTopic(ctx, "orders", coordinator.TopicConfig{Partitions: 2})
		if err != nil {
			t.Fatal(err)
		}
		keep, err := r.CreateTopic(ctx, "audit", coordinator.TopicConfig{Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		o0 := coordinator.TopicPartition{Topic: "orders", Partition: 0}
		o1 := coordinator.TopicPartition{Topic: "orders", Partition: 1}
		a0 := coordinator.TopicPartition{Topic: "audit", Partition: 0}
		for _, g := range []string{"g1", "g2"} {
			err := r.CommitOffsets(ctx, g, nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
				o0: {Offset: 5, TopicID: old.ID}, o1: {Offset: 6, TopicID: old.ID}, a0: {Offset: 7, TopicID: keep.ID},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := r.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		for _, g := range []string{"g1", "g2"} {
			got, err := r.FetchOffsets(ctx, g, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[a0].Offset != 7 {
				t.Fatalf("group %s after deleting orders: %+v; want only audit/0 at 7", g, got)
			}
		}

		// The new orders' offsets are not the deleted one's: a second
		// delete of the new topic takes only them, and only then.
		reborn, err := r.CreateTopic(ctx, "orders", coordinator.TopicConfig{Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.CommitOffsets(ctx, "g1", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
			o0: {Offset: 3, TopicID: reborn.ID},
		}); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.FetchOffsets(ctx, "g1", []coordinator.TopicPartition{o0}); got[o0].Offset != 3 || got[o0].TopicID != reborn.ID {
			t.Fatalf("offset of the recreated topic: %+v", got)
		}
		if err := r.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if got, _ := r.FetchOffsets(ctx, "g1", []coordinator.TopicPartition{o0}); len(got) != 0 {
			t.Fatalf("offset of the recreated topic survived its delete: %+v", got)
		}
	})
}

// TestGroupRemoveExpiredMember removes a member only while its lease is
// expired: one that rejoined keeps its new lease.
func TestGroupRemoveExpiredMember(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		for _, m := range []coordinator.GroupMember{{ID: "lapsed", Epoch: 1}, {ID: "rejoined", Epoch: 1}} {
			if err := r.PutMember(ctx, "g", m, shortTTL); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "live", Epoch: 1}, longTTL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)
		// "rejoined" joins again after another member found it expired.
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "rejoined", Epoch: 1}, longTTL); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			id   string
			want bool
		}{{"lapsed", true}, {"rejoined", false}, {"live", false}, {"ghost", false}, {"lapsed", false}} {
			got, err := r.RemoveExpiredMember(ctx, "g", c.id)
			if err != nil || got != c.want {
				t.Fatalf("remove expired %s: %v, %v; want %v", c.id, got, err, c.want)
			}
		}
		members, err := r.ListMembers(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != 2 || members[0].ID != "live" || members[1].ID != "rejoined" || !members[1].Expires.After(time.Now()) {
			t.Fatalf("members %+v, want live and rejoined with their leases", members)
		}
	})
}
