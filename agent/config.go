package agent

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"go.yaml.in/yaml/v3"
)

// Config is an agent's configuration. Every field has a flag, an
// environment variable (STRATA_ plus the flag name in upper case with
// dashes as underscores) and a YAML key; RegisterFlags holds the defaults and
// the help text in one place.
type Config struct {
	// Listen is the address of the API port (Connect, gRPC, gRPC-web).
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are the PEM files of the API port's certificate
	// (the leaf first, then any intermediates) and its private key. With
	// both set the API port speaks TLS only, HTTP/2 negotiated through ALPN
	// (RFC 7301) or HTTP/1.1; with neither it speaks plaintext HTTP/1.1 and
	// h2c. Browsers use HTTP/2 only over TLS, and HTTP/1.1 allows them six
	// connections per origin, so a page holding six Subscribe streams over
	// plaintext cannot make another call. A pair that does not load stops
	// the agent at start; later the files are read again when they change
	// (certReloader), so a renewal needs no restart.
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	// AdminListen is the address of the metrics and pprof port; "" disables it.
	AdminListen string `yaml:"admin-listen"`
	// AdvertiseAddr is how others reach this agent; defaults to Listen.
	AdvertiseAddr string `yaml:"advertise-addr"`
	// AgentID names the agent in the index's registry and in segment keys.
	AgentID string `yaml:"agent-id"`
	// KafkaListen is the address of the Kafka listener (the Kafka wire
	// protocol, package kafka); "" serves none. The agent itself only
	// registers KafkaAdvertise; the command binds the listener.
	KafkaListen string `yaml:"kafka-listen"`
	// KafkaAdvertise is the host:port Kafka clients are told to reach this
	// agent at (Metadata's brokers); the command defaults it to the bound
	// Kafka listener, its host taken from AdvertiseAddr when it listens on
	// every interface. "" with KafkaListen set is filled by the command.
	KafkaAdvertise string `yaml:"kafka-advertise"`
	// Zone is the agent's availability zone, Kafka's broker.rack: a Kafka
	// client naming a zone in its client id (zone=...) is given the agents
	// of its zone. "" for none.
	Zone string `yaml:"zone"`

	// Store is the object store URL (file://, s3://, s3+aws://, memory://).
	Store string `yaml:"store"`
	// Index is the metadata index URL (redis://, redis+cluster://, memory://).
	Index string `yaml:"index"`

	// FlushInterval is the longest a record waits in the open segment.
	FlushInterval time.Duration `yaml:"flush-interval"`
	// SegmentMaxBytes seals the open segment when it reaches this size.
	SegmentMaxBytes int `yaml:"segment-max-bytes"`
	// MaxBufferedBytes bounds record bytes buffered or in flight; past it a
	// produce waits up to ProduceQueueTimeout, then fails ResourceExhausted.
	MaxBufferedBytes int64 `yaml:"max-buffered-bytes"`
	// ProduceQueueTimeout is how long a produce waits for buffer space.
	ProduceQueueTimeout time.Duration `yaml:"produce-queue-timeout"`
	// MaxConcurrentUploads bounds segment uploads in flight.
	MaxConcurrentUploads int `yaml:"max-concurrent-uploads"`
	// CommitTimeout bounds the retries of one segment commit.
	CommitTimeout time.Duration `yaml:"commit-timeout"`

	// MaxRequestBytes caps the size of one request message.
	MaxRequestBytes int `yaml:"max-request-bytes"`
	// CacheBytes is the block cache's size.
	CacheBytes int64 `yaml:"cache-bytes"`
	// CacheBlockBytes is the block size: reads of the store are aligned to it.
	CacheBlockBytes int64 `yaml:"cache-block-bytes"`
	// MaxFetchWait caps a fetch's long poll.
	MaxFetchWait time.Duration `yaml:"max-fetch-wait"`
	// MaxFetchBytes caps the max_bytes of a Fetch or of one Subscribe
	// message, i.e. the encoded size of an answer (one record larger than
	// it still goes alone). The default, 4 MiB less 64 KiB, keeps answers
	// within the 4 MiB a default grpc-go or grpc-java client receives.
	MaxFetchBytes int `yaml:"max-fetch-bytes"`
	// SubscribeKeepAlive is how long a Subscribe stream stays idle before
	// the agent sends a keep-alive message, for streams that ask for no
	// interval of their own; 0 sends none.
	SubscribeKeepAlive time.Duration `yaml:"subscribe-keep-alive"`
	// TopicCacheTTL is how long topic metadata is reused before a re-read.
	TopicCacheTTL time.Duration `yaml:"topic-cache-ttl"`
	// GroupSessionTimeout is a group member's session when it asks for none.
	GroupSessionTimeout time.Duration `yaml:"group-session-timeout"`
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound the session a
	// member may ask for.
	GroupMinSessionTimeout time.Duration `yaml:"group-min-session-timeout"`
	GroupMaxSessionTimeout time.Duration `yaml:"group-max-session-timeout"`
	// GroupHeartbeatInterval is how often members heartbeat (at most a
	// third of their session).
	GroupHeartbeatInterval time.Duration `yaml:"group-heartbeat-interval"`
	// JanitorInterval is how often the agent tries to run a janitor pass
	// (retention, deleted topics, garbage collection); 0 disables it.
	JanitorInterval time.Duration `yaml:"janitor-interval"`
	// TxnReaperInterval is how often the agent tries to abort transactions
	// left open past their timeout (txn_reaper.go); 0 disables it.
	TxnReaperInterval time.Duration `yaml:"txn-reaper-interval"`
	// OrphanGrace is how old a segment object must be before the janitor
	// may delete it; it must exceed a flush's upload and commit time.
	OrphanGrace time.Duration `yaml:"orphan-grace"`
	// UnreferencedGrace is how long a segment stays after its last index
	// entry went, for fetches that looked the entry up before.
	UnreferencedGrace time.Duration `yaml:"unreferenced-grace"`
	// CompactionInterval is how often the agent looks for partitions to
	// compact into the Parquet archive; 0 disables compaction on this agent.
	CompactionInterval time.Duration `yaml:"compaction-interval"`
	// CompactionConcurrency is how many partitions the agent compacts at once.
	CompactionConcurrency int `yaml:"compaction-concurrency"`
	// ArchiveFileBytes bounds an archive file's size (objectlog.ArchiveOptions.FileBytes).
	ArchiveFileBytes int64 `yaml:"archive-file-bytes"`
	// CleanerDedupeBufferBytes bounds the log cleaner's map of key hashes
	// to their latest offsets in one pass (Kafka's
	// log.cleaner.dedupe.buffer.size): a key costs about cleanerKeyBytes.
	CleanerDedupeBufferBytes int64 `yaml:"cleaner-dedupe-buffer-bytes"`
	// OffsetMetadataMaxBytes caps the metadata stored with one committed
	// offset, as Kafka's offset.metadata.max.bytes (default 4096).
	OffsetMetadataMaxBytes int `yaml:"offset-metadata-max-bytes"`
	// CORSOrigins lists the origins browsers may call from, comma
	// separated; "*" allows any, "" turns CORS off.
	CORSOrigins string `yaml:"cors-origins"`
	// CORSAllowedHeaders lists the request headers browsers may send on top
	// of the Connect, gRPC-web and gRPC ones (connectrpc.com/cors), comma
	// separated and case-insensitive; "*" allows any. A preflight asking for
	// a header outside the list is refused, so the browser never sends the
	// call.
	CORSAllowedHeaders string `yaml:"cors-allowed-headers"`
	// CORSExposedHeaders lists the response headers and trailers browser
	// code may read on top of the Connect, gRPC-web and gRPC ones, comma
	// separated; "*" exposes any (for calls without credentials, as the
	// Fetch standard has it).
	CORSExposedHeaders string `yaml:"cors-exposed-headers"`
}

