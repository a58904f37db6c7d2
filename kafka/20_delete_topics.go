package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics: key 20, versions 1-6.
//
// Deletes each topic named (v0-5: names; v6: names or topic ids, KIP-516)
// through the core, which removes its data in time. An unknown name is
// UNKNOWN_TOPIC_OR_PARTITION, an unknown id UNKNOWN_TOPIC_ID. v5+ carry
// the error's text; v6 answers with the deleted topic's id and name.

func (s *Server) handleDeleteTopics(ctx context.Context, _ *clientConn, req *kmsg.DeleteTopicsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	asked := req.Topics
	if req.Version < 6 {
		asked = nil
		for _, name := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			asked = append(asked, rt)
		}
	}
	for _, rt := range asked {
		t := kmsg.NewDeleteTopicsResponseTopic()
		t.Topic, t.TopicID = rt.Topic, rt.TopicID
		name, err := "", error(nil)
		if rt.Topic != nil {
			name = *rt.Topic
		} else {
			var topic Topic
			topic, err = s.core.TopicByID(ctx, rt.TopicID)
			name = topic.Name
		}
		if err == nil {
			var deleted Topic
			if deleted, err = s.core.DeleteTopic(ctx, name); err == nil {
				t.Topic, t.TopicID = kmsg.StringPtr(deleted.Name), deleted.ID
			}
		}
		if err != nil {
			t.ErrorCode, t.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
