package main

// strata produce: lines in, records out, over one ProduceStream. Batches are
// pipelined: the sender keeps up to maxInFlight requests unanswered while a
// receiver takes the answers, which come in request order, so one stream
// keeps several of the agent's flushes busy. A batch goes out when it is
// full or when input pauses for produceLinger, so typing lines by hand
// sends each promptly.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const (
	// maxInFlight bounds the requests sent and not yet answered. Each
	// request waits about one flush interval for its answer, so throughput
	// is roughly maxInFlight x --batch-records per flush; the agent queues
	// up to 64 per stream, more would only wait in its socket buffer.
	maxInFlight = 64
	// produceLinger is how long a partly full batch waits for more input.
	produceLinger = 20 * time.Millisecond
	// maxLineBytes is the longest input line; the topic's
	// max.message.bytes (1 MiB by default) usually refuses far shorter.
	maxLineBytes = 16 << 20
	// recordOverhead approximates a record's framing, for --batch-bytes.
	recordOverhead = 16
)

const produceHelp = `Usage: strata produce TOPIC [flags] < input

Writes one record per input line (stdin, or --file) to TOPIC and waits for
the agent's acknowledgements: an acknowledged record is durable in the
object store and the index. Lines end with \n (a trailing \r is dropped);
an empty line is a record with an empty value. Lines may be up to 16 MiB,
but the topic's max.message.bytes (default 1 MiB) is the real limit.

Partitioning: --partition N sends every record to partition N. Otherwise,
with --key-separator, the text before the first separator is the key and
the record goes to partition murmur2(key) mod partitions, as Kafka's
default partitioner puts it; a line without the separator is an error.
Records without a key are spread over partitions, one partition per batch.

Records are sent in batches (--batch-records, --batch-bytes) over one
stream with several batches in flight; a partial batch goes out after
20ms without input. --print-offsets writes one JSON line per acknowledged
record to stdout, in input order:
  {"line":1,"partition":0,"offset":41}
with 1-based input line numbers. A summary goes to stderr, and a progress
line too when stderr is a terminal.

On an error the command stops and exits with status 1; the records
acknowledged before it were printed with --print-offsets. Records of
batches in flight at that moment may or may not have been written.

Examples:
  echo hello | strata produce demo
  strata produce orders --key-separator : --file orders.txt --print-offsets
  seq 1000000 | strata produce numbers --header source=seq
`

func runProduce(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata produce"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	file := fs.String("file", "", "read lines from `FILE` instead of stdin (- means stdin)")
	keySep := fs.String("key-separator", "", "split each line at the first `SEP`: key before, value after")
	var partition optionalPartition
	fs.Var(&partition, "partition", "write every record to partition `N` (default: by key, else spread)")
	var headers keyValueList
	fs.Var(&headers, "header", "add header `key=value` to every record; repeat for several")
	batchRecords := fs.Int("batch-records", 500, "most records in one request")
	batchBytes := byteSize(1 << 20)
	fs.Var(&batchBytes, "batch-bytes", "most record bytes in one request (e.g. 512KiB, 1MiB)")
	printOffsets := fs.Bool("print-offsets", false, `print {"line":N,"partition":P,"offset":O} per acknowledged record to stdout`)
	positional, err := c.parseFlags(fs, produceHelp, args)
	if err != nil {
		return err
	}
	topic, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	if *batchRecords < 1 {
		return usagef(cmd, "--batch-records %d: want at least 1", *batchRecords)
	}
	if batchBytes < 1 {
		return usagef(cmd, "--batch-bytes %d: want at least 1", batchBytes)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()

	// Ask for the topic first: an unknown topic or partition is reported
	// before any input is read, and an unreachable agent too.
	desc, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		return cl.explain(err, topic)
	}
	if n := desc.Msg.GetTopic().GetPartitions(); partition.set && partition.p >= n {
		return usagef(cmd, "--partition %d: topic %s has %d partition%s (0 to %d)", partition.p, topic, n, plural(n), n-1)
	}

	in := c.stdin
	if *file != "" && *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	p := &producer{
		cl:           cl,
		topic:        topic,
		keySep:       []byte(*keySep),
		batchRecords: *batchRecords,
		batchBytes:   int64(batchBytes),
		printOffsets: *printOffsets,
		out:          bufio.NewWriter(c.stdout),
	}
	if partition.set {
		p.partition = &partition.p
	}
	for _, h := range headers {
		p.headers = append(p.headers, &stratav1.Header{Key: h.key, Value: []byte(h.value)})
	}
	if isTerminal(in) {
		fmt.Fprintln(c.stderr, "Type one record per line; Ctrl-D ends the input.")
	}
	start := time.Now()
	stopProgress := func() {}
	// Not when offsets go to the same terminal: the lines would mix.
	if isTerminal(c.stderr) && !(p.printOffsets && isTerminal(c.stdout)) {
		stopProgress = p.showProgress(c.stderr, start)
	}
	err = p.run(ctx, in)
	stopProgress()
	if ferr := p.out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write offsets: %w", ferr)
	}
	n := p.acked.Load()
	if err != nil {
		if n > 0 {
			fmt.Fprintf(c.stderr, "produced %d record%s to %s before the error\n", n, plural64(n), topic)
		}
		return err
	}
	fmt.Fprintf(c.stderr, "produced %d record%s to %s\n", n, plural64(n), topic)
	return nil
}

