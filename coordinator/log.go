package coordinator

// The log: segment commits and offset lookups. Every key of a partition
// carries its hash tag {t:<id>:<p>}:
//
//	meta       hash  s (live/deleted), leo (log end offset: the next offset a
//	                 commit assigns), hwm (high watermark: what readers see,
//	                 at most leo), start, bytes, mt (running max timestamp)
//	log        zset  one index entry per run of appended batches, score the
//	                 base offset, member "base|records|byteoff|bytelen|maxts|segkey"
//	time       zset  member a base offset, score the running max timestamp at
//	                 that entry; only rises are recorded, so scores strictly rise
//	segs       hash  segment id -> the commit's result, for idempotent retries
//	prod:<pid> string a producer's epoch and its last 5 batches on the partition
//
// and each segment has {s:<segmentID>}:refs, a set of "topicID:partition".
//
// Durable before visible (DESIGN.md write path step 6): commit.lua assigns
// offsets and advances leo; only once the commit is durable (WAIT answered
// by Options.WaitReplicas replicas, or the embedded index's snapshot on
// disk) does advance_hwm.lua raise hwm to the commit's leo and PUBLISH it,
// in a second round trip. Without either, a write is durable once executed
// (see durableOnExecution) and advance_hwm.lua ends the commit's pipeline.
// Readers (Lookup, PartitionState, OffsetForTimestamp, notifications) go by
// hwm only, so a crash or failover between the two loses offsets no reader
// saw and no producer was acked for; the retry, or the next commit to the
// partition, makes visible what is durable. (The index entries between hwm
// and leo are written already, but lookup.lua and offset_for_time.lua stop
// at hwm.) A commit whose WAIT failed is shown once durable by
// FinishSegment (its agent retries it in the background) or, if that agent
// died, by the next commit to the partition or CatchUpHighWatermarks (the
// janitor); so is one whose hwm write a failover lost. The embedded index
// sets hwm to leo when it restores a snapshot, everything in which is
// durable.
//
// Garbage collection: refs are a hint, not the truth. The SADD is queued
// before the commit scripts in the same pipeline, so on a single Redis it
// runs first and a ref exists for every committed chunk (and possibly for
// chunks that never committed). On Redis Cluster the refs key lives on
// another shard and the shards run their parts concurrently, so a crash
// can leave a committed chunk without its ref until the commit is retried.
// Before deleting a segment, GC must therefore re-verify each partition
// named in the segment's own footer: the segment may go only if no index
// entry of that partition points at it. The segs entries live as long as
// the segment: GC removes them together with it.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// producerStateTTL is how long a partition remembers an idempotent producer
// that stopped writing to it (Kafka's producer.id.expiration.ms is 1 day;
// this is more forgiving). A producer seen again after that starts afresh.
const producerStateTTL = 7 * 24 * time.Hour

// defaultWaitTimeout bounds WAIT when Options.WaitTimeout is 0 (WAIT 0
// would block forever). WAIT travels in the commit pipeline, so its timeout
// must stay below the client's read timeout (3 s by default).
const defaultWaitTimeout = 1000

func (r *Redis) watermarkChannel() string { return r.metaKey("watermarks") }

// chunkCall is one chunk's script invocation.
type chunkCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
	// ref is the segment's refs key and member, "" for an empty chunk.
	refKey, refMember string
	// leo is the log end offset the commit returned, once it ran.
	leo int64
	// tag is "topicID:partition", for the watermark notification.
	tag string
}

