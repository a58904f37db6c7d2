package main

// strata produce: lines in, records out, through the Go producer of package
// client (client.Producer): batches per partition, Kafka's partitioner,
// several batches in flight on one ProduceStream, retries, and idempotence
// by default, so a retried batch is never written twice. The promises come
// per partition; the command puts them back in input order to print
// offsets and stops at the first failed line.

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

	strataclient "github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const (
	// produceLinger is how long a partial batch waits for more input.
	produceLinger = 20 * time.Millisecond
	// maxLineBytes is the longest input line; the topic's
	// max.message.bytes (1 MiB by default) usually refuses far shorter.
	maxLineBytes = 16 << 20
	// maxRequestBytes lets the longest line through to the agent, whose
	// max.message.bytes check gives the useful message.
	maxRequestBytes = maxLineBytes + 1<<20
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

Records are sent in batches per partition (--batch-records, --batch-bytes)
over one stream with several batches in flight; a partial batch goes out
20ms after its first record. The producer is idempotent (--idempotent,
default true): a batch retried after a lost answer is written once.
Retryable errors are retried until --delivery-timeout (default 2m, Kafka's
delivery.timeout.ms) passes; then the record fails with the last error.
--print-offsets writes one JSON line per acknowledged record to stdout, in
input order:
  {"line":1,"partition":0,"offset":41}
with 1-based input line numbers. A summary goes to stderr, and a progress
line too when stderr is a terminal.

