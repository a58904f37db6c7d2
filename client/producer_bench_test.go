package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/client"
)

// BenchmarkProducerIdempotence compares produce throughput with idempotence
// on and off in one run (issue 11's target: less than 5% apart). Both
// producers write to one in-process agent (memory store, embedded index,
// 5ms flushes), each to its own 16-partition topic, in alternating rounds
// of 20000 keyed 100-byte records, so that a loaded machine's drifts hit
// both alike. b.N records go through each producer; the metrics are each
// mode's records/s over its rounds and their ratio.
//
//	go test -run '^$' -bench BenchmarkProducerIdempotence -benchtime 400000x ./client/
func BenchmarkProducerIdempotence(b *testing.B) {
	ta := startAgent(b)
	value := make([]byte, 100)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	type mode struct {
		topic   string
		p       *client.Producer
		elapsed time.Duration
	}
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	}
	run := func(m *mode, n int) {
		start := time.Now()
		for i := range n {
			m.p.Produce(b.Context(), &client.Record{Topic: m.topic, Key: keys[i%len(keys)], Value: value}, promise)
		}
		if err := m.p.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		m.elapsed += time.Since(start)
	}
	var modes []*mode
	for _, idempotent := range []bool{true, false} {
		m := &mode{topic: fmt.Sprintf("bench-idempotent-%v", idempotent)}
		ta.createTopic(b, m.topic, 16)
		var opts []client.ProducerOpt
		if !idempotent {
			opts = append(opts, client.DisableIdempotence())
		}
		p, err := client.NewProducer(ta.http, ta.url, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		m.p = p
		run(m, 20000) // warm up: connection, producer id, buffers
		m.elapsed = 0
		modes = append(modes, m)
	}
	b.SetBytes(2 * int64(len(value)+8))
	b.ResetTimer()
	const round = 20000
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for _, m := range modes {
			run(m, n)
		}
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	on := float64(b.N) / modes[0].elapsed.Seconds()
	off := float64(b.N) / modes[1].elapsed.Seconds()
	b.ReportMetric(on, "on-records/s")
	b.ReportMetric(off, "off-records/s")
	b.ReportMetric(on/off, "on/off")
}

// BenchmarkProducerBatchPath compares the producer over the batch call
// (ProduceBatchesStream: record batches encoded in the client, stored byte
// for byte) with the per-record call (ProduceStream: records as protobuf
// messages, batched by the agent), and the batch call with zstd, in one
// run. The setup is BenchmarkProducerIdempotence's: one in-process agent,
// a 16-partition topic per mode, alternating rounds of 20000 keyed
// 100-byte records, idempotent producers. The metrics are each mode's
// records/s and the batch call's speed-up over the per-record call.
//
//	go test -run '^$' -bench BenchmarkProducerBatchPath -benchtime 400000x ./client/
func BenchmarkProducerBatchPath(b *testing.B) {
	ta := startAgent(b)
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	type mode struct {
		name    string
		opts    []client.ProducerOpt
		p       *client.Producer
		elapsed time.Duration
	}
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	}
	run := func(m *mode, n int) {
		start := time.Now()
		for i := range n {
			m.p.Produce(b.Context(), &client.Record{Topic: "bench-" + m.name, Key: keys[i%len(keys)], Value: value}, promise)
		}
		if err := m.p.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		m.elapsed += time.Since(start)
	}
	modes := []*mode{
		{name: "batch"},
		{name: "record", opts: []client.ProducerOpt{client.RecordPath()}},
		{name: "batch-zstd", opts: []client.ProducerOpt{client.BatchCompression(client.BatchCodecZstd)}},
	}
	for _, m := range modes {
		ta.createTopic(b, "bench-"+m.name, 16)
		p, err := client.NewProducer(ta.http, ta.url, m.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		m.p = p
		run(m, 20000) // warm up: connection, producer id, buffers
		m.elapsed = 0
	}
	b.SetBytes(int64(len(modes)) * int64(len(value)+8))
	b.ResetTimer()
	const round = 20000
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for _, m := range modes {
			run(m, n)
		}
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	rate := map[string]float64{}
	for _, m := range modes {
		rate[m.name] = float64(b.N) / m.elapsed.Seconds()
		b.ReportMetric(rate[m.name], m.name+"-records/s")
	}
	b.ReportMetric(rate["batch"]/rate["record"], "batch/record")
}
