package main

// strata bench: the command line of the benchmark harness, which lives in
// internal/bench. This file is wiring only: flags and help texts, the
// Connect clients the harness dials (--addr, --protocol, --compression),
// and printing the results.

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/internal/bench"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

const benchHelp = `Usage: strata bench <produce|consume|e2e|store> [flags]

Measures a Strata agent (produce, consume, e2e) or the store and index
under it (store), and prints throughput and latency percentiles; --json
prints one JSON object for scripts instead.

  produce  producers send batches over ProduceStream (--api batch:
           ProduceBatchesStream) at --rate records/s (0: as fast as the
           agent acknowledges); ack latency
  consume  consumers read a backlog from its start (catch-up), with
           Subscribe, Fetch or FetchBatches; read throughput
  e2e      producers at --rate and tailing Subscribe streams (--api
           batch: FetchBatches long polls) on the same topic;
           produce-to-consume latency
  store    PUT, whole GET and ranged GET of objects of --object-size in
           --store, and Redis round trips per second on --index

produce, consume and e2e speak the Connect API to --addr (with --api batch
its batch calls, which carry Kafka record batches), or with --kafka BROKERS
the Kafka protocol to a Kafka listener (franz-go clients), with the same
figures.

Run 'strata bench <subcommand> --help' for the flags.
`

func runBench(ctx context.Context, c *cli, args []string) error {
	return runSubcommand(ctx, c, "strata bench", benchHelp, []command{
		{name: "produce", run: runBenchProduce},
		{name: "consume", run: runBenchConsume},
		{name: "e2e", run: runBenchE2E},
		{name: "store", run: runBenchStore},
	}, args)
}

// benchFlags are the flags the client benchmarks share.
type benchFlags struct {
	client     clientFlags
	kafka      string
	linger     time.Duration
	topic      string
	partitions int
	keep       bool
	producers  int
	consumers  int
	recordSize byteSize
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	batch      int
	inflight   int
	json       bool
	progress   bool
	metrics    string
	gzip       string
}

func (f *benchFlags) register(fs *flag.FlagSet, warmup time.Duration) {
	f.client.register(fs)
	fs.StringVar(&f.kafka, "kafka", "", "speak the Kafka protocol (franz-go) to the listener at `BROKERS` (host:port, comma-separated) instead of Connect to --addr")
	fs.DurationVar(&f.linger, "linger", 0, "with --kafka: how long a producer waits for more records of a partition before sending (franz-go ProducerLinger); a --batch group is sent whole either way")
	fs.StringVar(&f.topic, "topic", "", "`TOPIC` to use; created if missing (default: a new topic bench-<random>, deleted afterwards)")
	fs.IntVar(&f.partitions, "partitions", 16, "partitions of a topic the benchmark creates")
	fs.BoolVar(&f.keep, "keep", false, "keep the topic the benchmark created")
	fs.IntVar(&f.producers, "producers", 4, "producers, each with its own connection and ProduceStream (--api batch: ProduceBatchesStream)")
	fs.IntVar(&f.consumers, "consumers", 4, "consumers, each reading its share of the partitions")
	f.recordSize = 1024
	fs.Var(&f.recordSize, "record-size", "value bytes per record (at least 8: the send time goes first)")
	fs.Float64Var(&f.rate, "rate", 0, "records/s across all producers; 0 sends as fast as acknowledgements allow")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time, after the warm-up")
	fs.DurationVar(&f.warmup, "warmup", warmup, "time run before measuring; its results are dropped")
	fs.IntVar(&f.batch, "batch", 100, "records per produce request (with --kafka: records handed to one partition at once)")
	fs.IntVar(&f.inflight, "max-inflight", 16, "produce requests each producer has sent and not yet had answered")
	fs.BoolVar(&f.json, "json", false, "print one JSON object with the results to stdout")
	fs.BoolVar(&f.progress, "progress", false, "print a progress line to stderr every second even when stderr is not a terminal")
	fs.StringVar(&f.gzip, "compression", "none", "response compression the clients accept: none, or gzip (what connect clients accept by default; the records are random, so it only costs CPU); with --kafka or --api batch, the produced batches' compression too")
	fs.StringVar(&f.metrics, "metrics", "", "the agent's metrics `URL` (http://host:7071/metrics): report its store requests, index commits and CPU during the measurement")
}

