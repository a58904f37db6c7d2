package main

// The client side shared by topic, produce and consume: where the agent is
// (--addr), which protocol to speak (--protocol), the Connect clients over
// an HTTP client that speaks h2c, and the translation of RPC errors into
// messages a person can act on.

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

const defaultAddr = "http://127.0.0.1:7070"

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr     string
	protocol string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", defaultAddr, "agent address: http://host:port, https://host:port or host:port; env STRATA_ADDR")
	fs.StringVar(&f.protocol, "protocol", "connect", "RPC protocol: connect, grpc or grpcweb; env STRATA_PROTOCOL")
}

// client is a connection to one agent.
type client struct {
	// addr is the agent's base URL, for messages.
	addr     string
	admin    stratav1connect.AdminServiceClient
	producer stratav1connect.ProducerServiceClient
	consumer stratav1connect.ConsumerServiceClient
	group    stratav1connect.GroupServiceClient
	// httpClient and base serve clients built elsewhere (the group
	// consumer of package client) over the same connection.
	httpClient *http.Client
	base       string
	opts       []connect.ClientOption
	transport  *http.Transport
}

// dial checks the client flags (the environment fills those not given on
// the command line) and builds the clients. Nothing is sent yet.
func (f *clientFlags) dial(fs *flag.FlagSet) (*client, error) {
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if v := os.Getenv("STRATA_ADDR"); v != "" && !given["addr"] {
		f.addr = v
	}
	if v := os.Getenv("STRATA_PROTOCOL"); v != "" && !given["protocol"] {
		f.protocol = v
	}
	var opts []connect.ClientOption
	switch f.protocol {
	case "connect":
	case "grpc":
		opts = append(opts, connect.WithGRPC())
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, usagef(fs.Name(), "--protocol %q: want connect, grpc or grpcweb", f.protocol)
	}
	base, err := normalizeAddr(f.addr)
	if err != nil {
		return nil, usagef(fs.Name(), "--addr: %v", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Protocols = new(http.Protocols)
	if strings.HasPrefix(base, "http://") {
		// h2c with prior knowledge: gRPC and bidirectional streams need
		// HTTP/2, and agents serve it unencrypted.
		transport.Protocols.SetUnencryptedHTTP2(true)
	} else {
		transport.Protocols.SetHTTP1(true)
		transport.Protocols.SetHTTP2(true)
	}
	hc := &http.Client{Transport: transport}
	return &client{
		addr:       base,
		admin:      stratav1connect.NewAdminServiceClient(hc, base, opts...),
		producer:   stratav1connect.NewProducerServiceClient(hc, base, opts...),
		consumer:   stratav1connect.NewConsumerServiceClient(hc, base, opts...),
		group:      stratav1connect.NewGroupServiceClient(hc, base, opts...),
		httpClient: hc,
		base:       base,
		opts:       opts,
		transport:  transport,
	}, nil
}

func (c *client) close() { c.transport.CloseIdleConnections() }

// normalizeAddr turns host:port into http://host:port and checks the URL.
func normalizeAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("empty address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not an address: want http://host:port or host:port", addr)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: scheme %q, want http or https", addr, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// explain turns an RPC error into a message that says what to do. topic,
// when not empty, is the topic the call was about: a NOT_FOUND then means
// the topic does not exist.
func (c *client) explain(err error, topic string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach a Strata agent at %s: connection refused (is `strata dev` running?)", c.addr)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("cannot reach a Strata agent at %s: host %s not found", c.addr, dnsErr.Name)
	}
	if connectionLost(err) {
		// An agent serving TLS drops an h2c client's first bytes; an
		// agent that died mid-request drops the connection too. A TLS
		// handshake tells the two apart.
		if u := strings.TrimPrefix(c.addr, "http://"); u != c.addr && servesTLS(u) {
			return fmt.Errorf("the agent at %s dropped the connection: it serves TLS; use --addr https://%s", c.addr, u)
		}
		return fmt.Errorf("lost the connection to the Strata agent at %s (unavailable; retry): %v", c.addr, connectMessage(err))
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return fmt.Errorf("cannot reach a Strata agent at %s: %v", c.addr, netErr.Err)
	}
	switch ce.Code() {
	case connect.CodeNotFound:
		if topic != "" && saysTopicMissing(ce.Message(), topic) {
			return topicNotFound(topic)
		}
		return errors.New(ce.Message())
	case connect.CodeUnimplemented:
		return fmt.Errorf("%s does not serve the Strata API (is it a Strata agent, and is --protocol right?): %s", c.addr, ce.Message())
	case connect.CodeInvalidArgument, connect.CodeAlreadyExists, connect.CodeOutOfRange, connect.CodeFailedPrecondition:
		return errors.New(ce.Message())
	}
	// The code tells whether retrying may help (unavailable,
	// resource_exhausted, ...), so it stays in the message.
	return err
}

// errInterrupted ends a command stopped by Ctrl-C (or SIGTERM).
var errInterrupted = errors.New("interrupted")

// saysTopicMissing reports whether an agent's NOT_FOUND message says the
// topic does not exist, as opposed to naming something else that is gone
// (a partition, or a topic deleted under a reader and created again,
// whose own message says what to do).
func saysTopicMissing(msg, topic string) bool {
	return strings.Contains(msg, "does not exist") || strings.HasSuffix(msg, fmt.Sprintf("topic %q", topic))
}

// connectionLost reports whether err is a connection that closed under a
// request: the agent died (kill -9, a crash) or was never speaking our
// protocol. Connect calls an envelope cut short INTERNAL; the condition
// is the transport's, and a retry may well succeed.
func connectionLost(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		connect.CodeOf(err) == connect.CodeUnavailable && errors.Is(err, io.EOF) ||
		// net/http's HTTP/2 transport keeps these errors unexported: a
		// connection closed before its first request went out, or after.
		strings.Contains(err.Error(), "http2: client conn could not be established") ||
		strings.Contains(err.Error(), "http2: client connection lost")
}

// servesTLS reports whether hostport completes a TLS handshake, within a
// second. The certificate is not checked: this only picks the hint.
func servesTLS(hostport string) bool {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a probe, nothing is sent
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func topicNotFound(topic string) error {
	return fmt.Errorf("topic %q does not exist; create it with `strata topic create %s`", topic, topic)
}
