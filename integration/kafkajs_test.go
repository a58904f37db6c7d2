package integration

// kafkajs, the Node.js Kafka client (npm, nobody here wrote it), against a
// real agent process on MinIO and redis-server. The client side is
// integration/testdata/kafkajs/kafkajs-check.js (what it checks is written at
// its top); its packages are pinned in package.json and package-lock.json
// there and installed by `make kafkajs-deps` (npm ci), which make test runs
// first. This test runs the script, then reads the log over the Connect API
// and checks that it holds exactly what kafkajs was acked, at its offsets.
//
// kafkajs consumes only through consumer groups (JoinGroup and SyncGroup);
// this script reads with kafkajs's own Fetch instead, to check each record's
// fields, and kafkajs_groups_test.go runs consumer.run members.

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// kafkajsScript returns Node and the check script, or fails the test with
// what to do when the pinned packages are not installed.
func kafkajsScript(t *testing.T) (node, script string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "integration", "testdata", "kafkajs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Fatalf("%s/node_modules is not installed (%v): run `make kafkajs-deps` (npm ci there) first; make test does", dir, err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		// The Node that web/package-lock.json pins, when web/ is installed.
		node = filepath.Join(root, "web", "node_modules", ".bin", "node")
		if _, serr := os.Stat(node); serr != nil {
			t.Fatalf("no Node.js on PATH (%v) and none in web/node_modules: install Node.js 20 or later", err)
		}
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	if major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(version, ".", 2)[0], "v")); major < 20 {
		t.Fatalf("%s is Node %s; the kafkajs test needs 20 or later", node, version)
	}
	return node, filepath.Join(dir, "kafkajs-check.js")
}

// kafkajsRecord is one record as the script reports it: what it produced
// and where it was acked.
type kafkajsRecord struct {
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers"`
	Timestamp int64             `json:"timestamp"` // ms since the epoch
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
}

func TestKafkaJSProduceFetchAdmin(t *testing.T) {
	t.Parallel()
	node, script := kafkajsScript(t)
	d := newDeployment(t)
	kafkaAddr := freeAddr(t)
	agent := d.startAgent(t, "agent", "--kafka-listen", kafkaAddr)
	topic := "kafkajs-" + randomHex(3)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, kafkaAddr, topic)
	cmd.Env = childEnv("KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s %s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(script), kafkaAddr, topic, err, out, stderr.String())
	}
	var report struct {
		Records []kafkajsRecord `json:"records"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("the script's output is not its JSON report: %v\n%s", err, out)
	}
	// 4 codecs of 30 records, over 3 partitions.
	if len(report.Records) != 120 {
		t.Fatalf("the script reports %d records, want 120", len(report.Records))
	}

	// What kafkajs was acked is the log, read over the Connect API: at the
	// acked offsets, with the same keys, values, headers and timestamps,
	// nothing more.
	c := newClients(agent.url(), protoConnect)
	logs := map[int32][]*stratav1.ConsumedRecord{}
	for p := range int32(3) {
		logs[p] = readPartition(t, c, topic, p, 0)
	}
	stored := 0
	for _, l := range logs {
		stored += len(l)
	}
	if stored != len(report.Records) {
		t.Fatalf("the topic holds %d records, kafkajs was acked %d", stored, len(report.Records))
	}
	for _, w := range report.Records {
		l := logs[w.Partition]
		if w.Offset >= int64(len(l)) {
			t.Fatalf("%q acked at %d/%d, but the partition ends at %d", w.Value, w.Partition, w.Offset, len(l))
		}
		r := l[w.Offset]
		if string(r.GetKey()) != w.Key || string(r.GetValue()) != w.Value {
			t.Fatalf("%d/%d: key %q value %q, kafkajs produced %q %q there", w.Partition, w.Offset, r.GetKey(), r.GetValue(), w.Key, w.Value)
		}
		if got := r.GetTimestamp().AsTime().UnixMilli(); got != w.Timestamp {
			t.Fatalf("%d/%d: timestamp %d, kafkajs produced %d", w.Partition, w.Offset, got, w.Timestamp)
		}
		headers := map[string]string{}
		for _, h := range r.GetHeaders() {
			headers[h.GetKey()] = string(h.GetValue())
		}
		if !maps.Equal(headers, w.Headers) {
			t.Fatalf("%d/%d: headers %v, kafkajs produced %v", w.Partition, w.Offset, headers, w.Headers)
		}
	}
}

// kafkajs's admin.resetOffsets commits Kafka's -2 (earliest) and -1
// (latest) for the clients to resolve (issue 13): the agent stores them,
// OffsetFetch returns them, and the Connect API reads them as no committed
// offset (the lag counted from the log start, never negative).
func TestKafkaJSResetOffsets(t *testing.T) {
	t.Parallel()
	node, script := kafkajsScript(t)
	script = filepath.Join(filepath.Dir(script), "kafkajs-reset.js")
	d := newDeployment(t)
	kafkaAddr := freeAddr(t)
	agent := d.startAgent(t, "agent", "--kafka-listen", kafkaAddr)
	topic, group := "kafkajs-reset-"+randomHex(3), "kafkajs-reset-group"

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, kafkaAddr, topic, group)
	cmd.Env = childEnv("KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(script), err, out, stderr.String())
	}
	c := newClients(agent.url(), protoConnect)
	d2, err := c.group.DescribeGroup(ctx, connect.NewRequest(&stratav1.DescribeGroupRequest{Group: group}))
	if err != nil {
		t.Fatal(err)
	}
	if len(d2.Msg.GetPartitions()) != 2 || d2.Msg.GetTotalLag() != 10 {
		t.Fatalf("described after the reset to latest (-1, no committed offset): %v", d2.Msg)
	}
	for _, p := range d2.Msg.GetPartitions() {
		if p.GetCommittedOffset() != -1 || p.GetLag() != 5 {
			t.Fatalf("partition %d: committed %d lag %d, want none (-1) and 5", p.GetPartition(), p.GetCommittedOffset(), p.GetLag())
		}
	}
}
