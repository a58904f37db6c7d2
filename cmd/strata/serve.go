package main

// strata agent and strata dev: both run one agent until SIGINT/SIGTERM (ctx
// ends), then let it flush what it holds before closing the store and the
// index. dev only changes defaults: local storage under --data-dir, an
// agent id kept in --data-dir/agent-id, a short flush interval and text logs.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/kafka/agentcore"
	"github.com/stratabroker/strata/objectlog"
)

const agentHelp = `Usage: strata agent --store URL --index URL [flags]

Runs an agent: the stateless server of the public API (Connect, gRPC and
gRPC-web on one port, --listen) with metrics and pprof on --admin-listen.
Run as many as you like against the same store and index, behind a load
balancer that speaks HTTP/2.

TLS: with --tls-cert and --tls-key the API port speaks TLS only, HTTP/2
(negotiated through ALPN) and HTTP/1.1; without them, plaintext HTTP/1.1
and h2c. Browsers use HTTP/2 only over TLS: give the agent a certificate,
or put it behind a TLS-terminating proxy that speaks HTTP/2 (h2c) to it.
Browser apps may send the headers of --cors-allowed-headers (default:
authorization) on top of Connect's own.

Kafka: with --kafka-listen the agent is also a Kafka broker (Kafka clients:
kcat, franz-go, librdkafka, the Java client) over the same topics and
records; it advertises --kafka-advertise (default: the listener's address).
Give every agent a Kafka listener: each is listed as a broker, and any of
them serves any partition. --zone names the agent's zone (broker.rack).

Settings come from, in order of precedence: flags, the environment
(STRATA_ plus the flag name in upper case, dashes as underscores, e.g.
STRATA_FLUSH_INTERVAL=250ms), the YAML file given with --config (keys are
flag names, e.g. "flush-interval: 250ms"), then the defaults below.

Storage URLs:
  --store  file:///var/lib/strata
           s3://bucket/prefix?endpoint=host:9000&insecure=true   (minio-go)
           s3+aws://bucket/prefix?region=eu-west-1                (AWS SDK)
           memory://                                              (tests)
           S3 credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
           a shared credentials file or an instance role, never the URL.
  --index  redis://host:6379/0, rediss://..., redis+cluster://h1:p1,h2:p2,
           memory:///dir (embedded, persisted in dir), memory://
           The Redis password comes from STRATA_REDIS_PASSWORD.
           With --index-wait-replicas N (or ?wait_replicas=N in the URL)
           every acknowledged index write (segment commits, group offsets
           and state, topics, producer ids, DeleteRecords) waits for N
           replicas (Redis WAIT) before anyone is acked or sees it; on
           Redis Cluster each shard waits for its own replicas.

SIGINT or SIGTERM stops the agent gracefully: it stops accepting requests,
flushes and commits what it holds so waiting producers get their answers,
and exits. A second signal exits at once.

Example:
  strata agent --store 's3://strata/prod?endpoint=minio:9000' \
      --index redis://redis:6379/0 --listen 0.0.0.0:7070
`

const devHelp = `Usage: strata dev [--data-dir DIR] [flags]

Runs a whole Strata in one process for development: an agent with its
object store in DIR/store (files) and its index in DIR/index (an embedded
Redis, saved to disk before every write is acknowledged). Stopping and
starting it again on the same --data-dir keeps every acknowledged record
and topic, and the agent id (DIR/agent-id, created on first start; the
Kafka node id derives from it). --store, --index and --agent-id override
the local defaults.

It is a Kafka broker too, on --kafka-listen (default 127.0.0.1:9092):
  kcat -b 127.0.0.1:9092 -L

It takes every flag of 'strata agent' (see below); the defaults differ:
--flush-interval 50ms, --kafka-listen 127.0.0.1:9092 and --log-format text.

Example:
  strata dev --data-dir /tmp/strata
`

// devKafkaListen is strata dev's Kafka listener, so that
// kcat -b 127.0.0.1:9092 works on the dev broker out of the box.
const devKafkaListen = "127.0.0.1:9092"

