package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestExplainNotFound: "create it" is said only when the agent says the
// topic does not exist; any other NOT_FOUND about the topic keeps the
// agent's words.
func TestExplainNotFound(t *testing.T) {
	t.Parallel()
	c := &client{addr: "http://127.0.0.1:7070"}
	hint := topicNotFound("r1").Error()
	for _, tc := range []struct{ msg, want string }{
		{`topic "r1" does not exist; create it with ` + "`strata topic create r1`", hint},
		{`describe topic: not found: topic "r1"`, hint},
		{`topic "r1" was deleted: it does not exist`, hint},
		{`not found: topic "r1" was deleted while the stream followed it; it exists again as a new topic, whose offsets are not the old topic's`,
			`not found: topic "r1" was deleted while the stream followed it; it exists again as a new topic, whose offsets are not the old topic's`},
		{`not found: partition 3: topic "r1" has 2 partitions`, `not found: partition 3: topic "r1" has 2 partitions`},
	} {
		got := c.explain(connect.NewError(connect.CodeNotFound, errors.New(tc.msg)), "r1")
		if got.Error() != tc.want {
			t.Errorf("NOT_FOUND %q explained as %q, want %q", tc.msg, got, tc.want)
		}
	}
}

// TestConsumeFollowAcrossRecreate: a stream whose topic is deleted and
// created again ends with the agent's account of it, not with a claim
// that the topic does not exist.
func TestConsumeFollowAcrossRecreate(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "r1", "--addr", addr)
	subscribed := make(chan struct{})
	stderr := &lockedBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: &lockedBuffer{}, stderr: stderr, subscribed: func() { close(subscribed) }}
	done := make(chan int, 1)
	go func() {
		done <- c.run(t.Context(), []string{"consume", "r1", "--follow", "--from", "earliest", "--addr", addr})
	}()
	select {
	case <-subscribed:
	case code := <-done:
		t.Fatalf("consume --follow ended early: exit %d: %s", code, stderr)
	}
	ok(t, "", "topic", "delete", "r1", "--addr", addr)
	ok(t, "", "topic", "create", "r1", "--addr", addr)
	select {
	case code := <-done:
		msg := stderr.String()
		if code != 1 || strings.Contains(msg, "create it") || !strings.Contains(msg, `topic "r1" was deleted while the stream followed it`) {
			t.Fatalf("consume --follow across a delete and create: exit %d: %q; want exit 1 with the agent's message", code, msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("consume --follow went on following a deleted topic")
	}
}

// cuttingProxy forwards TCP connections to an agent until cut, which
// drops every one as an agent killed with -9 would.
type cuttingProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startCuttingProxy(t *testing.T, target string) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// cut closes the listener and every connection.
func (p *cuttingProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestConnectionLostUnderAStream: a connection dropped under a stream, as
// when the agent is killed with -9, is said as a lost connection
// (retryable), not as the INTERNAL protocol error Connect reports.
func TestConnectionLostUnderAStream(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "k", "--addr", addr)
	ok(t, "a\n", "produce", "k", "--addr", addr)
	proxy := startCuttingProxy(t, addr)
	cf := clientFlags{addr: proxy.ln.Addr().String(), protocol: "connect"}
	cl, err := cf.dial(flag.NewFlagSet("test", flag.ContinueOnError))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	stream, err := cl.consumer.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: "k",
		Start: &stratav1.SubscribeRequest_Offset{Offset: 0}}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() || len(stream.Msg().GetRecords()) != 1 {
		t.Fatalf("first message: %v %v", stream.Msg(), stream.Err())
	}
	proxy.cut()
	for stream.Receive() {
	}
	cut := stream.Err()
	if cut == nil {
		t.Fatal("the stream ended cleanly after its connection was cut")
	}
	for _, err := range []error{
		cut,
		// What a produce stream cut by kill -9 reported.
		connect.NewError(connect.CodeInternal, fmt.Errorf("protocol error: incomplete envelope: %w", io.ErrUnexpectedEOF)),
		fmt.Errorf("delivery timeout 2m0s: %w", connect.NewError(connect.CodeUnavailable, io.ErrUnexpectedEOF)),
		// net/http's unexported error for a connection closed before its
		// first request (a TLS port closing on an h2c preface, at times).
		connect.NewError(connect.CodeUnavailable, errors.New("http2: client conn could not be established")),
	} {
		got := cl.explain(err, "k").Error()
		if !strings.HasPrefix(got, "lost the connection to the Strata agent at http://"+proxy.ln.Addr().String()+" (unavailable; retry)") ||
			strings.Contains(got, "internal") {
			t.Errorf("%v explained as %q, want a lost connection", err, got)
		}
	}
}

// TestPlainHTTPToTLS: http:// to a port serving TLS is said as such, with
// the https:// address to use.
func TestPlainHTTPToTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the h2c preface is no handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	fails(t, "", []string{"topic", "list", "--addr", "http://" + host}, "serves TLS", "--addr https://"+host)
}
