package hdr_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratabroker/strata/internal/hdr"
)

// exact is the quantile as Histogram.Quantile defines it, from sorted
// samples.
func exact(sorted []int64, q float64) int64 {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

func TestQuantilesWithinOnePercent(t *testing.T) {
	t.Parallel()
	dists := map[string]func(r *rand.Rand) int64{
		"uniform-small":  func(r *rand.Rand) int64 { return r.Int64N(300) },
		"uniform-wide":   func(r *rand.Rand) int64 { return r.Int64N(1e10) },
		"lognormal-ns":   func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 16)) }, // ~10ms around
		"exponential":    func(r *rand.Rand) int64 { return int64(r.ExpFloat64() * 5e6) },
		"bimodal":        func(r *rand.Rand) int64 { return []int64{2e6, 250e6}[r.IntN(2)] + r.Int64N(1e5) },
		"huge":           func(r *rand.Rand) int64 { return math.MaxInt64 - r.Int64N(1e15) },
		"single-repeats": func(*rand.Rand) int64 { return 123456789 },
	}
	quantiles := []float64{0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			h := hdr.New()
			samples := make([]int64, 100_000)
			for i := range samples {
				samples[i] = gen(r)
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range quantiles {
				got, want := h.Quantile(q), exact(samples, q)
				if rel := math.Abs(float64(got)-float64(want)) / max(float64(want), 1); rel > 0.01 {
					t.Errorf("q%g = %d, exact %d: %.3f%% off", q, got, want, 100*rel)
				}
			}
			if h.Min() != samples[0] || h.Max() != samples[len(samples)-1] {
				t.Errorf("min, max = %d, %d; want %d, %d", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
			}
			if h.Count() != uint64(len(samples)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestMergeEqualsOneHistogram(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	all, parts := hdr.New(), []*hdr.Histogram{hdr.New(), hdr.New(), hdr.New()}
	var sum float64
	for i := range 30_000 {
		v := int64(r.ExpFloat64() * 1e7)
		all.Record(v)
		parts[i%3].Record(v)
		sum += float64(v)
	}
	merged := hdr.New()
	for _, p := range parts {
		merged.Merge(p)
	}
	merged.Merge(hdr.New()) // an empty one changes nothing
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		if a, m := all.Quantile(q), merged.Quantile(q); a != m {
			t.Errorf("q%g: one histogram %d, merged %d", q, a, m)
		}
	}
	if merged.Count() != all.Count() || merged.Min() != all.Min() || merged.Max() != all.Max() {
		t.Errorf("merged count/min/max %d/%d/%d, want %d/%d/%d", merged.Count(), merged.Min(), merged.Max(), all.Count(), all.Min(), all.Max())
	}
	if math.Abs(merged.Mean()-sum/30_000) > 1e-6*merged.Mean() {
		t.Errorf("mean %f, want %f", merged.Mean(), sum/30_000)
	}
}

func TestEmptyAndReset(t *testing.T) {
	t.Parallel()
	h := hdr.New()
	if h.Quantile(0.5) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Error("empty histogram answers non-zero")
	}
	h.Record(-5) // counts as 0
	h.RecordN(1000, 3)
	h.RecordN(7, 0)
	if h.Count() != 4 || h.Min() != 0 || h.Max() != 1000 {
		t.Errorf("count/min/max %d/%d/%d", h.Count(), h.Min(), h.Max())
	}
	h.Reset()
	if h.Count() != 0 || h.Quantile(1) != 0 {
		t.Error("Reset left values")
	}
	h.Record(42)
	if h.Min() != 42 || h.Quantile(0.5) != 42 {
		t.Errorf("after Reset: min %d, p50 %d", h.Min(), h.Quantile(0.5))
	}
}

func BenchmarkRecord(b *testing.B) {
	h := hdr.New()
	v := int64(1)
	for b.Loop() {
		h.Record(v)
		v = v*31 + 7&(1<<40-1)
	}
}
