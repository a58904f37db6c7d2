package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// server is a `strata agent` or `strata dev` running in process.
type server struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the command returned
	code   int           // its exit status, once done is closed
	stderr *lockedBuffer
}

// start runs the command line in a goroutine; the test's cleanup stops it.
func startServer(t *testing.T, stdout io.Writer, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cancel: cancel, done: make(chan struct{}), stderr: &lockedBuffer{}}
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: s.stderr}
	go func() {
		defer close(s.done)
		s.code = c.run(ctx, args)
		if wc, ok := stdout.(io.Closer); ok {
			wc.Close()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// stop ends the server as SIGINT would and returns its exit status.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		return s.code
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not stop; stderr:\n%s", s.stderr)
		return -1
	}
}

// startDev runs strata dev on dataDir and a free port, and returns the
// address its banner gives.
func startDev(t *testing.T, dataDir string) (*server, string) {
	t.Helper()
	s, addr, _ := startDevKafka(t, dataDir)
	return s, addr
}

// startDevKafka is startDev that also returns the Kafka listener's address
// from the banner.
func startDevKafka(t *testing.T, dataDir string) (*server, string, string) {
	t.Helper()
	pr, pw := io.Pipe()
	s := startServer(t, pw, "dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--kafka-listen", "127.0.0.1:0")
	banner := regexp.MustCompile(`^Strata dev broker listening on (http://\S+) \(data in (.+)\)$`)
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("strata dev printed no banner; stderr:\n%s", s.stderr)
	}
	m := banner.FindStringSubmatch(sc.Text())
	if m == nil || m[2] != dataDir {
		t.Fatalf("strata dev banner %q", sc.Text())
	}
	rest := ""
	for range 5 {
		if !sc.Scan() {
			break
		}
		rest += sc.Text() + "\n"
	}
	// Keep draining, or a later write to stdout would block the server.
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	for _, want := range []string{"strata topic create demo --partitions 3 --addr " + m[1], "echo hello | strata produce demo", "strata consume demo --from earliest"} {
		if !strings.Contains(rest, want) {
			t.Errorf("banner lacks %q:\n%s", want, rest)
		}
	}
	km := regexp.MustCompile(`(?m)^Kafka: kcat -b (\S+) -L$`).FindStringSubmatch(rest)
	if km == nil {
		t.Fatalf("banner names no Kafka listener:\n%s", rest)
	}
	return s, m[1], km[1]
}

