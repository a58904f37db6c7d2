// Package testenv hands tests the real services that scripts/test-services.sh
// started: a MinIO server, a standalone redis-server, a redis-server primary
// with one replica, and a three-shard Redis Cluster. A test that needs one calls the matching function; when the service
// is not there the test fails with a message saying how to start it. It never
// skips: a test that silently did not run is worse than a red one.
//
// testenv must only be imported from tests.
package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

const howTo = "run the tests with `make test` (or scripts/test-services.sh go test ./...), which starts MinIO and redis-server"

// S3 describes the MinIO server started for the tests.
type S3 struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
}

// MinIO returns the shared MinIO server. Tests create their own buckets.
func MinIO(t testing.TB) S3 {
	t.Helper()
	s := S3{
		Endpoint:  os.Getenv("STRATA_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("STRATA_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("STRATA_TEST_S3_SECRET_KEY"),
	}
	if s.Endpoint == "" {
		t.Fatalf("STRATA_TEST_S3_ENDPOINT is not set: %s", howTo)
	}
	return s
}

// RedisAddr returns host:port of the shared standalone redis-server. Tests keep
// apart by using their own key prefix.
func RedisAddr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("STRATA_TEST_REDIS_ADDR")
	if a == "" {
		t.Fatalf("STRATA_TEST_REDIS_ADDR is not set: %s", howTo)
	}
	return a
}

// ReplicatedRedis is a redis-server primary and one replica following it
// (replicaof), for tests of WAIT.
type ReplicatedRedis struct {
	PrimaryAddr string // host:port
	ReplicaAddr string // host:port
	// ReplicaPID is the replica's process: a test may stop it (SIGSTOP) to
	// make WAIT time out, and must continue it (SIGCONT) in its cleanup.
	ReplicaPID int
}

// RedisReplica returns the shared primary and replica, held by the calling
// test alone until it ends (other tests using them, in any package, wait),
// so that one may stop the replica (StopRedisReplica) without failing
// another that needs it answering.
func RedisReplica(t testing.TB) ReplicatedRedis {
	t.Helper()
	r := ReplicatedRedis{
		PrimaryAddr: os.Getenv("STRATA_TEST_REDIS_REPLICA_PRIMARY_ADDR"),
		ReplicaAddr: os.Getenv("STRATA_TEST_REDIS_REPLICA_ADDR"),
	}
	pid, err := strconv.Atoi(os.Getenv("STRATA_TEST_REDIS_REPLICA_PID"))
	if r.PrimaryAddr == "" || r.ReplicaAddr == "" || err != nil || pid <= 0 {
		t.Fatalf("STRATA_TEST_REDIS_REPLICA_PRIMARY_ADDR, STRATA_TEST_REDIS_REPLICA_ADDR or STRATA_TEST_REDIS_REPLICA_PID is not set: %s", howTo)
	}
	r.ReplicaPID = pid
	holdReplica(t, pid)
	return r
}

// RedisClusterAddrs returns the seed addresses of the shared Redis Cluster.
func RedisClusterAddrs(t testing.TB) []string {
	t.Helper()
	a := os.Getenv("STRATA_TEST_REDIS_CLUSTER_ADDRS")
	if a == "" {
		t.Fatalf("STRATA_TEST_REDIS_CLUSTER_ADDRS is not set: %s", howTo)
	}
	return strings.Split(a, ",")
}

// RedisServerBin returns the path of the redis-server binary, for tests that
// run (and restart) a private server of their own.
func RedisServerBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("STRATA_TEST_REDIS_SERVER_BIN"); b != "" {
		return b
	}
	t.Fatalf("STRATA_TEST_REDIS_SERVER_BIN is not set: %s", howTo)
	return ""
}

// MinIOBin returns the path of the MinIO binary, for tests that run a private
// server of their own.
func MinIOBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("STRATA_TEST_MINIO_BIN"); b != "" {
		return b
	}
	t.Fatalf("STRATA_TEST_MINIO_BIN is not set: %s", howTo)
	return ""
}

// KcatBin returns the path of kcat (the librdkafka command-line client), for
// tests that drive the Kafka listener with a real non-Go client. It is
// $STRATA_TEST_KCAT_BIN, else kcat on the PATH; scripts/test-services.sh
// installs it with apt when it is missing. Without it the test fails.
func KcatBin(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("STRATA_TEST_KCAT_BIN"); b != "" {
		return b
	}
	if b, err := exec.LookPath("kcat"); err == nil {
		return b
	}
	t.Fatalf("kcat is not installed (apt-get install kcat): %s", howTo)
	return ""
}
