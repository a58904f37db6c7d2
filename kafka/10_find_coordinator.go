package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: key 10, versions 0-5.
//
// Names the broker that coordinates a group (key type 0) or a transactional
// id (key type 1). Every agent coordinates every group and transactional id,
// since their state is in the index, so the answer only steers clients: the
// live broker picked by rendezvous hashing of the key among the brokers the
// client sees (its zone's, when it names one; leaders.go), the same on every
// agent and stable under agent churn. When the coordinator an answer named
// dies, the client asks again and gets another live agent. Notes:
//
//   - v4+ batch keys (KIP-699): one answer per key, in request order.
//   - Key types other than 0 and 1 are INVALID_REQUEST; an empty group id
//     is INVALID_GROUP_ID (Kafka's answer for a null or empty id).
//   - With no live broker listed, COORDINATOR_NOT_AVAILABLE (retriable).
//   - v6 (share groups, KIP-932) is not served.

func (s *Server) handleFindCoordinator(ctx context.Context, cc *clientConn, req *kmsg.FindCoordinatorRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	brokers, brokersErr := s.brokersFor(ctx, cc)
	find := func(key string) (Broker, *kerr.Error, *string) {
		switch {
		case req.CoordinatorType != 0 && req.CoordinatorType != 1:
			msg := "coordinator key type must be 0 (group) or 1 (transaction)"
			return Broker{}, kerr.InvalidRequest, &msg
		case key == "" && req.CoordinatorType == 0:
			msg := "empty group id"
			return Broker{}, kerr.InvalidGroupID, &msg
		case brokersErr != nil:
			return Broker{}, kerr.CoordinatorNotAvailable, errorMessage(brokersErr)
		}
		b, ok := coordinatorFor(brokers, req.CoordinatorType, key)
		if !ok {
			msg := "no live agent is registered"
			return Broker{}, kerr.CoordinatorNotAvailable, &msg
		}
		return b, nil, nil
	}
	if req.Version < 4 {
		b, kerrCode, msg := find(req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port = b.ID, b.Host, b.Port
		if kerrCode != nil {
			resp.NodeID, resp.Host, resp.Port = -1, "", -1
			resp.ErrorCode, resp.ErrorMessage = kerrCode.Code, msg
		}
		return ready(resp)
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		b, kerrCode, msg := find(key)
		c.NodeID, c.Host, c.Port = b.ID, b.Host, b.Port
		if kerrCode != nil {
			c.NodeID, c.Host, c.Port = -1, "", -1
			c.ErrorCode, c.ErrorMessage = kerrCode.Code, msg
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return ready(resp)
}

// coordinatorFor picks the coordinator of a key by rendezvous hashing over
// the brokers (see leaders.go for why rendezvous), false when there are
// none. The hashed key is the key type's byte and the key.
func coordinatorFor(brokers []Broker, keyType int8, key string) (Broker, bool) {
	return rendezvous(brokers, append([]byte{byte(keyType)}, key...))
}
