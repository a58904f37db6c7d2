package connectapi_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testcert"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// servedAgent is an agent serving on a loopback port through Listen and
// Serve, as `strata agent` runs it.
type servedAgent struct {
	url      string // http://127.0.0.1:port, or https:// with TLS
	accepted *atomic.Int32
}

func serveAgent(t *testing.T, tweak func(*agent.Config)) servedAgent {
	t.Helper()
	return serveAgentLogging(t, tweak, slog.New(slog.DiscardHandler))
}

func serveAgentLogging(t *testing.T, tweak func(*agent.Config), log *slog.Logger) servedAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.FlushInterval = 5 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	ls, err := connectapi.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingListener{Listener: ls.API}
	ls.API = counting
	a, err := agent.New(t.Context(), cfg, objectlog.NewMemBucket(), index, log)
	if err != nil {
		ls.API.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- connectapi.Serve(ctx, a, ls) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	scheme := "http://"
	if ls.TLS != nil {
		scheme = "https://"
	}
	return servedAgent{url: scheme + ls.API.Addr().String(), accepted: &counting.accepted}
}

// listTopics calls ListTopics with the Connect protocol's JSON form and
// returns the HTTP response, whose Proto and TLS state tell how it came.
func listTopics(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/strata.v1.AdminService/ListTopics", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ListTopics: %s: %s", resp.Status, body)
	}
	return resp
}

// TestServeTLSGivesBrowsersHTTP2: with a certificate the API port
// negotiates HTTP/2 through ALPN, so one connection carries more streams
// than the six HTTP/1.1 connections a browser allows per origin: eight
// Subscribe streams stay open while unary calls still get through, all on
// one TCP connection.
func TestServeTLSGivesBrowsersHTTP2(t *testing.T) {
	t.Parallel()
	cert := testcert.Write(t, t.TempDir(), "agent")
	srv := serveAgent(t, func(c *agent.Config) { c.TLSCert, c.TLSKey = cert.CertFile, cert.KeyFile })
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("Listen gave no TLS config: %s", srv.url)
	}
	// A client that offers both protocols, as browsers do; the server picks.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	resp := listTopics(t, hc, srv.url)
	if resp.Proto != "HTTP/2.0" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %s (TLS %v), want HTTP/2.0 through ALPN h2", resp.Proto, resp.TLS != nil)
	}

	admin := stratav1connect.NewAdminServiceClient(hc, srv.url)
	producer := stratav1connect.NewProducerServiceClient(hc, srv.url)
	consumer := stratav1connect.NewConsumerServiceClient(hc, srv.url)
	const topic = "browser"
	if _, err := admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: 1})); err != nil {
		t.Fatal(err)
	}
	const streams = 8 // more than HTTP/1.1's six connections per origin
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var subs []*connect.ServerStreamForClient[stratav1.SubscribeResponse]
	for i := range streams {
		s, err := consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
			Topic: topic, Start: &stratav1.SubscribeRequest_Earliest{Earliest: true},
		}))
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		s.ResponseHeader() // the stream is open on the server
		subs = append(subs, s)
	}
	// Unary calls while every stream is open.
	listTopics(t, hc, srv.url)
	value := []byte("after eight streams")
	if _, err := producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{
		Topics: []*stratav1.TopicRecords{{Topic: topic, Records: []*stratav1.Record{{Value: value}}}},
	})); err != nil {
		t.Fatalf("Produce with %d streams open: %v", streams, err)
	}
	for i, s := range subs {
		if !s.Receive() {
			t.Fatalf("stream %d ended: %v", i, s.Err())
		}
		if recs := s.Msg().GetRecords(); len(recs) != 1 || string(recs[0].GetValue()) != string(value) {
			t.Fatalf("stream %d got %v, want the one record produced", i, recs)
		}
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("the agent accepted %d connections, want 1: HTTP/2 multiplexes every call", n)
	}
}

