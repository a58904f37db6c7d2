package coordinator_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
)

// createTopic makes a topic with n partitions or fails the test.
func createTopic(t testing.TB, r *coordinator.Redis, name string, n int32) coordinator.Topic {
	t.Helper()
	tp, err := r.CreateTopic(context.Background(), name, coordinator.TopicConfig{Partitions: n})
	if err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
	return tp
}

// plain is a non-idempotent batch of records at [off, off+size).
func plain(off, size int64, records int32, maxTs int64) coordinator.BatchCommit {
	return coordinator.BatchCommit{ByteOffset: off, ByteLength: size, Records: records, MaxTimestamp: maxTs, ProducerID: -1}
}

// idem is an idempotent producer's batch.
func idem(off, size int64, records int32, pid int64, epoch int16, seq int32) coordinator.BatchCommit {
	return coordinator.BatchCommit{ByteOffset: off, ByteLength: size, Records: records, MaxTimestamp: 1,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
}

// segment builds a one-chunk commit with a fresh id.
func segment(id uuid.UUID, p int32, batches ...coordinator.BatchCommit) coordinator.SegmentCommit {
	sid := uuid.NewString()
	return coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "segments/" + sid,
		Chunks: []coordinator.ChunkCommit{{TopicID: id, Partition: p, Batches: batches}}}
}

// commit commits c and fails the test on a call error.
func commit(t testing.TB, r *coordinator.Redis, c coordinator.SegmentCommit) []coordinator.ChunkResult {
	t.Helper()
	res, err := r.CommitSegment(context.Background(), c)
	if err != nil {
		t.Fatalf("CommitSegment(%s): %v", c.SegmentID, err)
	}
	if len(res) != len(c.Chunks) {
		t.Fatalf("CommitSegment returned %d chunk results for %d chunks", len(res), len(c.Chunks))
	}
	return res
}

// wantOffsets checks that every batch of a chunk result succeeded with the
// given base offsets.
func wantOffsets(t testing.TB, res coordinator.ChunkResult, want ...int64) {
	t.Helper()
	if len(res.Batches) != len(want) {
		t.Fatalf("%d batch results, want %d", len(res.Batches), len(want))
	}
	for i, b := range res.Batches {
		if b.Err != nil || b.Duplicate || b.BaseOffset != want[i] {
			t.Fatalf("batch %d: %+v, want base offset %d", i, b, want[i])
		}
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
