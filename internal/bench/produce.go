package bench

import (
	"context"
	"time"
)

// Produce runs f.Producers producers for f.Warmup then f.Duration and
// reports the acknowledged throughput and the ack latency: the time from a
// request being due (rate-limited) or sent (Rate 0) to its answer.
//
// Over Connect each producer has its own connection and ProduceStream with
// up to f.Inflight requests of f.Batch records unanswered; records have no
// key, and the agent puts each request's records in one partition, moving
// on per request. With f.Batches each producer's ProduceBatchesStream
// carries one Kafka record batch of f.Batch records per request, for one
// partition, round robin, up to f.Inflight unanswered. Over Kafka each
// producer is its own franz-go client (idempotent, acks=all) that hands
// f.Batch records to one partition at a time, round robin, with up to
// f.Inflight such groups unacknowledged; a group's latency is that of its
// last record.
func Produce(ctx context.Context, f Config) (*Result, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if err := f.CheckRate(); err != nil {
		return nil, err
	}
	tg, t, done, err := openRun(ctx, &f)
	if err != nil {
		return nil, err
	}
	defer done()
	clock := startCPUClock()

	cnt := &counters{}
	win := newWindow(f.Warmup, f.Duration)
	mw := watchMetrics(ctx, f.Metrics, win)
	stopProgress := startProgress(f.stderr(), f.Progress, win, cnt)
	stats, err := runProducers(ctx, &f, t, win, nil, cnt)
	stopProgress()
	if err != nil {
		return nil, err
	}
	agent, err := mw.result()
	if ctx.Err() != nil {
		return nil, ErrInterrupted
	}
	if err != nil {
		return nil, err
	}
	r := newResult("produce", tg.addr(), &f, t, win)
	r.Consumers = 0
	r.Produce = stats.json(f.Duration.Seconds())
	r.setAgent(agent)
	clock.stamp(r)
	return r, nil
}

// sleepUntil waits until t or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	return sleepCtx(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