// logBuffer is a log destination safe for the server's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeTLSHandshakeErrorsAreDebugLogs: a connection that is no TLS
// client (a load balancer's TCP check) is logged at debug, in the agent's
// structured log, not as a bare line on stderr.
func TestServeTLSHandshakeErrorsAreDebugLogs(t *testing.T) {
	t.Parallel()
	cert := testcert.Write(t, t.TempDir(), "agent")
	logs := &logBuffer{}
	srv := serveAgentLogging(t, func(c *agent.Config) { c.TLSCert, c.TLSKey = cert.CertFile, cert.KeyFile },
		slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("\x00\x01 not a TLS client hello\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, conn) // until the server hangs up
	conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "TLS handshake error") {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake error logged:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, `"level":"DEBUG"`) {
			t.Errorf("handshake error logged above debug: %s", line)
		}
	}
}

// TestServePlaintextKeepsHTTP1AndH2C: without a certificate the API port
// speaks HTTP/1.1 and h2c, and refuses TLS.
func TestServePlaintextKeepsHTTP1AndH2C(t *testing.T) {
	t.Parallel()
	srv := serveAgent(t, nil)
	if !strings.HasPrefix(srv.url, "http://") {
		t.Fatalf("plaintext agent at %s", srv.url)
	}
	http1 := &http.Transport{}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	for _, tc := range []struct {
		tr    *http.Transport
		proto string
	}{{http1, "HTTP/1.1"}, {h2c, "HTTP/2.0"}} {
		t.Cleanup(tc.tr.CloseIdleConnections)
		if got := listTopics(t, &http.Client{Transport: tc.tr}, srv.url).Proto; got != tc.proto {
			t.Errorf("got %s, want %s", got, tc.proto)
		}
	}
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := tlsClient.Post("https://"+strings.TrimPrefix(srv.url, "http://")+"/strata.v1.AdminService/ListTopics", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("a TLS handshake with the plaintext port succeeded")
	}
}

