package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions: key 37, versions 0-3 (KIP-195).
//
// Grows each topic to Count partitions in total; existing partitions keep
// their data and their key mapping is the client's business (as in Kafka,
// keys move when the count changes). Manual assignments are accepted and
// ignored: every agent serves every partition. A count not above the current
// one is INVALID_PARTITIONS; a topic named twice is INVALID_REQUEST;
// validate_only checks and changes nothing.

func (s *Server) handleCreatePartitions(ctx context.Context, _ *clientConn, req *kmsg.CreatePartitionsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		t := kmsg.NewCreatePartitionsResponseTopic()
		t.Topic = rt.Topic
		var err error
		if seen[rt.Topic] > 1 {
			err = fmt.Errorf("%w: topic %q is named more than once in the request", ErrInvalidRequest, rt.Topic)
		} else {
			err = s.core.CreatePartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
		}
		if err != nil {
			t.ErrorCode, t.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
