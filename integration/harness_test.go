package integration

// The harness: the strata binary built once for the package, processes with
// captured logs that are always cleaned up, free ports, a MinIO bucket and a
// Redis database per test, API clients for each wire protocol, and the CLI.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// strataBin is the strata binary TestMain built.
var strataBin string

// raceEnabled is set by race_test.go when the tests run with -race; the
// agents are then built with -race too, so a data race in a real process
// fails the test that ran it.
var raceEnabled bool

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	bin := filepath.Join(dir, "strata")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/strata")
	build := exec.Command("go", args...)
	build.Dir = root
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go %s (in %s) failed: %v\n%s", shellJoin(args), root, err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: built %s (race=%v) in %s\n", bin, raceEnabled, time.Since(start).Round(time.Millisecond))
	strataBin = bin
	return m.Run()
}

// moduleRoot is the directory of the go.mod the tests belong to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// freeAddr returns a loopback address nothing listens on right now. Another
// process may take it before ours binds it; startAgent retries then.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// childEnv is the environment of every process the tests start: ours without
// any STRATA_ or AWS_ variable (a developer's STRATA_LISTEN must not leak in),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STRATA_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// proc is a process the test started, its output in a log file. It is killed
// when the test ends if it is still running; its log is shown when the test
// failed, and a data race reported in it fails the test.
type proc struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid once done is closed
}

func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, strataBin, name, env, args...)
}

// startBinary is startProc for another program than strata.
func startBinary(t testing.TB, bin, name string, env []string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		logText := p.log()
		if strings.Contains(logText, "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race (log below)", name)
		}
		if t.Failed() || os.Getenv("STRATA_INTEGRATION_LOGS") != "" {
			t.Logf("%s: %s %s\n--- %s log (last 200 lines) ---\n%s--- end of %s log ---",
				name, filepath.Base(bin), shellJoin(args), name, tailLines(logText, 200), name)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)\n", p.logPath, err)
	}
	return string(b)
}

// stop sends SIGTERM and expects a clean exit (status 0) within 30 s: the
// agent's contract is to stop accepting, flush, answer and exit 0.
func (p *proc) stop() {
	p.t.Helper()
	if p.exited() {
		p.t.Errorf("%s: exited before it was stopped: %v", p.name, p.waitErr)
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Errorf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("%s: still running 30s after SIGTERM; killed", p.name)
		return
	}
	if p.waitErr != nil {
		p.t.Errorf("%s: after SIGTERM: %v, want exit status 0", p.name, p.waitErr)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		p.t.Fatalf("%s: SIGKILL: %v", p.name, err)
	}
	<-p.done
}

// shellJoin prints a command line the way a shell user would type it.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"&?;|<>*$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	return strings.Join(quoted, " ")
}

func tailLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// server is a strata process serving the API: `strata agent` or `strata dev`.
type server struct {
	*proc
	addr string // host:port of the API
}

func (s *server) url() string { return "http://" + s.addr }

// startServer starts a strata process whose command line (and environment)
// argv builds for the API address it is given, and waits until the API
// answers. It retries on fresh ports when the port was taken meanwhile.
func startServer(t testing.TB, name string, argv func(addr string) (args, env []string)) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		args, env := argv(addr)
		p := startProc(t, name, env, args...)
		err := waitReady(t.Context(), p, addr)
		if err == nil {
			return &server{proc: p, addr: addr}
		}
		if p.exited() && strings.Contains(p.log(), "address already in use") && attempt < 3 {
			t.Logf("%s: port taken, retrying on another one", name)
			continue
		}
		t.Fatalf("%s did not come up on %s: %v", name, addr, err)
	}
}

