#!/usr/bin/env bash
# bench-kafka.sh: the Kafka listener and the Connect API (its per-record calls
# and its batch calls) side by side, on the same kind of agent and the same
# store, with `strata bench` (internal/bench):
#
#   scripts/test-services.sh scripts/bench-kafka.sh    # MinIO + redis-server
#   BENCH_MODE=dev scripts/bench-kafka.sh              # strata dev: files + miniredis
#
# For each front-end (connect: ProduceStream and Subscribe; batch: Kafka
# record batches on ProduceBatchesStream and FetchBatches, `--api batch`;
# kafka: franz-go, idempotent, acks=all) it measures on one agent:
#   - produce flat out (the maximum), the backlog for the catch-up read;
#   - the store's raw PUT and GET throughput (strata bench store) at the
#     object size that agent wrote (its average segment);
#   - produce at half of that maximum: ack latency;
#   - catch-up reads of the backlog through a fresh agent (nothing cached,
#     every byte from the store);
#   - the agent's CPU milliseconds (its process_cpu_seconds_total) per MiB
#     produced and per MiB read (strata bench's agent_cpu_ms_per_mib).
# It prints one table (also $OUT/side-by-side.md) of: produce as a fraction
# of raw PUT (target 80%), catch-up as a fraction of raw ranged GET of cache
# blocks (target 70%), ack p99 at half load, agent CPU ms per MiB. The JSON
# results, the commands and the agents' logs stay in $OUT (default
# bin/bench-kafka).
#
# Settings (environment): BENCH_MODE (services or dev), BENCH_FLUSH_INTERVAL
# (50ms), BENCH_DURATION (10s), BENCH_FRONTENDS ("connect batch kafka"),
# BENCH_OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${BENCH_MODE:-services}
FLUSH=${BENCH_FLUSH_INTERVAL:-50ms}
DURATION=${BENCH_DURATION:-10s}
FRONTENDS=${BENCH_FRONTENDS:-connect batch kafka}
OUT=${BENCH_OUT:-bin/bench-kafka}
rm -rf "$OUT"
mkdir -p "$OUT"

log() { printf 'bench-kafka: %s\n' "$*" >&2; }

log "building bin/strata and bin/benchreport"
go build -o bin/strata ./cmd/strata
go build -o bin/benchreport ./internal/benchreport
STRATA=bin/strata
REPORT=bin/benchreport

case $MODE in
services)
  : "${STRATA_TEST_S3_ENDPOINT:?run under scripts/test-services.sh, or with BENCH_MODE=dev}"
  : "${STRATA_TEST_REDIS_ADDR:?run under scripts/test-services.sh, or with BENCH_MODE=dev}"
  export AWS_ACCESS_KEY_ID=$STRATA_TEST_S3_ACCESS_KEY
  export AWS_SECRET_ACCESS_KEY=$STRATA_TEST_S3_SECRET_KEY
  BUCKET=strata-bench-kafka-$(date +%s)
  STORE="s3://$BUCKET/strata?endpoint=$STRATA_TEST_S3_ENDPOINT&insecure=true&create_bucket=true"
  INDEX="redis://$STRATA_TEST_REDIS_ADDR/0"
  RAW_STORE=$STORE
  ;;
dev)
  DATA=$(mktemp -d)
  RAW_STORE="file://$DATA/raw"
  ;;
*)
  log "BENCH_MODE=$MODE: want services or dev"; exit 2 ;;
esac

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
  if [ "$MODE" = dev ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

# start_agent NAME: an agent (strata agent on the services, or strata dev on
# $DATA/dev-$fe) with a Kafka listener, on free ports; sets ADDR, KAFKA, METRICS,
# AGENT_PID.
start_agent() {
  local name=$1 api admin kafka
  api=$(free_port); admin=$(free_port); kafka=$(free_port)
  ADDR=http://127.0.0.1:$api
  KAFKA=127.0.0.1:$kafka
  METRICS=http://127.0.0.1:$admin/metrics
  local cmd
  if [ "$MODE" = dev ]; then
    # One data directory per front-end: the embedded index's cost per
    # command grows with its keys, so the second front-end must not
    # inherit the first one's.
    cmd=("$STRATA" dev --data-dir "$DATA/dev-$fe")
  else
    cmd=("$STRATA" agent --store "$STORE" --index "$INDEX")
  fi
  cmd+=(--listen "127.0.0.1:$api" --admin-listen "127.0.0.1:$admin" --kafka-listen "$KAFKA"
    --flush-interval "$FLUSH" --log-format text --log-level warn)
  printf '%s\t%s\n' "$name" "${cmd[*]}" >>"$OUT/commands.tsv"
  "${cmd[@]}" >>"$OUT/$name.log" 2>&1 &
  AGENT_PID=$!
  for _ in $(seq 1 100); do
    if "$STRATA" topic list --addr "$ADDR" >/dev/null 2>&1; then return; fi
    kill -0 "$AGENT_PID" 2>/dev/null || { log "agent $name died: $(tail -n 5 "$OUT/$name.log")"; exit 1; }
    sleep 0.1
  done
  log "agent $name did not come up"; exit 1
}

stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID" || true
  AGENT_PID=""
}