// producer is one run of strata produce.
type producer struct {
	cl           *client
	topic        string
	keySep       []byte
	partition    *int32
	headers      []*stratav1.Header
	batchRecords int
	batchBytes   int64
	printOffsets bool
	out          *bufio.Writer // stdout; only the receiver writes to it

	acked      atomic.Int64
	ackedBytes atomic.Int64
}

// inputRecord is one line made into a record.
type inputRecord struct {
	line   int
	record *stratav1.Record
	size   int64
}

// sentBatch is what the receiver needs to know of a request in flight.
type sentBatch struct {
	id        uint64
	firstLine int
	records   int
	bytes     int64
}

// run reads in to the end (or the first error) and returns once every
// batch sent is answered.
func (p *producer) run(ctx context.Context, in io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	lines := make(chan inputRecord, 1024)
	var readErr error // set before lines closes
	go func() {
		defer close(lines)
		readErr = p.read(ctx, in, lines)
	}()

	stream := p.cl.producer.ProduceStream(ctx)
	inflight := make(chan sentBatch, maxInFlight)
	recvDone := make(chan struct{})
	var recvErr error // set before recvDone closes
	go func() {
		defer close(recvDone)
		recvErr = p.receive(stream, inflight)
	}()

	var (
		batch      []*stratav1.Record
		batchBytes int64
		firstLine  int
		nextID     uint64
		sendErr    error
	)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	// send hands the batch to the stream; false means stop sending (the
	// receiver has failed, or the stream is broken and the receiver will
	// say why).
	send := func() bool {
		linger.Stop()
		if len(batch) == 0 {
			return true
		}
		nextID++
		sb := sentBatch{id: nextID, firstLine: firstLine, records: len(batch), bytes: batchBytes}
		req := &stratav1.ProduceStreamRequest{
			RequestId: nextID,
			Request:   &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: p.topic, Records: batch}}},
		}
		batch, batchBytes = nil, 0
		select {
		case inflight <- sb:
		case <-recvDone:
			return false
		}
		if err := stream.Send(req); err != nil {
			sendErr = err
			return false
		}
		return true
	}

	interrupted := false
loop:
	for {
		select {
		case r, ok := <-lines:
			if !ok {
				send()
				break loop
			}
			if len(batch) == 0 {
				firstLine = r.line
				linger.Reset(produceLinger)
			}
			batch = append(batch, r.record)
			batchBytes += r.size
			if len(batch) >= p.batchRecords || batchBytes >= p.batchBytes {
				if !send() {
					break loop
				}
			}
		case <-linger.C:
			if len(lines) > 0 {
				// The input is not pausing, this goroutine was slow:
				// keep filling the batch.
				linger.Reset(produceLinger)
				continue
			}
			if !send() {
				break loop
			}
		case <-recvDone:
			break loop
		case <-ctx.Done():
			interrupted = true
			break loop
		}
	}
	close(inflight)
	_ = stream.CloseRequest()
	<-recvDone
	_ = stream.CloseResponse()
	cancel() // stops the reader if it is still going

	switch {
	case recvErr != nil:
		return recvErr
	case interrupted:
		return errInterrupted
	case sendErr != nil:
		return p.cl.explain(sendErr, p.topic)
	}
	// The reader has finished (lines closed) on every path that gets here
	// without an error.
	return readErr
}