// config is the harness's view of the flags. Over Connect, each producer
// and consumer dials as --addr and --protocol say, accepting compressed
// responses only with --compression gzip.
func (f *benchFlags) config(c *cli, fs *flag.FlagSet) (bench.Config, error) {
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	cfg := bench.Config{
		Linger:          f.linger,
		Topic:           f.topic,
		Partitions:      f.partitions,
		PartitionsGiven: given["partitions"],
		Keep:            f.keep,
		Producers:       f.producers,
		Consumers:       f.consumers,
		RecordSize:      int64(f.recordSize),
		Rate:            f.rate,
		Duration:        f.duration,
		Warmup:          f.warmup,
		Batch:           f.batch,
		Inflight:        f.inflight,
		Compression:     f.gzip,
		Metrics:         f.metrics,
		Progress:        f.progress || isTerminal(c.stderr),
		Stderr:          c.stderr,
	}
	if f.kafka == "" {
		if given["linger"] {
			return cfg, usagef(fs.Name(), "--linger: only with --kafka")
		}
		cfg.Dial = func() (*bench.Conn, error) { return f.dial(fs) }
		return cfg, nil
	}
	for _, name := range []string{"addr", "protocol"} {
		if given[name] {
			return cfg, usagef(fs.Name(), "--%s: not used with --kafka (give one or the other)", name)
		}
	}
	for b := range strings.SplitSeq(f.kafka, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Kafka = append(cfg.Kafka, b)
		}
	}
	if len(cfg.Kafka) == 0 {
		return cfg, usagef(fs.Name(), "--kafka %q: want host:port of a Kafka listener", f.kafka)
	}
	return cfg, nil
}

// dial connects over Connect as --addr and --protocol say.
func (f *benchFlags) dial(fs *flag.FlagSet) (*bench.Conn, error) {
	cl, err := f.client.dial(fs)
	if err != nil {
		return nil, err
	}
	conn := &bench.Conn{Addr: cl.addr, Admin: cl.admin, Producer: cl.producer, Consumer: cl.consumer, Explain: cl.explain, Close: cl.close}
	if f.gzip == "gzip" {
		return conn, nil
	}
	opts := []connect.ClientOption{connect.WithAcceptCompression("gzip", nil, nil)}
	switch f.client.protocol {
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	}
	hc := &http.Client{Transport: cl.transport}
	conn.Producer = stratav1connect.NewProducerServiceClient(hc, cl.addr, opts...)
	conn.Consumer = stratav1connect.NewConsumerServiceClient(hc, cl.addr, opts...)
	return conn, nil
}

// registerStreamAPI registers produce's and e2e's --api.
func registerStreamAPI(fs *flag.FlagSet) *string {
	return fs.String("api", "stream", "Connect calls to drive: stream (ProduceStream, Subscribe) or batch (Kafka record batches on ProduceBatchesStream, FetchBatches); not with --kafka")
}

// streamAPI sets cfg.Batches from produce's and e2e's --api.
func streamAPI(fs *flag.FlagSet, f *benchFlags, api string, cfg *bench.Config) error {
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == "api" })
	switch {
	case given && f.kafka != "":
		return usagef(fs.Name(), "--api %q: not used with --kafka (the Kafka clients' calls are Kafka's)", api)
	case api != "stream" && api != "batch":
		return usagef(fs.Name(), "--api %q: want stream or batch", api)
	}
	cfg.Batches = api == "batch"
	return nil
}

