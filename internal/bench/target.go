package bench

import (
	"context"
	"io"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// target is what a run drives: an agent over Connect, or a Kafka listener.
// Producers and consumers open connections of their own; the target's is
// for the topic's administration.
type target interface {
	// addr names the target in results.
	addr() string
	setupTopic(ctx context.Context, f *Config) (*benchTopic, error)
	teardown(t *benchTopic, keep bool, stderr io.Writer)
	// spans are the topic's partitions with records: [from, to) each.
	spans(ctx context.Context, topic string) ([]span, error)
	// endOffsets are the topic's high watermarks, by partition.
	endOffsets(ctx context.Context, topic string) (map[int32]int64, error)
	close()
}

// span is one partition's records, from its log start to its high
// watermark; bytes is 0 when the protocol does not say (Kafka).
type span struct {
	partition int32
	from, to  int64
	bytes     int64
}

// openRun opens the run's target and sets up its topic; done tears the
// topic down (unless f.Keep) and closes the target.
func openRun(ctx context.Context, f *Config) (tg target, t *benchTopic, done func(), err error) {
	if tg, err = openTarget(f); err != nil {
		return nil, nil, nil, err
	}
	if t, err = tg.setupTopic(ctx, f); err != nil {
		tg.close()
		return nil, nil, nil, err
	}
	return tg, t, func() {
		tg.teardown(t, f.Keep, f.stderr())
		tg.close()
	}, nil
}

func openTarget(f *Config) (target, error) {
	if f.isKafka() {
		k, err := openKafkaTarget(f)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
	cl, err := f.Dial()
	if err != nil {
		return nil, err
	}
	return connectTarget{cl}, nil
}

type connectTarget struct{ cl *Conn }

func (c connectTarget) addr() string { return c.cl.Addr }
func (c connectTarget) close()       { c.cl.close() }

func (c connectTarget) setupTopic(ctx context.Context, f *Config) (*benchTopic, error) {
	return setupTopic(ctx, c.cl, f)
}

func (c connectTarget) teardown(t *benchTopic, keep bool, stderr io.Writer) {
	t.teardown(c.cl, keep, stderr)
}

func (c connectTarget) spans(ctx context.Context, topic string) ([]span, error) {
	desc, err := c.cl.Admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		return nil, c.cl.explain(err, topic)
	}
	var out []span
	for _, info := range desc.Msg.GetPartitions() {
		if info.GetHighWatermark() > info.GetLogStartOffset() {
			out = append(out, span{info.GetPartition(), info.GetLogStartOffset(), info.GetHighWatermark(), info.GetBytes()})
		}
	}
	return out, nil
}

func (c connectTarget) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	desc, err := c.cl.Admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		return nil, c.cl.explain(err, topic)
	}
	out := map[int32]int64{}
	for _, info := range desc.Msg.GetPartitions() {
		out[info.GetPartition()] = info.GetHighWatermark()
	}
	return out, nil
}
