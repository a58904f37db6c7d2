// Command kpipeline is one member of the Kafka consume-transform-produce
// pipeline of integration's TestKafkaEOSPipeline (issue 13): Kafka's
// exactly-once pattern (KIP-98, KIP-447) written the way a franz-go user
// writes it, with kgo.GroupTransactSession, run as its own OS process so
// the test can kill it with SIGKILL and freeze it with SIGSTOP.
//
// It reads the input topic in a consumer group, read_committed, and for
// each poll writes one transaction: every record's value with "!" appended,
// to the same partition of the output topic, and the group's offsets after
// them (TxnOffsetCommit), committed together by GroupTransactSession.End.
// Every -abort-every'th transaction is aborted on purpose once its records
// were written (flushed): the session rewinds to the committed offsets and
// the records come again; read_committed readers must never see the
// aborted copies.
//
// SIGUSR1 asks the member to freeze itself (SIGSTOP) inside its next
// transaction, after its records were written and before End: the test
// keeps it frozen past its session and the transaction timeout, then wakes
// it (SIGCONT), and End must not commit (the member is a zombie: fenced by
// its transactional id's epoch, bumped when the transaction timed out, and
// by the group, which has moved on). The outcome is logged as "late end".
//
// Logs (log/slog text on stderr): msg=committed records=N per committed
// transaction, msg="aborted on purpose", msg="not committed" err=...,
// msg=assigned/revoked/lost, msg="frozen inside a transaction",
// msg="late end" committed=... err=...; franz-go's own log lines besides.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	var (
		brokers    = flag.String("brokers", "", "seed brokers, comma-separated host:port")
		group      = flag.String("group", "kpipeline", "consumer group")
		in         = flag.String("in", "in", "input topic")
		out        = flag.String("out", "out", "output topic (as many partitions as the input)")
		txnID      = flag.String("txn-id", "", "transactional id (one per member, as KIP-447 allows)")
		member     = flag.String("member", "", "name in the logs")
		session    = flag.Duration("session-timeout", 6*time.Second, "group session timeout")
		rebalance  = flag.Duration("rebalance-timeout", 30*time.Second, "group rebalance timeout")
		txnTimeout = flag.Duration("txn-timeout", 10*time.Second, "transaction timeout")
		maxPoll    = flag.Int("max-poll", 40, "records per transaction at most")
		abortEvery = flag.Int("abort-every", 7, "abort every n-th transaction on purpose (0: never)")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", *member)
	if *brokers == "" || *txnID == "" {
		log.Error("-brokers and -txn-id are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var freeze atomic.Bool
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			freeze.Store(true)
			log.Info("asked to freeze inside the next transaction")
		}
	}()

	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.TransactionalID(*txnID),
		kgo.TransactionTimeout(*txnTimeout),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.SessionTimeout(*session),
		kgo.HeartbeatInterval(*session / 6),
		kgo.RebalanceTimeout(*rebalance),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.DefaultProduceTopic(*out),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RetryTimeout(time.Minute),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.Info("assigned", "partitions", m)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.Info("revoked", "partitions", m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			log.Info("lost", "partitions", m)
		}),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return "kgo member=" + *member + " " })),
	}
	m := &pipelineMember{log: log, maxPoll: *maxPoll, abortEvery: *abortEvery, freeze: &freeze}
	for ctx.Err() == nil {
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			log.Error("new session", "err", err)
			os.Exit(1)
		}
		err = m.run(ctx, sess)
		sess.Close()
		if ctx.Err() == nil {
			// franz-go's answer to a client whose producer id failed
			// for good: a new client. Its transactional id's
			// InitProducerId aborts what the old one left open.
			log.Warn("the session failed; starting a new one", "err", err)
		}
	}
}

// pipelineMember is the transform loop, kept across sessions.
type pipelineMember struct {
	log        *slog.Logger
	maxPoll    int
	abortEvery int
	freeze     *atomic.Bool
	txns       int
}

// run polls, transforms and ends transactions until ctx is done or the
// session can no longer begin a transaction.
func (m *pipelineMember) run(ctx context.Context, sess *kgo.GroupTransactSession) error {
	log, freeze := m.log, m.freeze
	for ctx.Err() == nil {
		fs := sess.PollRecords(ctx, m.maxPoll)
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			// The producer id failed for good ("fatal, unrecoverable
			// error", e.g. its transaction coordinator left the
			// metadata), or an End whose EndTxn failed left the
			// client in its transaction.
			return fmt.Errorf("begin: %w", err)
		}
		m.txns++
		txns := m.txns
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Partition: r.Partition, Key: r.Key, Value: append(append([]byte(nil), r.Value...), '!')}, nil)
		})
		n := fs.NumRecords()
		abort := m.abortEvery > 0 && txns%m.abortEvery == 0
		if abort || freeze.Load() {
			// The records reach the log before the abort (or the
			// freeze), so read_uncommitted readers see them.
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := sess.Client().Flush(fctx)
			cancel()
			if err != nil {
				log.Warn("flush", "err", err)
			}
		}
		if freeze.CompareAndSwap(true, false) {
			log.Info("frozen inside a transaction", "records", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			ectx, cancel := context.WithTimeout(ctx, time.Minute)
			committed, err := sess.End(ectx, kgo.TryCommit)
			cancel()
			log.Info("late end", "committed", committed, "err", err, "records", n)
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		committed, err := sess.End(ectx, kgo.TransactionEndTry(!abort))
		cancel()
		switch {
		case err != nil:
			log.Warn("not committed", "records", n, "err", err)
		case abort:
			log.Info("aborted on purpose", "records", n)
		case committed:
			log.Info("committed", "records", n)
		default:
			log.Info("not committed", "records", n, "err", "the session aborted: partitions revoked or lost")
		}
	}
	return ctx.Err()
}