// serveFlags are the flags agent and dev share on top of agent.Config's.
type serveFlags struct {
	cfg        agent.Config
	configFile string
	logFormat  string
	logLevel   string
	// waitReplicas and waitTimeout are the index's WAIT after commits
	// (coordinator.Options); waitTimeoutSet tells a given timeout from the
	// default, which leaves the index URL's wait_timeout in force.
	waitReplicas   int
	waitTimeout    time.Duration
	waitTimeoutSet bool
}

func (s *serveFlags) register(fs *flag.FlagSet, logFormat string) {
	s.cfg.RegisterFlags(fs)
	fs.StringVar(&s.configFile, "config", "", "YAML `FILE` of settings keyed by flag name (flags and STRATA_* variables win over it)")
	fs.StringVar(&s.logFormat, "log-format", logFormat, "log format: json or text")
	fs.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&s.waitReplicas, "index-wait-replicas", 0, "Redis replicas that must have every acknowledged index write (WAIT: segment commits, group offsets and state, topics, producer ids, DeleteRecords) before it is acked and readers see it; 0: none (the server's own durability, e.g. appendfsync always)")
	fs.DurationVar(&s.waitTimeout, "index-wait-timeout", time.Second, "how long a write waits for --index-wait-replicas; fewer acknowledgements fail it UNAVAILABLE (a segment commit is retried until --commit-timeout)")
}

// resolve applies the environment and the config file to the flags not
// given on the command line, then checks the logging flags.
func (s *serveFlags) resolve(cmd string, fs *flag.FlagSet) error {
	if err := agent.ApplyEnv(fs); err != nil {
		return usagef(cmd, "%v", err)
	}
	if s.configFile != "" {
		if err := agent.ApplyFile(fs, s.configFile); err != nil {
			return usagef(cmd, "%v", err)
		}
	}
	if err := oneOf(cmd, "log-format", s.logFormat, "json", "text"); err != nil {
		return err
	}
	if s.waitReplicas < 0 {
		return usagef(cmd, "--index-wait-replicas %d: want 0 (no WAIT) or more", s.waitReplicas)
	}
	fs.Visit(func(f *flag.Flag) { s.waitTimeoutSet = s.waitTimeoutSet || f.Name == "index-wait-timeout" })
	if s.waitTimeout < time.Millisecond {
		return usagef(cmd, "--index-wait-timeout %s: want at least 1ms", s.waitTimeout)
	}
	return oneOf(cmd, "log-level", s.logLevel, "debug", "info", "warn", "error")
}

