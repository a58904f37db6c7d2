package coordinator

// The embedded index: miniredis in process, for `strata dev` and tests. It
// runs the same Lua scripts and PUBLISHes as a real Redis. With a data
// directory its whole state is saved to <dir>/index.snapshot:
//
//   - at most a second after any write (a go-redis hook marks the state
//     dirty after every non-read-only command);
//   - before a mutating call returns, unless Options.EmbeddedAsyncWrites:
//     the call waits for a snapshot that started after its write finished.
//     Concurrent callers share one snapshot (group commit);
//   - on Close.
//
// The snapshot is the embedded index's durability point (DESIGN.md write
// path step 6): a commit's offsets become visible (advance_hwm.lua) only
// after a snapshot holding the commit is on disk, so a crash never takes
// back an offset a reader saw. Everything in a snapshot is durable, so
// restoring one raises every partition's high watermark to its log end
// offset: a crash between a snapshot and the hwm write that follows it
// hides nothing for longer than the restart. With EmbeddedAsyncWrites
// there is no such point: offsets are visible (and acked) before any
// snapshot holds them, and a crash loses up to a second of them.
//
// A snapshot is one Lua script (snapshot.lua) reading every key, so it is a
// single consistent instant: miniredis runs a script under its global lock.
// The file is written to a temporary name, fsynced, renamed over the old one
// and the directory fsynced, so a crash leaves the old or the new snapshot,
// never a torn one (a temporary file a crash left behind is removed at the
// next open). The cost is proportional to the whole index, which suits
// development sizes, not production ones.
//
// Key TTLs (producer and transactional-id state, ProducerIDExpiry) move in
// ticks, not per command: every ttlTick a goroutine FastForwards miniredis
// by the wall-clock time since the previous tick. miniredis' own wall-clock
// mode (ClockTTL) does the same on every command, and each time walks and
// sorts every key, so a command on an index of 100k keys took about 0.2 s
// (BenchmarkEmbeddedLargeIndex). A key therefore expires up to one tick
// early or late: a tick is ttlTick (100 ms), or ttlTickCostRatio times what
// the previous tick took when that is longer, so ticking never takes more
// than about 5% of a core. A tick still walks every key under miniredis'
// lock, pausing commands meanwhile: 25 ms at 100k keys, 0.5 s at a million
// (which then tick about every 10 s). That is far inside the index's TTLs
// (days). Leases, agents and group members are unaffected: their expiry is
// compared with the server's TIME inside the scripts (leases.go), which is
// always the wall clock. A snapshot records each key's TTL as of the last
// tick.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// SnapshotFile is the name of the embedded index's snapshot in its data
// directory.
const SnapshotFile = "index.snapshot"

// snapshotMagic opens every snapshot file; the number is the format version.
const snapshotMagic = "strata-index-snapshot 1\n"

const snapshotInterval = time.Second

// ttlTick is the shortest interval between two advances of the embedded
// index's key TTLs; ttlTickCostRatio stretches it on a large index to that
// many times what the last advance took (see the top of the file).
const (
	ttlTick          = 100 * time.Millisecond
	ttlTickCostRatio = 20
)

// errClosed is what a write waiting for persistence gets when the index is
// closed under it.
var errClosed = errors.New("embedded index closed")

// snapshot is the gob-encoded body of a snapshot file.
type snapshot struct {
	SavedAtMs int64
	Keys      []snapshotKey
}

// snapshotKey is one key. Values holds a string's value, a hash's fields and
// values alternating, a set's members, a list's items or a sorted set's
// members (then Scores holds their scores).
type snapshotKey struct {
	Key        string
	Type       string
	ExpireAtMs int64 // 0 = no TTL
	Values     []string
	Scores     []float64
}

