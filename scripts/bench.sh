#!/usr/bin/env bash
# bench.sh: the fixed benchmark suite behind `make bench`. Run it under
# scripts/test-services.sh, which starts MinIO and redis-server:
#
#   scripts/test-services.sh scripts/bench.sh
#
# It builds bin/strata, runs a real `strata agent` on free ports against
# that MinIO and redis-server, runs `strata bench` with --json (store
# ceilings, produce flat out, produce and e2e at half of that, a rate sweep,
# 1/100/1000 partitions at one load, catch-up reads through a second agent
# with a cold cache), then the data lifecycle's go test benchmarks
# ($BENCH_OUT/lifecycle.txt), and writes docs/benchmarks.md and
# docs/benchmarks-latency.svg with internal/benchreport. The JSON results
# and the agents' logs stay in $BENCH_OUT (default bin/bench).
#
# Settings (environment): BENCH_FLUSH_INTERVAL (50ms), BENCH_DURATION (10s),
# BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${STRATA_TEST_S3_ENDPOINT:?run under scripts/test-services.sh (make bench does)}"
: "${STRATA_TEST_REDIS_ADDR:?run under scripts/test-services.sh (make bench does)}"

FLUSH=${BENCH_FLUSH_INTERVAL:-50ms}
DURATION=${BENCH_DURATION:-10s}
SHORT=${BENCH_SHORT_DURATION:-6s}
OUT=${BENCH_OUT:-bin/bench}
rm -rf "$OUT"
mkdir -p "$OUT"

log() { printf 'bench: %s\n' "$*" >&2; }

log "building bin/strata and bin/benchreport"
go build -o bin/strata ./cmd/strata
go build -o bin/benchreport ./internal/benchreport
STRATA=bin/strata
REPORT=bin/benchreport

export AWS_ACCESS_KEY_ID=$STRATA_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$STRATA_TEST_S3_SECRET_KEY
BUCKET=strata-bench-$(date +%s)
STORE="s3://$BUCKET/strata?endpoint=$STRATA_TEST_S3_ENDPOINT&insecure=true&create_bucket=true"
INDEX="redis://$STRATA_TEST_REDIS_ADDR/0"

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  log "no free port"; exit 1
}

