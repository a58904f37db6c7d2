package integration

// The API as generic tools see it: grpcurl through server reflection and
// gRPC health, curl through the Connect protocol's JSON over HTTP/1.1.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// grpcurlVersion is the grpcurl the tests install (checked to exist with
// `go list -m -versions github.com/fullstorydev/grpcurl`).
const grpcurlVersion = "v1.9.4"

var grpcurlInstall = sync.OnceValues(installGrpcurl)

// grpcurlBin returns grpcurl, installing it on first use into the same
// cache directory as the other test tools, outside the repository.
func grpcurlBin(t testing.TB) string {
	t.Helper()
	bin, err := grpcurlInstall()
	if err != nil {
		t.Fatalf("grpcurl %s is needed and could not be installed: %v", grpcurlVersion, err)
	}
	return bin
}

func installGrpcurl() (string, error) {
	cache := os.Getenv("STRATA_CACHE_DIR")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "strata")
	}
	binDir := filepath.Join(cache, "bin")
	bin := filepath.Join(binDir, "grpcurl-"+grpcurlVersion)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	// Install into a private directory, then rename: concurrent runs never
	// see a half-written binary.
	tmp, err := os.MkdirTemp(binDir, ".grpcurl-install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@"+grpcurlVersion)
	cmd.Dir = tmp // outside the module: its go.mod plays no part
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-buildvcs=false")
	fmt.Fprintf(os.Stderr, "integration: installing grpcurl %s into %s\n", grpcurlVersion, binDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install github.com/fullstorydev/grpcurl/cmd/grpcurl@%s: %w\n%s", grpcurlVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "grpcurl"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// curlBin returns curl from PATH.
func curlBin(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not in PATH (%v): the tests drive the API with curl as a user would; install it (apt-get install curl)", err)
	}
	return bin
}

