package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxRequestBytes is the default largest request frame, Kafka's
// socket.request.max.bytes default (100 MiB).
const DefaultMaxRequestBytes = 100 << 20

// DefaultMaxInFlight is the default number of requests of one connection that
// may be in progress at once (pipelining); the connection reads no further
// request until the oldest is answered.
const DefaultMaxInFlight = 32

// ErrServerClosed is what Serve returns after Close.
var ErrServerClosed = errors.New("kafka: server closed")

// Config configures a Server. The zero value is usable: every field has a default.
type Config struct {
	// MaxRequestBytes is the largest request frame accepted, checked before
	// anything is allocated for it; a larger frame closes the connection, as
	// Kafka's socket.request.max.bytes does. Default DefaultMaxRequestBytes.
	MaxRequestBytes int32
	// MaxInFlight bounds the requests of one connection in progress at once.
	// Default DefaultMaxInFlight.
	MaxInFlight int
	// IdleTimeout closes a connection that sent nothing for this long, as
	// Kafka's connections.max.idle.ms (default 10 minutes). Negative: never.
	IdleTimeout time.Duration
	// Logger receives connection-level events (malformed frames, unsupported
	// APIs, write errors). Default slog.Default().
	Logger *slog.Logger
}

// Server is a Kafka listener over a Core. One Server may serve any number of
// listeners; it holds no state of its own besides its connections.
type Server struct {
	core Core
	cfg  Config
	log  *slog.Logger

	ctx    context.Context // cancelled by Close: stops every connection's work
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// NewServer returns a Server over core. It validates cfg and fills defaults.
func NewServer(core Core, cfg Config) (*Server, error) {
	if core == nil {
		return nil, errors.New("kafka: nil core")
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxRequestBytes < minHeaderBytes {
		return nil, fmt.Errorf("kafka: MaxRequestBytes %d is below the %d bytes of a request header", cfg.MaxRequestBytes, minHeaderBytes)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxInFlight < 1 {
		return nil, fmt.Errorf("kafka: MaxInFlight %d must be at least 1", cfg.MaxInFlight)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		core:      core,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "kafka"),
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
	}, nil
}

// Serve accepts Kafka connections on l until Close, then returns
// ErrServerClosed. It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

// Close stops every listener and connection and waits for their goroutines.
// Requests in progress are abandoned: their clients see a closed connection
// and retry elsewhere; a batch already handed to the core is still committed
// or failed by it.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// clientConn is what handlers know of the connection a request came on.
type clientConn struct {
	remote   string
	clientID string // of the latest request; Kafka clients keep one per connection
	// closeConn closes the connection from outside the request flow: an
	// acks=0 produce that failed after its (absent) answer.
	closeConn func()
}

// pending is a request being answered: wait blocks until the response is
// ready. A nil response with a nil error sends nothing (acks=0 produce); an
// error closes the connection.
type pending struct {
	correlationID int32
	key           int16
	wait          func() (kmsg.Response, error)
}

// ready wraps a response computed already.
func ready(resp kmsg.Response) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) { return resp, nil }
}

// serveConn reads requests in order and starts each at once (handlers do
// what must happen in request order, such as fixing a produce's place in the
// log, before they return); a writer goroutine sends the answers in request
// order, as Kafka clients require, however the work inside overlaps.
func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		nc.Close()
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	log := s.log.With("remote", nc.RemoteAddr().String())
	cc := &clientConn{remote: nc.RemoteAddr().String(), closeConn: func() { cancel(); nc.Close() }}

	queue := make(chan pending, s.cfg.MaxInFlight)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeResponses(ctx, cancel, nc, queue, log)
	}()

	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		if s.cfg.IdleTimeout > 0 {
			nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		frame, err := readFrame(br, s.cfg.MaxRequestBytes)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil:
			case errors.Is(err, os.ErrDeadlineExceeded):
				log.Debug("closing idle Kafka connection", "idle", s.cfg.IdleTimeout)
			default:
				log.Warn("closing Kafka connection", "err", err)
			}
			break
		}
		d, err := decodeRequest(frame)
		if err != nil {
			log.Warn("closing Kafka connection on a malformed request", "api_key", d.header.key, "api_version", d.header.version, "err", err)
			break
		}
		if d.header.clientID != nil {
			cc.clientID = *d.header.clientID
		}
		p := pending{correlationID: d.header.correlationID, key: d.header.key}
		if d.unsupported {
			resp := unsupportedResponse(d.header, d.body)
			if resp == nil {
				log.Warn("closing Kafka connection: unknown API key or a version no response can be encoded for",
					"api_key", d.header.key, "api_version", d.header.version)
				break
			}
			log.Debug("unsupported Kafka API version", "api", kmsg.NameForKey(d.header.key), "api_version", d.header.version)
			p.wait = ready(resp)
		} else {
			p.wait = apis[d.header.key].handle(s, ctx, cc, d.req)
		}
		select {
		case queue <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	// The client is gone or broke the protocol: stop the work still in
	// flight (long polls, waits for acks); nobody will read its answers.
	cancel()
	close(queue)
	<-writerDone
}

// largeResponseBytes is the size past which a response buffer goes back to
// largeResponses rather than staying with its connection.
const largeResponseBytes = 1 << 20

// largeResponses holds the buffers of large answers (Fetch's) between
// writes, shared by all connections (*[]byte). A catch-up consumer's every
// Fetch answer is a MiB or more: a buffer allocated afresh for each one was
// grown (copied) as the partitions' batches were appended, and the runtime
// cleared each new array (issue 12). The pool holds no more buffers than
// answers were being written at once, and the garbage collector empties it.
var largeResponses sync.Pool

// writeResponses sends the answers of queue in order. On a write error or a
// handler's request to close, it cancels the connection and drops the rest.
func (s *Server) writeResponses(ctx context.Context, cancel context.CancelFunc, nc net.Conn, queue <-chan pending, log *slog.Logger) {
	var buf []byte
	failed := false
	for p := range queue {
		if failed {
			continue // drain, so the reader never blocks on a full queue
		}
		resp, err := p.wait()
		if err != nil {
			log.Warn("closing Kafka connection", "api", kmsg.NameForKey(p.key), "err", err)
		} else if resp == nil {
			continue
		} else {
			out := buf[:0]
			if p.key == int16(kmsg.Fetch) {
				if b, ok := largeResponses.Get().(*[]byte); ok {
					out = (*b)[:0]
				}
			}
			out = appendResponse(out, p.correlationID, resp)
			nc.SetWriteDeadline(time.Now().Add(time.Minute))
			_, err = nc.Write(out)
			if cap(out) > largeResponseBytes {
				// Keep no large fetch's buffer for the connection's
				// life; share it with the next large answer instead.
				largeResponses.Put(&out)
			} else {
				buf = out
			}
			if err == nil {
				continue
			}
			if ctx.Err() == nil {
				log.Debug("Kafka connection write failed", "err", err)
			}
		}
		failed = true
		cancel()
		nc.Close()
	}
}
