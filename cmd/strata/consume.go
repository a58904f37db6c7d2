package main

// strata consume: one Subscribe stream. Without --follow the command reads
// a snapshot: the records below each partition's high watermark as
// DescribeTopic saw it at the start, then it stops; from a time, ListOffsets
// says which partitions have a record at or after it. With --follow it goes
// on until Ctrl-C or -n records.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const consumeHelp = `Usage: strata consume TOPIC [flags]
       strata consume --group GROUP TOPIC... | --topic-regex RE [flags]

Reads records of TOPIC and prints them to stdout.

Where to start (--from), in every partition read:
  earliest         the first record still kept
  latest           the end: only records produced from now on
  <offset>         this offset (e.g. 42), clamped to each partition's bounds
  <RFC 3339 time>  the first record (in offset order) stamped at or after
                   this time, then every record after it, e.g.
                   2025-06-01T12:00:00Z or 2025-06-01T14:00:00.5+02:00
The default is earliest, or latest with --follow.

Without --follow the command stops once it has read every partition up to
its high watermark as it was when the command started (records produced
meanwhile are left out), and at once if there is nothing to read. With a
time, a partition with no record stamped at or after it has nothing to
read. With --follow it keeps printing new records until
Ctrl-C (exit status 0) or until -n records. If the agent goes away (it
shuts down, or the connection breaks), the command says so, with the count
of records it printed, and exits with status 1.

With --group the command is a member of the consumer group GROUP: the group
shares the partitions of the topics (named, or every topic matching
--topic-regex, new ones included) among its members, and the command reads
the ones it is given, from the group's committed offsets. --from (earliest
or latest, default latest) applies only to partitions without a committed
offset. It runs until Ctrl-C or -n records, then commits and leaves the
group (exit status 0). Positions are committed after the records are
printed (at least once: a crash repeats the records printed since the last
commit, about a second's worth), or with --at-most-once before (a crash
skips the records not yet printed). --partition and --follow do not apply.
If the agent goes away the member retries; if its session expires meanwhile
it loses its partitions (without committing) and joins again.

Output (--output):
  plain   the value of each record, one per line; with --print-key the key,
          a tab, then the value. Bytes are written as they are; a null
          value prints as an empty line.
  json    one JSON object per line:
            {"topic":"demo","partition":0,"offset":7,
             "timestamp":"2025-06-01T12:00:00.123Z","key":"k","value":"v",
             "headers":[{"key":"source","value":"seq"}]}
          A key, value or header value that is valid UTF-8 is a string; one
          that is not is base64 under "key_base64", "value_base64" or, in a
          header, "value_base64" instead. A null key or value is null.

Group events (--events FILE): one JSON object per line appended to FILE as
each happens, e.g.
  {"time":"2025-06-01T12:00:00.123456789Z","member":"01j...","event":"assigned",
   "partitions":[{"topic":"orders","partition":0}]}
Events: joined, assigned (before any of its records is printed), revoked and
lost (before the partitions are released), committed and commit_failed (with
"offsets":[{"topic":"orders","partition":0,"offset":42}], the next offsets
to read; commit_failed also has "error"), left.

Examples:
  strata consume demo
  strata consume demo --from latest --follow
  strata consume orders --partition 0 --partition 2 --from 1000 -n 10 --output json
  strata consume orders --from 2025-06-01T00:00:00Z --print-key
  strata consume --group billing orders refunds
  strata consume --group audit --topic-regex 'orders\..*' --from earliest --events audit.jsonl