// CommitSegment assigns offsets to every chunk: SADDs of the segment refs,
// then one commit script per chunk, all in one pipeline (one round trip on a
// single Redis; one per shard, in parallel, on a cluster), ending in WAIT
// when Options.WaitReplicas asks for it. Once the commit is durable (WAIT
// answered, or the embedded index's snapshot written) a second pipeline
// makes the offsets visible to readers (advance_hwm.lua; the same pipeline
// when there is neither, see durableOnExecution), and only then does it
// return them. Any failure before that is ErrUnavailable with the
// offsets invisible; a retry with the same SegmentID returns the same
// offsets and finishes the job. See commit.lua and the notes above.
func (r *Redis) CommitSegment(ctx context.Context, c SegmentCommit) ([]ChunkResult, error) {
	calls, err := r.commitCalls(c)
	if err != nil {
		return nil, fmt.Errorf("commit segment %s: %w", c.SegmentID, err)
	}
	if err := r.execCommit(ctx, calls, false); err != nil {
		if !isNoScript(err) {
			return nil, wrapErr("commit segment "+c.SegmentID, err)
		}
		// A restarted or failed-over server lost its script cache. A chunk
		// that missed did not run, so running it again is safe; those that
		// ran are idempotent anyway.
		if err := r.loadScripts(ctx); err != nil {
			return nil, wrapErr("commit segment "+c.SegmentID, err)
		}
		if err := r.execCommit(ctx, calls, true); err != nil {
			return nil, wrapErr("commit segment "+c.SegmentID, err)
		}
	}
	results := make([]ChunkResult, len(calls))
	var unref, visible []*chunkCall
	for i, call := range calls {
		s, err := call.cmd.Text()
		if err != nil {
			return nil, wrapErr("commit segment "+c.SegmentID, err)
		}
		res, appended, err := parseChunkResult(s, c.Chunks[i])
		if err != nil {
			return nil, fmt.Errorf("commit segment %s: %w", c.SegmentID, err)
		}
		results[i] = res
		if !appended && call.refKey != "" {
			unref = append(unref, call)
		}
		if s != "T" {
			call.leo = res.HighWatermark
			visible = append(visible, call)
		}
	}
	if len(unref) > 0 {
		// Rare path (every batch rejected, or a deleted topic): drop the refs
		// added optimistically. Best effort: a stale ref only delays GC.
		pipe := r.client.Pipeline()
		for _, call := range unref {
			pipe.SRem(ctx, call.refKey, call.refMember)
		}
		_, _ = pipe.Exec(ctx)
	}
	// The embedded index's durability point: its snapshot.
	if err := r.written(ctx); err != nil {
		return nil, wrapErr("commit segment "+c.SegmentID, err)
	}
	if !r.durableOnExecution() {
		if err := r.advanceHighWatermarks(ctx, visible); err != nil {
			return nil, wrapErr("commit segment "+c.SegmentID+": make offsets visible", err)
		}
	}
	return results, nil
}

// FinishSegment implements Log.FinishSegment: it reads each chunk's stored
// commit result (segs) and high watermark in one pipeline; if any committed
// chunk is still above the high watermark, it waits (durable: a marker
// write and WAIT, which covers the commit whichever connection ran it) and
// runs advance_hwm.lua up to the leo each commit returned.
func (r *Redis) FinishSegment(ctx context.Context, c SegmentCommit) ([]Watermark, error) {
	op := "finish segment " + c.SegmentID
	calls, err := r.commitCalls(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	pipe := r.client.Pipeline()
	segs := make([]*redis.StringCmd, len(calls))
	hwms := make([]*redis.StringCmd, len(calls))
	for i, call := range calls {
		segs[i] = pipe.HGet(ctx, call.keys[3], c.SegmentID)
		hwms[i] = pipe.HGet(ctx, call.keys[0], "hwm")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapErr(op, err)
	}
	var behind []*chunkCall
	var parts []ChunkCommit
	for i, call := range calls {
		res, err := segs[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // this chunk's commit never ran: nothing to show
		}
		if err != nil {
			return nil, wrapErr(op, err)
		}
		leoText, _, _ := strings.Cut(res, ";")
		leo, err := strconv.ParseInt(leoText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: stored commit result %q", op, ErrUnavailable, res)
		}
		hwm, err := hwms[i].Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, wrapErr(op, err)
		}
		if hwm < leo {
			call.leo = leo
			behind = append(behind, call)
			parts = append(parts, c.Chunks[i])
		}
	}
	if len(behind) == 0 {
		return nil, nil
	}
	if err := r.makeVisible(ctx, op, behind); err != nil {
		return nil, err
	}
	out := make([]Watermark, len(behind))
	for i, call := range behind {
		out[i] = Watermark{TopicID: parts[i].TopicID, Partition: parts[i].Partition, HighWatermark: call.leo}
	}
	return out, nil
}