func (s *serveFlags) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s.logLevel)) // checked in resolve
	opts := &slog.HandlerOptions{Level: level}
	if s.logFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func runAgent(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata agent"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var s serveFlags
	s.register(fs, "json")
	positional, err := c.parseFlags(fs, agentHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := s.resolve(cmd, fs); err != nil {
		return err
	}
	if s.cfg.Store == "" {
		return usagef(cmd, "--store is required: the object store URL, e.g. s3://bucket/prefix?endpoint=host:9000 or file:///var/lib/strata (or set STRATA_STORE, or store: in --config)")
	}
	if s.cfg.Index == "" {
		return usagef(cmd, "--index is required: the metadata index URL, e.g. redis://host:6379/0 (or set STRATA_INDEX, or index: in --config)")
	}
	return serve(ctx, c, s, nil)
}

func runDev(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata dev"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var s serveFlags
	s.register(fs, "text")
	// Dev defaults: set the value (not fs.Set, which would count as given
	// on the command line and hide STRATA_FLUSH_INTERVAL) and what --help
	// shows.
	s.cfg.FlushInterval = 50 * time.Millisecond
	fs.Lookup("flush-interval").DefValue = "50ms"
	s.cfg.KafkaListen = devKafkaListen
	fs.Lookup("kafka-listen").DefValue = devKafkaListen
	dataDir := fs.String("data-dir", "./strata-data", "`DIR` for the store (DIR/store) and the index (DIR/index)")
	fs.Lookup("store").Usage += " (default: file://DIR/store)"
	fs.Lookup("index").Usage += " (default: memory://DIR/index)"
	positional, err := c.parseFlags(fs, devHelp, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := s.resolve(cmd, fs); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if s.cfg.Store == "" {
		dir := filepath.Join(abs, "store")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		s.cfg.Store = fileURL(dir)
	}
	if s.cfg.Index == "" {
		dir := filepath.Join(abs, "index")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		s.cfg.Index = "memory://" + filepath.ToSlash(dir)
	}
	if s.cfg.AgentID == "" {
		if s.cfg.AgentID, err = devAgentID(abs); err != nil {
			return err
		}
	}
	return serve(ctx, c, s, func(addr, kafkaAddr string) {
		fmt.Fprint(c.stdout, devBanner(addr, kafkaAddr, *dataDir))
	})
}

// devAgentID returns the agent id kept in dir/agent-id, creating the file
// with a new ULID on first start: the Kafka node id derives from the agent
// id, and a client that cached the broker (kcat, a consumer's metadata)
// expects the same node id after a restart, as Kafka's broker.id or
// meta.properties keeps it (issue 12). The file is written whole (a
// temporary file renamed over it) so a crash never leaves a half id.
func devAgentID(dir string) (string, error) {
	path := filepath.Join(dir, "agent-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("%s is empty: delete it for a new agent id, or give --agent-id", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the dev agent id: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	id := strings.ToLower(ulid.Make().String())
	tmp, err := os.CreateTemp(dir, "agent-id.*")
	if err != nil {
		return "", fmt.Errorf("write the dev agent id: %w", err)
	}
	_, werr := tmp.WriteString(id + "\n")
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("write the dev agent id: %w", werr)
	}
	return id, nil
}

// fileURL is the file:// URL of an absolute path.
func fileURL(path string) string {
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // C:/dir on Windows
	}
	return "file://" + p
}

// devBanner tells where the broker is and how to try it; kafkaAddr is the
// Kafka listener's advertised address, "" for none.
func devBanner(addr, kafkaAddr, dataDir string) string {
	flag := ""
	if addr != defaultAddr {
		flag = " --addr " + addr
	}
	kafka := ""
	if kafkaAddr != "" {
		kafka = fmt.Sprintf("Kafka: kcat -b %s -L\n", kafkaAddr)
	}
	return fmt.Sprintf(`Strata dev broker listening on %s (data in %s)
Try:  strata topic create demo --partitions 3%s
      echo hello | strata produce demo%s
      strata consume demo --from earliest%s
%sStop with Ctrl-C; everything acknowledged is kept in %s.
`, addr, dataDir, flag, flag, flag, kafka, dataDir)
}

// indexOptions are the index's options from the flags. Unset, they leave
// the index URL's wait_replicas and wait_timeout in force.
func (s *serveFlags) indexOptions() coordinator.Options {
	o := coordinator.Options{WaitReplicas: s.waitReplicas}
	if s.waitTimeoutSet {
		o.WaitTimeout = s.waitTimeout.Milliseconds()
	}
	return o
}

// storeProbeTimeout bounds the store check at startup.
const storeProbeTimeout = 10 * time.Second

// probeStore reads one object that need not exist, so that an agent whose
// bucket does not exist fails at startup, naming the fix, rather than
// serving and failing every produce after its delivery timeout. A store
// that does not answer is only logged: it may be on its way up, and the
// write path retries.
func probeStore(ctx context.Context, bucket objectlog.Bucket, log *slog.Logger) error {
	pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	defer cancel()
	rc, err := bucket.GetRange(pctx, "strata-startup-probe", 0, 1)
	switch {
	case err == nil:
		_ = rc.Close()
	case errors.Is(err, objectlog.ErrNoBucket):
		return fmt.Errorf("open store: %w (create the bucket, or add create_bucket=true to the --store URL)", err)
	case !errors.Is(err, objectlog.ErrNotFound) && !errors.Is(err, objectlog.ErrInvalidRange):
		log.Warn("the store did not answer at startup; serving anyway, writes retry", "err", err)
	}
	return nil
}

// serve runs one agent until ctx ends. listening, if not nil, is told the
// API's URL and the advertised Kafka address ("" for none) once the ports
// are bound.
func serve(ctx context.Context, c *cli, s serveFlags, listening func(addr, kafkaAddr string)) (err error) {
	log := s.logger(c.stderr)
	bucket, err := objectlog.OpenBucket(ctx, s.cfg.Store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if cerr := bucket.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	if err := probeStore(ctx, bucket, log); err != nil {
		return err
	}
	index, err := coordinator.Open(ctx, s.cfg.Index, s.indexOptions())
	if err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	// Closed last: the agent's final flush commits to it, and the embedded
	// index writes its last snapshot on Close.
	defer func() {
		if cerr := index.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close index: %w", cerr)
		}
	}()
	ls, err := connectapi.Listen(s.cfg)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w (is another agent or `strata dev` running? choose another port with --listen, or --admin-listen for the admin port)", err)
		}
		return err
	}
	closeListeners := func() {
		ls.API.Close()
		if ls.Admin != nil {
			ls.Admin.Close()
		}
	}
	var kl net.Listener
	if s.cfg.KafkaListen != "" {
		if kl, err = net.Listen("tcp", s.cfg.KafkaListen); err != nil {
			closeListeners()
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("kafka listener: %w (is another agent, `strata dev` or a Kafka broker running? choose another port with --kafka-listen, or turn it off with --kafka-listen '')", err)
			}
			return fmt.Errorf("kafka listener: %w", err)
		}
		if s.cfg.KafkaAdvertise == "" {
			s.cfg.KafkaAdvertise = kafkaAdvertise(kl.Addr(), s.cfg.AdvertiseAddr, s.cfg.Listen)
		}
	}
	a, err := agent.New(ctx, s.cfg, bucket, index, log)
	if err != nil {
		closeListeners()
		if kl != nil {
			kl.Close()
		}
		return err
	}
	if kl != nil {
		stop, err := serveKafka(ctx, a, kl, log)
		if err != nil {
			closeListeners()
			kl.Close()
			_ = a.Close(context.WithoutCancel(ctx))
			return err
		}
		defer stop()
	}
	if listening != nil {
		listening(apiURL(ls.API.Addr(), ls.TLS != nil), s.cfg.KafkaAdvertise)
	}
	if err := connectapi.Serve(ctx, a, ls); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("agent stopped")
	return nil
}

