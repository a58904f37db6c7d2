package coordinator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
)

// useIndex proves an opened index works: a topic, a commit, a lookup.
func useIndex(t *testing.T, r *coordinator.Redis) {
	t.Helper()
	tp := createTopic(t, r, "t", 2)
	wantOffsets(t, commit(t, r, segment(tp.ID, 1, plain(0, 10, 2, 1)))[0], 0)
	if es, _, err := r.Lookup(t.Context(), tp.ID, 1, 1, 100); err != nil || len(es) != 1 {
		t.Fatalf("Lookup: %v %v", es, err)
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := t.Context()
	for _, u := range []string{
		"redis://" + testenv.RedisAddr(t) + "/0",
		"redis://" + testenv.RedisAddr(t) + "/3?dial_timeout=2s",
		"redis+cluster://" + strings.Join(testenv.RedisClusterAddrs(t), ","),
		"redis+cluster://" + strings.Join(testenv.RedisClusterAddrs(t), ",") + "/?read_timeout=2s",
		// Strata's own options, next to go-redis's.
		"redis://" + testenv.RedisAddr(t) + "/0?wait_replicas=0&dial_timeout=2s&wait_timeout=2s",
		"redis+cluster://" + strings.Join(testenv.RedisClusterAddrs(t), ",") + "?wait_timeout=500ms",
		"memory://",
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			r, err := coordinator.Open(ctx, u, coordinator.Options{Prefix: uniquePrefix(t)})
			if err != nil {
				t.Fatalf("Open(%q): %v", u, err)
			}
			defer r.Close()
			useIndex(t, r)
		})
	}
}

func TestOpenMemoryPersisted(t *testing.T) {
	dir := t.TempDir()
	r, err := coordinator.Open(t.Context(), "memory://"+dir, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	useIndex(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = coordinator.Open(t.Context(), "memory://"+dir, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.DescribeTopic(t.Context(), "t"); err != nil {
		t.Fatalf("topic lost across reopen: %v", err)
	}
	// memory:// without a directory starts empty every time.
	m, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if l, err := m.ListTopics(t.Context()); err != nil || len(l) != 0 {
		t.Fatalf("memory:// is not empty: %v %v", l, err)
	}
}

func TestOpenInvalidURLs(t *testing.T) {
	for _, u := range []string{
		"localhost:6379",
		"ftp://host/x",
		"memory://relative/dir",
		"memory:///dir?sync=1",
		"redis+cluster://",
		"redis+cluster://a:1,,b:2",
		"redis+cluster://a:1/3",
		"redis://host:notaport",
	} {
		if _, err := coordinator.Open(t.Context(), u, coordinator.Options{}); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", u, err)
		}
	}
	// A well-formed URL to nothing is unavailable, not invalid.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := coordinator.Open(ctx, "redis://127.0.0.1:1", coordinator.Options{}); !errors.Is(err, coordinator.ErrUnavailable) {
		t.Errorf("Open to a closed port: %v, want ErrUnavailable", err)
	}
}

// TestOpenPassword: the password comes from the URL or, when the URL has
// none, from $STRATA_REDIS_PASSWORD. (t.Setenv: not parallel.)
func TestOpenPassword(t *testing.T) {
	m := miniredis.RunT(t)
	m.RequireAuth("sekret")
	ctx := t.Context()
	t.Setenv(coordinator.PasswordEnv, "")
	if _, err := coordinator.Open(ctx, "redis://"+m.Addr(), coordinator.Options{}); err == nil {
		t.Fatal("Open without a password succeeded")
	}
	t.Setenv(coordinator.PasswordEnv, "sekret")
	r, err := coordinator.Open(ctx, "redis://"+m.Addr(), coordinator.Options{})
	if err != nil {
		t.Fatalf("password from the environment: %v", err)
	}
	useIndex(t, r)
	_ = r.Close()
	t.Setenv(coordinator.PasswordEnv, "wrong")
	r, err = coordinator.Open(ctx, "redis://:sekret@"+m.Addr(), coordinator.Options{})
	if err != nil {
		t.Fatalf("password from the URL: %v", err)
	}
	_ = r.Close()
	_, err = coordinator.Open(ctx, "redis://:wrong@"+m.Addr(), coordinator.Options{})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("bad password: %v (the error must not show the password)", err)
	}
}

// TestOpenTLS: rediss:// speaks TLS (here to miniredis with a throwaway
// self-signed certificate, hence skip_verify).
func TestOpenTLS(t *testing.T) {
	m := miniredis.NewMiniRedis()
	if err := m.StartTLS(selfSignedTLS(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	r, err := coordinator.Open(t.Context(), "rediss://"+m.Addr()+"?skip_verify=true", coordinator.Options{})
	if err != nil {
		t.Fatalf("rediss://: %v", err)
	}
	defer r.Close()
	useIndex(t, r)
	// Certificates are verified by default.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := coordinator.Open(ctx, "rediss://"+m.Addr(), coordinator.Options{}); err == nil {
		t.Fatal("an unverifiable certificate was accepted")
	}
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// TestOpenRefusesBadWaitOptions: WAIT's settings are checked before anything
// is dialled, and the embedded index, which has no replicas, refuses them.
func TestOpenRefusesBadWaitOptions(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts coordinator.Options
		want string
	}{
		{"redis://127.0.0.1:1/0?wait_replicas=two", coordinator.Options{}, `wait_replicas="two"`},
		{"redis://127.0.0.1:1/0?wait_replicas=-1", coordinator.Options{}, `wait_replicas="-1"`},
		{"redis+cluster://127.0.0.1:1,127.0.0.1:2?wait_timeout=5", coordinator.Options{}, `wait_timeout="5"`},
		{"redis://127.0.0.1:1/0", coordinator.Options{WaitReplicas: -1}, "must not be negative"},
		{"memory://", coordinator.Options{WaitReplicas: 1}, "embedded index has no replicas"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			r, err := coordinator.Open(t.Context(), tc.url, tc.opts)
			if err == nil {
				_ = r.Close()
			}
			if !errors.Is(err, coordinator.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q, %+v): %v, want invalid argument naming %s", tc.url, tc.opts, err, tc.want)
			}
		})
	}
}