type embedded struct {
	m      *miniredis.Miniredis
	client *redis.Client
	// snapClient reads snapshots; it has no dirty hook, or every snapshot
	// (an EVALSHA) would mark the state dirty again.
	snapClient *redis.Client
	path       string // "" = not persisted

	dirty atomic.Bool
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	// ttlDone closes when ttlLoop has returned (after stop closed).
	ttlDone chan struct{}

	mu     sync.Mutex
	next   *pendingSave // the snapshot that has not started yet
	closed bool

	closeOnce sync.Once
	closeErr  error
	// serverMu guards m against Close while a hook asks it about a command:
	// a call still in flight when the index closes (a request handler that
	// outlived its server) must not race miniredis' Close.
	serverMu     sync.RWMutex
	serverClosed bool
}

// pendingSave is one snapshot; done closes when it is on disk (or failed).
type pendingSave struct {
	done chan struct{}
	err  error
}

// embeddedClient closes the embedded server (after a last snapshot) with
// the client, so Redis.Close needs no special case.
type embeddedClient struct {
	*redis.Client
	e *embedded
}

func (c embeddedClient) Close() error { return c.e.close() }

// OpenEmbedded runs the index on an in-process miniredis. With a non-empty
// dataDir the state is restored from dataDir/index.snapshot and saved there
// (see the top of embedded.go); with "" it lives in memory only.
func OpenEmbedded(dataDir string, opts Options) (*Redis, error) {
	if opts.WaitReplicas > 0 {
		return nil, fmt.Errorf("%w: the embedded index has no replicas to wait for (its durability point is its snapshot): leave wait replicas at 0", ErrInvalid)
	}
	e := &embedded{
		m:       miniredis.NewMiniRedis(),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		ttlDone: make(chan struct{}),
		next:    &pendingSave{done: make(chan struct{})},
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("embedded index: %w", err)
		}
		e.path = filepath.Join(dataDir, SnapshotFile)
		if err := removeSnapshotTemps(e.path); err != nil {
			return nil, err
		}
		if err := e.restore(); err != nil {
			return nil, err
		}
	}
	if err := e.m.Start(); err != nil {
		return nil, fmt.Errorf("embedded index: starting miniredis: %w", err)
	}
	e.client = redis.NewClient(&redis.Options{Addr: e.m.Addr()})
	e.client.AddHook(dirtyHook{e})
	e.snapClient = redis.NewClient(&redis.Options{Addr: e.m.Addr(), PoolSize: 1})
	r, err := NewRedis(embeddedClient{e.client, e}, opts)
	if err != nil {
		_ = e.client.Close()
		_ = e.snapClient.Close()
		e.m.Close()
		return nil, err
	}
	if e.path != "" && !opts.EmbeddedAsyncWrites {
		r.afterWrite = e.sync
	}
	go e.loop()
	go e.ttlLoop()
	return r, nil
}

// ttlLoop moves key TTLs with the wall clock, a tick at a time (see the top
// of the file). It forwards by the monotonic time since the previous tick,
// so a late tick (a loaded machine, a long tick) loses no time.
func (e *embedded) ttlLoop() {
	defer close(e.ttlDone)
	last := time.Now()
	wait := ttlTick
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-timer.C:
		}
		now := time.Now()
		e.m.FastForward(now.Sub(last))
		last = now
		wait = max(ttlTick, ttlTickCostRatio*time.Since(now))
		timer.Reset(wait)
	}
}

// dirtyHook marks the state dirty after every command that may write.
type dirtyHook struct{ e *embedded }

func (h dirtyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h dirtyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.mark(cmd)
		return err
	}
}

func (h dirtyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.mark(c)
		}
		return err
	}
}

// mark runs after the command, so a snapshot that starts after the flag was
// cleared includes the write.
func (h dirtyHook) mark(cmd redis.Cmder) {
	h.e.serverMu.RLock()
	defer h.e.serverMu.RUnlock()
	if !h.e.serverClosed && !h.e.m.IsReadOnlyCommand(cmd.Name()) {
		h.e.dirty.Store(true)
	}
}