// CatchUpHighWatermarks implements Lifecycle.CatchUpHighWatermarks. The
// log end offsets are read before the WAIT, so the WAIT (a marker write
// after them, see durable) covers every commit they include.
func (r *Redis) CatchUpHighWatermarks(ctx context.Context, topicID uuid.UUID, partitions int32) ([]Watermark, error) {
	op := fmt.Sprintf("catch up high watermarks of topic %s", topicID)
	if partitions <= 0 {
		return nil, nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.SliceCmd, partitions)
	for p := range partitions {
		cmds[p] = pipe.HMGet(ctx, r.partitionMeta(topicID, p), "s", "leo", "hwm")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapErr(op, err)
	}
	var behind []*chunkCall
	var out []Watermark
	for p, cmd := range cmds {
		v := cmd.Val()
		if len(v) != 3 || v[0] != "live" || v[1] == nil {
			continue
		}
		leoText, _ := v[1].(string)
		hwmText, _ := v[2].(string)
		leo, err1 := strconv.ParseInt(leoText, 10, 64)
		hwm, err2 := strconv.ParseInt(hwmText, 10, 64)
		if hwmText == "" {
			hwm, err2 = 0, nil
		}
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s: %w: partition %d meta %v", op, ErrUnavailable, p, v)
		}
		if leo > hwm {
			behind = append(behind, &chunkCall{keys: []string{r.partitionMeta(topicID, int32(p))},
				tag: topicID.String() + ":" + strconv.Itoa(p), leo: leo})
			out = append(out, Watermark{TopicID: topicID, Partition: int32(p), HighWatermark: leo})
		}
	}
	if len(behind) == 0 {
		return nil, nil
	}
	if err := r.makeVisible(ctx, op, behind); err != nil {
		return nil, err
	}
	return out, nil
}

// durableOnExecution reports whether the index counts a write as durable
// once the server executed it: no WAIT and no snapshot to wait for. That
// holds with appendfsync always (the server sends no reply and no PUBLISH
// before the fsync that follows the commands it executed) and on a durable
// managed service. The commit pipeline then ends with advance_hwm.lua (to
// the current log end offset) itself: one round trip.
func (r *Redis) durableOnExecution() bool { return r.opts.WaitReplicas <= 0 && r.afterWrite == nil }

// addAdvance queues advance_hwm.lua for call's partition up to target, or
// up to the partition's log end offset when target < 0.
func (r *Redis) addAdvance(ctx context.Context, pipe redis.Pipeliner, call *chunkCall, target int64, eval bool) *redis.Cmd {
	keys, args := []string{call.keys[0]}, []any{target, r.watermarkChannel(), call.tag}
	if eval {
		return advanceHWMScript.Eval(ctx, pipe, keys, args...)
	}
	return advanceHWMScript.EvalSha(ctx, pipe, keys, args...)
}

