// Package kafka is Strata's Kafka front-end: the Kafka wire protocol over the
// protocol-agnostic agent core, so that every agent is a Kafka broker that
// unmodified Kafka clients (franz-go, librdkafka/kcat, the Java client) can
// produce to, consume from and administer.
//
// What it owns:
//
//   - the listener (NewServer, Serve, Close): size-prefixed frames bounded by
//     Config.MaxRequestBytes before anything is allocated, request headers
//     read by hand (request.go), pipelined requests answered in order;
//   - one file per Kafka API (00_produce.go, 01_fetch.go, 03_metadata.go, ...),
//     each opening with notes on its behaviour and version quirks, all
//     registered with their version ranges in one table (apis.go), which is
//     also what ApiVersions advertises; anything else is UNSUPPORTED_VERSION;
//   - Kafka's view of the cluster: every live agent is a broker, each
//     partition's leader is picked by rendezvous hashing, and a client that
//     names its zone in its client id sees its zone's agents (leaders.go);
//   - the checks Kafka makes on produced record batches before they are stored
//     byte for byte (batch.go);
//   - the one table from the core's errors to Kafka error codes (errors.go),
//     with franz-go's kerr as the source of codes and their retriable flags.
//
// What it needs from the core is the Core interface (core.go), in types of
// this package, with each method's contract: the core lists brokers and
// topics, creates and changes them, appends and reads batches, looks offsets
// up and hands out producer ids. The handlers stay thin: decode with
// franz-go's kmsg, call the core, encode; a behaviour that both the Connect
// and the Kafka front-ends have (produce, fetch, groups, transactions) lives
// once, in the core.
//
// Wiring (cmd/strata): --kafka-listen is the address given to Serve;
// --kafka-advertise is what the agent registers for Core.Brokers to list, so
// the front-end itself needs neither. One Server may Serve several listeners.
//
// What it must not import: the agent's internals or its Connect front-end,
// connectrpc or the generated protobuf code, coordinator and objectlog. Core
// is implemented over the agent core by the adapter in kafka/agentcore (the
// one package that knows both the agent's Go API and this package's types;
// the core itself must not know Kafka); this package never reaches past
// Core. It is the only package that knows Kafka frames.
//
// Consumer groups (FindCoordinator, the classic protocol's JoinGroup,
// SyncGroup, Heartbeat and LeaveGroup, OffsetCommit, OffsetFetch,
// DescribeGroups, ListGroups, DeleteGroups, OffsetDelete) are served over
// GroupCore (groups.go), whose state machine is the agent core's
// (agent/core_groups.go), so that any agent serves any member. KIP-848's
// consumer protocol (ConsumerGroupHeartbeat v0-1, ConsumerGroupDescribe v0)
// is served over ConsumerGroupCore (consumer_groups.go), the Connect API's
// native server-side groups (agent/core_consumer_groups.go).
//
// Transactions (InitProducerId with a transactional id, AddPartitionsToTxn,
// AddOffsetsToTxn, TxnOffsetCommit, EndTxn, transactional batches in
// Produce) are served over TxnCore (txn.go), the agent core's native
// transactions (agent/core_txn.go), at transaction protocol version 1: the
// versions of KIP-890 part 2 are not advertised.
//
// What web consoles ask besides (AKHQ, Kafdrop, Kafka UI): DescribeLogDirs
// reports the partitions this broker leads (ClusterCore.NodeID) with their
// sizes (StorageCore); the ACL APIs answer SECURITY_DISABLED (no
// authorizer); DescribeClientQuotas and ListPartitionReassignments answer
// empty. DescribeTransactions describes a transactional id
// (TxnDescribeCore). ListTransactions and DescribeProducers are not served:
// ListTransactions needs every transactional id, and the index lists only
// those of open transactions (the reaper's deadlines).
package kafka
