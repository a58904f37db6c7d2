#!/usr/bin/env bash
# test-services.sh: run a command with the real services Strata's tests need.
#
#   scripts/test-services.sh go test ./...
#
# On a fresh machine it installs what is missing: redis-server (and redis-cli)
# and kcat with apt, MinIO with `go install` into a cache outside the repository
# ($STRATA_CACHE_DIR, default ~/.cache/strata). It then starts, each on a free
# loopback port with a throwaway data directory:
#   - one MinIO server,
#   - one standalone redis-server,
#   - a redis-server primary with one replica (replicaof), for tests of WAIT;
#     such a test may stop the replica (SIGSTOP, its pid is exported) and
#     must continue it (SIGCONT) when it is done,
#   - a three-shard Redis Cluster,
# exports their addresses as STRATA_TEST_* variables, runs the command, and stops
# everything when the command ends, fails, or is interrupted.
#
# A service that cannot start is an error: the script exits non-zero before
# running the command, so no test ever runs without the services it needs.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE_DIR=${STRATA_CACHE_DIR:-$HOME/.cache/strata}
BIN_DIR=$CACHE_DIR/bin
mkdir -p "$BIN_DIR"

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure_redis() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "redis-server is missing and apt-get is not available"
  log "installing redis-server with apt"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >&2 || die "apt-get install redis-server failed"
  # Debian's package may start a system instance on 6379; the tests never use it.
  command -v redis-server >/dev/null || die "redis-server still missing after apt-get install"
}

# kcat (librdkafka's command-line client) drives the Kafka listener's tests.
ensure_kcat() {
  command -v kcat >/dev/null && return
  command -v apt-get >/dev/null || die "kcat is missing and apt-get is not available"
  log "installing kcat with apt"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >&2 \
    || { $SUDO apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >&2; } \
    || die "apt-get install kcat failed"
  command -v kcat >/dev/null || die "kcat still missing after apt-get install"
}

ensure_minio() {
  if [ -x "$BIN_DIR/minio.$MINIO_VERSION" ]; then
    return
  fi
  # One build at a time when several runs start together.
  exec 9>"$BIN_DIR/.minio.lock"
  flock 9
  if [ -x "$BIN_DIR/minio.$MINIO_VERSION" ]; then
    flock -u 9
    return
  fi
  log "building MinIO $MINIO_VERSION with go install (first run only; takes a few minutes)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION") >&2 \
    || { rm -rf "$tmp"; die "go install github.com/minio/minio@$MINIO_VERSION failed"; }
  mv "$tmp/minio" "$BIN_DIR/minio.$MINIO_VERSION"
  rm -rf "$tmp"
  flock -u 9
}

# free_port prints a loopback TCP port that nothing listens on right now.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    # Ports used by redis cluster buses (port + 10000) must be free too.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && \
       ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null && \
       [ $((p + 10000)) -lt 65535 ]; then
      echo "$p"; return
    fi
  done
  die "no free port found"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-services.XXXXXX")
PIDS=()
CHILD=""
cleanup() {
  local rc=$?
  if [ -n "$CHILD" ]; then kill -TERM -- "-$CHILD" 2>/dev/null || true; fi
  # A test that stopped the replica and died cannot continue it: do it here,
  # or the TERM would wait for the KILL.
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "$CHILD" ]; then kill -KILL -- "-$CHILD" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # wait_for NAME SECONDS COMMAND...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_redis NAME [extra args...] starts a redis-server and sets STARTED_PORT.
# (Not a $(...) function: the server would hold the substitution's pipe open.)
start_redis() {
  local name=$1; shift
  local port dir pid
  for attempt in 1 2 3; do
    port=$(free_port)
    dir="$WORK/$name"
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
      --protected-mode no --daemonize no --logfile "$dir/redis.log" "$@" </dev/null >/dev/null 2>&1 &
    pid=$!
    if wait_for "$name" 10 redis-cli -h 127.0.0.1 -p "$port" ping; then
      PIDS+=("$pid")
      STARTED_PORT=$port
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    log "$name did not start on port $port (attempt $attempt): $(tail -n 3 "$dir/redis.log" 2>/dev/null)"
  done
  die "$name could not start"
}

ensure_redis
ensure_kcat
ensure_minio

