package main

// strata consume --group: one member of a consumer group, through package
// client's GroupConsumer. Records print as in the other modes; positions
// are committed after the records are printed (at least once) or before
// (--at-most-once); --events logs the membership's changes as JSON lines
// for operators and tests.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	strataclient "github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// groupFlags are consume's flags for group mode.
type groupFlags struct {
	group          string
	topicRegex     string
	atMostOnce     bool
	sessionTimeout time.Duration
	events         string
}

func (g *groupFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.group, "group", "", "read as a member of consumer group `GROUP`")
	fs.StringVar(&g.topicRegex, "topic-regex", "", "with --group: follow every topic whose whole name matches `RE` (RE2), new ones included")
	fs.BoolVar(&g.atMostOnce, "at-most-once", false, "with --group: commit positions before printing the records, not after")
	fs.DurationVar(&g.sessionTimeout, "session-timeout", 0, "with --group: how long the group waits for a silent member before giving its partitions to others (default: the agent's)")
	fs.StringVar(&g.events, "events", "", "with --group: append the member's events to `FILE`, one JSON object per line")
}

// checkUnused refuses group flags without --group.
func (g *groupFlags) checkUnused(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "topic-regex", "at-most-once", "session-timeout", "events":
			if err == nil {
				err = usagef(fs.Name(), "--%s works only with --group", f.Name)
			}
		}
	})
	return err
}

// consumeGroupArgs are the arguments group mode shares with the others.
type consumeGroupArgs struct {
	topics   []string
	from     string
	limit    int
	output   string
	printKey bool
	// readCommitted is --isolation read_committed.
	readCommitted bool
}

func runConsumeGroup(ctx context.Context, c *cli, fs *flag.FlagSet, cf *clientFlags, g *groupFlags, a consumeGroupArgs) error {
	cmd := fs.Name()
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range []string{"partition", "follow"} {
		if given[name] {
			return usagef(cmd, "--%s does not apply with --group: the group decides the partitions, and a member runs until Ctrl-C or -n", name)
		}
	}
	switch {
	case len(a.topics) == 0 && g.topicRegex == "":
		return usagef(cmd, "--group %s: name the topics to read, or give --topic-regex", g.group)
	case len(a.topics) > 0 && g.topicRegex != "":
		return usagef(cmd, "give topic names or --topic-regex, not both")
	}
	if g.topicRegex != "" {
		if _, err := regexp.Compile(g.topicRegex); err != nil {
			return usagef(cmd, "--topic-regex %q: %v", g.topicRegex, err)
		}
	}
	if err := oneOf(cmd, "output", a.output, "plain", "json"); err != nil {
		return err
	}
	if a.limit < 0 {
		return usagef(cmd, "-n %d: want a count, or 0 for no limit", a.limit)
	}
	if g.sessionTimeout < 0 {
		return usagef(cmd, "--session-timeout %s: want a positive duration", g.sessionTimeout)
	}
	reset := strataclient.ResetLatest
	switch a.from {
	case "", "latest":
	case "earliest":
		reset = strataclient.ResetEarliest
	default:
		return usagef(cmd, "--from %q with --group: want earliest or latest (where to start in partitions the group has no committed offset for)", a.from)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	for _, t := range a.topics {
		if _, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: t})); err != nil {
			return cl.explain(err, t)
		}
	}
	events, err := openEventLog(g.events)
	if err != nil {
		return err
	}
	defer events.close()

	delivery := strataclient.AtLeastOnce
	if g.atMostOnce {
		delivery = strataclient.AtMostOnce
	}
	var gc *strataclient.GroupConsumer
	member := func() string {
		if gc == nil {
			return ""
		}
		return gc.MemberID()
	}
	cfg := strataclient.GroupConsumerConfig{
		HTTPClient:     cl.httpClient,
		BaseURL:        cl.base,
		Options:        cl.opts,
		Group:          g.group,
		Topics:         a.topics,
		TopicRegex:     g.topicRegex,
		SessionTimeout: g.sessionTimeout,
		ReadCommitted:  a.readCommitted,
		Delivery:       delivery,
		Reset:          reset,
		OnJoined: func(_ context.Context, id string) {
			events.log(id, "joined", nil, nil, nil)
		},
		OnAssigned: func(_ context.Context, parts []strataclient.TopicPartition) {
			events.log(member(), "assigned", parts, nil, nil)
		},
		OnRevoked: func(_ context.Context, parts []strataclient.TopicPartition) {
			events.log(member(), "revoked", parts, nil, nil)
		},
		OnLost: func(_ context.Context, parts []strataclient.TopicPartition) {
			events.log(member(), "lost", parts, nil, nil)
		},
		OnCommit: func(_ context.Context, offsets []strataclient.PartitionOffset, err error) {
			parts := make([]strataclient.TopicPartition, len(offsets))
			for i, o := range offsets {
				parts[i] = strataclient.TopicPartition{Topic: o.Topic, Partition: o.Partition}
			}
			if err != nil {
				events.log(member(), "commit_failed", parts, offsets, err)
				return
			}
			events.log(member(), "committed", parts, offsets, nil)
		},
		Logger: slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	gc, err = strataclient.NewGroupConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return cl.explain(err, "")
	}

	con := &consumer{cl: cl, follow: true, limit: a.limit, json: a.output == "json", printKey: a.printKey, out: bufio.NewWriter(c.stdout)}
	runErr := consumeAsMember(ctx, gc, con)
	// Close with a context of its own: after Ctrl-C the member still
	// commits what it printed and leaves, so the group moves on at once.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := gc.Close(closeCtx); err != nil {
		if runErr == nil {
			runErr = fmt.Errorf("leaving group %s: %w", g.group, cl.explain(err, ""))
		}
	} else {
		events.log(member(), "left", nil, nil, nil)
	}
	if errors.Is(runErr, errInterrupted) {
		return nil // Ctrl-C is how a member ends
	}
	return runErr
}