// sync is the after-write hook: it waits for a snapshot that starts after
// the caller's write completed. Callers arriving together share it.
func (e *embedded) sync(ctx context.Context) error {
	e.mu.Lock()
	p, closed := e.next, e.closed
	e.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: %w", ErrUnavailable, errClosed)
	}
	select {
	case e.kick <- struct{}{}:
	default: // a kick is already pending
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%w: persisting the embedded index: %w", ErrUnavailable, p.err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *embedded) loop() {
	defer close(e.done)
	tick := time.NewTicker(snapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			err := e.save()
			e.mu.Lock()
			e.closed = true
			e.next.err = errClosed
			close(e.next.done)
			e.mu.Unlock()
			e.closeErr = err
			return
		case <-tick.C:
			if !e.dirty.Load() {
				continue
			}
		case <-e.kick:
		}
		_ = e.save() // waiters get the error; a periodic save retries next tick
	}
}

// save takes one snapshot and serves the callers waiting for it.
func (e *embedded) save() error {
	e.mu.Lock()
	p := e.next
	e.next = &pendingSave{done: make(chan struct{})}
	e.mu.Unlock()
	// Cleared before the snapshot starts: a write finishing later sets it
	// again and is saved next time.
	e.dirty.Store(false)
	if e.path != "" {
		p.err = e.writeSnapshot()
		if p.err != nil {
			e.dirty.Store(true)
		}
	}
	close(p.done)
	return p.err
}

func (e *embedded) close() error {
	e.closeOnce.Do(func() {
		close(e.stop)
		<-e.done
		<-e.ttlDone
		err := errors.Join(e.client.Close(), e.snapClient.Close())
		e.serverMu.Lock()
		e.serverClosed = true
		e.m.Close()
		e.serverMu.Unlock()
		e.closeErr = errors.Join(e.closeErr, err)
	})
	return e.closeErr
}

// writeSnapshot reads the state in one script and replaces the file.
func (e *embedded) writeSnapshot() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := snapshotScript.Run(ctx, e.snapClient, nil).Slice()
	if err != nil {
		return fmt.Errorf("reading the state: %w", err)
	}
	now := time.Now()
	snap := snapshot{SavedAtMs: now.UnixMilli(), Keys: make([]snapshotKey, 0, len(v))}
	for _, kv := range v {
		k, err := decodeSnapshotKey(kv, now)
		if err != nil {
			return err
		}
		snap.Keys = append(snap.Keys, k)
	}
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	if err := gob.NewEncoder(&buf).Encode(&snap); err != nil {
		return fmt.Errorf("encoding the snapshot: %w", err)
	}
	return writeFileAtomic(e.path, buf.Bytes())
}

// decodeSnapshotKey reads one {key, type, pttl, value} of snapshot.lua.
func decodeSnapshotKey(kv any, now time.Time) (snapshotKey, error) {
	f, ok := kv.([]any)
	if !ok || len(f) != 4 {
		return snapshotKey{}, fmt.Errorf("snapshot script: entry %v", kv)
	}
	k := snapshotKey{}
	k.Key, _ = f[0].(string)
	k.Type, _ = f[1].(string)
	// PTTL is -1 for a key without a TTL; 0 (under a millisecond left) or
	// -2 (gone since KEYS listed it) mean expired: such a key must not come
	// back from the snapshot as one that never expires.
	switch pttl, _ := f[2].(int64); {
	case pttl == -1:
	case pttl < 0:
		k.ExpireAtMs = now.UnixMilli()
	default:
		k.ExpireAtMs = now.UnixMilli() + pttl
	}
	if k.Type == "string" {
		s, _ := f[3].(string)
		k.Values = []string{s}
		return k, nil
	}
	vals, err := replyStrings(f[3])
	if err != nil {
		return snapshotKey{}, fmt.Errorf("snapshot script: key %q: %w", k.Key, err)
	}
	if k.Type != "zset" {
		k.Values = vals
		return k, nil
	}
	for i := 0; i+1 < len(vals); i += 2 {
		score, err := strconv.ParseFloat(vals[i+1], 64)
		if err != nil {
			return snapshotKey{}, fmt.Errorf("snapshot script: key %q score %q", k.Key, vals[i+1])
		}
		k.Values = append(k.Values, vals[i])
		k.Scores = append(k.Scores, score)
	}
	return k, nil
}

