package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListPartitionReassignments: key 46, version 0 (KIP-455).
//
// A partition's data is in the object store, not on its leader, so there
// are no replicas to move and never a reassignment in progress: the answer
// is no error and no topics, whatever topics were asked (null: all), as
// Kafka answers when none is ongoing; topics that do not exist are left
// out alike. AlterPartitionReassignments is not served.

func (s *Server) handleListPartitionReassignments(_ context.Context, _ *clientConn, req *kmsg.ListPartitionReassignmentsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	resp.Topics = []kmsg.ListPartitionReassignmentsResponseTopic{}
	return ready(resp)
}
