package agentcore

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/objectlog"
)

// benchCluster is what benchAgents started: the agents' Kafka addresses
// and, on redis-server, the index's address (empty on the embedded index).
type benchCluster struct {
	addrs     []string
	redisAddr string
}

// benchBackend is what the agents of a benchmark store into.
type benchBackend int

const (
	// backendDefault is an in-memory bucket and kafkaAgents' index:
	// redis-server under scripts/test-services.sh, else the embedded one.
	backendDefault benchBackend = iota
	// backendMemory is an in-memory bucket and the embedded index, with or
	// without the services.
	backendMemory
	// backendMinIO is a MinIO bucket of the benchmark's own and
	// redis-server: it needs scripts/test-services.sh.
	backendMinIO
)

// benchAgents starts n agents, each a Kafka broker on a loopback port, over
// one index and one bucket, as kafkaAgents does, on the backend given;
// configure, when not nil, changes every agent's config (after the test
// defaults: 5ms flushes). On redis-server the index has a key prefix of
// the benchmark's own.
func benchAgents(b *testing.B, n int, backend benchBackend, configure func(*agent.Config)) benchCluster {
	b.Helper()
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	name := fmt.Sprintf("bench-agentcore-%x", suffix)
	var c benchCluster
	url, opts := "memory://", coordinator.Options{}
	minio := backend == backendMinIO
	if backend == backendDefault && os.Getenv("STRATA_TEST_REDIS_ADDR") != "" || minio {
		c.redisAddr = testenv.RedisAddr(b)
		url, opts.Prefix = "redis://"+c.redisAddr, name+":"
	}
	index, err := coordinator.Open(b.Context(), url, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = index.Close() })
	var store objectlog.Bucket = objectlog.NewMemBucket()
	if minio {
		s3 := testenv.MinIO(b)
		store, err = objectlog.NewMinioBucket(b.Context(), objectlog.MinioConfig{
			Bucket: name, Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
			Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cfg := agent.DefaultConfig()
		cfg.AgentID, cfg.KafkaAdvertise = fmt.Sprintf("agent-%d", i), l.Addr().String()
		cfg.AdminListen = ""
		cfg.FlushInterval = 5 * time.Millisecond
		if configure != nil {
			configure(&cfg)
		}
		a, err := agent.New(b.Context(), cfg, store, index, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.Close(ctx)
		})
		core, err := New(b.Context(), a, nil)
		if err != nil {
			b.Fatal(err)
		}
		srv, err := kafka.NewServer(core, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		b.Cleanup(func() { srv.Close(); <-done })
		c.addrs = append(c.addrs, l.Addr().String())
	}
	return c
}