// read turns lines into records and hands them over until the input ends,
// a line is bad, or ctx ends.
func (p *producer) read(ctx context.Context, in io.Reader, lines chan<- inputRecord) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.Clone(sc.Bytes())
		r := &stratav1.Record{Value: text, Headers: p.headers, Partition: p.partition}
		if len(p.keySep) > 0 {
			k, v, ok := bytes.Cut(text, p.keySep)
			if !ok {
				return fmt.Errorf("line %d has no key separator %q (the records before it were produced)", line, p.keySep)
			}
			r.Key, r.Value = k, v
		}
		size := int64(len(r.Key)+len(r.Value)) + recordOverhead
		for _, h := range p.headers {
			size += int64(len(h.GetKey()) + len(h.GetValue()))
		}
		select {
		case lines <- inputRecord{line: line, record: r, size: size}:
		case <-ctx.Done():
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d is longer than %d MiB (the records before it were produced)", line+1, maxLineBytes>>20)
		}
		return fmt.Errorf("read input: %w", err)
	}
	return nil
}

// receive takes the answers, in order, for the batches announced on
// inflight, and prints the offsets.
func (p *producer) receive(stream *connect.BidiStreamForClient[stratav1.ProduceStreamRequest, stratav1.ProduceStreamResponse], inflight <-chan sentBatch) error {
	for sb := range inflight {
		resp, err := stream.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the agent ended the stream before answering every request")
			}
			return fmt.Errorf("%w (lines %d on may or may not have been written)", p.cl.explain(err, p.topic), sb.firstLine)
		}
		if resp.GetRequestId() != sb.id {
			return fmt.Errorf("the agent answered request %d when request %d was next", resp.GetRequestId(), sb.id)
		}
		if e := resp.GetError(); e != nil {
			lines := fmt.Sprintf("line %d", sb.firstLine)
			if sb.records > 1 {
				lines = fmt.Sprintf("lines %d-%d", sb.firstLine, sb.firstLine+sb.records-1)
			}
			if e.GetCode() == connect.CodeNotFound.String() {
				return fmt.Errorf("%s: %w", lines, topicNotFound(p.topic))
			}
			return fmt.Errorf("%s: %s: %s", lines, e.GetCode(), e.GetMessage())
		}
		topics := resp.GetResponse().GetTopics()
		if len(topics) != 1 || len(topics[0].GetResults()) != sb.records {
			return fmt.Errorf("the agent answered request %d with results that do not match its %d records", sb.id, sb.records)
		}
		if p.printOffsets {
			for i, r := range topics[0].GetResults() {
				fmt.Fprintf(p.out, "{\"line\":%d,\"partition\":%d,\"offset\":%d}\n", sb.firstLine+i, r.GetPartition(), r.GetOffset())
			}
			if err := p.out.Flush(); err != nil {
				return fmt.Errorf("write offsets: %w", err)
			}
		}
		p.acked.Add(int64(sb.records))
		p.ackedBytes.Add(sb.bytes)
	}
	return nil
}

// showProgress redraws one status line on w every 200ms, from the first
// half second on (short runs never show it). The returned function stops
// it and clears the line.
func (p *producer) showProgress(w io.Writer, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	shown := false
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				elapsed := now.Sub(start)
				if elapsed < 500*time.Millisecond {
					continue
				}
				n := p.acked.Load()
				fmt.Fprintf(w, "\r\033[K%d records, %.1f MiB, %.0f records/s", n, float64(p.ackedBytes.Load())/(1<<20), float64(n)/elapsed.Seconds())
				shown = true
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if shown {
			fmt.Fprint(w, "\r\033[K")
		}
	}
}

// isTerminal tells whether stream (stdin, stdout or stderr) is a character
// device: a terminal, where a person types or watches a progress line.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	// /dev/null is a character device too.
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

func plural64(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