// writeFileAtomic replaces path with data so that a crash at any point
// leaves either the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// The rename is durable only once the directory is.
	return d.Sync()
}

// removeSnapshotTemps removes the temporary files of snapshots that a
// crash (kill -9 mid-save) left beside path. The embedded index owns its
// data directory, so no other process is writing one.
func removeSnapshotTemps(path string) error {
	temps, err := filepath.Glob(path + ".tmp-*")
	if err != nil {
		return fmt.Errorf("embedded index: %w", err)
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("embedded index: removing a crashed snapshot's temporary file: %w", err)
		}
	}
	return nil
}

// restore loads the snapshot, if any, into the not yet started server.
func (e *embedded) restore() error {
	f, err := os.Open(e.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded index: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return fmt.Errorf("embedded index: %s is not a version 1 snapshot (header %q)", e.path, magic)
	}
	var snap snapshot
	if err := gob.NewDecoder(br).Decode(&snap); err != nil {
		return fmt.Errorf("embedded index: decoding %s: %w", e.path, err)
	}
	now := time.Now().UnixMilli()
	for _, k := range snap.Keys {
		if k.ExpireAtMs != 0 && k.ExpireAtMs <= now {
			continue // expired while the server was down
		}
		visibleOnRestore(&k)
		if err := e.restoreKey(k); err != nil {
			return fmt.Errorf("embedded index: restoring key %q: %w", k.Key, err)
		}
		if k.ExpireAtMs != 0 {
			e.m.SetTTL(k.Key, time.Duration(k.ExpireAtMs-now)*time.Millisecond)
		}
	}
	return nil
}

// visibleOnRestore raises a partition meta hash's hwm to its leo (see the
// top of the file; the fields are described in log.go).
func visibleOnRestore(k *snapshotKey) {
	if k.Type != "hash" || !strings.Contains(k.Key, "{t:") || !strings.HasSuffix(k.Key, "}:meta") {
		return
	}
	hwmAt, leo, hwm := -1, int64(-1), int64(0)
	for i := 0; i+1 < len(k.Values); i += 2 {
		switch k.Values[i] {
		case "hwm":
			hwmAt = i + 1
			hwm, _ = strconv.ParseInt(k.Values[i+1], 10, 64)
		case "leo":
			leo, _ = strconv.ParseInt(k.Values[i+1], 10, 64)
		}
	}
	switch {
	case leo <= hwm:
	case hwmAt >= 0:
		k.Values[hwmAt] = strconv.FormatInt(leo, 10)
	default:
		k.Values = append(k.Values, "hwm", strconv.FormatInt(leo, 10))
	}
}

func (e *embedded) restoreKey(k snapshotKey) error {
	if len(k.Values) == 0 {
		return fmt.Errorf("type %s with no value", k.Type)
	}
	var err error
	switch k.Type {
	case "string":
		err = e.m.Set(k.Key, k.Values[0])
	case "hash":
		e.m.HSet(k.Key, k.Values...)
	case "set":
		_, err = e.m.SAdd(k.Key, k.Values...)
	case "list":
		_, err = e.m.RPush(k.Key, k.Values...)
	case "zset":
		if len(k.Scores) != len(k.Values) {
			return fmt.Errorf("%d scores for %d members", len(k.Scores), len(k.Values))
		}
		for i, member := range k.Values {
			if _, err = e.m.ZAdd(k.Key, k.Scores[i], member); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unsupported type %q", k.Type)
	}
	return err
}