`

// startPosition is a parsed --from.
type startPosition struct {
	kind   string // "earliest", "latest", "offset", "time"
	offset int64
	time   time.Time
}

func parseFrom(s string) (startPosition, error) {
	switch s {
	case "earliest", "latest":
		return startPosition{kind: s}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return startPosition{}, fmt.Errorf("--from %d: an offset cannot be negative", n)
		}
		return startPosition{kind: "offset", offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return startPosition{kind: "time", time: t}, nil
	}
	return startPosition{}, fmt.Errorf("--from %q: want earliest, latest, an offset (e.g. 42) or an RFC 3339 time (e.g. 2025-06-01T12:00:00Z)", s)
}

func runConsume(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata consume"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	from := fs.String("from", "", "start `POSITION`: earliest, latest, an offset or an RFC 3339 time (default earliest, or latest with --follow); with --group, earliest or latest for partitions without a committed offset (default latest)")
	var partitions partitionList
	fs.Var(&partitions, "partition", "read only partition `N`; repeat for several (default: all)")
	follow := fs.Bool("follow", false, "keep reading new records until Ctrl-C or -n")
	limit := fs.Int("n", 0, "stop after `N` records (0: no limit)")
	output := fs.String("output", "plain", "output format: plain or json")
	printKey := fs.Bool("print-key", false, "plain output: print key<TAB>value")
	isolation := fs.String("isolation", "read_uncommitted", "which records to read: read_uncommitted (all) or read_committed (only committed transactions', up to the last stable offset)")
	var g groupFlags
	g.register(fs)
	positional, err := c.parseFlags(fs, consumeHelp, args)
	if err != nil {
		return err
	}
	if err := oneOf(cmd, "isolation", *isolation, "read_uncommitted", "read_committed"); err != nil {
		return err
	}
	readCommitted := *isolation == "read_committed"
	if g.group != "" {
		return runConsumeGroup(ctx, c, fs, &cf, &g, consumeGroupArgs{
			topics: positional, from: *from, limit: *limit, output: *output, printKey: *printKey, readCommitted: readCommitted,
		})
	}
	if err := g.checkUnused(fs); err != nil {
		return err
	}
	topic, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "plain", "json"); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef(cmd, "-n %d: want a count, or 0 for no limit", *limit)
	}
	fromValue := *from
	if fromValue == "" {
		fromValue = "earliest"
		if *follow {
			fromValue = "latest"
		}
	}
	start, err := parseFrom(fromValue)
	if err != nil {
		return usagef(cmd, "%v", err)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()

	desc, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		return cl.explain(err, topic)
	}
	count := desc.Msg.GetTopic().GetPartitions()
	slices.Sort(partitions)
	partitions = slices.Compact(partitions)
	for _, p := range partitions {
		if p >= count {
			return usagef(cmd, "--partition %d: topic %s has %d partition%s (0 to %d)", p, topic, count, plural(count), count-1)
		}
	}
	con := &consumer{
		cl:         cl,
		topic:      topic,
		follow:     *follow,
		limit:      *limit,
		json:       *output == "json",
		printKey:   *printKey,
		out:        bufio.NewWriter(c.stdout),
		subscribed: c.subscribed,
	}
	req := &stratav1.SubscribeRequest{Topic: topic, Partitions: partitions}
	if readCommitted {
		req.IsolationLevel = stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
		con.isolation = req.IsolationLevel
	}
	switch start.kind {
	case "earliest":
		req.Start = &stratav1.SubscribeRequest_Earliest{Earliest: true}
	case "latest":
		req.Start = &stratav1.SubscribeRequest_Latest{Latest: true}
	case "offset":
		req.Start = &stratav1.SubscribeRequest_Offset{Offset: start.offset}
	case "time":
		req.Start = &stratav1.SubscribeRequest_Timestamp{Timestamp: timestamppb.New(start.time)}
	}
	if !*follow {
		if err := con.planSnapshot(ctx, desc.Msg.GetPartitions(), partitions, start); err != nil {
			return err
		}
		if len(con.pending) == 0 {
			return nil // nothing to read
		}
		// Keep-alives say the stream has nothing to send: a partition
		// whose last offsets are transaction markers or aborted records
		// is done then, which only a fetch can tell (probeEnds).
		req.KeepAliveInterval = durationpb.New(time.Second)
		// Read only the partitions with something to read.
		req.Partitions = req.Partitions[:0:0]
		for p := range con.pending {
			req.Partitions = append(req.Partitions, p)
		}
		slices.Sort(req.Partitions)
	}
	err = con.run(ctx, req)
	if ferr := con.out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	return err
}

// consumer is one run of strata consume.
type consumer struct {
	cl       *client
	topic    string
	follow   bool
	limit    int
	json     bool
	printKey bool
	out      *bufio.Writer
	// subscribed is cli.subscribed.
	subscribed func()
	isolation  stratav1.IsolationLevel

	// Without --follow: pending maps each partition still to be read to
	// its high watermark at the start.
	pending map[int32]int64
	// next maps each pending partition to the offset after its last
	// record printed (its start before the first).
	next    map[int32]int64
	printed int
	buf     []byte
}

// planSnapshot works out, for a run without --follow, which partitions have
// records to read and up to where. followed is the --partition list (empty:
// all).
func (c *consumer) planSnapshot(ctx context.Context, infos []*stratav1.PartitionInfo, followed []int32, start startPosition) error {
	c.pending, c.next = map[int32]int64{}, map[int32]int64{}
	stable, err := c.lastStable(ctx, infos, followed)
	if err != nil {
		return err
	}
	var byTime []*stratav1.ListOffsetsPartition
	for _, info := range infos {
		p := info.GetPartition()
		if len(followed) > 0 && !slices.Contains(followed, p) {
			continue
		}
		lso, hwm := info.GetLogStartOffset(), info.GetHighWatermark()
		if s, ok := stable[p]; ok {
			hwm = min(hwm, s) // read_committed reads up to the LSO
		}
		if hwm <= lso {
			continue // empty
		}
		switch start.kind {
		case "earliest":
			c.pending[p], c.next[p] = hwm, lso
		case "latest":
		case "offset":
			if max(start.offset, lso) < hwm {
				c.pending[p], c.next[p] = hwm, max(start.offset, lso)
			}
		case "time":
			byTime = append(byTime, &stratav1.ListOffsetsPartition{Topic: c.topic, Partition: p,
				Spec: &stratav1.ListOffsetsPartition_Timestamp{Timestamp: timestamppb.New(start.time)}})
			c.pending[p] = hwm
		}
	}
	if len(byTime) == 0 {
		return nil
	}
	// The agent finds each partition's first record at or after the time,
	// as the stream will; a partition without one (offset -1), or whose one
	// came after the snapshot's watermark, has nothing to read.
	resp, err := c.cl.consumer.ListOffsets(ctx, connect.NewRequest(&stratav1.ListOffsetsRequest{Partitions: byTime}))
	if err != nil {
		return c.cl.explain(err, c.topic)
	}
	for _, r := range resp.Msg.GetPartitions() {
		p := r.GetPartition()
		if off := r.GetOffset(); off < 0 || off >= c.pending[p] {
			delete(c.pending, p)
		} else {
			c.next[p] = off
		}
	}
	return nil
}

// lastStable is, under read_committed, each followed partition's last
// stable offset (ListOffsets latest); nil otherwise.
func (c *consumer) lastStable(ctx context.Context, infos []*stratav1.PartitionInfo, followed []int32) (map[int32]int64, error) {
	if c.isolation != stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED {
		return nil, nil
	}
	req := &stratav1.ListOffsetsRequest{IsolationLevel: c.isolation}
	for _, info := range infos {
		if p := info.GetPartition(); len(followed) == 0 || slices.Contains(followed, p) {
			req.Partitions = append(req.Partitions, &stratav1.ListOffsetsPartition{Topic: c.topic, Partition: p,
				Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}})
		}
	}
	if len(req.Partitions) == 0 {
		return nil, nil
	}
	resp, err := c.cl.consumer.ListOffsets(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, c.cl.explain(err, c.topic)
	}
	out := map[int32]int64{}
	for _, r := range resp.Msg.GetPartitions() {
		out[r.GetPartition()] = r.GetOffset()
	}
	return out, nil
}

// probeEnds asks, for each partition still pending, whether anything is
// left to print below its end: a fetch from the partition's next offset
// that answers no record and a next offset at or past the end means the
// rest were transaction markers or aborted records, which no stream sends.
func (c *consumer) probeEnds(ctx context.Context) error {
	for p, end := range c.pending {
		// Each answer may stop early (its byte budget): follow its next
		// offset while it brings no record.
		for off := c.next[p]; off < end; {
			resp, err := c.cl.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{Topic: c.topic, Partition: p,
				Offset: off, MaxBytes: 64 << 10, IsolationLevel: c.isolation}))
			if err != nil {
				return c.cl.explain(err, c.topic)
			}
			next := resp.Msg.GetNextOffset()
			if len(resp.Msg.GetRecords()) > 0 || next <= off {
				break // records the stream will send, or nothing yet
			}
			if off = next; off >= end {
				delete(c.pending, p)
			}
		}
	}
	if c.snapshotDone() {
		return errStop
	}
	return nil
}

// errStop ends the read loop without an error.
var errStop = errors.New("stop")

func (c *consumer) run(ctx context.Context, req *stratav1.SubscribeRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.cl.consumer.Subscribe(ctx, connect.NewRequest(req))
	if err != nil {
		return c.cl.explain(err, c.topic)
	}
	defer func() {
		cancel()
		_ = stream.Close()
	}()
	// The agent answers with the headers once every start position is
	// fixed; a stream that fails at once (unknown partition) fails here.
	stream.ResponseHeader()
	if c.subscribed != nil {
		c.subscribed()
	}
	for stream.Receive() {
		// A keep-alive has no records: handle and Flush do nothing.
		err := c.handle(stream.Msg().GetRecords())
		if err == nil && stream.Msg().GetKeepAlive() && !c.follow {
			err = c.probeEnds(ctx)
		}
		if ferr := c.out.Flush(); ferr != nil {
			return fmt.Errorf("write output: %w", ferr)
		}
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	err = stream.Err()
	if ctx.Err() != nil {
		if c.follow {
			return nil // Ctrl-C is how --follow ends
		}
		return errInterrupted
	}
	if connect.CodeOf(err) == connect.CodeUnavailable {
		// An agent shutting down ends its streams this way.
		return fmt.Errorf("the agent at %s ended the stream after %d records: %s; run the command again to go on", c.cl.addr, c.printed, connectMessage(err))
	}
	if err != nil {
		return c.cl.explain(err, c.topic)
	}
	return fmt.Errorf("the agent at %s ended the stream after %d records; run the command again to go on", c.cl.addr, c.printed)
}

// connectMessage is an RPC error's message without the code.
func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// handle prints one message's records; errStop means done.
func (c *consumer) handle(records []*stratav1.ConsumedRecord) error {
	for _, r := range records {
		p, off := r.GetPartition(), r.GetOffset()
		if !c.follow {
			hwm, ok := c.pending[p]
			if !ok {
				continue // read to its end already
			}
			if off >= hwm {
				delete(c.pending, p)
				if c.snapshotDone() {
					return errStop
				}
				continue
			}
		}
		if err := c.print(r); err != nil {
			return err
		}
		if c.next != nil {
			c.next[p] = off + 1
		}
		c.printed++
		if c.limit > 0 && c.printed >= c.limit {
			return errStop
		}
		if !c.follow && off+1 >= c.pending[p] {
			delete(c.pending, p)
			if c.snapshotDone() {
				return errStop
			}
		}
	}
	return nil
}

// snapshotDone: every partition waited for has reached its watermark.
func (c *consumer) snapshotDone() bool { return len(c.pending) == 0 }

func (c *consumer) print(r *stratav1.ConsumedRecord) error {
	b := c.buf[:0]
	if c.json {
		b = appendRecordJSON(b, r)
	} else {
		if c.printKey {
			b = append(b, r.GetKey()...)
			b = append(b, '\t')
		}
		b = append(b, r.GetValue()...)
	}
	b = append(b, '\n')
	c.buf = b
	_, err := c.out.Write(b)
	return err
}

// appendRecordJSON writes a record as one JSON object, fields in a fixed
// order (see consumeHelp for the format).
func appendRecordJSON(b []byte, r *stratav1.ConsumedRecord) []byte {
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, r.GetTopic())
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.GetPartition()), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.GetOffset(), 10)
	b = append(b, `,"timestamp":`...)
	if ts := r.GetTimestamp(); ts != nil {
		b = appendJSONString(b, ts.AsTime().UTC().Format(time.RFC3339Nano))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ',')
	b = appendBytesField(b, "key", r.Key)
	b = append(b, ',')
	b = appendBytesField(b, "value", r.Value)
	b = append(b, `,"headers":[`...)
	for i, h := range r.GetHeaders() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendJSONString(b, h.GetKey())
		b = append(b, ',')
		b = appendBytesField(b, "value", h.Value)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendBytesField writes "name":"text" for UTF-8 bytes, "name_base64":"..."
// for other bytes and "name":null for nil (unset).
func appendBytesField(b []byte, name string, v []byte) []byte {
	switch {
	case v == nil:
		return append(append(append(b, '"'), name...), `":null`...)
	case utf8.Valid(v):
		b = append(append(append(b, '"'), name...), `":`...)
		return appendJSONString(b, string(v))
	default:
		b = append(append(append(b, '"'), name...), `_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	}
}

// appendJSONString appends s as a JSON string, without the HTML escaping
// encoding/json does by default: the output is for terminals and jq.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