bench() { # bench NAME ARGS...: strata bench ARGS --json > $OUT/NAME.json
  local name=$1; shift
  printf '%s\t%s\n' "$name" "$STRATA bench $* --json" >>"$OUT/commands.tsv"
  log "$name: strata bench $*"
  "$STRATA" bench "$@" --json >"$OUT/$name.json"
}

get() { "$REPORT" get "$OUT/$1.json" "$2"; }

echo "mode=$MODE flush=$FLUSH duration=$DURATION loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/meta.txt"
COMMON=(--record-size 1024 --batch 100 --producers 4 --max-inflight 64 --partitions 16)

for fe in $FRONTENDS; do
  start_agent "$fe-writer"
  case $fe in
  kafka) target=(--kafka "$KAFKA") ;;
  batch) target=(--addr "$ADDR" --api batch) ;;
  connect) target=(--addr "$ADDR") ;;
  *) log "BENCH_FRONTENDS: unknown front-end $fe (want connect, batch or kafka)"; exit 2 ;;
  esac
  bench "$fe-produce-max" produce "${target[@]}" --metrics "$METRICS" "${COMMON[@]}" \
    --topic "bench-backlog-$fe" --keep --duration "$DURATION" --warmup 3s
  max=$(get "$fe-produce-max" produce.records_per_sec)
  segment=$("$REPORT" segment-size "$OUT/$fe-produce-max.json")
  log "$fe: max $max records/s; segments of $segment bytes on average"
  bench "$fe-store" store --store "$RAW_STORE" --object-size "$segment" --block-size 1MiB \
    --concurrency 4 --duration 5s
  bench "$fe-produce-half" produce "${target[@]}" --metrics "$METRICS" "${COMMON[@]}" \
    --rate $(( ${max%.*} / 2 )) --duration "$DURATION" --warmup 3s
  stop_agent

  # Catch-up through a fresh agent: its cache holds none of the backlog.
  start_agent "$fe-reader"
  # The readers ask for many partitions per fetch as Kafka's consumers do
  # (fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB: the
  # defaults of --fetch-max-bytes and --fetch-bytes).
  case $fe in
  kafka) target=(--kafka "$KAFKA") ;;
  batch) target=(--addr "$ADDR" --api batch) ;;
  connect) target=(--addr "$ADDR" --api subscribe) ;;
  esac
  bench "$fe-consume" consume "${target[@]}" --metrics "$METRICS" --topic "bench-backlog-$fe" \
    --consumers 4 --duration 2m
  "$STRATA" topic delete "bench-backlog-$fe" --addr "$ADDR" >/dev/null
  stop_agent
done
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"

# The side-by-side table.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
{
  echo "| front-end | produce MiB/s | raw PUT MiB/s (object) | produce/PUT (target 80%) | catch-up MiB/s | raw GET MiB/s (1 MiB ranges; whole objects) | catch-up/GET (target 70%) | ack p99 ms at half load (records/s) | agent CPU ms per MiB produced | agent CPU ms per MiB read |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for fe in $FRONTENDS; do
    p=$(get "$fe-produce-max" produce.mib_per_sec)
    put=$(get "$fe-store" put.mib_per_sec)
    obj=$(awk -v b="$(get "$fe-store" object_size)" 'BEGIN { printf "%.2f MiB", b / 1048576 }')
    c=$(get "$fe-consume" consume.mib_per_sec)
    blk=$(get "$fe-store" get_range_block.mib_per_sec)
    whole=$(get "$fe-store" get.mib_per_sec)
    p99=$(get "$fe-produce-half" produce.latency_ms.p99)
    half=$(get "$fe-produce-half" produce.records_per_sec)
    pcpu=$(get "$fe-produce-max" agent_cpu_ms_per_mib || echo -)
    ccpu=$(get "$fe-consume" agent_cpu_ms_per_mib || echo -)
    echo "| $fe | $p | $put ($obj) | $(pct "$p" "$put") | $c | $blk; $whole | $(pct "$c" "$blk") | $p99 ($half) | $pcpu | $ccpu |"
  done
} >"$OUT/side-by-side.md"
cat "$OUT/meta.txt" "$OUT/side-by-side.md"
