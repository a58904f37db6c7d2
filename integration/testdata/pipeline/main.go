// Command pipeline is one member of the consume-transform-produce pipeline
// of integration's TestExactlyOncePipeline (issue 11): Kafka's exactly-once
// pattern (KIP-98) over package client, run as its own OS process so the
// test can kill it with SIGKILL.
//
// It reads the input topic in a consumer group, read_committed, with
// ManualCommit: offsets are committed only inside transactions. Each input
// partition it owns has its own transactional producer, transactional id
// "<prefix>-<partition>" (Kafka's transactional id per input partition):
// taking a partition over, InitTransactions fences the previous owner's
// producer, alive or dead, and finishes what it left open, before the
// member reads the group's committed offset (SeekToCommitted). Per polled
// batch of a partition, one transaction holds its output records ("out
// <input value>", to the partition itself and the next one) and the
// position after them. Any failure aborts, drops the producer, and starts
// the partition again from its committed offset with a new producer.
//
// Every -abort-every'th transaction is aborted on purpose after its records
// were written, then done again: the test checks that read_committed
// readers never see those records.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stratabroker/strata/client"
)

func main() {
	var (
		addr       = flag.String("addr", "", "agent base URL")
		group      = flag.String("group", "pipeline", "consumer group")
		in         = flag.String("in", "in", "input topic")
		out        = flag.String("out", "out", "output topic")
		outParts   = flag.Int("out-partitions", 12, "partitions of the output topic")
		prefix     = flag.String("txn-prefix", "pipeline", "transactional id prefix")
		member     = flag.String("member", "", "member id")
		session    = flag.Duration("session-timeout", 6*time.Second, "group session timeout")
		txnTimeout = flag.Duration("txn-timeout", 10*time.Second, "transaction timeout")
		maxPoll    = flag.Int("max-poll", 25, "records per poll")
		abortEvery = flag.Int("abort-every", 7, "abort every n-th transaction on purpose (0: never)")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", *member)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p := &pipeline{addr: *addr, group: *group, out: *out, outParts: int32(*outParts), prefix: *prefix,
		txnTimeout: *txnTimeout, abortEvery: *abortEvery, log: log, producers: map[int32]*client.Producer{}}
	if err := p.run(ctx, *in, *member, *session, *maxPoll); err != nil && ctx.Err() == nil {
		log.Error("pipeline failed", "err", err)
		os.Exit(1)
	}
}

type pipeline struct {
	addr, group, out, prefix string
	outParts                 int32
	txnTimeout               time.Duration
	abortEvery               int
	log                      *slog.Logger
	hc                       *http.Client
	consumer                 *client.GroupConsumer
	producers                map[int32]*client.Producer // by input partition
	txns                     int
}

func (p *pipeline) run(ctx context.Context, in, member string, session time.Duration, maxPoll int) error {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	p.hc = &http.Client{Transport: tr}
	cfg := client.GroupConsumerConfig{
		HTTPClient: p.hc, BaseURL: p.addr, Group: p.group, Topics: []string{in}, MemberID: member,
		SessionTimeout: session, ManualCommit: true, ReadCommitted: true, Reset: client.ResetEarliest,
		MaxWait: 200 * time.Millisecond, MaxPollRecords: maxPoll, Logger: p.log,
		OnAssigned: func(ctx context.Context, parts []client.TopicPartition) {
			for _, tp := range parts {
				p.takeOver(ctx, tp)
			}
			p.log.Info("assigned", "partitions", parts)
		},
		// No transaction is open inside Poll: the partitions' producers
		// just go.
		OnRevoked: func(ctx context.Context, parts []client.TopicPartition) { p.drop(ctx, parts, "revoked") },
		OnLost:    func(ctx context.Context, parts []client.TopicPartition) { p.drop(ctx, parts, "lost") },
	}
	var err error
	for {
		if p.consumer, err = client.NewGroupConsumer(ctx, cfg); err == nil {
			break
		}
		p.log.Warn("join failed; retrying", "err", err)
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.consumer.Close(cctx)
	}()
	for {
		recs, err := p.consumer.Poll(ctx)
		if err != nil {
			return err
		}
		byPart := map[int32][]client.Record{}
		var order []int32
		for _, r := range recs {
			if len(byPart[r.Partition]) == 0 {
				order = append(order, r.Partition)
			}
			byPart[r.Partition] = append(byPart[r.Partition], r)
		}
		for _, part := range order {
			if err := p.transform(ctx, part, byPart[part]); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p.log.Warn("transaction failed; starting the partition again from its committed offset", "partition", part, "err", err)
				p.restart(ctx, client.TopicPartition{Topic: in, Partition: part})
			}
		}
	}
}