// advanceHighWatermarks runs advance_hwm.lua for every call, in one
// pipeline, after the commit is durable.
func (r *Redis) advanceHighWatermarks(ctx context.Context, calls []*chunkCall) error {
	if len(calls) == 0 {
		return nil
	}
	exec := func(eval bool) error {
		pipe := r.client.Pipeline()
		for _, call := range calls {
			r.addAdvance(ctx, pipe, call, call.leo, eval)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := exec(false)
	if isNoScript(err) {
		// The script only ever raises hwm: running it twice is harmless.
		if err = r.loadScripts(ctx); err == nil {
			err = exec(true)
		}
	}
	return err
}

func (r *Redis) commitCalls(c SegmentCommit) ([]*chunkCall, error) {
	if c.SegmentID == "" || hasBraces(c.SegmentID) {
		return nil, fmt.Errorf("%w: segment id %q must be non-empty and without braces", ErrInvalid, c.SegmentID)
	}
	if c.SegmentKey == "" {
		return nil, fmt.Errorf("%w: segment key is empty", ErrInvalid)
	}
	type tp struct {
		id uuid.UUID
		p  int32
	}
	seen := make(map[tp]bool, len(c.Chunks))
	ttl := producerStateTTL.Milliseconds()
	calls := make([]*chunkCall, len(c.Chunks))
	for i, ch := range c.Chunks {
		if seen[tp{ch.TopicID, ch.Partition}] {
			return nil, fmt.Errorf("%w: two chunks for topic %s partition %d", ErrInvalid, ch.TopicID, ch.Partition)
		}
		seen[tp{ch.TopicID, ch.Partition}] = true
		if ch.Partition < 0 {
			return nil, fmt.Errorf("%w: partition %d", ErrInvalid, ch.Partition)
		}
		tag := ch.TopicID.String() + ":" + strconv.Itoa(int(ch.Partition))
		call := &chunkCall{
			keys: []string{r.partitionMeta(ch.TopicID, ch.Partition), r.partitionKey(ch.TopicID, ch.Partition, "log"),
				r.partitionKey(ch.TopicID, ch.Partition, "time"), r.partitionKey(ch.TopicID, ch.Partition, "segs")},
			args: make([]any, 0, 3+8*len(ch.Batches)),
			tag:  tag,
		}
		call.args = append(call.args, c.SegmentID, c.SegmentKey, ttl)
		producerKey := map[int64]int{}
		for j, b := range ch.Batches {
			if b.Records <= 0 || b.ByteLength <= 0 || b.ByteOffset < 0 {
				return nil, fmt.Errorf("%w: topic %s partition %d batch %d: records %d, bytes [%d, +%d)", ErrInvalid,
					ch.TopicID, ch.Partition, j, b.Records, b.ByteOffset, b.ByteLength)
			}
			ki := 0
			txf, err := txnFlag(b) // issue 11
			if err != nil {
				return nil, fmt.Errorf("topic %s partition %d batch %d: %w", ch.TopicID, ch.Partition, j, err)
			}
			if b.ProducerID >= 0 {
				if b.ProducerEpoch < 0 || (b.BaseSequence < 0 && !b.Control) { // issue 11: markers have no sequence
					return nil, fmt.Errorf("%w: producer %d epoch %d sequence %d", ErrInvalid, b.ProducerID, b.ProducerEpoch, b.BaseSequence)
				}
				var ok bool
				if ki, ok = producerKey[b.ProducerID]; !ok {
					call.keys = append(call.keys, r.partitionKey(ch.TopicID, ch.Partition, "prod:"+strconv.FormatInt(b.ProducerID, 10)))
					ki = len(call.keys) // Lua's KEYS index is 1-based
					producerKey[b.ProducerID] = ki
				}
			}
			call.args = append(call.args, b.ByteOffset, b.ByteLength, b.Records, b.MaxTimestamp, ki, b.ProducerEpoch, b.BaseSequence, txf)
		}
		call.keys = append(call.keys, r.txnPartitionKeys(ch.TopicID, ch.Partition)...) // issue 11: always the last two
		if len(ch.Batches) > 0 {
			call.refKey, call.refMember = r.segmentKey(c.SegmentID, "refs"), tag
		}
		calls[i] = call
	}
	return calls, nil
}

// execCommit runs the calls in one pipeline, optionally with EVAL instead of
// EVALSHA. With WaitReplicas it appends WAIT: WAIT covers the writes of the
// connection it is sent on, which inside a pipeline is the one that ran the
// scripts.
func (r *Redis) execCommit(ctx context.Context, calls []*chunkCall, eval bool) error {
	add := func(pipe redis.Pipeliner, call *chunkCall) {
		if eval {
			call.cmd = commitScript.Eval(ctx, pipe, call.keys, call.args...)
		} else {
			call.cmd = commitScript.EvalSha(ctx, pipe, call.keys, call.args...)
		}
	}
	cc, cluster := r.client.(*redis.ClusterClient)
	if r.opts.WaitReplicas <= 0 || !cluster {
		pipe := r.client.Pipeline()
		for _, call := range calls {
			if call.refKey != "" {
				pipe.SAdd(ctx, call.refKey, call.refMember)
			}
		}
		for _, call := range calls {
			add(pipe, call)
		}
		if r.durableOnExecution() {
			for _, call := range calls {
				r.addAdvance(ctx, pipe, call, -1, eval)
			}
		}
		var wait *redis.Cmd
		if r.opts.WaitReplicas > 0 {
			wait = r.pipeWait(ctx, pipe)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		return r.checkWait(wait)
	}
	// Cluster with WAIT: one pipeline per master, each ending in WAIT on the
	// connection that wrote, run in parallel. These per-node pipelines do not
	// follow MOVED redirects during a resharding; the commit then fails with
	// a retryable error and its retry, after go-redis reloaded the slots, is
	// idempotent.
	type nodePipe struct {
		pipe redis.Pipeliner
		wait *redis.Cmd
	}
	nodes := map[string]*nodePipe{}
	node := func(key string) (*nodePipe, error) {
		c, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		np := nodes[c.Options().Addr]
		if np == nil {
			np = &nodePipe{pipe: c.Pipeline()}
			nodes[c.Options().Addr] = np
		}
		return np, nil
	}
	for _, call := range calls {
		if call.refKey != "" {
			np, err := node(call.refKey)
			if err != nil {
				return err
			}
			np.pipe.SAdd(ctx, call.refKey, call.refMember)
		}
	}
	for _, call := range calls {
		np, err := node(call.keys[0])
		if err != nil {
			return err
		}
		add(np.pipe, call)
	}
	var wg sync.WaitGroup
	errs := make([]error, 0, len(nodes))
	var mu sync.Mutex
	for _, np := range nodes {
		np.wait = r.pipeWait(ctx, np.pipe)
		wg.Go(func() {
			_, err := np.pipe.Exec(ctx)
			if err == nil {
				err = r.checkWait(np.wait)
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		cc.ReloadState(ctx)
	}
	return err
}

// pipeWait queues WAIT (Pipeliner has no Wait method).
func (r *Redis) pipeWait(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return pipe.Do(ctx, "wait", r.opts.WaitReplicas, r.waitTimeout().Milliseconds())
}

func (r *Redis) waitTimeout() time.Duration {
	ms := r.opts.WaitTimeout
	if ms <= 0 {
		ms = defaultWaitTimeout
	}
	return time.Duration(ms) * time.Millisecond
}

// checkWait turns too few replica acknowledgements into a retryable error:
// the commit happened, and its retry returns the same offsets.
func (r *Redis) checkWait(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return err
	}
	if n < int64(r.opts.WaitReplicas) {
		return fmt.Errorf("%w: only %d of %d replicas acknowledged the write within %v", ErrNotEnoughReplicas, n, r.opts.WaitReplicas, r.waitTimeout())
	}
	return nil
}

// parseChunkResult decodes commit.lua's reply; appended reports whether any
// batch became part of the log.
func parseChunkResult(s string, ch ChunkCommit) (res ChunkResult, appended bool, err error) {
	res.Batches = make([]BatchResult, len(ch.Batches))
	res.LogStartOffset = -1
	if s == "T" {
		for i := range res.Batches {
			res.Batches[i].Err = fmt.Errorf("%w: topic %s partition %d", ErrTopicDeleted, ch.TopicID, ch.Partition)
		}
		return res, false, nil
	}
	if rest, start, ok := strings.Cut(s, "@"); ok {
		if res.LogStartOffset, err = strconv.ParseInt(start, 10, 64); err != nil {
			return res, false, fmt.Errorf("%w: commit reply %q", ErrUnavailable, s)
		}
		s = rest
	}
	parts := strings.Split(s, ";")
	if len(parts) != len(ch.Batches)+1 {
		return res, false, fmt.Errorf("%w: commit of topic %s partition %d: %d results for %d batches (a retry with different batches?)",
			ErrInvalid, ch.TopicID, ch.Partition, len(parts)-1, len(ch.Batches))
	}
	if res.HighWatermark, err = strconv.ParseInt(parts[0], 10, 64); err != nil {
		return res, false, fmt.Errorf("%w: commit reply %q", ErrUnavailable, s)
	}
	for i, p := range parts[1:] {
		if p == "" {
			return res, false, fmt.Errorf("%w: commit reply %q", ErrUnavailable, s)
		}
		n, err := strconv.ParseInt(p[1:], 10, 64)
		if err != nil {
			return res, false, fmt.Errorf("%w: commit reply %q", ErrUnavailable, s)
		}
		b := ch.Batches[i]
		switch p[0] {
		case 'o':
			res.Batches[i].BaseOffset = n
			appended = true
		case 'd':
			res.Batches[i] = BatchResult{BaseOffset: n, Duplicate: true}
		case 'F':
			res.Batches[i].Err = fmt.Errorf("%w: producer %d epoch %d is older than epoch %d on topic %s partition %d",
				ErrFenced, b.ProducerID, b.ProducerEpoch, n, ch.TopicID, ch.Partition)
		case 'S':
			res.Batches[i].Err = fmt.Errorf("%w: producer %d epoch %d on topic %s partition %d: expected sequence %d, got %d",
				ErrOutOfOrderSequence, b.ProducerID, b.ProducerEpoch, ch.TopicID, ch.Partition, n, b.BaseSequence)
		default:
			return res, false, fmt.Errorf("%w: commit reply %q", ErrUnavailable, s)
		}
	}
	return res, appended, nil
}

// parseEntry decodes a log member "base|records|byteoff|bytelen|maxts|segkey".
func parseEntry(member string) (IndexEntry, error) {
	f := strings.SplitN(member, "|", 6)
	if len(f) != 6 {
		return IndexEntry{}, fmt.Errorf("%w: index entry %q", ErrUnavailable, member)
	}
	var n [5]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return IndexEntry{}, fmt.Errorf("%w: index entry %q", ErrUnavailable, member)
		}
		n[i] = v
	}
	return IndexEntry{BaseOffset: n[0], Records: n[1], ByteOffset: n[2], ByteLength: n[3], MaxTimestamp: n[4], SegmentKey: f[5]}, nil
}

func replyInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%w: script reply %v is not an integer", ErrUnavailable, v)
	}
	return n, nil
}

// maxLookupEntries caps the entries one Lookup returns, whatever maxBytes
// says: the script blocks the server while it runs. A fetch that wants more
// looks up again from where the last entry ended.
const maxLookupEntries = 1000

// Lookup implements Log.Lookup with lookup.lua: bounds and entries from one
// instant. It returns at most maxLookupEntries entries.
func (r *Redis) Lookup(ctx context.Context, topicID uuid.UUID, partition int32, offset int64, maxBytes int64) ([]IndexEntry, PartitionState, error) {
	op := fmt.Sprintf("lookup topic %s partition %d offset %d", topicID, partition, offset)
	v, err := r.run(ctx, lookupScript, []string{r.partitionMeta(topicID, partition), r.partitionKey(topicID, partition, "log")},
		offset, maxBytes, maxLookupEntries).Slice()
	if err != nil {
		return nil, PartitionState{}, wrapErr(op, err)
	}
	if len(v) == 0 {
		return nil, PartitionState{}, fmt.Errorf("%s: %w: empty reply", op, ErrUnavailable)
	}
	switch v[0] {
	case "N":
		return nil, PartitionState{}, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
	case "R":
		if len(v) != 3 {
			return nil, PartitionState{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
		}
		start, err1 := replyInt(v[1])
		hwm, err2 := replyInt(v[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, PartitionState{}, fmt.Errorf("%s: %w", op, err)
		}
		return nil, PartitionState{LogStartOffset: start, HighWatermark: hwm},
			fmt.Errorf("%s: %w: log start %d, high watermark %d", op, ErrOffsetOutOfRange, start, hwm)
	case "K":
	default:
		return nil, PartitionState{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
	}
	if len(v) < 4 {
		return nil, PartitionState{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
	}
	var st PartitionState
	var errs [3]error
	st.LogStartOffset, errs[0] = replyInt(v[1])
	st.HighWatermark, errs[1] = replyInt(v[2])
	st.Bytes, errs[2] = replyInt(v[3])
	if err := errors.Join(errs[:]...); err != nil {
		return nil, PartitionState{}, fmt.Errorf("%s: %w", op, err)
	}
	members, err := replyStrings(v[4:])
	if err != nil {
		return nil, PartitionState{}, fmt.Errorf("%s: %w", op, err)
	}
	entries := make([]IndexEntry, len(members))
	for i, m := range members {
		if entries[i], err = parseEntry(m); err != nil {
			return nil, PartitionState{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	return entries, st, nil
}

// PartitionState reads a partition's bounds and size.
func (r *Redis) PartitionState(ctx context.Context, topicID uuid.UUID, partition int32) (PartitionState, error) {
	op := fmt.Sprintf("partition state of topic %s partition %d", topicID, partition)
	v, err := r.client.HMGet(ctx, r.partitionMeta(topicID, partition), "s", "start", "hwm", "bytes").Result()
	if err != nil {
		return PartitionState{}, wrapErr(op, err)
	}
	if v[0] != "live" {
		return PartitionState{}, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
	}
	var n [3]int64
	for i := range n {
		if v[i+1] == nil {
			continue // never committed to: 0
		}
		s, _ := v[i+1].(string)
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return PartitionState{}, fmt.Errorf("%s: %w: field value %v", op, ErrUnavailable, v[i+1])
		}
	}
	return r.withLastStable(ctx, topicID, partition, PartitionState{LogStartOffset: n[0], HighWatermark: n[1], Bytes: n[2]}) // issue 11
}

// OffsetForTimestamp implements Log.OffsetForTimestamp with the time index.
func (r *Redis) OffsetForTimestamp(ctx context.Context, topicID uuid.UUID, partition int32, ts int64) (IndexEntry, bool, error) {
	op := fmt.Sprintf("offset for timestamp %d on topic %s partition %d", ts, topicID, partition)
	v, err := r.run(ctx, offsetForTimeScript, []string{r.partitionMeta(topicID, partition),
		r.partitionKey(topicID, partition, "time"), r.partitionKey(topicID, partition, "log")}, ts).StringSlice()
	if err != nil {
		return IndexEntry{}, false, wrapErr(op, err)
	}
	switch {
	case len(v) == 1 && v[0] == "N":
		return IndexEntry{}, false, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
	case len(v) == 1 && v[0] == "0":
		return IndexEntry{}, false, nil
	case len(v) == 2 && v[0] == "E":
		e, err := parseEntry(v[1])
		if err != nil {
			return IndexEntry{}, false, fmt.Errorf("%s: %w", op, err)
		}
		return e, true, nil
	}
	return IndexEntry{}, false, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
}

// SegmentRefs counts the partitions whose chunks may still point at the
// segment (a superset; see the package's GC notes above).
func (r *Redis) SegmentRefs(ctx context.Context, segmentID string) (int64, error) {
	if segmentID == "" || hasBraces(segmentID) {
		return 0, fmt.Errorf("segment refs: %w: segment id %q", ErrInvalid, segmentID)
	}
	n, err := r.client.SCard(ctx, r.segmentKey(segmentID, "refs")).Result()
	return n, wrapErr("segment refs of "+segmentID, err)
}

// makeVisible waits until what the calls committed is durable, then raises
// their partitions' high watermarks to it.
func (r *Redis) makeVisible(ctx context.Context, op string, behind []*chunkCall) error {
	if err := r.durable(ctx); err != nil {
		return wrapErr(op, err)
	}
	if err := r.advanceHighWatermarks(ctx, behind); err != nil {
		return wrapErr(op+": make offsets visible", err)
	}
	return nil
}