// consumeAsMember prints what the member polls until ctx ends or the limit
// is reached. Records are flushed to stdout before the next Poll, which is
// when at-least-once commits them.
func consumeAsMember(ctx context.Context, gc *strataclient.GroupConsumer, con *consumer) error {
	for {
		max := 0
		if con.limit > 0 {
			max = con.limit - con.printed
		}
		recs, err := gc.PollN(ctx, max)
		if ctx.Err() != nil {
			return errInterrupted
		}
		if err != nil {
			return con.cl.explain(err, "")
		}
		for i := range recs {
			if err := con.print(toConsumedRecord(&recs[i])); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			con.printed++
		}
		if err := con.out.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if con.limit > 0 && con.printed >= con.limit {
			return nil
		}
	}
}

// toConsumedRecord is r as the API carries it, for the shared printers.
func toConsumedRecord(r *strataclient.Record) *stratav1.ConsumedRecord {
	out := &stratav1.ConsumedRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}
	if !r.Timestamp.IsZero() {
		out.Timestamp = timestamppb.New(r.Timestamp)
	}
	for _, h := range r.Headers {
		out.Headers = append(out.Headers, &stratav1.Header{Key: h.Key, Value: h.Value})
	}
	return out
}

// eventLog appends group events to a file, one JSON object per line, each
// written with one write as it happens. A nil *eventLog logs nothing.
type eventLog struct {
	mu sync.Mutex
	w  io.WriteCloser
}

func openEventLog(path string) (*eventLog, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--events: %w", err)
	}
	return &eventLog{w: f}, nil
}

type eventPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type eventOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type event struct {
	Time       string           `json:"time"`
	Member     string           `json:"member"`
	Event      string           `json:"event"`
	Partitions []eventPartition `json:"partitions"`
	Offsets    []eventOffset    `json:"offsets,omitempty"`
	Error      string           `json:"error,omitempty"`
}

func (l *eventLog) log(member, kind string, parts []strataclient.TopicPartition, offsets []strataclient.PartitionOffset, err error) {
	if l == nil {
		return
	}
	e := event{Time: time.Now().UTC().Format(time.RFC3339Nano), Member: member, Event: kind, Partitions: []eventPartition{}}
	for _, tp := range parts {
		e.Partitions = append(e.Partitions, eventPartition{tp.Topic, tp.Partition})
	}
	for _, o := range offsets {
		e.Offsets = append(e.Offsets, eventOffset(o))
	}
	if err != nil {
		e.Error = err.Error()
	}
	line, _ := json.Marshal(e) // plain data: cannot fail
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(line)
}

func (l *eventLog) close() {
	if l != nil {
		_ = l.w.Close()
	}
}
