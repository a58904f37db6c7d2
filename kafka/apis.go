package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc starts one request and returns how to wait for its answer.
type handlerFunc func(s *Server, ctx context.Context, cc *clientConn, req kmsg.Request) func() (kmsg.Response, error)

// api is one served Kafka API: its version range and handler.
type api struct {
	min, max int16
	handle   handlerFunc
}

// typed adapts a handler of one concrete request type.
func typed[R kmsg.Request](f func(*Server, context.Context, *clientConn, R) func() (kmsg.Response, error)) handlerFunc {
	return func(s *Server, ctx context.Context, cc *clientConn, req kmsg.Request) func() (kmsg.Response, error) {
		return f(s, ctx, cc, req.(R))
	}
}

// apis is every API served, with the versions served: the one place where
// they are registered. ApiVersions advertises exactly this table; any other
// key or version is answered with UNSUPPORTED_VERSION. The ranges are those
// current clients negotiate (Kafka 3.x/4.x and franz-go's kfake are the
// reference), bounded by what kmsg v1.15.1 encodes; old versions are left out
// where they predate record batches v2 (Fetch < 4) or carry semantics we do
// not keep (ListOffsets v0's list of offsets). Produce v0-2 are the exception:
// listed, and answered UNSUPPORTED_VERSION (00_produce.go), because
// librdkafka compresses only for brokers that list Produce v0. Consumer
// groups are served with the classic protocol and KIP-848's consumer
// protocol. Transactions are served at transaction protocol version 1
// (KIP-98, KIP-447): AddPartitionsToTxn and EndTxn stop before KIP-890 part
// 2's versions, so clients do not expect its server side.
var apis map[int16]api

func init() {
	apis = map[int16]api{
		int16(kmsg.Produce):                 {0, 11, typed((*Server).handleProduce)}, // 0-2: see 00_produce.go
		int16(kmsg.Fetch):                   {4, 16, typed((*Server).handleFetch)},
		int16(kmsg.ListOffsets):             {1, 8, typed((*Server).handleListOffsets)},
		int16(kmsg.Metadata):                {0, 12, typed((*Server).handleMetadata)},
		int16(kmsg.ApiVersions):             {0, 4, typed((*Server).handleApiVersions)},
		int16(kmsg.CreateTopics):            {2, 7, typed((*Server).handleCreateTopics)},
		int16(kmsg.DeleteTopics):            {1, 6, typed((*Server).handleDeleteTopics)},
		int16(kmsg.DeleteRecords):           {0, 2, typed((*Server).handleDeleteRecords)},
		int16(kmsg.InitProducerID):          {0, 5, typed((*Server).handleInitProducerID)},
		int16(kmsg.OffsetForLeaderEpoch):    {0, 4, typed((*Server).handleOffsetForLeaderEpoch)},
		int16(kmsg.DescribeConfigs):         {0, 4, typed((*Server).handleDescribeConfigs)},
		int16(kmsg.AlterConfigs):            {0, 2, typed((*Server).handleAlterConfigs)},
		int16(kmsg.CreatePartitions):        {0, 3, typed((*Server).handleCreatePartitions)},
		int16(kmsg.IncrementalAlterConfigs): {0, 1, typed((*Server).handleIncrementalAlterConfigs)},
		int16(kmsg.DescribeCluster):         {0, 1, typed((*Server).handleDescribeCluster)},
		int16(kmsg.DescribeTopicPartitions): {0, 0, typed((*Server).handleDescribeTopicPartitions)},
		// What web consoles (AKHQ, Kafdrop, Kafka UI) and kafka-*.sh tools
		// ask besides: sizes, and the answers of a broker with no
		// authorizer, quotas or reassignments.
		int16(kmsg.DescribeLogDirs):            {1, 4, typed((*Server).handleDescribeLogDirs)},
		int16(kmsg.DescribeACLs):               {1, 3, typed((*Server).handleDescribeAcls)},
		int16(kmsg.CreateACLs):                 {1, 3, typed((*Server).handleCreateAcls)},
		int16(kmsg.DeleteACLs):                 {1, 3, typed((*Server).handleDeleteAcls)},
		int16(kmsg.ListPartitionReassignments): {0, 0, typed((*Server).handleListPartitionReassignments)},
		int16(kmsg.DescribeClientQuotas):       {0, 1, typed((*Server).handleDescribeClientQuotas)},
		// Consumer groups (groups.go), the classic protocol.
		int16(kmsg.OffsetCommit):    {2, 9, typed((*Server).handleOffsetCommit)},
		int16(kmsg.OffsetFetch):     {1, 9, typed((*Server).handleOffsetFetch)},
		int16(kmsg.FindCoordinator): {0, 5, typed((*Server).handleFindCoordinator)},
		int16(kmsg.JoinGroup):       {2, 9, typed((*Server).handleJoinGroup)},
		int16(kmsg.Heartbeat):       {0, 4, typed((*Server).handleHeartbeat)},
		int16(kmsg.LeaveGroup):      {0, 5, typed((*Server).handleLeaveGroup)},
		int16(kmsg.SyncGroup):       {0, 5, typed((*Server).handleSyncGroup)},
		int16(kmsg.DescribeGroups):  {0, 5, typed((*Server).handleDescribeGroups)},
		int16(kmsg.ListGroups):      {0, 5, typed((*Server).handleListGroups)},
		int16(kmsg.DeleteGroups):    {0, 2, typed((*Server).handleDeleteGroups)},
		int16(kmsg.OffsetDelete):    {0, 0, typed((*Server).handleOffsetDelete)},
		// KIP-848's consumer group protocol (consumer_groups.go).
		int16(kmsg.ConsumerGroupHeartbeat): {0, 1, typed((*Server).handleConsumerGroupHeartbeat)},
		int16(kmsg.ConsumerGroupDescribe):  {0, 0, typed((*Server).handleConsumerGroupDescribe)},
		// Transactions (txn.go), transaction protocol version 1: the
		// versions of KIP-890 part 2 are left out.
		int16(kmsg.AddPartitionsToTxn): {0, 3, typed((*Server).handleAddPartitionsToTxn)},
		int16(kmsg.AddOffsetsToTxn):    {0, 3, typed((*Server).handleAddOffsetsToTxn)},
		int16(kmsg.EndTxn):             {0, 3, typed((*Server).handleEndTxn)},
		int16(kmsg.TxnOffsetCommit):    {0, 3, typed((*Server).handleTxnOffsetCommit)},
		// KIP-664's admin view (65_describe_transactions.go).
		int16(kmsg.DescribeTransactions): {0, 0, typed((*Server).handleDescribeTransactions)},
	}
}