// benchErr turns the harness's errors into the CLI's: a bad setting points
// at --help.
func benchErr(cmd string, err error) error {
	var fe *bench.FlagError
	switch {
	case errors.As(err, &fe):
		return usagef(cmd, "%v", fe.Err)
	case errors.Is(err, bench.ErrInterrupted):
		return errInterrupted
	}
	return err
}

// finish prints r as --json or a summary.
// finish prints the result, and fails the command (exit 1) when a flow
// moved nothing because every request failed, so scripts can tell.
func finish(c *cli, f *benchFlags, r *bench.Result) error {
	if f.json {
		if err := writeJSON(c.stdout, r); err != nil {
			return err
		}
	} else {
		bench.PrintSummary(c.stdout, r)
	}
	return r.Failed()
}

// parseBench parses a client benchmark's flags into f.
func parseBench(c *cli, fs *flag.FlagSet, f *benchFlags, help string, args []string) (bench.Config, error) {
	positional, err := c.parseFlags(fs, help, args)
	if err != nil {
		return bench.Config{}, err
	}
	if err := noArgs(fs.Name(), positional); err != nil {
		return bench.Config{}, err
	}
	return f.config(c, fs)
}

func runBenchProduce(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench produce"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 2*time.Second)
	fs.Lookup("consumers").Usage = "unused by produce"
	api := registerStreamAPI(fs)
	cfg, err := parseBench(c, fs, &f, benchProduceHelp, args)
	if err != nil {
		return err
	}
	if err := streamAPI(fs, &f, *api, &cfg); err != nil {
		return err
	}
	r, err := bench.Produce(ctx, cfg)
	if err != nil {
		return benchErr(cmd, err)
	}
	return finish(c, &f, r)
}

func runBenchConsume(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench consume"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 0)
	fs.Lookup("duration").DefValue = "1m0s"
	f.duration = time.Minute
	backlog := byteSize(256 << 20)
	fs.Var(&backlog, "backlog-bytes", "record bytes to write before reading, when the topic is new or the flag is given")
	api := fs.String("api", "subscribe", "read with subscribe, fetch (one partition per call) or batch (FetchBatches: Kafka record batches of all the reader's partitions per call; the backlog is then written with ProduceBatchesStream); not with --kafka: Kafka readers Fetch")
	fetchBytes := byteSize(1 << 20)
	fs.Var(&fetchBytes, "fetch-bytes", "max_bytes of each Fetch or Subscribe message; with --api batch or --kafka, of each partition in a fetch (Kafka's max.partition.fetch.bytes)")
	fetchMaxBytes := byteSize(50 << 20)
	fs.Var(&fetchMaxBytes, "fetch-max-bytes", "with --api batch or --kafka: the most bytes of a fetch over all its partitions (Kafka's fetch.max.bytes; the agent lowers it to its --max-fetch-bytes)")
	cfg, err := parseBench(c, fs, &f, benchConsumeHelp, args)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	o := bench.ConsumeOptions{API: *api, FetchBytes: int64(fetchBytes), FetchMaxBytes: int64(fetchMaxBytes),
		BacklogBytes: int64(backlog), BacklogGiven: given["backlog-bytes"]}
	if f.kafka != "" && !given["api"] {
		o.API = "" // Kafka readers Fetch; an --api given is refused
	}
	if given["fetch-max-bytes"] && f.kafka == "" && o.API != "batch" {
		return usagef(cmd, "--fetch-max-bytes: only with --api batch or --kafka (--api %s reads one message at a time: give --fetch-bytes)", o.API)
	}
	if fetchMaxBytes < 1 {
		return usagef(cmd, "--fetch-max-bytes %d: want 1 to 1GiB", int64(fetchMaxBytes))
	}
	r, err := bench.Consume(ctx, cfg, o)
	if err != nil {
		return benchErr(cmd, err)
	}
	return finish(c, &f, r)
}

