package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRun lays out what scripts/bench.sh leaves behind, much shortened.
func writeRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"store.json": `{"object_size":4194304,"block_size":1048576,"concurrency":4,"duration_s":5,
			"put":{"ops":100,"seconds":5,"ops_per_sec":20,"mib_per_sec":80,"latency_ms":{"count":100,"p50":40,"p90":50,"p99":60,"p99_9":70,"max":80},"errors":{},"client_cpu_cores":0.3,"server_cpu_cores":1.1},
			"get":{"ops":500,"seconds":5,"ops_per_sec":100,"mib_per_sec":400,"latency_ms":{"count":500,"p50":9,"p90":10,"p99":20,"p99_9":30,"max":40},"errors":{}},
			"get_range_block":{"ops":1000,"seconds":5,"ops_per_sec":200,"mib_per_sec":200,"latency_ms":{"count":1000,"p50":4,"p90":5,"p99":9,"p99_9":10,"max":11},"errors":{}}}`,
		"produce-max.json": `{"command":"produce","record_size":1024,"batch":100,"producers":4,"max_inflight":64,"target_rate":0,
			"produce":{"records":100000,"bytes":102400000,"seconds":10,"records_per_sec":10000,"mib_per_sec":60,"latency_ms":{"count":1000,"p50":100,"p90":120,"p99":150,"p99_9":160,"max":170},"errors":{}},
			"agent":{"puts":200,"put_bytes":838860800,"commits":200,"commit_chunks":3200,"commit_attempts":200,"cpu_seconds":5,"put_seconds_sum":10},
			"client_cpu_s":2,"client_wall_s":13}`,
		"produce-half.json": `{"command":"produce","record_size":1024,"batch":100,"producers":4,"target_rate":5000,
			"produce":{"records":50000,"bytes":51200000,"seconds":10,"records_per_sec":5000,"mib_per_sec":30,"latency_ms":{"count":500,"p50":50,"p90":60,"p99":70,"p99_9":80,"max":90},"errors":{}},
			"agent":{"puts":200,"put_bytes":419430400,"commits":200,"commit_chunks":3000,"commit_attempts":200}}`,
		"e2e-half.json": `{"command":"e2e","producers":4,"consumers":4,"target_rate":5000,
			"produce":{"records":50000,"bytes":51200000,"seconds":10,"records_per_sec":5000,"mib_per_sec":30,"latency_ms":{"count":500,"p50":50,"p90":60,"p99":70,"p99_9":80,"max":90},"errors":{}},
			"consume":{"records":50000,"bytes":51200000,"seconds":10,"records_per_sec":5000,"mib_per_sec":30,"latency_ms":{"count":500,"p50":5,"p90":6,"p99":7,"p99_9":8,"max":9},"errors":{}},
			"e2e_latency_ms":{"count":50000,"p50":60,"p90":70,"p99":90,"p99_9":95,"max":99},
			"agent":{"gets":0,"cache_hits":500}}`,
		"consume.json": `{"command":"consume","consumers":4,"backlog":{"records":100000,"bytes":102400000},
			"consume":{"records":100000,"bytes":102400000,"seconds":1,"records_per_sec":100000,"mib_per_sec":150,"latency_ms":{"count":100,"p50":10,"p90":20,"p99":30,"p99_9":40,"max":50},"errors":{}},
			"agent":{"gets":100,"get_bytes":102400000}}`,
		"meta.txt":           "flush_interval=50ms\nduration=10s\nloadavg_before=0.1 0.2 0.3\n",
		"commands.tsv":       "produce-max\tbin/strata bench produce --json\n",
		"agent-1.vmhwm_kb":   "524288\n",
		"produce-max.procs":  "minio_cpu_s=6.5\nredis_cpu_s=0.5\nwall_s=13\n",
		"unrelated.txt":      "ignored",
		"partitions-1.json":  `{"command":"produce","produce":{"records":1,"bytes":1,"seconds":1,"records_per_sec":1,"mib_per_sec":1,"latency_ms":{}},"agent":{"puts":20,"commits":20,"commit_chunks":20}}`,
		"partitions-1.procs": "wall_s=0\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReport(t *testing.T) {
	t.Parallel()
	dir := writeRun(t)
	out, chart := filepath.Join(dir, "report.md"), filepath.Join(dir, "chart.svg")
	if err := run([]string{"report", "--in", dir, "--out", out, "--chart", chart}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Targets",
		"60.0 MiB/s of records vs 80.0 MiB/s of 4.00-MiB PUTs: **75%** | **met**", // produce vs PUT
		"p99 70.0 ms at 5000 records/s | **met**",                                 // ack at half: 70 <= 75
		"p99 90.0 ms at 5000 records/s | **met**",                                 // e2e: 90 <= 100
		"150.0 MiB/s vs 200.0 MiB/s of 1.00-MiB ranged GETs",                      // catch-up, 75%
		"0 GETs during the e2e run (500 cache hits) | **met**",
		"512 MiB peak RSS",
		"| produce-max | flat out | 10000 | 60.0 |",
		"0.50", // MinIO cores in the produce-max row: 6.5 s over 13 s
		"bin/strata bench produce --json",
		"![ack latency against throughput](chart.svg)",
		"## Analysis",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if svg, err := os.ReadFile(chart); err != nil || !bytes.HasPrefix(bytes.TrimSpace(svg), []byte("<?xml")) {
		t.Errorf("chart: %v, starts %q", err, svg[:min(len(svg), 20)])
	}
}

func TestGetAndSegmentSize(t *testing.T) {
	t.Parallel()
	dir := writeRun(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", filepath.Join(dir, "produce-max.json"), "produce.records_per_sec"}, "10000\n"},
		{[]string{"get", filepath.Join(dir, "produce-max.json"), "produce.mib_per_sec"}, "60\n"},
		{[]string{"get", filepath.Join(dir, "produce-max.json"), "command"}, "produce\n"},
		{[]string{"segment-size", filepath.Join(dir, "produce-max.json")}, "4194304\n"},
		{[]string{"segment-size", filepath.Join(dir, "consume.json")}, "8388608\n"}, // no PUTs: the default
	} {
		var out bytes.Buffer
		if err := run(tc.args, &out); err != nil || out.String() != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, out.String(), err, tc.want)
		}
	}
	for _, args := range [][]string{
		{},
		{"nope"},
		{"get", filepath.Join(dir, "produce-max.json"), "produce.nothing"},
		{"get", filepath.Join(dir, "missing.json"), "x"},
		{"report", "--in", t.TempDir()},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