// serveKafka serves the Kafka listener over the agent until ctx ends; stop
// waits for it to be closed.
func serveKafka(ctx context.Context, a *agent.Agent, l net.Listener, log *slog.Logger) (stop func(), err error) {
	core, err := agentcore.New(ctx, a, log)
	if err != nil {
		return nil, fmt.Errorf("kafka listener: %w", err)
	}
	srv, err := kafka.NewServer(core, kafka.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("kafka listener: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, kafka.ErrServerClosed) {
			log.Error("kafka listener failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("kafka listener serving", "kafka", l.Addr().String(), "advertise", a.KafkaAdvertise(), "node_id", a.NodeID())
	return func() { srv.Close(); <-done }, nil
}

// kafkaAdvertise is the Kafka address to register when --kafka-advertise
// is not given: the bound listener's, with the host of --advertise-addr
// (else --listen) when it listens on every interface, else the machine's
// host name.
func kafkaAdvertise(bound net.Addr, advertise, listen string) string {
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return bound.String()
	}
	if tcp.IP != nil && !tcp.IP.IsUnspecified() {
		return tcp.String()
	}
	port := fmt.Sprint(tcp.Port)
	for _, a := range []string{advertise, listen} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				return net.JoinHostPort(h, port)
			}
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return net.JoinHostPort(h, port)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// apiURL is the URL clients on this machine use to reach a listener: an
// unspecified address (0.0.0.0, ::) is reached through loopback; https
// when the port speaks TLS.
func apiURL(addr net.Addr, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return scheme + addr.String()
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}
