package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/internal/testenv"
)

// TestAgentWaitsForIndexReplicas: with --index-wait-replicas, or its
// STRATA_INDEX_WAIT_REPLICAS variable, an agent whose Redis has no replica
// acknowledges nothing: topic create and produce fail UNAVAILABLE naming the
// missing replicas, and the topic's high watermark stays 0. Not parallel: it sets the
// environment.
func TestAgentWaitsForIndexReplicas(t *testing.T) {
	// Database 2 of the shared standalone server (the coordinator's tests
	// use 0 and 3, the integration tests 4 to 15); topic names are unique.
	index := "redis://" + testenv.RedisAddr(t) + "/2"
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			args := []string{"agent", "--store", "memory://", "--index", index, "--listen", "127.0.0.1:0",
				"--admin-listen", "", "--flush-interval", "10ms", "--commit-timeout", "1s"}
			if how == "env" {
				t.Setenv("STRATA_INDEX_WAIT_REPLICAS", "1")
				t.Setenv("STRATA_INDEX_WAIT_TIMEOUT", "100ms")
			} else {
				args = append(args, "--index-wait-replicas", "1", "--index-wait-timeout", "100ms")
			}
			s := startServer(t, io.Discard, args...)
			addr, _ := servingLog(t, s)
			topic := fmt.Sprintf("waited-%s-%d", how, time.Now().UnixNano())
			// Creating the topic waits too; it fails, but its write ran (and
			// is kept unless a failover loses it), so the topic exists.
			r := strata(t, "", "topic", "create", topic, "--partitions", "1", "--addr", addr)
			if r.code == 0 || !strings.Contains(r.stderr, "0 of 1 replicas acknowledged") || !strings.Contains(strings.ToLower(r.stderr), "unavailable") {
				t.Fatalf("topic create with no replica to wait for: exit %d, stdout %q, stderr %q; want UNAVAILABLE, 0 of 1 replicas", r.code, r.stdout, r.stderr)
			}
			// Not idempotent: allocating a producer id waits too, and the
			// idempotent producer would retry that for its delivery timeout.
			r = strata(t, "lost\n", "produce", topic, "--idempotent=false", "--delivery-timeout", "2s", "--addr", addr)
			if r.code == 0 || !strings.Contains(r.stderr, "0 of 1 replicas acknowledged") || !strings.Contains(strings.ToLower(r.stderr), "unavailable") {
				t.Fatalf("produce with no replica to wait for: exit %d, stdout %q, stderr %q; want UNAVAILABLE, 0 of 1 replicas", r.code, r.stdout, r.stderr)
			}
			out := ok(t, "", "topic", "describe", topic, "--addr", addr)
			if !regexp.MustCompile(`(?m)^\s*0\s+0\s+0\s`).MatchString(out) {
				t.Errorf("topic describe after the failed produce:\n%s\nwant partition 0 with high watermark 0", out)
			}
			if code := s.stop(t); code != 0 {
				t.Errorf("agent exit %d; stderr:\n%s", code, s.stderr)
			}
		})
	}
	// The embedded index has no replicas to wait for. (Bounded: were the
	// flag ignored, dev would serve until the context ends, and exit 0.)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r := strataCtx(ctx, t, "", "dev", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "", "--kafka-listen", "", "--index-wait-replicas", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "embedded index has no replicas") {
		t.Errorf("strata dev --index-wait-replicas 1: exit %d, stderr %q; want 1 and: embedded index has no replicas", r.code, r.stderr)
	}
}