// DefaultConfig is the configuration with every default applied.
func DefaultConfig() Config {
	var c Config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return c
}

// RegisterFlags registers every field's flag with its default and help.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:7070", "API address: Connect, gRPC and gRPC-web on one port")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM `FILE` of the API port's certificate chain; with --tls-key the port speaks TLS (HTTP/2 through ALPN, and HTTP/1.1) instead of plaintext HTTP/1.1 and h2c")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM `FILE` of the private key of --tls-cert")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:7071", "metrics (/metrics) and pprof (/debug/pprof) address; empty disables it")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "address others reach this agent at (default: --listen)")
	fs.StringVar(&c.AgentID, "agent-id", "", "agent id in the registry and segment keys (default: a new ULID)")
	fs.StringVar(&c.KafkaListen, "kafka-listen", "", "Kafka listener address (Kafka clients: kcat, franz-go, librdkafka, Java); empty serves none")
	fs.StringVar(&c.KafkaAdvertise, "kafka-advertise", "", "host:port Kafka clients reach this agent at (default: the Kafka listener's address, with the host of --advertise-addr when it listens on every interface)")
	fs.StringVar(&c.Zone, "zone", "", "availability zone of the agent, Kafka's broker.rack: Kafka clients with zone=ZONE in their client id are given this zone's agents")
	fs.StringVar(&c.Store, "store", "", "object store URL: file:///dir, s3://bucket/prefix?endpoint=host:port, s3+aws://bucket/prefix?region=r, memory://")
	fs.StringVar(&c.Index, "index", "", "metadata index URL: redis://host:6379/0, redis+cluster://h1:p1,h2:p2, memory:///dir")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 100*time.Millisecond, "longest time a record waits before its segment is flushed")
	fs.IntVar(&c.SegmentMaxBytes, "segment-max-bytes", 8<<20, "flush a segment once it holds this many bytes")
	fs.Int64Var(&c.MaxBufferedBytes, "max-buffered-bytes", 256<<20, "record bytes buffered or in flight before produces wait")
	fs.DurationVar(&c.ProduceQueueTimeout, "produce-queue-timeout", 5*time.Second, "how long a produce waits for buffer space before RESOURCE_EXHAUSTED")
	fs.IntVar(&c.MaxConcurrentUploads, "max-concurrent-uploads", 4, "segment uploads in flight at once")
	fs.DurationVar(&c.CommitTimeout, "commit-timeout", 10*time.Second, "how long one segment commit is retried")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", 32<<20, "largest request message accepted")
	fs.Int64Var(&c.CacheBytes, "cache-bytes", 256<<20, "block cache size in bytes")
	fs.Int64Var(&c.CacheBlockBytes, "cache-block-bytes", 1<<20, "block cache block size; store reads are aligned to it")
	fs.DurationVar(&c.MaxFetchWait, "max-fetch-wait", 30*time.Second, "longest long poll a fetch may ask for")
	fs.IntVar(&c.MaxFetchBytes, "max-fetch-bytes", 4<<20-64<<10, "largest answer of a Fetch or Subscribe message, in bytes of its binary protobuf encoding (Connect JSON answers are larger: base64 bytes, about 4/3); a client's larger max_bytes is lowered to it (the default fits gRPC clients' 4 MiB receive limit)")
	fs.DurationVar(&c.SubscribeKeepAlive, "subscribe-keep-alive", 15*time.Second, "send a keep-alive message on a Subscribe stream idle this long, unless the client asks for another interval; 0 disables")
	fs.DurationVar(&c.TopicCacheTTL, "topic-cache-ttl", 2*time.Second, "how long topic metadata is reused")
	fs.DurationVar(&c.GroupSessionTimeout, "group-session-timeout", 45*time.Second, "consumer group session when the member asks for none: a member silent this long loses its partitions")
	fs.DurationVar(&c.GroupMinSessionTimeout, "group-min-session-timeout", time.Second, "shortest session a group member may ask for")
	fs.DurationVar(&c.GroupMaxSessionTimeout, "group-max-session-timeout", 30*time.Minute, "longest session a group member may ask for")
	fs.DurationVar(&c.GroupHeartbeatInterval, "group-heartbeat-interval", 5*time.Second, "how often group members heartbeat (at most a third of their session)")
	fs.DurationVar(&c.JanitorInterval, "janitor-interval", time.Minute, "how often to run the janitor (retention, deleted topics, deleting unreferenced and orphaned segments); one agent at a time runs it; 0 disables it on this agent")
	fs.DurationVar(&c.TxnReaperInterval, "txn-reaper-interval", 10*time.Second, "how often to look for transactions open past their timeout and abort them; one agent at a time does, under a lease; 0 disables it on this agent")
	fs.DurationVar(&c.OrphanGrace, "orphan-grace", time.Hour, "age before the janitor may delete a segment object; must exceed commit-timeout plus a minute (a flush's upload and commit)")
	fs.DurationVar(&c.UnreferencedGrace, "unreferenced-grace", 10*time.Minute, "how long a segment object stays after retention or DeleteRecords removed its last index entry, for fetches in flight")
	fs.DurationVar(&c.CompactionInterval, "compaction-interval", time.Minute, "how often to compact partitions' records older than their topic's archive.after.ms into Parquet archive files; any agent may compact any partition, one at a time per partition (a lease), then to clean compacted topics (cleanup.policy compact); 0 disables both on this agent")
	fs.IntVar(&c.CompactionConcurrency, "compaction-concurrency", 1, "partitions this agent compacts at once")
	fs.Int64Var(&c.ArchiveFileBytes, "archive-file-bytes", 128<<20, "largest archive (Parquet) file the compactor writes, in bytes; the compactor holds one file in memory while it writes it")
	fs.Int64Var(&c.CleanerDedupeBufferBytes, "cleaner-dedupe-buffer-bytes", 128<<20, "memory for the log cleaner's map of key hashes to latest offsets in one pass over a compacted partition (Kafka's log.cleaner.dedupe.buffer.size), in bytes, about 48 per distinct key; a pass cleans as far as its map holds the keys")
	fs.IntVar(&c.OffsetMetadataMaxBytes, "offset-metadata-max-bytes", 4096, "largest metadata a committed offset may carry, in bytes (Kafka's offset.metadata.max.bytes)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", "*", "origins browsers may call the API from, comma separated; empty disables CORS")
	fs.StringVar(&c.CORSAllowedHeaders, "cors-allowed-headers", "authorization", "request headers browsers may send on top of Connect's and gRPC-web's own, comma separated; * allows any")
	fs.StringVar(&c.CORSExposedHeaders, "cors-exposed-headers", "", "response headers browser code may read on top of Connect's and gRPC-web's own, comma separated; * exposes any")
}