// runTool runs an external tool with a timeout and returns its output.
func runTool(t testing.TB, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	setParentDeathSignal(cmd)
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustTool runs a tool and fails the test unless it exits 0.
func mustTool(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, errOut, err := runTool(t, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// curlJSON POSTs a Connect JSON request and returns the HTTP status and body.
func curlJSON(t testing.TB, baseURL, procedure, body string) (int, string) {
	t.Helper()
	out := mustTool(t, curlBin(t), "-sS", "-X", "POST",
		"-H", "Content-Type: application/json",
		"--data-binary", body,
		"-w", "\n%{http_code}",
		baseURL+"/"+procedure)
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		t.Fatalf("curl %s: no status in %q", procedure, out)
	}
	status, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %s: status %q: %v", procedure, out[i+1:], err)
	}
	return status, out[:i]
}

// connectErrorJSON is the Connect protocol's error body.
type connectErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func TestGrpcurlAndCurl(t *testing.T) {
	t.Parallel()
	grpcurl := grpcurlBin(t)
	curlBin(t)
	d := newDeployment(t)
	a := d.startAgent(t, "agent")
	topic := "tools-" + randomHex(3)

	t.Run("grpcurl", func(t *testing.T) {
		// Server reflection lists the three services.
		list := mustTool(t, grpcurl, "-plaintext", a.addr, "list")
		for _, svc := range []string{"strata.v1.AdminService", "strata.v1.ConsumerService", "strata.v1.ProducerService"} {
			if !strings.Contains(list, svc+"\n") {
				t.Errorf("grpcurl list: %s missing from:\n%s", svc, list)
			}
		}
		// Descriptors resolve with their imports (records.proto, the
		// well-known types): describe needs every file.
		desc := mustTool(t, grpcurl, "-plaintext", a.addr, "describe", "strata.v1.ProducerService")
		if !strings.Contains(desc, "rpc Produce ( .strata.v1.ProduceRequest ) returns ( .strata.v1.ProduceResponse )") {
			t.Errorf("grpcurl describe strata.v1.ProducerService:\n%s", desc)
		}
		msg := mustTool(t, grpcurl, "-plaintext", a.addr, "describe", "strata.v1.Record")
		if !strings.Contains(msg, "google.protobuf.Timestamp timestamp") {
			t.Errorf("grpcurl describe strata.v1.Record:\n%s", msg)
		}

		out := mustTool(t, grpcurl, "-plaintext", "-d", fmt.Sprintf(`{"name":%q,"partitions":2}`, topic), a.addr, "strata.v1.AdminService/CreateTopic")
		var created stratav1.CreateTopicResponse
		if err := protojson.Unmarshal([]byte(out), &created); err != nil {
			t.Fatalf("grpcurl CreateTopic printed %q: %v", out, err)
		}
		if created.GetTopic().GetName() != topic || created.GetTopic().GetPartitions() != 2 || created.GetTopic().GetId() == "" {
			t.Fatalf("grpcurl CreateTopic: %v, want %s with 2 partitions and an id", &created, topic)
		}

		for _, svc := range []string{"", "strata.v1.ProducerService", "strata.v1.ConsumerService", "strata.v1.AdminService"} {
			out := mustTool(t, grpcurl, "-plaintext", "-d", fmt.Sprintf(`{"service":%q}`, svc), a.addr, "grpc.health.v1.Health/Check")
			var health struct{ Status string }
			if err := json.Unmarshal([]byte(out), &health); err != nil || health.Status != "SERVING" {
				t.Errorf("grpcurl grpc.health.v1.Health/Check service %q: %q (%v), want status SERVING", svc, out, err)
			}
		}
		// An unknown service is NOT_FOUND, as the health protocol says.
		_, errOut, err := runTool(t, grpcurl, "-plaintext", "-d", `{"service":"no.such.Service"}`, a.addr, "grpc.health.v1.Health/Check")
		if err == nil || !strings.Contains(errOut, "NotFound") {
			t.Errorf("grpcurl Health/Check of an unknown service: %v, %q; want a NotFound error", err, errOut)
		}

		// A produce with bytes as base64, as grpcurl's JSON wants them.
		out = mustTool(t, grpcurl, "-plaintext", "-d",
			fmt.Sprintf(`{"topics":[{"topic":%q,"records":[{"value":%q,"partition":1}]}]}`, topic, base64.StdEncoding.EncodeToString([]byte("from grpcurl"))),
			a.addr, "strata.v1.ProducerService/Produce")
		var produced stratav1.ProduceResponse
		if err := protojson.Unmarshal([]byte(out), &produced); err != nil {
			t.Fatalf("grpcurl Produce printed %q: %v", out, err)
		}
		if rs := produced.GetTopics(); len(rs) != 1 || len(rs[0].GetResults()) != 1 || rs[0].GetResults()[0].GetPartition() != 1 || rs[0].GetResults()[0].GetOffset() != 0 {
			t.Errorf("grpcurl Produce: %v, want one result at 1/0", &produced)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("curl", func(t *testing.T) {
		// Produce three records (bytes fields in base64) after grpcurl's.
		values := []string{"from curl 1", "from curl 2", "\x00\xffbinary"}
		var recs []string
		for i, v := range values {
			recs = append(recs, fmt.Sprintf(`{"key":%q,"value":%q,"partition":1,"headers":[{"key":"h","value":%q}]}`,
				base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "k%d", i)),
				base64.StdEncoding.EncodeToString([]byte(v)),
				base64.StdEncoding.EncodeToString([]byte("hv"))))
		}
		body := fmt.Sprintf(`{"topics":[{"topic":%q,"records":[%s]}]}`, topic, strings.Join(recs, ","))
		status, out := curlJSON(t, a.url(), "strata.v1.ProducerService/Produce", body)
		if status != 200 {
			t.Fatalf("curl Produce: HTTP %d: %s", status, out)
		}
		var produced stratav1.ProduceResponse
		if err := protojson.Unmarshal([]byte(out), &produced); err != nil {
			t.Fatalf("curl Produce answered %q: %v", out, err)
		}
		rs := produced.GetTopics()
		if len(rs) != 1 || rs[0].GetTopic() != topic || len(rs[0].GetResults()) != len(values) {
			t.Fatalf("curl Produce: %s", out)
		}
		for i, r := range rs[0].GetResults() {
			if r.GetPartition() != 1 || r.GetOffset() != int64(i+1) {
				t.Errorf("curl Produce: record %d at %d/%d, want 1/%d", i, r.GetPartition(), r.GetOffset(), i+1)
			}
		}

		// And read them back with curl.
		status, out = curlJSON(t, a.url(), "strata.v1.ConsumerService/Fetch", fmt.Sprintf(`{"topic":%q,"partition":1,"offset":"1"}`, topic))
		if status != 200 {
			t.Fatalf("curl Fetch: HTTP %d: %s", status, out)
		}
		var fetched stratav1.FetchResponse
		if err := protojson.Unmarshal([]byte(out), &fetched); err != nil {
			t.Fatalf("curl Fetch answered %q: %v", out, err)
		}
		if len(fetched.GetRecords()) != len(values) || fetched.GetHighWatermark() != 4 || fetched.GetNextOffset() != 4 {
			t.Fatalf("curl Fetch from 1: %s; want 3 records, high watermark 4", out)
		}
		for i, r := range fetched.GetRecords() {
			if string(r.GetValue()) != values[i] || string(r.GetKey()) != fmt.Sprintf("k%d", i) ||
				len(r.GetHeaders()) != 1 || string(r.GetHeaders()[0].GetValue()) != "hv" {
				t.Errorf("curl Fetch: record %d is %v", i, r)
			}
		}

		// Malformed JSON: HTTP 400 with the Connect code invalid_argument.
		for _, bad := range []string{`{"topics": [`, `not json`, `{"topics":[{"topic":1}]}`} {
			status, out := curlJSON(t, a.url(), "strata.v1.ProducerService/Produce", bad)
			var ce connectErrorJSON
			err := json.Unmarshal([]byte(out), &ce)
			if status != 400 || err != nil || ce.Code != "invalid_argument" || ce.Message == "" {
				t.Errorf("curl Produce with body %q: HTTP %d %s; want 400 with code invalid_argument and a message", bad, status, out)
			}
		}
	})

	a.stop()
}