func runBenchE2E(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench e2e"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f benchFlags
	f.register(fs, 2*time.Second)
	api := registerStreamAPI(fs)
	cfg, err := parseBench(c, fs, &f, benchE2EHelp, args)
	if err != nil {
		return err
	}
	if err := streamAPI(fs, &f, *api, &cfg); err != nil {
		return err
	}
	r, err := bench.E2E(ctx, cfg)
	if err != nil {
		return benchErr(cmd, err)
	}
	return finish(c, &f, r)
}

func runBenchStore(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata bench store"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	storeURL := fs.String("store", "", "object store `URL`, as for strata agent")
	indexURL := fs.String("index", "", "index `URL`, as for strata agent (redis://...); empty skips the Redis phases")
	objectSize := byteSize(8 << 20)
	fs.Var(&objectSize, "object-size", "bytes per object (default: the agent's --segment-max-bytes default)")
	blockSize := byteSize(1 << 20)
	fs.Var(&blockSize, "block-size", "ranged GET size of the get_range_block phase (the agent's --cache-block-bytes)")
	concurrency := fs.Int("concurrency", 4, "requests in flight in each phase (the agent's --max-concurrent-uploads is 4)")
	duration := fs.Duration("duration", 5*time.Second, "time of each phase")
	jsonOut := fs.Bool("json", false, "print one JSON object with the results to stdout")
	progress := fs.Bool("progress", false, "print a progress line to stderr every second even when stderr is not a terminal")
	watchPID := fs.Int("watch-pid", 0, "report the CPU use of process `PID` (the store's server, on this machine) in the store phases (Linux)")
	watchIndexPID := fs.Int("watch-index-pid", 0, "report the CPU use of process `PID` (redis-server, on this machine) in the Redis phases (Linux)")
	positional, err := c.parseFlags(fs, benchStoreHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	res, err := bench.Store(ctx, bench.StoreConfig{
		Store: *storeURL, Index: *indexURL, ObjectSize: int64(objectSize), BlockSize: int64(blockSize),
		Concurrency: *concurrency, Duration: *duration, WatchPID: *watchPID, WatchIndexPID: *watchIndexPID,
		Progress: *progress || isTerminal(c.stderr), Stderr: c.stderr,
	})
	if err != nil {
		return benchErr(cmd, err)
	}
	if *jsonOut {
		return writeJSON(c.stdout, res)
	}
	bench.PrintStoreSummary(c.stdout, res)
	return nil
}

const benchProduceHelp = `Usage: strata bench produce [flags]

Runs --producers producers against the agent for --warmup then --duration,
and reports the acknowledged throughput and the ack latency: the time from
a request being due (rate-limited) or sent (--rate 0) to its answer, which
comes once the records are in the store and committed to the index.

Each producer has its own connection and ProduceStream with up to
--max-inflight requests of --batch records unanswered. Records have no key:
the agent puts each request's records in one partition, moving on per
request. With --rate the producers share the rate evenly; with --rate 0
they send as fast as answers come back.

The topic is --topic if it exists, created with --partitions if it does
not; without --topic a new topic bench-<random> is created and deleted at
the end (--keep keeps it).

With --api batch each producer sends on one ProduceBatchesStream instead:
each request is one Kafka record batch (v2) of --batch records, encoded
(and with --compression gzip compressed) by the producer, for one
partition, the partitions taken round robin, up to --max-inflight
unanswered. Not idempotent, as ProduceStream's requests are not. Errors
count requests, by Connect code (a partition's error's too).

With --kafka BROKERS the producers are franz-go clients of a Kafka
listener (idempotent, acks=all). Each hands --batch records to one
partition at a time, round robin, with up to --max-inflight such groups
unacknowledged; a group's latency is that of its last record. --linger and
--compression set the client's linger and batch compression. Errors count
records, by Kafka error name (MESSAGE_TOO_LARGE, ...).

Examples:
  strata bench produce --duration 30s
  strata bench produce --rate 50000 --record-size 512 --json
  strata bench produce --metrics http://127.0.0.1:7071/metrics
  strata bench produce --api batch
  strata bench produce --kafka 127.0.0.1:9092 --linger 5ms
`

const benchConsumeHelp = `Usage: strata bench consume [flags]

Reads a backlog from its start as fast as the agent serves it and reports
the read throughput (catch-up consumption). The backlog is the topic's
records when the run begins: an existing --topic as it is, or, for a new
topic (or with --backlog-bytes on an existing one), what the producers
write first, as fast as they can, unmeasured.

--consumers readers share the partitions. With --api subscribe (the
default) each reads its partitions over one Subscribe stream, and the
latency column is the time between messages; with --api fetch each reads
its partitions one Fetch at a time, and the latency is per Fetch. With
--api batch each reads all its partitions with one FetchBatches call at a
time (whole Kafka record batches, --fetch-bytes per partition and
--fetch-max-bytes per call), counting the records from the batch headers;
the latency is per call, and a backlog written first is written with
ProduceBatchesStream. With --kafka BROKERS each reader is a franz-go
client fetching its partitions directly (no group) from their log start
offsets, --fetch-bytes per partition and --fetch-max-bytes per Fetch (as
Kafka's max.partition.fetch.bytes and fetch.max.bytes), and the latency is
the time between polls; --api is not used.

The run ends when the backlog is read or --duration passes; --warmup
(default 0) drops the first part of it from the results.

To measure reads from the object store rather than from the writing
agent's cache, fill the backlog through one agent and read it through
another, or restart the agent in between (see scripts/bench.sh).

Examples:
  strata bench consume --backlog-bytes 1GiB
  strata bench consume --topic orders --api fetch --json
  strata bench consume --api batch --backlog-bytes 1GiB
  strata bench consume --kafka 127.0.0.1:9092 --backlog-bytes 1GiB
`

const benchE2EHelp = `Usage: strata bench e2e [flags]

Runs --consumers Subscribe streams following the topic from its end, each
on its share of the partitions, then --producers producers at --rate
records/s, and reports the produce-to-consume latency: the time from a
record being due at its producer to its arrival at a consumer (a record is
visible once its segment is committed, so this is at least the ack
latency). Producer ack latency and both throughputs are reported too.

With --api batch the producers are as for strata bench produce --api
batch, and each consumer long-polls FetchBatches over its partitions from
the high watermarks before any producer sends. With --kafka BROKERS the
consumers are franz-go clients fetching their partitions directly from the
high watermarks listed before any producer sends, and the producers are as
for strata bench produce --kafka.

The default --rate 0 produces flat out, which measures latency under
overload; give a rate below the agent's maximum (see strata bench produce)
for the latency at that load.

Examples:
  strata bench e2e --rate 20000
  strata bench e2e --rate 5000 --consumers 1 --json
  strata bench e2e --api batch --rate 20000
  strata bench e2e --kafka 127.0.0.1:9092 --rate 20000
`

const benchStoreHelp = `Usage: strata bench store --store URL [--index URL] [flags]

Measures what the object store and the index give without an agent, with
the agent's own clients, so the agent's numbers can be read as a fraction
of them. Each phase runs --concurrency workers for --duration:

  put               create-only PUTs of --object-size objects
  get               whole GETs of the objects the put phase wrote
  get_range_64k     ranged GETs of 64 KiB at random aligned offsets
  get_range_block   ranged GETs of --block-size (the agent's cache block)
  redis_ping        PING round trips (with --index)
  redis_eval        one EVALSHA per pipeline, a script shaped like a
                    segment commit's (with --index)

The objects go under bench-store/<random>/ and are deleted at the end; the
Redis keys are under strata-bench:* and deleted too. Store credentials come
from the environment as for the agent (AWS_ACCESS_KEY_ID, ...).

Examples:
  strata bench store --store 's3://strata?endpoint=127.0.0.1:9000&insecure=true' --index redis://127.0.0.1:6379/0
  strata bench store --store file:///tmp/bucket --object-size 4MiB --json
`