# MinIO
MINIO_USER=strataminio
MINIO_PASS=strataminio-secret
for attempt in 1 2 3; do
  MINIO_PORT=$(free_port)
  MINIO_CONSOLE=$(free_port)
  mkdir -p "$WORK/minio"
  MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASS MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CI_CD=1 \
    "$BIN_DIR/minio.$MINIO_VERSION" server --quiet --address "127.0.0.1:$MINIO_PORT" \
    --console-address "127.0.0.1:$MINIO_CONSOLE" "$WORK/minio/data" </dev/null >"$WORK/minio/log" 2>&1 &
  MINIO_PID=$!
  if wait_for minio 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MINIO_PORT && printf 'GET /minio/health/ready HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3 | grep -q ' 200 '"; then
    PIDS+=("$MINIO_PID")
    break
  fi
  kill "$MINIO_PID" 2>/dev/null || true
  log "MinIO did not start (attempt $attempt): $(tail -n 5 "$WORK/minio/log")"
  [ "$attempt" = 3 ] && die "MinIO could not start"
done

# Standalone redis-server
start_redis redis
REDIS_PORT=$STARTED_PORT

# A primary and its replica, for WAIT
start_redis replica-primary
REPLICA_PRIMARY_PORT=$STARTED_PORT
start_redis replica --replicaof 127.0.0.1 "$REPLICA_PRIMARY_PORT"
REPLICA_PORT=$STARTED_PORT
REPLICA_PID=${PIDS[-1]}
replica_up() {
  redis-cli -h 127.0.0.1 -p "$REPLICA_PORT" info replication | grep -q 'master_link_status:up' &&
    redis-cli -h 127.0.0.1 -p "$REPLICA_PRIMARY_PORT" info replication | grep -q 'connected_slaves:1'
}
wait_for replica 30 replica_up || die "the replica did not catch up with its primary: $(tail -n 5 "$WORK/replica/redis.log")"

# Three-shard Redis Cluster
CLUSTER_ADDRS=()
for i in 1 2 3; do
  start_redis "cluster$i" --cluster-enabled yes --cluster-config-file "nodes.conf" --cluster-node-timeout 5000
  CLUSTER_ADDRS+=("127.0.0.1:$STARTED_PORT")
done
redis-cli --cluster create "${CLUSTER_ADDRS[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log" 2>&1 \
  || die "redis-cli --cluster create failed: $(tail -n 5 "$WORK/cluster-create.log")"
cluster_ok() {
  for a in "${CLUSTER_ADDRS[@]}"; do
    redis-cli -h "${a%:*}" -p "${a#*:}" cluster info | grep -q 'cluster_state:ok' || return 1
  done
}
wait_for cluster 30 cluster_ok || die "Redis Cluster did not reach cluster_state:ok"

export STRATA_TEST_S3_ENDPOINT="127.0.0.1:$MINIO_PORT"
export STRATA_TEST_S3_ACCESS_KEY=$MINIO_USER
export STRATA_TEST_S3_SECRET_KEY=$MINIO_PASS
export STRATA_TEST_REDIS_ADDR="127.0.0.1:$REDIS_PORT"
export STRATA_TEST_REDIS_REPLICA_PRIMARY_ADDR="127.0.0.1:$REPLICA_PRIMARY_PORT"
export STRATA_TEST_REDIS_REPLICA_ADDR="127.0.0.1:$REPLICA_PORT"
export STRATA_TEST_REDIS_REPLICA_PID=$REPLICA_PID
export STRATA_TEST_REDIS_CLUSTER_ADDRS
STRATA_TEST_REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${CLUSTER_ADDRS[*]}")
export STRATA_TEST_REDIS_SERVER_BIN
STRATA_TEST_REDIS_SERVER_BIN=$(command -v redis-server)
export STRATA_TEST_MINIO_BIN="$BIN_DIR/minio.$MINIO_VERSION"
export STRATA_TEST_KCAT_BIN
STRATA_TEST_KCAT_BIN=$(command -v kcat)
export STRATA_TEST_SERVICES=1

log "MinIO $STRATA_TEST_S3_ENDPOINT, redis $STRATA_TEST_REDIS_ADDR, primary $STRATA_TEST_REDIS_REPLICA_PRIMARY_ADDR with replica $STRATA_TEST_REDIS_REPLICA_ADDR, cluster $STRATA_TEST_REDIS_CLUSTER_ADDRS"
# The command runs in its own process group, in the background, so that a
# signal to this script (Ctrl-C, a CI timeout's TERM) runs the trap at once
# instead of after the command ends, and the trap stops the command with
# everything it started.
setsid "$@" &
CHILD=$!
set +e
wait "$CHILD"
rc=$?
set -e
CHILD=""
exit $rc
