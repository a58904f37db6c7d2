// Command benchreport turns the results of scripts/bench.sh (the --json
// outputs of strata bench, the agents' peak RSS, the commands run) into
// docs/benchmarks.md and its latency-throughput chart. It also answers the
// script's small questions about a result file, so the script needs no jq.
//
//	benchreport get FILE PATH            a value, PATH like produce.records_per_sec
//	benchreport segment-size FILE        average bytes per PUT during a run
//	benchreport report --in DIR --out FILE.md --chart FILE.svg
package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("want a subcommand: get, segment-size or report")
	}
	switch args[0] {
	case "get":
		if len(args) != 3 {
			return errors.New("usage: benchreport get FILE PATH")
		}
		v, err := getPath(args[1], args[2])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, v)
		return nil
	case "segment-size":
		if len(args) != 2 {
			return errors.New("usage: benchreport segment-size FILE")
		}
		var r result
		if err := readJSON(args[1], &r); err != nil {
			return err
		}
		size := int64(8 << 20)
		if puts := r.Agent["puts"]; puts > 0 {
			size = int64(math.Round(r.Agent["put_bytes"] / puts))
		}
		fmt.Fprintln(stdout, size)
		return nil
	case "report":
		fs := flag.NewFlagSet("report", flag.ContinueOnError)
		in := fs.String("in", "bin/bench", "directory of results")
		out := fs.String("out", "docs/benchmarks.md", "report to write")
		chart := fs.String("chart", "docs/benchmarks-latency.svg", "chart to write")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return report(*in, *out, *chart)
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// The shapes of strata bench --json, as much of them as the report reads.
type latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

type flow struct {
	Records       int64            `json:"records"`
	Bytes         int64            `json:"bytes"`
	Seconds       float64          `json:"seconds"`
	RecordsPerSec float64          `json:"records_per_sec"`
	MiBPerSec     float64          `json:"mib_per_sec"`
	Latency       latency          `json:"latency_ms"`
	Errors        map[string]int64 `json:"errors"`
}

type result struct {
	Command     string   `json:"command"`
	Topic       string   `json:"topic"`
	Partitions  int32    `json:"partitions"`
	Producers   int      `json:"producers"`
	Consumers   int      `json:"consumers"`
	RecordSize  int64    `json:"record_size"`
	Batch       int      `json:"batch"`
	MaxInflight int      `json:"max_inflight"`
	ClientCPU   float64  `json:"client_cpu_s"`
	ClientWall  float64  `json:"client_wall_s"`
	TargetRate  float64  `json:"target_rate"`
	Duration    float64  `json:"duration_s"`
	Warmup      float64  `json:"warmup_s"`
	Produce     *flow    `json:"produce"`
	Consume     *flow    `json:"consume"`
	E2E         *latency `json:"e2e_latency_ms"`
	Backlog     *struct {
		Records int64 `json:"records"`
		Bytes   int64 `json:"bytes"`
	} `json:"backlog"`
	Agent map[string]float64 `json:"agent"`
}

type op struct {
	Ops       int64            `json:"ops"`
	Seconds   float64          `json:"seconds"`
	OpsPerSec float64          `json:"ops_per_sec"`
	MiBPerSec float64          `json:"mib_per_sec"`
	Latency   latency          `json:"latency_ms"`
	Errors    map[string]int64 `json:"errors"`
	ClientCPU float64          `json:"client_cpu_cores"`
	ServerCPU float64          `json:"server_cpu_cores"`
}

type storeResult struct {
	ObjectSize  int64   `json:"object_size"`
	BlockSize   int64   `json:"block_size"`
	Concurrency int     `json:"concurrency"`
	Duration    float64 `json:"duration_s"`
	Put         *op     `json:"put"`
	Get         *op     `json:"get"`
	GetRange64K *op     `json:"get_range_64k"`
	GetRangeBlk *op     `json:"get_range_block"`
	RedisPing   *op     `json:"redis_ping"`
	RedisEval   *op     `json:"redis_eval"`
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// getPath reads a dotted path (produce.records_per_sec) from a JSON file.
func getPath(file, path string) (string, error) {
	var v any
	if err := readJSON(file, &v); err != nil {
		return "", err
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s: %s: not an object at %q", file, path, k)
		}
		if v, ok = m[k]; !ok {
			return "", fmt.Errorf("%s: no %s", file, path)
		}
	}
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case string:
		return x, nil
	}
	data, err := json.Marshal(v)
	return string(data), err
}

// machine describes the computer the suite ran on.
type machine struct {
	CPU, Kernel, Go, OS string
	Cores               int
	MemGiB              float64
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemGiB = kb / (1 << 20)
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	return m
}

// runData is everything a suite run left in its directory.
type runData struct {
	results  map[string]*result
	store    *storeResult
	meta     map[string]string
	commands [][2]string // name, command line
	vmhwmKB  map[string]int64
	// procs holds, per run, MinIO's and redis-server's CPU seconds and the
	// run's wall time (scripts/bench.sh measures them around each run).
	procs map[string]map[string]float64
}

func load(dir string) (*runData, error) {
	d := &runData{results: map[string]*result{}, meta: map[string]string{}, vmhwmKB: map[string]int64{}, procs: map[string]map[string]float64{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if name == "store" {
			d.store = &storeResult{}
			if err := readJSON(f, d.store); err != nil {
				return nil, err
			}
			continue
		}
		r := &result{}
		if err := readJSON(f, r); err != nil {
			return nil, err
		}
		d.results[name] = r
	}
	if data, err := os.ReadFile(filepath.Join(dir, "meta.txt")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				d.meta[k] = v
			}
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "commands.tsv")); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if k, v, ok := strings.Cut(line, "\t"); ok {
				d.commands = append(d.commands, [2]string{k, v})
			}
		}
	}
	hw, _ := filepath.Glob(filepath.Join(dir, "*.vmhwm_kb"))
	for _, f := range hw {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if kb, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil {
			d.vmhwmKB[strings.TrimSuffix(filepath.Base(f), ".vmhwm_kb")] = kb
		}
	}
	pf, _ := filepath.Glob(filepath.Join(dir, "*.procs"))
	for _, f := range pf {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		m := map[string]float64{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					m[k] = x
				}
			}
		}
		d.procs[strings.TrimSuffix(filepath.Base(f), ".procs")] = m
	}
	if d.store == nil || d.results["produce-max"] == nil {
		return nil, fmt.Errorf("%s: no store.json or produce-max.json: run scripts/bench.sh first", dir)
	}
	return d, nil
}

func report(in, out, chart string) error {
	d, err := load(in)
	if err != nil {
		return err
	}
	chartName := filepath.Base(chart)
	if err := drawChart(d, chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	var b strings.Builder
	writeReport(&b, d, describeMachine(), chartName, time.Now().UTC())
	return os.WriteFile(out, []byte(b.String()), 0o644)
}
