package connectapi

// HTTP wiring: one API port serves Connect, gRPC and gRPC-web, over TLS
// (HTTP/2 through ALPN, or HTTP/1.1) when given a certificate, else over
// plaintext HTTP/1.1 and h2c, with gRPC health and reflection (grpcurl, buf
// curl) and CORS for browsers; a separate admin port serves Prometheus
// metrics and pprof, so they are never exposed where the API is.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// Handler is the API over a: every service, health, reflection, CORS (as
// a's Config asks).
func Handler(a *agent.Agent) http.Handler {
	cfg := a.Config()
	opts := []connect.HandlerOption{
		connect.WithReadMaxBytes(cfg.MaxRequestBytes),
		connect.WithRequestGate(requestSizeGate(cfg.MaxRequestBytes)),
		// Compressing every small produce answer cost more CPU than it saved
		// bytes (gzip writer resets showed in profiles); fetches still compress.
		connect.WithCompressMinBytes(4 << 10),
		// Fetch and Subscribe answers are compressed when the client accepts
		// gzip (Connect clients do by default). The standard library's gzip
		// at its default level took most of a tailing agent's CPU in
		// profiles (docs/benchmarks.md); klauspost's at its fastest level
		// costs a fraction of that and speaks the same format.
		connect.WithCompression("gzip",
			func() connect.Decompressor { return new(kgzip.Reader) },
			func() connect.Compressor {
				w, _ := kgzip.NewWriterLevel(io.Discard, kgzip.BestSpeed) // a valid level: no error
				return w
			}),
	}
	mux := http.NewServeMux()
	mux.Handle(stratav1connect.NewProducerServiceHandler(&producerService{a}, opts...))
	mux.Handle(stratav1connect.NewConsumerServiceHandler(&consumerService{a}, opts...))
	mux.Handle(stratav1connect.NewAdminServiceHandler(&adminService{a}, opts...))
	mux.Handle(stratav1connect.NewGroupServiceHandler(&groupService{a}, opts...))
	services := []string{
		stratav1connect.ProducerServiceName,
		stratav1connect.ConsumerServiceName,
		stratav1connect.AdminServiceName,
		stratav1connect.GroupServiceName,
	}
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(services...)))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return withCORS(cfg, mux)
}

// withCORS answers browsers' preflights (the Fetch standard's CORS
// protocol). Connect's, gRPC-web's and gRPC's own headers are always
// allowed and exposed (connectrpc.com/cors); the configured lists add to
// them, so an app may send authorization or a tracing header and read its
// own response headers.
func withCORS(cfg agent.Config, h http.Handler) http.Handler {
	origins := strings.Split(cfg.CORSOrigins, ",")
	if cfg.CORSOrigins == "" {
		return h
	}
	return normalizeRequestHeaders(cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), splitList(cfg.CORSAllowedHeaders)...),
		ExposedHeaders: append(connectcors.ExposedHeaders(), splitList(cfg.CORSExposedHeaders)...),
		MaxAge:         7200,
	}).Handler(h))
}

// requestSizeGate refuses, before reading it, a unary request whose
// declared size (Content-Length) is over --max-request-bytes: INVALID_ARGUMENT,
// since the same request can never pass, with ErrorInfo (MESSAGE_TOO_LARGE)
// and LimitExceeded "max-request-bytes". connect-go checks the limit itself
// while it reads a message (WithReadMaxBytes), but that check runs before
// any interceptor and answers RESOURCE_EXHAUSTED with no details; a gate is
// the one hook that runs earlier. It decides only what the headers prove:
// an uncompressed unary body (the Connect protocol's bare message, or one
// gRPC or gRPC-web envelope of 5 bytes plus the message). Streams,
// compressed bodies, gRPC-web text and bodies of unknown length are left
// to connect-go's own check (README.md, "Errors").
func requestSizeGate(maxBytes int) connect.RequestGateFunc {
	return func(_ context.Context, spec connect.Spec, _ connect.Peer, header http.Header) (context.Context, error) {
		if spec.StreamType != connect.StreamTypeUnary {
			return nil, nil
		}
		size, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64)
		if err != nil {
			return nil, nil
		}
		for _, h := range []string{"Content-Encoding", "Grpc-Encoding"} {
			if v := header.Get(h); v != "" && v != "identity" {
				return nil, nil
			}
		}
		switch ct := header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/grpc-web-text"):
			return nil, nil
		case strings.HasPrefix(ct, "application/grpc"):
			size -= 5 // the envelope: a flags byte and a 4-byte length
		}
		if size <= int64(maxBytes) {
			return nil, nil
		}
		return nil, connectError(&agent.LimitError{Err: agent.ErrTooLarge, Name: "max-request-bytes", Limit: int64(maxBytes), Actual: size,
			Msg: fmt.Sprintf("request message is %d bytes, over the agent's max-request-bytes %d", size, maxBytes)})
	}
}

// maxRequestHeadersList bounds the Access-Control-Request-Headers value that
// normalizeRequestHeaders rewrites; a longer one goes to rs/cors as it came.
const maxRequestHeadersList = 8 << 10

