// Command saramamember is one member of an IBM sarama consumer group
// (sarama.ConsumerGroup: the classic group protocol, JoinGroup, SyncGroup,
// Heartbeat, OffsetCommit, LeaveGroup, with a client-side balance strategy)
// against Strata agents. integration/sarama_groups_test.go builds it and runs
// several as separate processes, so that a member can be killed with SIGKILL
// (its connections reset by the kernel, no LeaveGroup, its session left to
// expire) and stopped with SIGTERM (Close: a clean LeaveGroup).
//
//	saramamember -brokers A,B -topic T -group G -name N -events FILE [-session 8s] [-strategy S] [-process 50ms]
//
// S is a balance strategy: range, roundrobin, sticky (eager: every
// rebalance revokes every partition) or cooperative-sticky (KIP-429: a
// member keeps the partitions that do not move, and sarama keeps its
// session, calling Setup and Cleanup once, across generations).
//
// Each batch takes -process to process after it is logged, so that a
// SIGKILL is likely to land between processing and committing.
// It writes its events to FILE in the same format as
// integration/testdata/kafkajs/kafkajs-group-member.js, one JSON object a
// line, t in ms since the epoch:
//
//	{"ev":"assigned","gen":G,"member":ID,"partitions":[...],"t":T}    Setup
//	{"ev":"claimed","gen":G,"partition":P,"offset":O,"t":T}           ConsumeClaim starts; O is the claim's initial (committed) offset
//	{"ev":"records","gen":G,"partition":P,"offsets":[...],"values":[...],"t":T}
//	{"ev":"committed","gen":G,"committed":{"P":O},"t":T}              after Commit, O the next offset
//	{"ev":"released","gen":G,"partition":P,"t":T}                     ConsumeClaim returns
//	{"ev":"error","error":E,"t":T}                                    from ConsumerGroup.Errors
//	{"ev":"revoked","gen":G,"t":T}                                    Cleanup: every claim has returned
//	{"ev":"exit","t":T}                                               after Close on SIGTERM
//
// G is the session's generation when the event is logged: with a
// cooperative strategy it changes while a claim runs.
//
// Offsets are committed synchronously after every batch (auto-commit off):
// a member killed mid-batch leaves at most that batch uncommitted.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// events writes event lines to a file, one write each, so that a SIGKILL
// loses at most the line being written.
type events struct {
	mu sync.Mutex
	f  *os.File
}

func (e *events) emit(ev map[string]any) {
	ev["t"] = time.Now().UnixMilli()
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.f.Write(append(b, '\n')); err != nil {
		slog.Error("write event", "err", err)
		os.Exit(1)
	}
}

// handler logs what the group gives it and commits after every batch.
type handler struct {
	topic   string
	ev      *events
	process time.Duration
}

func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	parts := slices.Clone(sess.Claims()[h.topic])
	slices.Sort(parts)
	if parts == nil {
		parts = []int32{}
	}
	h.ev.emit(map[string]any{"ev": "assigned", "gen": sess.GenerationID(), "member": sess.MemberID(), "partitions": parts})
	return nil
}

func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.ev.emit(map[string]any{"ev": "revoked", "gen": sess.GenerationID()})
	return nil
}

// ConsumeClaim takes what has arrived (up to 200 records) as one batch,
// logs it, marks it and commits it before taking the next.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	p := claim.Partition()
	h.ev.emit(map[string]any{"ev": "claimed", "gen": sess.GenerationID(), "partition": p, "offset": claim.InitialOffset()})
	// Logged once the claim's last batch is committed: the partition may
	// go to another member from then on.
	defer func() { h.ev.emit(map[string]any{"ev": "released", "gen": sess.GenerationID(), "partition": p}) }()
	for {
		var batch []*sarama.ConsumerMessage
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch, m)
		case <-sess.Context().Done():
			return nil
		}
	drain:
		for len(batch) < 200 {
			select {
			case m, ok := <-claim.Messages():
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		offsets := make([]int64, len(batch))
		values := make([]string, len(batch))
		for i, m := range batch {
			offsets[i], values[i] = m.Offset, string(m.Value)
		}
		gen := sess.GenerationID()
		h.ev.emit(map[string]any{"ev": "records", "gen": gen, "partition": p, "offsets": offsets, "values": values})
		time.Sleep(h.process)
		last := batch[len(batch)-1]
		sess.MarkMessage(last, "")
		sess.Commit()
		h.ev.emit(map[string]any{"ev": "committed", "gen": gen, "committed": map[string]int64{strconv.Itoa(int(p)): last.Offset + 1}})
	}
}

func main() {
	brokers := flag.String("brokers", "", "comma-separated host:port of the Kafka listeners")
	topic := flag.String("topic", "", "the topic to consume")
	group := flag.String("group", "", "the consumer group")
	name := flag.String("name", "", "client id")
	eventsPath := flag.String("events", "", "file to append events to")
	session := flag.Duration("session", 8*time.Second, "session timeout")
	strategy := flag.String("strategy", "range", "balance strategy: range, roundrobin, sticky or cooperative-sticky")
	process := flag.Duration("process", 0, "time each batch takes to process, between logging and committing it")
	flag.Parse()
	if *brokers == "" || *topic == "" || *group == "" || *name == "" || *eventsPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.OpenFile(*eventsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		slog.Error("open events", "err", err)
		os.Exit(1)
	}
	ev := &events{f: f}

	conf := sarama.NewConfig()
	conf.ClientID = *name
	conf.Version = sarama.DefaultVersion
	conf.Net.DialTimeout = 30 * time.Second
	conf.Net.ReadTimeout = 60 * time.Second
	conf.Net.WriteTimeout = 30 * time.Second
	conf.Metadata.Retry.Max = 20
	conf.Metadata.Retry.Backoff = 250 * time.Millisecond
	conf.Consumer.Return.Errors = true
	conf.Consumer.MaxWaitTime = 250 * time.Millisecond
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	conf.Consumer.Offsets.AutoCommit.Enable = false
	conf.Consumer.Group.Session.Timeout = *session
	conf.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	conf.Consumer.Group.Rebalance.Timeout = 60 * time.Second
	conf.Consumer.Group.Rebalance.Retry.Max = 20
	switch *strategy {
	case "range":
		conf.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	case "roundrobin":
		conf.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	case "sticky":
		conf.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	case "cooperative-sticky":
		conf.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	default:
		slog.Error("unknown strategy", "strategy", *strategy)
		os.Exit(2)
	}
	cg, err := sarama.NewConsumerGroup(strings.Split(*brokers, ","), *group, conf)
	if err != nil {
		slog.Error("NewConsumerGroup", "err", err)
		os.Exit(1)
	}
	go func() {
		for err := range cg.Errors() {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *name, err)
			ev.emit(map[string]any{"ev": "error", "error": err.Error()})
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h := &handler{topic: *topic, ev: ev, process: *process}
	for ctx.Err() == nil {
		// Consume returns at the end of each generation (a rebalance); the
		// loop joins the next one.
		if err := cg.Consume(ctx, []string{*topic}, h); err != nil && ctx.Err() == nil {
			slog.Warn("Consume", "err", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
	if err := cg.Close(); err != nil {
		slog.Error("Close", "err", err)
		os.Exit(1)
	}
	ev.emit(map[string]any{"ev": "exit"})
}