Transactions: --transactional-id ID makes the producer transactional
(Kafka's transactional.id, KIP-98): it fences earlier producers of the ID
(aborting a transaction one left open) and writes the input in
transactions, one per --transaction-records lines (0, the default: one
for the whole input), each committed once its records are acknowledged.
read_committed consumers (strata consume --isolation read_committed) see a
transaction's records only once it commits. On an error or an interrupt
the open transaction is aborted: none of its records become visible to
them, whatever --print-offsets printed (offsets print as lines are
written, before their transaction commits), and the summary on stderr
says how many transactions committed and the line to resume from.
Transaction calls (adding partitions, commits) are retried like records
until --delivery-timeout, so an agent restart only pauses the run.
--transaction-timeout (Kafka's transaction.timeout.ms; default 0, the
agent's 1m; at most 15m) is how long a transaction may stay open before
an agent aborts it.

On an error the command stops and exits with status 1; the records
acknowledged before it were printed with --print-offsets. Records after
the failed ones that were in flight at that moment may have been written.

Examples:
  echo hello | strata produce demo
  strata produce orders --key-separator : --file orders.txt --print-offsets
  seq 1000000 | strata produce numbers --header source=seq
  seq 100 | strata produce numbers --transactional-id loader --transaction-records 10
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
	deliveryTimeout := fs.Duration("delivery-timeout", 2*time.Minute, "how long a record may take, retries included, before it fails with the last error (Kafka's delivery.timeout.ms)")
	idempotent := fs.Bool("idempotent", true, "idempotent producer: retries never write a batch twice (false: plain at-least-once requests)")
	txnID := fs.String("transactional-id", "", "write in transactions as transactional producer `ID` (Kafka's transactional.id), fencing earlier producers of the ID")
	txnRecords := fs.Int("transaction-records", 0, "with --transactional-id, commit a transaction every `N` lines (0: one transaction for the whole input)")
	txnTimeout := fs.Duration("transaction-timeout", 0, "with --transactional-id, abort a transaction still open after `D` (Kafka's transaction.timeout.ms; 0: the agent's default, 1m; at most 15m)")
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
	if *txnRecords < 0 {
		return usagef(cmd, "--transaction-records %d: want 0 (one transaction) or more", *txnRecords)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["transactional-id"] && *txnID == "" {
		return usagef(cmd, "--transactional-id is empty: give an ID, or leave the flag out to produce without transactions")
	}
	if *deliveryTimeout <= 0 {
		return usagef(cmd, "--delivery-timeout %s: want more than 0", *deliveryTimeout)
	}
	if *txnTimeout < 0 || *txnTimeout > 15*time.Minute {
		return usagef(cmd, "--transaction-timeout %s: want 0 (the agent's default) up to 15m", *txnTimeout)
	}
	if given["transaction-timeout"] && *txnID == "" {
		return usagef(cmd, "--transaction-timeout needs --transactional-id")
	}
	if *txnRecords > 0 && *txnID == "" {
		return usagef(cmd, "--transaction-records needs --transactional-id")
	}
	if *txnID != "" && !*idempotent {
		return usagef(cmd, "--transactional-id needs --idempotent (a transactional producer is idempotent)")
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
		idempotent:   *idempotent,
		delivery:     *deliveryTimeout,
		txnID:        *txnID,
		txnRecords:   *txnRecords,
		txnTimeout:   *txnTimeout,
		out:          bufio.NewWriter(c.stdout),
	}
	if partition.set {
		p.partition = &partition.p
	}
	for _, h := range headers {
		p.headers = append(p.headers, strataclient.Header{Key: h.key, Value: []byte(h.value)})
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
		if p.txnID != "" {
			p.txnSummary(c.stderr)
		} else if n > 0 {
			fmt.Fprintf(c.stderr, "produced %d record%s to %s before the error\n", n, plural64(n), topic)
		}
		return err
	}
	if p.txnID != "" {
		t := p.txns.Load()
		fmt.Fprintf(c.stderr, "produced %d record%s to %s in %d committed transaction%s\n", n, plural64(n), topic, t, plural64(t))
		return nil
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
	headers      []strataclient.Header
	batchRecords int
	batchBytes   int64
	printOffsets bool
	idempotent   bool
	delivery     time.Duration // DeliveryTimeout
	txnID        string        // --transactional-id; "" for none
	txnRecords   int           // --transaction-records
	txnTimeout   time.Duration // --transaction-timeout; 0 for the agent's default
	txns         atomic.Int64  // transactions committed
	// commitUnknown: the last commit failed with an error that leaves its
	// outcome unknown (the agent may have committed it).
	commitUnknown atomic.Bool
	out           *bufio.Writer // stdout; written under mu

	acked      atomic.Int64 // the lines acknowledged, from the first on without a gap
	ackedBytes atomic.Int64

	mu      sync.Mutex
	results map[int]lineResult // answered lines not yet printed
	next    int                // the first line not printed
	failed  map[int]error      // lines that failed
	outErr  error              // writing stdout failed
}

// lineResult is one answered line.
type lineResult struct {
	partition int32
	offset    int64
	size      int64
}

// inputRecord is one line made into a record.
type inputRecord struct {
	line   int
	record *strataclient.Record
}

// run reads in to the end (or the first error) and returns once every
// record produced is answered.
func (p *producer) run(ctx context.Context, in io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.results, p.failed, p.next = map[int]lineResult{}, map[int]error{}, 1

	opts := []strataclient.ProducerOpt{
		strataclient.Linger(produceLinger),
		strataclient.BatchMaxRecords(p.batchRecords),
		strataclient.BatchMaxBytes(int(p.batchBytes)),
		strataclient.MaxRequestBytes(max(maxRequestBytes, int(p.batchBytes))),
		strataclient.MaxBufferedBytes(max(64<<20, 2*int64(max(maxRequestBytes, int(p.batchBytes))))),
		strataclient.ConnectOptions(p.cl.opts...),
		strataclient.DeliveryTimeout(p.delivery),
	}
	if p.partition != nil {
		opts = append(opts, strataclient.ManualPartitioner())
	}
	if !p.idempotent {
		opts = append(opts, strataclient.DisableIdempotence())
	}
	if p.txnID != "" {
		opts = append(opts, strataclient.TransactionalID(p.txnID, p.txnTimeout))
	}
	prod, err := strataclient.NewProducer(p.cl.httpClient, p.cl.base, opts...)
	if err != nil {
		return err
	}
	if p.txnID != "" {
		if err := prod.InitTransactions(ctx); err != nil {
			_ = prod.Close(context.Background())
			return p.cl.explain(err, p.topic)
		}
		if err := prod.BeginTransaction(); err != nil {
			_ = prod.Close(context.Background())
			return err
		}
	}
	inTxn := 0       // lines produced in the open transaction
	var txnErr error // a commit failed

	lines := make(chan inputRecord, 1024)
	var readErr error // set before lines closes
	go func() {
		defer close(lines)
		readErr = p.read(ctx, in, lines)
	}()
	stop := make(chan struct{}) // closed at the first failed line
	var stopOnce sync.Once

	interrupted := false
loop:
	for {
		select {
		case r, ok := <-lines:
			if !ok {
				break loop
			}
			size := int64(len(r.record.Key) + len(r.record.Value))
			line := r.line
			prod.Produce(ctx, r.record, func(rec *strataclient.Record, err error) {
				if err != nil {
					stopOnce.Do(func() { close(stop) })
				}
				p.answered(line, rec, size, err)
			})
			if p.txnID != "" {
				if inTxn++; p.txnRecords > 0 && inTxn >= p.txnRecords {
					if txnErr = p.commit(ctx, prod); txnErr != nil {
						break loop
					}
					inTxn = 0
				}
			}
		case <-stop:
			break loop
		case <-ctx.Done():
			interrupted = true
			break loop
		}
	}
	if p.txnID != "" {
		stopped := false
		select {
		case <-stop:
			stopped = true
		default:
		}
		if !stopped && !interrupted && txnErr == nil {
			if err := prod.CommitTransaction(ctx); err != nil {
				p.commitFailed(err)
				txnErr = fmt.Errorf("commit the transaction: %w", err)
			} else if inTxn > 0 {
				p.txns.Add(1)
			}
		}
		if stopped || interrupted || txnErr != nil {
			// Best effort: an abort that does not make it is done by the
			// agents once the transaction times out.
			actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = prod.AbortTransaction(actx)
			cancel()
		}
	}
	cctx := context.Background()
	if interrupted {
		// Give up on what is in flight at once.
		var c context.CancelFunc
		cctx, c = context.WithCancel(cctx)
		c()
	}
	_ = prod.Close(cctx)
	cancel() // stops the reader if it is still going

	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case len(p.failed) > 0:
		return p.failure()
	case p.outErr != nil:
		return p.outErr
	case interrupted:
		return errInterrupted
	case txnErr != nil:
		return txnErr
	}
	// The reader has finished (lines closed) on every path that gets here
	// without an error.
	return readErr
}

// commit commits the open transaction and begins the next.
func (p *producer) commit(ctx context.Context, prod *strataclient.Producer) error {
	if err := prod.CommitTransaction(ctx); err != nil {
		p.commitFailed(err)
		return fmt.Errorf("commit a transaction: %w", err)
	}
	p.txns.Add(1)
	return prod.BeginTransaction()
}

// commitFailed notes whether a failed commit may have committed: only an
// EndTxn still failing retriably when the retries ended leaves the outcome
// unknown; a refusal or a failed record commits nothing.
func (p *producer) commitFailed(err error) {
	p.commitUnknown.Store(errors.Is(err, strataclient.ErrTxnOutcomeUnknown))
}

// txnSummary tells, after an error, how many transactions committed and
// so where to resume: the lines of the committed transactions are
// visible to read_committed readers, the rest were aborted (or are, once
// their transaction times out) whatever --print-offsets printed.
func (p *producer) txnSummary(w io.Writer) {
	t := p.txns.Load()
	fmt.Fprintf(w, "committed %d transaction%s to %s before the error", t, plural64(t), p.topic)
	if p.txnRecords > 0 && t > 0 {
		last := t * int64(p.txnRecords)
		fmt.Fprintf(w, " (lines 1-%d); resume from line %d", last, last+1)
	}
	fmt.Fprintln(w)
	if p.commitUnknown.Load() {
		fmt.Fprintf(w, "the commit of transaction %d failed without an answer and may have committed: "+
			"check with strata consume %s --isolation read_committed\n", t+1, p.topic)
	}
}

// answered takes one line's result and prints the lines answered from
// the first unprinted on, in input order.
func (p *producer) answered(line int, rec *strataclient.Record, size int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failed[line] = err
		return
	}
	p.results[line] = lineResult{partition: rec.Partition, offset: rec.Offset, size: size}
	if len(p.failed) > 0 {
		return // nothing after a failed line is printed
	}
	for {
		r, ok := p.results[p.next]
		if !ok {
			break
		}
		delete(p.results, p.next)
		if p.printOffsets && p.outErr == nil {
			fmt.Fprintf(p.out, "{\"line\":%d,\"partition\":%d,\"offset\":%d}\n", p.next, r.partition, r.offset)
		}
		p.next++
		p.acked.Add(1)
		p.ackedBytes.Add(r.size)
	}
	if p.printOffsets && p.outErr == nil {
		if err := p.out.Flush(); err != nil {
			p.outErr = fmt.Errorf("write offsets: %w", err)
		}
	}
}

// failure names the first failed line, and the lines after it that failed
// with it (one batch), with what to do.
func (p *producer) failure() error {
	first := 0
	for l := range p.failed {
		if first == 0 || l < first {
			first = l
		}
	}
	err := p.failed[first]
	last := first
	for e, ok := p.failed[last+1]; ok && e.Error() == err.Error(); e, ok = p.failed[last+1] {
		last++
	}
	lines := fmt.Sprintf("line %d", first)
	if last > first {
		lines = fmt.Sprintf("lines %d-%d", first, last)
	}
	if connect.CodeOf(err) == connect.CodeNotFound {
		return fmt.Errorf("%s: %w", lines, topicNotFound(p.topic))
	}
	if errors.Is(err, strataclient.ErrProducerClosed) {
		return errInterrupted
	}
	return fmt.Errorf("%s: %w", lines, p.cl.explain(err, p.topic))
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
		r := &strataclient.Record{Topic: p.topic, Value: text, Headers: p.headers}
		if p.partition != nil {
			r.Partition = *p.partition
		}
		if len(p.keySep) > 0 {
			k, v, ok := bytes.Cut(text, p.keySep)
			if !ok {
				return fmt.Errorf("line %d has no key separator %q (the records before it were produced)", line, p.keySep)
			}
			r.Key, r.Value = k, v
		}
		select {
		case lines <- inputRecord{line: line, record: r}:
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