// normalizeRequestHeaders rewrites a preflight's
// Access-Control-Request-Headers as lowercase names, sorted, without
// repeats or spaces, in one field. rs/cors (v1.11) accepts the list only
// in that form, the one browsers send (the Fetch standard's "CORS-unsafe
// request-header names" are sorted and lowercased), and refuses any other
// order or case; but header names are case-insensitive and the list is a
// set, so a proxy or a non-browser client that reorders or capitalizes it
// (or splits it over several fields) must get the same answer.
func normalizeRequestHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, found := r.Header["Access-Control-Request-Headers"]
		if r.Method == http.MethodOptions && found {
			var names []string
			size := 0
			for _, v := range values {
				size += len(v)
				for name := range strings.SplitSeq(v, ",") {
					if name = strings.ToLower(strings.Trim(name, " \t")); name != "" {
						names = append(names, name)
					}
				}
			}
			if size <= maxRequestHeadersList {
				slices.Sort(names)
				r.Header["Access-Control-Request-Headers"] = []string{strings.Join(slices.Compact(names), ",")}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// AdminHandler serves /metrics and /debug/pprof/.
func AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Listeners are the agent's bound ports.
type Listeners struct {
	API   net.Listener
	Admin net.Listener // nil when the admin port is off
	// TLS, when not nil, holds the API port's certificate: Serve speaks TLS
	// on it (HTTP/2 through ALPN, or HTTP/1.1). Nil: plaintext HTTP/1.1 and
	// h2c. The admin port is always plaintext.
	TLS *tls.Config

	certs *certReloader // behind TLS.GetCertificate when Listen built TLS
}

// Listen reads the API port's certificate, if cfg has one, and binds the API
// and admin ports of cfg. A certificate that cannot be loaded is an error
// here, before anything is bound or started.
func Listen(cfg agent.Config) (Listeners, error) {
	tlsConfig, certs, err := serverTLS(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return Listeners{}, err
	}
	api, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return Listeners{}, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	l := Listeners{API: api, TLS: tlsConfig, certs: certs}
	if cfg.AdminListen != "" {
		if l.Admin, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			api.Close()
			return Listeners{}, fmt.Errorf("admin listen on %s: %w", cfg.AdminListen, err)
		}
	}
	return l, nil
}

// serverTLS loads the API port's certificate and key; nil when neither is
// given. TLS 1.2 is the floor: HTTP/2 forbids older versions (RFC 9113
// section 9.2).
func serverTLS(certFile, keyFile string) (*tls.Config, *certReloader, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, nil, fmt.Errorf("tls-cert and tls-key go together: got tls-cert %q and tls-key %q", certFile, keyFile)
	}
	certs, err := newCertReloader(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.current(), nil },
		MinVersion:     tls.VersionTLS12,
	}, certs, nil
}

// Serve serves the API over a (and the admin port) on l until ctx ends,
// then shuts down gracefully: it stops accepting connections, closes a
// (which flushes and commits what is buffered so waiting producers get
// their answers), ends subscriptions, and returns. A second signal is the
// caller's business (exit at once).
func Serve(ctx context.Context, a *agent.Agent, l Listeners) error {
	cfg, logger := a.Config(), a.Logger()
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	newServer := func(h http.Handler, tlsConfig *tls.Config) *http.Server {
		s := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return streams },
			TLSConfig:         tlsConfig,
			ErrorLog:          log.New(serverErrorLog{logger}, "", 0),
		}
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		if tlsConfig != nil {
			s.Protocols.SetHTTP2(true) // offered through ALPN by ServeTLS
		} else {
			s.Protocols.SetUnencryptedHTTP2(true)
		}
		return s
	}
	if l.certs != nil {
		l.certs.setLogger(logger)
		l.certs.logCertificate(ctx, logger)
	}
	api := newServer(Handler(a), l.TLS)
	errc := make(chan error, 2)
	if l.TLS != nil {
		// TLSConfig.GetCertificate hands out the certificate: no files here.
		go func() { errc <- api.ServeTLS(l.API, "", "") }()
	} else {
		go func() { errc <- api.Serve(l.API) }()
	}
	var admin *http.Server
	if l.Admin != nil {
		admin = newServer(AdminHandler(), nil)
		go func() { errc <- admin.Serve(l.Admin) }()
	}
	logger.Info("agent serving", "api", l.API.Addr().String(), "agent_id", cfg.AgentID, "tls", l.TLS != nil)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	logger.Info("agent shutting down: flushing buffered records")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.CommitTimeout+5*time.Second)
	defer cancel()
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- api.Shutdown(shutdownCtx) }()
	closeErr := a.Close(shutdownCtx)
	endStreams()
	err := <-shutdownDone
	if admin != nil {
		_ = admin.Close()
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return errors.Join(closeErr, err)
}

// serverErrorLog puts net/http's error lines into the agent's structured
// log. Failed TLS handshakes are debug: load balancers' TCP health checks
// and port scanners cause one per probe.
type serverErrorLog struct{ log *slog.Logger }

func (l serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "http server", "err", msg)
	return len(p), nil
}

// splitList splits a comma separated flag value, dropping blanks and the
// spaces around each item, as agent.Config's validation does.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
