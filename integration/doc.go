// Package integration holds Strata's end-to-end tests. They build the real
// strata binary once, run agents as separate processes against the real
// services scripts/test-services.sh starts (MinIO, redis-server), and talk to
// them only as a user would: through the public API (Connect, gRPC and
// gRPC-web clients generated from proto/strata/v1, grpcurl, curl, the
// TypeScript example of docs/typescript.md run by Node) and the CLI. They kill agents with SIGTERM and SIGKILL and check what the
// design promises: acked records are never lost, offsets stay dense and
// ordered, errors carry the right code and a useful message.
//
// To crash an agent between two exact steps rather than wherever a signal
// lands, a test arms a failpoint in the agent's environment
// (STRATA_FAILPOINTS, internal/failpoint): failpoint_test.go kills the
// compactor and the janitor at each of their steps that way.
//
// Consumer group members of Kafka clients are processes too (a node script
// for kafkajs, testdata/saramamember, which the test builds, for sarama), so
// that a member can be killed with SIGKILL; they log their assignments and
// records to files that groupload_test.go checks.
//
// Each test gets its own MinIO bucket and its own Redis database (the agent
// has no index key prefix setting), so the tests run in parallel on the
// shared servers.
//
// A process's output is shown when its test fails; set
// STRATA_INTEGRATION_LOGS=1 to see it always.
//
// The package has no non-test code besides this file, and nothing imports it.
// It must not import agent, coordinator or objectlog: it sees the system from
// the outside.
package integration