// TestDevRestartKeepsData: every record acknowledged before a stop is there
// after a restart on the same data directory, at the same offsets.
func TestDevRestartKeepsData(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "strata-data")

	dev, addr := startDev(t, dataDir)
	ok(t, "", "topic", "create", "kept", "--partitions", "3", "--addr", addr)
	var lines []string
	for i := range 200 {
		lines = append(lines, fmt.Sprintf("key%c=value %d %s", 'a'+i%5, i, strings.Repeat("v", i%13)))
	}
	r := strata(t, strings.Join(lines, "\n")+"\n", "produce", "kept", "--key-separator", "=", "--print-offsets", "--addr", addr)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	acks := parseOffsets(t, r.stdout)
	before := ok(t, "", "consume", "kept", "--output", "json", "--addr", addr)
	if len(acks) != 200 || len(parseRecords(t, before)) != 200 {
		t.Fatalf("before the restart: %d acks, records:\n%s", len(acks), before)
	}
	if code := dev.stop(t); code != 0 {
		t.Fatalf("strata dev exit %d after interrupt; stderr:\n%s", code, dev.stderr)
	}
	if !strings.Contains(dev.stderr.String(), "agent stopped") {
		t.Errorf("dev logs lack the stop message:\n%s", dev.stderr)
	}
	for _, sub := range []string{"store", "index"} {
		if entries, err := os.ReadDir(filepath.Join(dataDir, sub)); err != nil || len(entries) == 0 {
			t.Errorf("%s/%s is empty or missing: %v", dataDir, sub, err)
		}
	}

	// issue 12: the agent id (so the Kafka node id) survives the restart.
	idFile, err := os.ReadFile(filepath.Join(dataDir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	agentID := strings.TrimSpace(string(idFile))
	if got := devAgentIDLogged(t, dev); got != agentID {
		t.Fatalf("strata dev served as agent %q, want %q from DIR/agent-id", got, agentID)
	}

	dev2, addr2 := startDev(t, dataDir)
	if got := devAgentIDLogged(t, dev2); got != agentID {
		t.Errorf("restarted strata dev serves as agent %q, want the first start's %q", got, agentID)
	}
	after := ok(t, "", "consume", "kept", "--output", "json", "--addr", addr2)
	if after != before {
		t.Errorf("records after the restart differ:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Spot check: the acked offset of the last line holds that line.
	a := acks[len(acks)-1]
	out := ok(t, "", "consume", "kept", "--partition", strconv.Itoa(int(a.Partition)), "--from", strconv.FormatInt(a.Offset, 10), "-n", "1", "--print-key", "--addr", addr2)
	if want := strings.Replace(lines[a.Line-1], "=", "\t", 1) + "\n"; out != want {
		t.Errorf("line %d at %d/%d after the restart: %q, want %q", a.Line, a.Partition, a.Offset, out, want)
	}
	// The restarted broker takes new records after the old ones.
	r = strata(t, "keya=new\n", "produce", "kept", "--key-separator", "=", "--print-offsets", "--addr", addr2)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	na := parseOffsets(t, r.stdout)
	var last int64 = -1
	for _, a := range acks {
		if a.Partition == na[0].Partition {
			last = max(last, a.Offset)
		}
	}
	if na[0].Offset != last+1 {
		t.Errorf("new record at offset %d of partition %d, want %d", na[0].Offset, na[0].Partition, last+1)
	}
	if code := dev2.stop(t); code != 0 {
		t.Fatalf("second strata dev exit %d; stderr:\n%s", code, dev2.stderr)
	}
}

// devAgentIDLogged returns the agent id of strata dev's text "agent
// serving" log line.
func devAgentIDLogged(t *testing.T, s *server) string {
	t.Helper()
	re := regexp.MustCompile(`msg="agent serving".* agent_id=(\S+)`)
	var id string
	waitFor(t, "the dev agent's serving log line", func() bool {
		m := re.FindStringSubmatch(s.stderr.String())
		if m != nil {
			id = m[1]
		}
		return m != nil
	})
	return id
}

// TestAgentConfigFile runs strata agent configured by a YAML file and the
// environment-free flags, and talks to it.
func TestAgentConfigFile(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "strata.yaml")
	yaml := "store: memory://\nindex: memory://\nlisten: 127.0.0.1:0\nadmin-listen: \"\"\nflush-interval: 20ms\nagent-id: from-file\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// A flag wins over the file; the log is JSON by default.
	s := startServer(t, &lockedBuffer{}, "agent", "--config", cfgFile, "--log-level", "debug", "--agent-id", "from-flag")

	addr, id := servingLog(t, s)
	if id != "from-flag" {
		t.Errorf("agent id %q, want the flag's", id)
	}
	ok(t, "", "topic", "create", "cfg", "--addr", addr)
	ok(t, "hello\n", "produce", "cfg", "--addr", addr)
	if out := ok(t, "", "consume", "cfg", "--addr", addr); out != "hello\n" {
		t.Errorf("consume printed %q", out)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("agent exit %d; stderr:\n%s", code, s.stderr)
	}

	// A key the agent does not know is an error, not silently ignored.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("store: memory://\nflush-intervall: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, "", []string{"agent", "--config", bad}, `unknown key "flush-intervall"`)
}

// servingLog waits for the agent's JSON "agent serving" log line and
// returns the API address and agent id it gives.
func servingLog(t *testing.T, s *server) (addr, agentID string) {
	t.Helper()
	waitFor(t, "the agent's serving log line", func() bool {
		for _, l := range strings.Split(s.stderr.String(), "\n") {
			var entry struct {
				Msg     string `json:"msg"`
				API     string `json:"api"`
				AgentID string `json:"agent_id"`
			}
			if json.Unmarshal([]byte(l), &entry) == nil && entry.Msg == "agent serving" {
				addr, agentID = entry.API, entry.AgentID
				return true
			}
		}
		return false
	})
	return addr, agentID
}

// TestAgentEnvBeatsFile: STRATA_* variables win over the config file, and
// give the required --store and --index. Not parallel: it sets the
// environment.
func TestAgentEnvBeatsFile(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(cfgFile, []byte("agent-id: from-file\nlisten: 127.0.0.1:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_STORE", "memory://")
	t.Setenv("STRATA_INDEX", "memory://")
	t.Setenv("STRATA_ADMIN_LISTEN", "")
	t.Setenv("STRATA_AGENT_ID", "from-env")
	s := startServer(t, io.Discard, "agent", "--config", cfgFile)
	addr, id := servingLog(t, s)
	if id != "from-env" {
		t.Errorf("agent id %q, want the environment's", id)
	}
	t.Setenv("STRATA_ADDR", addr)
	if out := ok(t, "", "topic", "list"); !strings.Contains(out, "No topics") {
		t.Errorf("topic list via STRATA_ADDR printed %q", out)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("agent exit %d; stderr:\n%s", code, s.stderr)
	}
}

// TestFollowEndsWithAgent: an agent shutting down ends a --follow stream,
// and the consumer says so instead of hanging or exiting 0.
func TestFollowEndsWithAgent(t *testing.T) {
	t.Parallel()
	s := startServer(t, io.Discard, "agent", "--store", "memory://", "--index", "memory://", "--listen", "127.0.0.1:0", "--admin-listen", "", "--flush-interval", "10ms")
	addr, _ := servingLog(t, s)
	ok(t, "", "topic", "create", "t", "--addr", addr)
	ok(t, "one\ntwo\n", "produce", "t", "--addr", addr)

	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr}
	done := make(chan int, 1)
	go func() {
		done <- c.run(t.Context(), []string{"consume", "t", "--follow", "--from", "earliest", "--addr", addr})
	}()
	waitFor(t, "the records", func() bool { return stdout.String() == "one\ntwo\n" })
	if code := s.stop(t); code != 0 {
		t.Errorf("agent exit %d: %s", code, s.stderr)
	}
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "ended the stream after 2 records") {
			t.Errorf("consume --follow when the agent stopped: exit %d, stderr %q", code, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consume --follow still running after its agent stopped")
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, stream := range map[string]any{"/dev/null": null, "a pipe": w, "a buffer": &lockedBuffer{}} {
		if isTerminal(stream) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}