// waitReady polls the API with a Connect JSON ListTopics over HTTP/1.1, the
// simplest call a load balancer or a user's curl would make, until it
// answers 200.
func waitReady(ctx context.Context, p *proc, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			"http://"+addr+"/"+stratav1connect.AdminServiceName+"/ListTopics", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("ListTopics: HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited: %v (last probe: %v)", p.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready after 60s: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deployment is one test's share of the real services: its own MinIO
// bucket and Redis database, for any number of agents.
type deployment struct {
	s3       testenv.S3
	minio    *minio.Client
	bucket   string
	prefix   string
	storeURL string
	indexURL string
}

// redisDBs hands out Redis databases: the agent has no key prefix setting,
// so tests sharing the standalone server keep apart by database number.
// Databases 0 and 3 are left to other packages' tests (which use prefixes
// there).
var redisDBs = make(chan int, 16)

func init() {
	for db := 4; db <= 15; db++ {
		redisDBs <- db
	}
}

// takeRedisDB takes an empty database of the Redis server for the test and
// gives it back, emptied, when the test and its agents are done.
func takeRedisDB(t testing.TB, addr string) int {
	t.Helper()
	var db int
	select {
	case db = <-redisDBs:
	case <-time.After(time.Minute):
		t.Fatal("integration: no Redis database (4..15) free for a minute; give fewer tests a deployment")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	if n, err := rdb.DBSize(t.Context()).Result(); err != nil || n != 0 {
		rdb.Close()
		t.Fatalf("Redis %s database %d: %d keys, %v; want it empty (is another test using it?)", addr, db, n, err)
	}
	// Registered before any agent's cleanup, so it runs after them all.
	t.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Errorf("FLUSHDB of Redis database %d: %v", db, err)
			return // not reused
		}
		redisDBs <- db
	})
	return db
}

func newDeployment(t testing.TB) *deployment {
	t.Helper()
	s3 := testenv.MinIO(t)
	redisAddr := testenv.RedisAddr(t)
	db := takeRedisDB(t, redisAddr)
	client, err := minio.New(s3.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""),
		Secure: false,
	})
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	bucket := bucketName(t)
	if err := client.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	d := &deployment{
		s3:       s3,
		minio:    client,
		bucket:   bucket,
		prefix:   "strata",
		indexURL: fmt.Sprintf("redis://%s/%d", redisAddr, db),
	}
	d.storeURL = fmt.Sprintf("s3://%s/%s?endpoint=%s&insecure=true", bucket, d.prefix, s3.Endpoint)
	t.Logf("deployment: store %s, index %s", d.storeURL, d.indexURL)
	return d
}

// bucketName is a fresh S3 bucket name derived from the test's name.
func bucketName(t testing.TB) string {
	var b strings.Builder
	for _, c := range strings.ToLower(t.Name()) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	return "it-" + name + "-" + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credentialsEnv passes MinIO's credentials the way an operator would: in
// the environment, never in the store URL.
func (d *deployment) credentialsEnv() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + d.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + d.s3.SecretKey}
}

// startAgent runs `strata agent` on this deployment with flags, the admin
// port off, plus extra flags (which win over the ones before them).
func (d *deployment) startAgent(t testing.TB, name string, extra ...string) *server {
	t.Helper()
	return startServer(t, name, func(addr string) ([]string, []string) {
		args := []string{"agent",
			"--listen", addr,
			"--admin-listen", "",
			"--store", d.storeURL,
			"--index", d.indexURL,
			"--flush-interval", "50ms",
			"--agent-id", name,
		}
		return append(args, extra...), childEnv(d.credentialsEnv()...)
	})
}

// startAgentWithAdmin is startAgent with the admin port on, at the address
// it returns.
func (d *deployment) startAgentWithAdmin(t testing.TB, name string) (*server, string) {
	t.Helper()
	var admin string
	s := startServer(t, name, func(addr string) ([]string, []string) {
		admin = freeAddr(t) // a fresh one on each attempt, like the API port
		return []string{"agent",
			"--listen", addr,
			"--admin-listen", admin,
			"--store", d.storeURL,
			"--index", d.indexURL,
			"--flush-interval", "50ms",
			"--agent-id", name,
		}, childEnv(d.credentialsEnv()...)
	})
	return s, admin
}

// startAgentFromEnv runs `strata agent` with no flags at all: every setting
// comes from its STRATA_* environment variable.
func (d *deployment) startAgentFromEnv(t testing.TB, name string) *server {
	t.Helper()
	return startServer(t, name, func(addr string) ([]string, []string) {
		return []string{"agent"}, childEnv(append(d.credentialsEnv(),
			"STRATA_LISTEN="+addr,
			"STRATA_ADMIN_LISTEN=",
			"STRATA_STORE="+d.storeURL,
			"STRATA_INDEX="+d.indexURL,
			"STRATA_FLUSH_INTERVAL=50ms",
			"STRATA_AGENT_ID="+name,
		)...)
	})
}

