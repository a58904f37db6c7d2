package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stratabroker/strata/client"
)

// BenchmarkProducerIdempotence compares produce throughput with idempotence
// on and off, in one run, against an in-process agent (memory store,
// embedded index, 5ms flushes). The target (issue 11) is less than 5%
// apart: idempotence costs the agent a sequence check inside the commit it
// makes anyway, and the producer one batch in flight per partition until
// the partition's first answer.
//
//	go test -run '^$' -bench BenchmarkProducerIdempotence -benchtime 200000x ./client/
func BenchmarkProducerIdempotence(b *testing.B) {
	value := make([]byte, 100)
	for _, mode := range []struct {
		name string
		opts []client.ProducerOpt
	}{
		{"on", nil},
		{"off", []client.ProducerOpt{client.DisableIdempotence()}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			ta := startAgent(b)
			ta.createTopic(b, "bench", 16)
			p, err := client.NewProducer(ta.http, ta.url, mode.opts...)
			if err != nil {
				b.Fatal(err)
			}
			keys := make([][]byte, 1024)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "key-%d", i)
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
			b.SetBytes(int64(len(value) + 8))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p.Produce(b.Context(), &client.Record{Topic: "bench", Key: keys[i%len(keys)], Value: value}, promise)
			}
			if err := p.Flush(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if first != nil {
				b.Fatal(first)
			}
			_ = p.Close(context.Background())
		})
	}
}