// transform writes recs' outputs and the position after them in one
// transaction of the partition's producer.
func (p *pipeline) transform(ctx context.Context, part int32, recs []client.Record) error {
	prod := p.producers[part]
	if prod == nil {
		return fmt.Errorf("no producer for partition %d", part)
	}
	if err := prod.BeginTransaction(); err != nil {
		return err
	}
	p.txns++
	for _, r := range recs {
		outPart := (r.Partition + int32(r.Offset%2)) % p.outParts
		prod.Produce(ctx, &client.Record{Topic: p.out, Partition: outPart, Key: r.Key, Value: append([]byte("out "), r.Value...)}, nil)
	}
	next := recs[len(recs)-1].Offset + 1
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// With the member's id and epoch (KIP-447): a member whose partition
	// moved on in a rebalance has its offsets refused.
	if err := prod.SendGroupOffsetsToTransaction(tctx, p.consumer.GroupMetadata(), []client.PartitionOffset{{Topic: recs[0].Topic, Partition: part, Offset: next}}); err != nil {
		_ = prod.AbortTransaction(tctx)
		return err
	}
	if p.abortEvery > 0 && p.txns%p.abortEvery == 0 {
		// Written, then thrown away: read_committed readers must never
		// see these.
		if err := prod.Flush(tctx); err != nil {
			return err
		}
		if err := prod.AbortTransaction(tctx); err != nil {
			return err
		}
		return errors.New("aborted on purpose")
	}
	if err := prod.CommitTransaction(tctx); err != nil {
		_ = prod.AbortTransaction(tctx)
		return err
	}
	return nil
}

// takeOver makes the partition's producer, which fences the previous
// owner's and finishes its transaction, then reads the position that left.
func (p *pipeline) takeOver(ctx context.Context, tp client.TopicPartition) {
	if old := p.producers[tp.Partition]; old != nil {
		closeProducer(old)
	}
	for attempt := 1; ctx.Err() == nil; attempt++ {
		prod, err := client.NewProducer(p.hc, p.addr, client.TransactionalID(fmt.Sprintf("%s-%d", p.prefix, tp.Partition), p.txnTimeout),
			client.ManualPartitioner(), client.Linger(2*time.Millisecond), client.DeliveryTimeout(20*time.Second),
			client.RequestTimeout(5*time.Second), client.RetryBackoff(50*time.Millisecond, 500*time.Millisecond))
		if err != nil {
			p.log.Error("new producer", "err", err)
			os.Exit(1)
		}
		ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = prod.InitTransactions(ictx)
		if err == nil {
			err = p.consumer.SeekToCommitted(ictx, tp)
		}
		cancel()
		if err == nil {
			p.producers[tp.Partition] = prod
			return
		}
		closeProducer(prod)
		p.log.Warn("taking the partition over failed; retrying", "partition", tp, "attempt", attempt, "err", err)
		sleep(ctx, 200*time.Millisecond)
	}
}

// restart drops the partition's producer after a failed transaction and
// takes the partition over again.
func (p *pipeline) restart(ctx context.Context, tp client.TopicPartition) {
	if !ownedBy(p.consumer, tp) {
		return // revoked or lost meanwhile
	}
	p.takeOver(ctx, tp)
}

func (p *pipeline) drop(_ context.Context, parts []client.TopicPartition, why string) {
	for _, tp := range parts {
		if prod := p.producers[tp.Partition]; prod != nil {
			closeProducer(prod)
			delete(p.producers, tp.Partition)
		}
	}
	p.log.Info(why, "partitions", parts)
}

func ownedBy(c *client.GroupConsumer, tp client.TopicPartition) bool {
	for _, o := range c.Assignment() {
		if o == tp {
			return true
		}
	}
	return false
}

func closeProducer(prod *client.Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = prod.Close(ctx)
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