// ApplyEnv sets every flag not given on the command line from its
// STRATA_* environment variable. Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	return errors.Join(errs...)
}

// EnvName is the environment variable of a flag: STRATA_FLUSH_INTERVAL for
// --flush-interval.
func EnvName(flagName string) string {
	return "STRATA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c *Config) validate() error {
	if c.AgentID == "" {
		c.AgentID = strings.ToLower(ulid.Make().String())
	}
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.Listen
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.FlushInterval > 0, "flush-interval must be positive, got %s", c.FlushInterval)
	check(c.SegmentMaxBytes >= 1<<10, "segment-max-bytes must be at least 1024, got %d", c.SegmentMaxBytes)
	check(c.MaxBufferedBytes >= int64(c.SegmentMaxBytes), "max-buffered-bytes (%d) must be at least segment-max-bytes (%d)", c.MaxBufferedBytes, c.SegmentMaxBytes)
	check(c.MaxConcurrentUploads >= 1, "max-concurrent-uploads must be at least 1, got %d", c.MaxConcurrentUploads)
	check(c.CommitTimeout > 0, "commit-timeout must be positive")
	check(c.MaxRequestBytes >= 1<<10, "max-request-bytes must be at least 1024")
	check(c.CacheBlockBytes >= 4<<10, "cache-block-bytes must be at least 4096, got %d", c.CacheBlockBytes)
	check(c.CacheBytes >= c.CacheBlockBytes, "cache-bytes must be at least one block")
	check(c.MaxFetchWait >= 0, "max-fetch-wait must not be negative")
	check(c.MaxFetchBytes >= 1<<10 && c.MaxFetchBytes <= math.MaxInt32, "max-fetch-bytes must be between 1024 and %d, got %d", math.MaxInt32, c.MaxFetchBytes)
	check(c.SubscribeKeepAlive == 0 || c.SubscribeKeepAlive >= minKeepAlive, "subscribe-keep-alive must be 0 (off) or at least %s, got %s", minKeepAlive, c.SubscribeKeepAlive)
	check(c.GroupMinSessionTimeout > 0 && c.GroupMinSessionTimeout <= c.GroupMaxSessionTimeout,
		"group-min-session-timeout (%s) must be positive and at most group-max-session-timeout (%s)", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout)
	check(c.GroupSessionTimeout >= c.GroupMinSessionTimeout && c.GroupSessionTimeout <= c.GroupMaxSessionTimeout,
		"group-session-timeout (%s) must be within [%s, %s]", c.GroupSessionTimeout, c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout)
	check(c.GroupHeartbeatInterval > 0, "group-heartbeat-interval must be positive")
	check(c.JanitorInterval >= 0, "janitor-interval must not be negative")
	check(c.TxnReaperInterval >= 0, "txn-reaper-interval must not be negative")
	check(c.CompactionInterval >= 0, "compaction-interval must not be negative")
	check(c.CompactionConcurrency >= 1, "compaction-concurrency must be at least 1, got %d", c.CompactionConcurrency)
	check(c.ArchiveFileBytes >= 1<<20, "archive-file-bytes must be at least 1 MiB (1048576), got %d", c.ArchiveFileBytes)
	check(c.CleanerDedupeBufferBytes >= 1<<20, "cleaner-dedupe-buffer-bytes must be at least 1 MiB (1048576), got %d", c.CleanerDedupeBufferBytes)
	// A flush gives its upload and commit commit-timeout plus a minute; an
	// object younger than that may still be committed.
	check(c.OrphanGrace > c.CommitTimeout+time.Minute, "orphan-grace (%s) must exceed commit-timeout plus a minute (%s)", c.OrphanGrace, c.CommitTimeout+time.Minute)
	check(c.UnreferencedGrace >= 0, "unreferenced-grace must not be negative")
	check(c.ProduceQueueTimeout >= 0, "produce-queue-timeout must not be negative")
	check(c.OffsetMetadataMaxBytes >= 0, "offset-metadata-max-bytes must not be negative, got %d", c.OffsetMetadataMaxBytes)
	check((c.TLSCert == "") == (c.TLSKey == ""), "tls-cert and tls-key go together: got tls-cert %q and tls-key %q", c.TLSCert, c.TLSKey)
	for _, h := range splitList(c.CORSAllowedHeaders) {
		check(isHeaderName(h), "cors-allowed-headers: %q is not an HTTP header name", h)
	}
	for _, h := range splitList(c.CORSExposedHeaders) {
		check(isHeaderName(h), "cors-exposed-headers: %q is not an HTTP header name", h)
	}
	if len(errs) > 0 {
		return fmt.Errorf("agent config: %w", errors.Join(errs...))
	}
	return nil
}

// ApplyFile sets every flag given neither on the command line nor in the
// environment from a YAML file whose keys are flag names (flush-interval:
// 50ms). Precedence: flag, then environment, then file, then default.
func ApplyFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for k, v := range values {
		f := fs.Lookup(k)
		if f == nil {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q", path, k))
			continue
		}
		if set[k] {
			continue
		}
		if _, inEnv := os.LookupEnv(EnvName(k)); inEnv {
			continue
		}
		if err := fs.Set(k, fmt.Sprint(v)); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, k, err))
		}
	}
	return errors.Join(errs...)
}

// splitList splits a comma separated flag value, dropping blanks and the
// spaces around each item.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// isHeaderName reports whether s is an HTTP field name: a token of RFC 9110
// section 5.6.2.
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
