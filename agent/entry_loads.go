package agent

// Loading a lookup's index entries ahead of the reader (issue 12). A
// partition's entries lie in different segment objects, one chunk per
// flush, so a reader that loaded them one after the other waited for one
// GET per entry in turn, and the next read of the partition started cold:
// a catch-up Fetch of 1 MiB over 256 KiB chunks was four store round trips
// back to back, and catch-up reads reached about 40% of the store's
// ranged-GET throughput. Both readers of entries (the Connect API's
// per-record reads, readRecords, and the whole-batch reads, readBatches)
// therefore
//   - look up readAheadBytes more than the read wants;
//   - load (GET, copy, decode) the entries the read's budget covers, up to
//     entriesAhead at once, while they consume them in the lookup's order;
//   - have the block cache fetch the rest without waiting (prefetch), so
//     the next read of the partition, which starts there, finds them
//     cached or on their way.
// (The whole-batch reads load a hot entry by having the block cache fetch
// it, prefetch again, and copy its batches from the cache themselves:
// readChunkBatches, chunk_batches.go.) What they answer is unchanged. The
// bytes read ahead are bounded by readAheadBytes plus one entry per read,
// and land in the block cache,
// within --cache-bytes; archive entries (archive_read.go) are loaded when
// the read needs them, never ahead of it.

import (
	"context"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// entriesAhead is how many entries of one lookup load at once, counting
// the one the reader waits for.
const entriesAhead = 8

// readAheadBytes is how far past what a read wants its lookup reaches,
// for the block cache to fetch ahead: one default response's worth.
const readAheadBytes = defaultReadBytes

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
	// within is how many entries from the first the read's budget covers:
	// loads start ahead of get only among them.
	within int
	// withinBytes is the size of those entries' chunks, the first one's
	// counted whole.
	withinBytes int64
	// fetchHot: the reader reads hot entries itself, from the block cache
	// (readChunkBatches), so "loading" one ahead is having the cache fetch
	// its blocks (prefetch), without a copy; get serves archive entries
	// only.
	fetchHot bool
}

type entryLoad struct {
	done    chan struct{} // closed when batches and err are set; nil: not started
	batches []objectlog.Batch
	err     error
}

// loadEntriesAhead starts the loads of entries from the first that holds
// offset from on, as far as need bytes of chunks reach (at least one entry
// when need > 0), and the block cache's fetches of the rest. The loads use
// ctx: they end with the read's request; the fetches outlive it.
func (a *Agent) loadEntriesAhead(ctx context.Context, entries []coordinator.IndexEntry, from, need int64) *entryLoads {
	return a.startEntryLoads(ctx, entries, from, need, false)
}

// fetchEntriesAhead is loadEntriesAhead for a reader of whole batches,
// which reads hot entries from the block cache itself: their loads are the
// cache's fetches (see entryLoads.fetchHot).
func (a *Agent) fetchEntriesAhead(ctx context.Context, entries []coordinator.IndexEntry, from, need int64) *entryLoads {
	return a.startEntryLoads(ctx, entries, from, need, true)
}

func (a *Agent) startEntryLoads(ctx context.Context, entries []coordinator.IndexEntry, from, need int64, fetchHot bool) *entryLoads {
	l := &entryLoads{a: a, ctx: ctx, entries: entries, loads: make([]entryLoad, len(entries)), fetchHot: fetchHot}
	for l.started < len(entries) && entries[l.started].LastOffset() < from {
		l.started++
	}
	l.within = l.started
	for ; l.within < len(entries) && l.withinBytes < need; l.within++ {
		l.withinBytes += entries[l.within].ByteLength
	}
	for _, e := range entries[l.within:] {
		if !e.Archived() {
			a.cache.prefetch(ctx, e.SegmentKey, e.ByteOffset, e.ByteLength)
		}
	}
	l.fill(l.started)
	return l
}

// fill starts the loads of the entries from i up to entriesAhead, among
// those the budget covers, and of entry i in any case.
func (l *entryLoads) fill(i int) {
	end := min(i+entriesAhead, len(l.entries))
	if l.within <= i {
		end = min(i+1, len(l.entries))
	} else {
		end = min(end, l.within)
	}
	for ; l.started < end; l.started++ {
		e := l.entries[l.started]
		if l.fetchHot && !e.Archived() {
			l.a.cache.prefetch(l.ctx, e.SegmentKey, e.ByteOffset, e.ByteLength)
			continue
		}
		ld := &l.loads[l.started]
		ld.done = make(chan struct{})
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