// TestListenRejectsBadCertificates: a certificate that cannot be used is a
// clear error from Listen, naming the files, before any port is bound.
func TestListenRejectsBadCertificates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := testcert.Write(t, dir, "a"), testcert.Write(t, dir, "b")
	certFile, keyFile, otherKey := a.CertFile, a.KeyFile, b.KeyFile
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name, cert, key string
		want            []string
	}{
		{"missing cert", missing, keyFile, []string{"tls-cert " + missing, "no such file"}},
		{"missing key", certFile, missing, []string{"tls-key " + missing, "no such file"}},
		{"key of another cert", certFile, otherKey, []string{"private key does not match public key"}},
		{"not PEM", garbage, keyFile, []string{"tls-cert " + garbage, "failed to find any PEM data"}},
		{"cert without key", certFile, "", []string{"tls-cert and tls-key go together"}},
		{"key without cert", "", keyFile, []string{"tls-cert and tls-key go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A fixed port that is in use: binding first would fail with
			// "address already in use" instead of the certificate's error.
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			cfg := agent.DefaultConfig()
			cfg.Listen, cfg.AdminListen = busy.Addr().String(), ""
			cfg.TLSCert, cfg.TLSKey = tc.cert, tc.key
			ls, err := connectapi.Listen(cfg)
			if err == nil {
				ls.API.Close()
				t.Fatal("Listen accepted the certificate")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// newHandler is an agent's API handler, without a port.
func newHandler(t *testing.T, tweak func(*agent.Config)) (http.Handler, error) {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.AdminListen = ""
	if tweak != nil {
		tweak(&cfg)
	}
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a, err := agent.New(t.Context(), cfg, objectlog.NewMemBucket(), index, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return connectapi.Handler(a), nil
}

// TestCORSPreflightAllowsConfiguredHeaders: a browser sends a call with
// extra headers only if the preflight allows every one of them. Connect's
// own are always allowed, authorization by default, others when configured.
func TestCORSPreflightAllowsConfiguredHeaders(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	// Browsers list the headers lowercase, sorted, comma separated.
	const connectHeaders = "connect-protocol-version,content-type"
	for _, tc := range []struct {
		name      string
		allowed   *string // nil: the default
		requested string
		ok        bool
	}{
		{"connect headers", nil, connectHeaders, true},
		{"authorization by default", nil, "authorization," + connectHeaders, true},
		{"unconfigured trace header", nil, "authorization," + connectHeaders + ",x-trace-id", false},
		{"configured trace header", ptr("authorization, X-Trace-Id"), "authorization," + connectHeaders + ",x-trace-id", true},
		{"configured, another header", ptr("authorization,x-trace-id"), "authorization," + connectHeaders + ",x-other", false},
		{"authorization not configured", ptr("x-trace-id"), "authorization," + connectHeaders, false},
		{"any", ptr("*"), connectHeaders + ",x-anything", true},
		{"grpc-web headers", ptr(""), "content-type,x-grpc-web,x-user-agent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := newHandler(t, func(c *agent.Config) {
				c.CORSOrigins = origin
				if tc.allowed != nil {
					c.CORSAllowedHeaders = *tc.allowed
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodOptions, "/strata.v1.ConsumerService/Subscribe", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", http.MethodPost)
			req.Header.Set("Access-Control-Request-Headers", tc.requested)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			gotOrigin := rec.Header().Get("Access-Control-Allow-Origin")
			gotHeaders := rec.Header().Get("Access-Control-Allow-Headers")
			if tc.ok && (gotOrigin != origin || gotHeaders != tc.requested) {
				t.Errorf("preflight for %q refused: Allow-Origin %q, Allow-Headers %q", tc.requested, gotOrigin, gotHeaders)
			}
			if !tc.ok && (gotOrigin != "" || gotHeaders != "") {
				t.Errorf("preflight for %q allowed: Allow-Origin %q, Allow-Headers %q", tc.requested, gotOrigin, gotHeaders)
			}
		})
	}
}

// TestCORSPreflightIgnoresOrderAndCase: header names are case-insensitive
// and the requested list is a set, so a preflight that lists them in
// another order, case or spacing than browsers do (a proxy's rewrite, a
// non-browser client), or over several fields, gets the same answer.
func TestCORSPreflightIgnoresOrderAndCase(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	h, err := newHandler(t, func(c *agent.Config) {
		c.CORSOrigins = origin
		c.CORSAllowedHeaders = "authorization,x-trace-id"
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		requested []string // one field per element
		allowed   string   // the Allow-Headers answered; "" when refused
	}{
		{[]string{"connect-protocol-version,content-type"}, "connect-protocol-version,content-type"},
		{[]string{"content-type,connect-protocol-version"}, "connect-protocol-version,content-type"},
		{[]string{"x-trace-id, authorization"}, "authorization,x-trace-id"},
		{[]string{"authorization,x-trace-id"}, "authorization,x-trace-id"},
		{[]string{"X-Trace-Id"}, "x-trace-id"},
		{[]string{"Content-Type, Connect-Protocol-Version, Authorization, X-TRACE-ID"}, "authorization,connect-protocol-version,content-type,x-trace-id"},
		{[]string{"  x-trace-id ,\tcontent-type  "}, "content-type,x-trace-id"},
		{[]string{"x-trace-id,x-trace-id,X-Trace-Id"}, "x-trace-id"},
		{[]string{"x-trace-id", "authorization"}, "authorization,x-trace-id"},
		{[]string{"X-Other, authorization"}, ""},
		{[]string{"content-type,x-other"}, ""},
	} {
		t.Run(strings.Join(tc.requested, "|"), func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodOptions, "/strata.v1.ConsumerService/Subscribe", nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", http.MethodPost)
			for _, v := range tc.requested {
				req.Header.Add("Access-Control-Request-Headers", v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			gotOrigin := rec.Header().Get("Access-Control-Allow-Origin")
			gotHeaders := rec.Header().Get("Access-Control-Allow-Headers")
			if tc.allowed != "" && (gotOrigin != origin || gotHeaders != tc.allowed) {
				t.Errorf("preflight for %q: Allow-Origin %q, Allow-Headers %q; want %q, %q", tc.requested, gotOrigin, gotHeaders, origin, tc.allowed)
			}
			if tc.allowed == "" && (gotOrigin != "" || gotHeaders != "") {
				t.Errorf("preflight for %q allowed: Allow-Origin %q, Allow-Headers %q", tc.requested, gotOrigin, gotHeaders)
			}
		})
	}
}

// TestCORSExposesConfiguredHeaders: browser code reads Connect's and
// gRPC-web's status headers, and the configured ones.
func TestCORSExposesConfiguredHeaders(t *testing.T) {
	t.Parallel()
	const origin = "https://app.example.com"
	h, err := newHandler(t, func(c *agent.Config) {
		c.CORSOrigins = origin
		c.CORSExposedHeaders = "x-trace-id"
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/strata.v1.AdminService/ListTopics", strings.NewReader("{}"))
	req.Header.Set("Origin", origin)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("ListTopics: %d %s", rec.Code, rec.Body)
	}
	exposed := strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers"))
	for _, want := range []string{"x-trace-id", "grpc-status", "grpc-message"} {
		if !strings.Contains(exposed, want) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", exposed, want)
		}
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
}

// TestCORSHeaderListsAreChecked: a list item that is no header name is a
// startup error naming the flag.
func TestCORSHeaderListsAreChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allowed, exposed, want string
	}{
		{"authorization, x trace", "", `cors-allowed-headers: "x trace"`},
		{"authorization", "x-ok,bad:header", `cors-exposed-headers: "bad:header"`},
	} {
		_, err := newHandler(t, func(c *agent.Config) {
			c.CORSAllowedHeaders, c.CORSExposedHeaders = tc.allowed, tc.exposed
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("allowed %q, exposed %q: error %v, want one with %s", tc.allowed, tc.exposed, err, tc.want)
		}
	}
	_, err := newHandler(t, func(c *agent.Config) { c.TLSCert = "/etc/cert.pem" })
	if err == nil || !strings.Contains(err.Error(), "tls-cert and tls-key go together") {
		t.Errorf("a cert without a key: error %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// servedCertificate is the common name of the certificate a new TLS
// connection to url is shown.
func servedCertificate(t *testing.T, url string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// replaceFile writes data to path as a renewal would, with a modification
// time that differs from the old file's whatever the clock's resolution.
func replaceFile(t *testing.T, path string, data []byte, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

// TestServeTLSReloadsRenewedCertificate: new connections get a renewed
// certificate once its files change, without a restart; files that do not
// load (a renewal half written) leave the last good certificate in use.
func TestServeTLSReloadsRenewedCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, renewed := testcert.Write(t, dir, "old"), testcert.Write(t, dir, "renewed")
	logs := &logBuffer{}
	srv := serveAgentLogging(t, func(c *agent.Config) { c.TLSCert, c.TLSKey = old.CertFile, old.KeyFile },
		slog.New(slog.NewJSONHandler(logs, nil)))
	if got := servedCertificate(t, srv.url); got != "strata test old" {
		t.Fatalf("served %q at start", got)
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mod := time.Now().Add(time.Minute)
	// Half a renewal: the new certificate beside the old key.
	replaceFile(t, old.CertFile, read(renewed.CertFile), mod)
	if got := servedCertificate(t, srv.url); got != "strata test old" {
		t.Fatalf("served %q with a mismatched pair on disk, want the old certificate still", got)
	}
	if !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("the failed reload was not logged:\n%s", logs)
	}
	replaceFile(t, old.KeyFile, read(renewed.KeyFile), mod.Add(time.Second))
	if got := servedCertificate(t, srv.url); got != "strata test renewed" {
		t.Fatalf("served %q after the renewal, want the renewed certificate", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("the reload was not logged:\n%s", logs)
	}
	// Calls still work over the renewed certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: renewed.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	if resp := listTopics(t, &http.Client{Transport: tr}, srv.url); resp.Proto != "HTTP/2.0" {
		t.Errorf("after the reload: %s", resp.Proto)
	}
}
