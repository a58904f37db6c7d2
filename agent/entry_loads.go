package agent

// Loading a lookup's index entries ahead of the reader (issue 12). A
// partition's entries lie in different segment objects, one chunk per
// flush, so a reader that loaded them one after the other waited for one
// GET per entry in turn: a catch-up Fetch of 1 MiB over 256 KiB chunks was
// four store round trips back to back, and catch-up reads reached about
// 40% of the store's ranged-GET throughput. Both readers of entries (the
// Connect API's per-record reads, readRecords, and the whole-batch reads,
// readBatches) instead start the loads of the next entries of a lookup
// while they consume the current one, in the lookup's order; what they
// answer is unchanged. The index bounded the lookup by the read's
// max_bytes, and at most entriesAhead loads run at once, so the bytes held
// ahead stay within one response's worth plus a few chunks. Loads a reader
// does not consume (its response filled first) finish in the block cache,
// where the next read of the partition, which starts there, finds them.

import (
	"context"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// entriesAhead is how many entries of one lookup load at once, counting
// the one the reader waits for.
const entriesAhead = 8

// entryLoads loads a lookup's entries (loadEntry) ahead of one reader that
// consumes them in order with get. It is not safe for concurrent use.
type entryLoads struct {
	a       *Agent
	ctx     context.Context
	entries []coordinator.IndexEntry
	loads   []entryLoad
	// started is how many entries from the first have their load started
	// (or were skipped: they end before the read's offset).
	started int
}

type entryLoad struct {
	done    chan struct{} // closed when batches and err are set; nil: not started
	batches []objectlog.Batch
	err     error
}

// loadEntriesAhead starts the loads of entries from the first that holds
// offset from on. The loads use ctx: they end with the read's request.
func (a *Agent) loadEntriesAhead(ctx context.Context, entries []coordinator.IndexEntry, from int64) *entryLoads {
	l := &entryLoads{a: a, ctx: ctx, entries: entries, loads: make([]entryLoad, len(entries))}
	for l.started < len(entries) && entries[l.started].LastOffset() < from {
		l.started++
	}
	l.fill(l.started)
	return l
}

// fill starts the loads of the entries up to entriesAhead from i.
func (l *entryLoads) fill(i int) {
	for ; l.started < min(i+entriesAhead, len(l.entries)); l.started++ {
		ld := &l.loads[l.started]
		ld.done = make(chan struct{})
		e := l.entries[l.started]
		go func() {
			defer close(ld.done)
			ld.batches, ld.err = l.a.loadEntry(l.ctx, e)
		}()
	}
}

// get returns entry i's batches as loadEntry does, and starts the loads of
// the entries after it. The batches are the reader's own, as loadEntry's.
func (l *entryLoads) get(i int) ([]objectlog.Batch, error) {
	l.fill(i)
	ld := &l.loads[i]
	if ld.done == nil {
		// Skipped as ending before the read's offset, yet asked for.
		return l.a.loadEntry(l.ctx, l.entries[i])
	}
	select {
	case <-ld.done:
		return ld.batches, ld.err
	case <-l.ctx.Done():
		return nil, l.ctx.Err()
	}
}
