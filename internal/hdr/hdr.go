// Package hdr is a small log-linear histogram of non-negative integers
// (latencies in nanoseconds, in practice), in the manner of HdrHistogram:
// values below 2*SubBuckets are counted exactly; above, every power of two
// is cut into SubBuckets equal buckets, so a bucket is never wider than
// 1/SubBuckets of the values it holds. Quantiles are answered with the
// bucket's midpoint, within 1/(2*SubBuckets) (0.4%) of the true value.
//
// Recording is a few shifts and an increment, with no allocation. A
// Histogram is not safe for concurrent use: give each goroutine its own and
// Merge them at the end.
package hdr

import (
	"math"
	"math/bits"
)

const (
	subBits = 7
	// SubBuckets is how many buckets each power of two is cut into.
	SubBuckets = 1 << subBits
	// buckets covers every non-negative int64: shifts 0 to 63-subBits,
	// plus the exact range below 2*SubBuckets.
	buckets = (64-subBits)*SubBuckets + SubBuckets
)

// Histogram counts values. The zero value is not ready: use New.
type Histogram struct {
	counts   []uint64
	total    uint64
	min, max int64
	sum      float64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{counts: make([]uint64, buckets), min: math.MaxInt64}
}

// index is the bucket of v >= 0.
func index(v int64) int {
	u := uint64(v)
	if u < 2*SubBuckets {
		return int(u)
	}
	shift := bits.Len64(u) - (subBits + 1)
	return shift*SubBuckets + int(u>>shift)
}

// bounds is the range [lo, hi] of the values bucket i holds.
func bounds(i int) (lo, hi int64) {
	if i < 2*SubBuckets {
		return int64(i), int64(i)
	}
	shift := i/SubBuckets - 1
	top := uint64(i - shift*SubBuckets)
	lo64 := top << shift
	return int64(lo64), int64(lo64 + (1 << shift) - 1)
}

// Record counts v once; negative values count as 0.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts v n times.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	v = max(v, 0)
	h.counts[index(v)] += n
	h.total += n
	h.sum += float64(v) * float64(n)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest value recorded, exactly (0 when empty).
func (h *Histogram) Min() int64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Max is the largest value recorded, exactly (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean is the mean of the values recorded, exactly (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q (0 to 1): the smallest recorded
// value v such that at least q of the values are at most v, given as its
// bucket's midpoint and kept within [Min, Max]. An empty histogram
// answers 0.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bounds(i)
			mid := lo + (hi-lo)/2
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}
