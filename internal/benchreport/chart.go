package main

import (
	"cmp"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// sweepPoint is one produce run of the rate sweep.
type sweepPoint struct {
	name      string
	percent   int // of the maximum rate; 100 is the flat-out run
	mibPerSec float64
	p50, p99  float64
}

// sweep returns the produce runs of the latency-throughput curve, by
// throughput.
func sweep(d *runData) []sweepPoint {
	runs := []struct {
		name    string
		percent int
	}{{"sweep-10", 10}, {"sweep-25", 25}, {"produce-half", 50}, {"sweep-75", 75}, {"sweep-90", 90}, {"produce-max", 100}}
	var pts []sweepPoint
	for _, r := range runs {
		res := d.results[r.name]
		if res == nil || res.Produce == nil {
			continue
		}
		p := res.Produce
		pts = append(pts, sweepPoint{r.name, r.percent, p.MiBPerSec, p.Latency.P50, p.Latency.P99})
	}
	slices.SortFunc(pts, func(a, b sweepPoint) int { return cmp.Compare(a.mibPerSec, b.mibPerSec) })
	return pts
}

// drawChart plots ack latency p50 and p99 against produce throughput, with
// the e2e run at half load as a separate point pair.
func drawChart(d *runData, path string) error {
	p := plot.New()
	p.Title.Text = "Strata produce: ack latency against throughput (flush interval " + d.meta["flush_interval"] + ")"
	p.X.Label.Text = "acknowledged throughput (MiB/s of record values)"
	p.Y.Label.Text = "latency (ms)"
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	// The rate-limited runs make the curve; the flat-out run measures from
	// the send rather than from the due time (nothing is due when sending
	// flat out), so it is drawn on its own.
	var p50, p99, flat plotter.XYs
	for _, s := range sweep(d) {
		if s.percent == 100 {
			flat = plotter.XYs{{X: s.mibPerSec, Y: s.p50}, {X: s.mibPerSec, Y: s.p99}}
			continue
		}
		p50 = append(p50, plotter.XY{X: s.mibPerSec, Y: s.p50})
		p99 = append(p99, plotter.XY{X: s.mibPerSec, Y: s.p99})
	}
	if flush := parseMs(d.meta["flush_interval"]); flush > 0 && len(p99) > 0 {
		for _, t := range []struct {
			name string
			ms   float64
			c    color.Color
		}{{"target: ack p99 ≤ flush + 25 ms", flush + 25, color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x90}},
			{"target: produce-to-consume p99 ≤ flush + 50 ms", flush + 50, color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0x90}}} {
			l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: t.ms}, {X: p99[len(p99)-1].X, Y: t.ms}})
			if err != nil {
				return err
			}
			l.Color, l.Dashes = t.c, []vg.Length{vg.Points(2), vg.Points(3)}
			p.Add(l)
			p.Legend.Add(t.name, l)
		}
	}
	add := func(name string, xys plotter.XYs, c color.Color, shape draw.GlyphDrawer, dashed bool) error {
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.Color, s.Color, s.Shape = c, c, shape
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l, s)
		p.Legend.Add(name, l, s)
		return nil
	}
	blue, red := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	if err := add("ack p50", p50, blue, draw.CircleGlyph{}, false); err != nil {
		return err
	}
	if err := add("ack p99", p99, red, draw.TriangleGlyph{}, false); err != nil {
		return err
	}
	if flat != nil {
		s, err := plotter.NewScatter(flat)
		if err != nil {
			return err
		}
		s.Color, s.Shape, s.Radius = color.Black, draw.CrossGlyph{}, vg.Points(4)
		p.Add(s)
		p.Legend.Add("flat out, p50 and p99 (from send)", s)
	}
	if e := d.results["e2e-half"]; e != nil && e.E2E != nil && e.Produce != nil {
		green := color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
		for _, q := range []struct {
			name  string
			v     float64
			shape draw.GlyphDrawer
		}{{"produce-to-consume p50 (e2e)", e.E2E.P50, draw.BoxGlyph{}}, {"produce-to-consume p99 (e2e)", e.E2E.P99, draw.PyramidGlyph{}}} {
			s, err := plotter.NewScatter(plotter.XYs{{X: e.Produce.MiBPerSec, Y: q.v}})
			if err != nil {
				return err
			}
			s.Color, s.Shape, s.Radius = green, q.shape, vg.Points(4)
			p.Add(s)
			p.Legend.Add(q.name, s)
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