// objectKeys lists the keys of the deployment's bucket under its prefix.
func (d *deployment) objectKeys(t testing.TB) []string {
	t.Helper()
	var keys []string
	for obj := range d.minio.ListObjects(t.Context(), d.bucket, minio.ListObjectsOptions{Prefix: d.prefix + "/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list bucket %s: %v", d.bucket, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// startDev runs `strata dev` on a data directory, the admin port off.
func startDev(t testing.TB, name, dataDir string) *server {
	t.Helper()
	return startServer(t, name, func(addr string) ([]string, []string) {
		return []string{"dev", "--data-dir", dataDir, "--listen", addr, "--admin-listen", "", "--kafka-listen", "127.0.0.1:0"}, childEnv()
	})
}

// protocol is a wire protocol the generated clients speak.
type protocol int

const (
	protoConnect     protocol = iota // Connect, binary protobuf, HTTP/1.1
	protoGRPC                        // gRPC over cleartext HTTP/2 (h2c)
	protoGRPCWeb                     // gRPC-web over HTTP/1.1
	protoConnectJSON                 // Connect with JSON bodies, HTTP/1.1
	protoConnectH2C                  // Connect, binary protobuf, cleartext HTTP/2
)

func (p protocol) String() string {
	return [...]string{"connect", "grpc", "grpc-web", "connect+json", "connect+h2c"}[p]
}

// clients are the API's three services on one agent, in one protocol.
type clients struct {
	producer stratav1connect.ProducerServiceClient
	consumer stratav1connect.ConsumerServiceClient
	admin    stratav1connect.AdminServiceClient
	group    stratav1connect.GroupServiceClient
}

func newClients(baseURL string, p protocol, opts ...connect.ClientOption) clients {
	protocols := new(http.Protocols)
	switch p {
	case protoGRPC:
		protocols.SetUnencryptedHTTP2(true)
		opts = append(opts, connect.WithGRPC())
	case protoGRPCWeb:
		protocols.SetHTTP1(true)
		opts = append(opts, connect.WithGRPCWeb())
	case protoConnectJSON:
		protocols.SetHTTP1(true)
		opts = append(opts, connect.WithProtoJSON())
	case protoConnectH2C:
		// Bidirectional streams need HTTP/2.
		protocols.SetUnencryptedHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	hc := &http.Client{Transport: &http.Transport{Protocols: protocols, MaxIdleConnsPerHost: 16}}
	return clients{
		producer: stratav1connect.NewProducerServiceClient(hc, baseURL, opts...),
		consumer: stratav1connect.NewConsumerServiceClient(hc, baseURL, opts...),
		admin:    stratav1connect.NewAdminServiceClient(hc, baseURL, opts...),
		group:    stratav1connect.NewGroupServiceClient(hc, baseURL, opts...),
	}
}

// cliResult is what one CLI run printed.
type cliResult struct {
	stdout, stderr string
	err            error // nil for exit status 0
}

// runCLI runs the strata CLI with stdin (may be nil) and waits for it, at
// most a minute.
func runCLI(t testing.TB, stdin io.Reader, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = childEnv()
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setParentDeathSignal(cmd)
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after a minute: %w", err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t testing.TB, stdin io.Reader, args ...string) string {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.err != nil {
		t.Fatalf("strata %s: %v\nstdout:\n%s\nstderr:\n%s", shellJoin(args), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// streamingCLI is a CLI process that keeps running (consume --follow) and
// whose stdout the test reads line by line.
type streamingCLI struct {
	cmd    *exec.Cmd
	lines  chan string // closed at EOF
	done   chan struct{}
	err    error
	errBuf *bytes.Buffer
}

func startStreamingCLI(t testing.TB, args ...string) *streamingCLI {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Env = childEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &streamingCLI{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{}), errBuf: new(bytes.Buffer)}
	cmd.Stderr = &lockedWriter{w: s.errBuf}
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start strata %s: %v", shellJoin(args), err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("strata %s stderr:\n%s", shellJoin(args), s.stderr())
		}
	})
	return s
}

func (s *streamingCLI) stderr() string {
	lw := s.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return s.errBuf.String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