AGENT_PID=""
cleanup() {
  if [ -n "$AGENT_PID" ]; then kill -TERM "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# start_agent NAME [agent flags]: a strata agent on free ports; sets ADDR,
# METRICS, AGENT_PID.
start_agent() {
  local name=$1 api admin
  shift
  api=$(free_port)
  admin=$(free_port)
  ADDR=http://127.0.0.1:$api
  METRICS=http://127.0.0.1:$admin/metrics
  local cmd=("$STRATA" agent --store "$STORE" --index "$INDEX" --listen "127.0.0.1:$api"
    --admin-listen "127.0.0.1:$admin" --flush-interval "$FLUSH" --log-format text --log-level warn "$@")
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$OUT/commands.tsv"
  "${cmd[@]}" 2>>"$OUT/$name.log" &
  AGENT_PID=$!
  for _ in $(seq 1 100); do
    if "$STRATA" topic list --addr "$ADDR" >/dev/null 2>&1; then return; fi
    kill -0 "$AGENT_PID" 2>/dev/null || { log "agent $name died: $(tail -n 5 "$OUT/$name.log")"; exit 1; }
    sleep 0.1
  done
  log "agent $name did not come up"; exit 1
}

# stop_agent NAME: records the agent's peak RSS (VmHWM) and stops it.
stop_agent() {
  local name=$1
  awk '/^VmHWM:/ {print $2}' "/proc/$AGENT_PID/status" >"$OUT/$name.vmhwm_kb"
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID" || true
  AGENT_PID=""
}

# The servers' processes, to report their CPU use (the agent reports its
# own in its metrics, strata bench its own in its results).
MINIO_PID=$(pgrep -f -- "--address $STRATA_TEST_S3_ENDPOINT" | head -n 1 || true)
REDIS_PID=$(pgrep -f -- "redis-server $STRATA_TEST_REDIS_ADDR" | head -n 1 || true)
cpu_of() { # cpu_of PID: user+system CPU seconds so far, or 0
  if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then
    sed 's/.*) //' "/proc/$1/stat" | awk '{printf "%.2f", ($12 + $13) / 100}'
  else
    echo 0
  fi
}

# bench NAME ARGS...: strata bench ARGS --json > $OUT/NAME.json, the
# command line in commands.tsv, and MinIO's and redis-server's CPU seconds
# over the command in NAME.procs.
bench() {
  local name=$1; shift
  printf '%s\t%s\n' "$name" "$STRATA bench $* --json" >>"$OUT/commands.tsv"
  log "$name: strata bench $*"
  local m0 r0 t0
  m0=$(cpu_of "$MINIO_PID"); r0=$(cpu_of "$REDIS_PID"); t0=$(date +%s.%N)
  "$STRATA" bench "$@" --json >"$OUT/$name.json"
  awk -v m0="$m0" -v m1="$(cpu_of "$MINIO_PID")" -v r0="$r0" -v r1="$(cpu_of "$REDIS_PID")" \
    -v t0="$t0" -v t1="$(date +%s.%N)" \
    'BEGIN { printf "minio_cpu_s=%.2f\nredis_cpu_s=%.2f\nwall_s=%.3f\n", m1 - m0, r1 - r0, t1 - t0 }' >"$OUT/$name.procs"
}

get() { "$REPORT" get "$OUT/$1.json" "$2"; }

{
  echo "flush_interval=$FLUSH"
  echo "duration=$DURATION"
  echo "short_duration=$SHORT"
  echo "redis_version=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
  echo "minio_version=$(basename "$STRATA_TEST_MINIO_BIN" | sed 's/^minio\.//')"
  echo "redis_config=test-services.sh defaults: appendonly no, save ''"
  echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

COMMON=(--record-size 1024 --batch 100 --producers 4 --max-inflight 64)

start_agent agent-1
# Flat out: the agent's maximum. The topic is kept as the catch-up backlog.
bench produce-max produce --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" \
  --topic bench-backlog --partitions 16 --keep --duration "$DURATION" --warmup 3s
MAX_RATE=$(get produce-max produce.records_per_sec)
SEGMENT=$("$REPORT" segment-size "$OUT/produce-max.json")
log "max $MAX_RATE records/s; segments of $SEGMENT bytes on average"

# The store and the index alone, at the segment size the agent wrote.
bench store store --store "$STORE" --index "$INDEX" --object-size "$SEGMENT" --block-size 1MiB \
  --concurrency 4 --duration 5s ${MINIO_PID:+--watch-pid $MINIO_PID} ${REDIS_PID:+--watch-index-pid $REDIS_PID}

HALF=$(( ${MAX_RATE%.*} / 2 ))
bench produce-half produce --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" \
  --partitions 16 --rate "$HALF" --duration "$DURATION" --warmup 3s
bench e2e-half e2e --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" --consumers 4 \
  --partitions 16 --rate "$HALF" --duration "$DURATION" --warmup 3s

# The rate sweep for the latency-throughput chart (50% and 100% are above).
for pct in 10 25 75 90; do
  bench "sweep-$pct" produce --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" \
    --partitions 16 --rate $(( ${MAX_RATE%.*} * pct / 100 )) --duration "$SHORT" --warmup 2s
done

# PUTs per second must not grow with partitions: one load, 1/100/1000.
LOAD=$(( ${MAX_RATE%.*} / 4 ))
for parts in 1 100 1000; do
  bench "partitions-$parts" produce --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" \
    --partitions "$parts" --rate "$LOAD" --duration "$SHORT" --warmup 2s
done
stop_agent agent-1

# The same half load with segments capped at 1 MiB: more, smaller PUTs,
# each done sooner (the latency knob; see the report).
start_agent agent-small --segment-max-bytes 1048576
bench produce-half-1mib produce --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" \
  --partitions 16 --rate "$HALF" --duration "$DURATION" --warmup 3s
bench e2e-half-1mib e2e --addr "$ADDR" --metrics "$METRICS" "${COMMON[@]}" --consumers 4 \
  --partitions 16 --rate "$HALF" --duration "$DURATION" --warmup 3s
stop_agent agent-small

# Catch-up: a fresh agent, whose cache has none of the backlog, so every
# byte comes from the store.
start_agent agent-2
bench consume consume --addr "$ADDR" --metrics "$METRICS" --topic bench-backlog --consumers 4 \
  --api subscribe --duration 2m
"$STRATA" topic delete bench-backlog --addr "$ADDR" >/dev/null
stop_agent agent-2

# The data lifecycle's go test benchmarks (compaction throughput and CPU,
# catch-up from hot segments, from the archive and raw GETs, index memory
# per partition, archive against hot bytes), on the filesystem store and
# this MinIO and redis-server; docs/archive.md "Performance" quotes a run.
log "lifecycle: go test -bench (agent, objectlog) > $OUT/lifecycle.txt"
go test -run '^$' -bench 'BenchmarkCompaction$|BenchmarkCatchUp' -benchtime 2x ./agent/ >"$OUT/lifecycle.txt"
go test -run '^$' -bench 'BenchmarkIndexMemory' -benchtime 1x ./agent/ >>"$OUT/lifecycle.txt"
go test -run '^$' -bench 'BenchmarkArchive' ./objectlog/ >>"$OUT/lifecycle.txt"

echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
log "writing docs/benchmarks.md"
"$REPORT" report --in "$OUT" --out docs/benchmarks.md --chart docs/benchmarks-latency.svg
log "done: docs/benchmarks.md"
