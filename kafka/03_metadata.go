package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata: key 3, versions 0-12.
//
// Lists the live agents as brokers (the client's zone only, when its client id
// names a zone that has agents; see leaders.go) and, for each topic asked
// (by name, or by id from v10 on; every topic when the list is null, or empty
// at v0), every partition with its leader picked by rendezvous hashing among
// those brokers. Notes:
//
//   - Replicas and ISR are the leader alone: the data's replication is the
//     object store's, not the brokers'. Leader epochs are -1 (unknown), so
//     clients skip epoch fencing (KIP-320) and never send a stale epoch.
//   - Topics are never created by Metadata (allow_auto_topic_creation is
//     ignored, as with auto.create.topics.enable=false): an unknown topic is
//     UNKNOWN_TOPIC_OR_PARTITION, an unknown id UNKNOWN_TOPIC_ID.
//   - With no live agent listed, partitions answer LEADER_NOT_AVAILABLE
//     (retriable) with leader -1.
//   - The controller is the lowest broker id listed; authorized operations
//     are not computed (left at Kafka's "not asked" value).

func (s *Server) handleMetadata(ctx context.Context, cc *clientConn, req *kmsg.MetadataRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	brokers, brokersErr := s.brokersFor(ctx, cc)
	for _, b := range brokers {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.ID, b.Host, b.Port
		if b.Zone != "" {
			mb.Rack = kmsg.StringPtr(b.Zone)
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = kmsg.StringPtr(s.core.ClusterID())
	resp.ControllerID = controllerID(brokers)

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		topics, err := s.core.Topics(ctx)
		if err != nil {
			// No top-level error code before v13: the client sees no
			// topics and asks again later.
			s.log.Warn("Metadata: listing topics failed", "err", err)
		}
		for _, t := range topics {
			resp.Topics = append(resp.Topics, metadataTopic(t, brokers, brokersErr))
		}
		return ready(resp)
	}
	for _, rt := range req.Topics {
		var t Topic
		var err error
		if rt.Topic != nil {
			t, err = s.core.Topic(ctx, *rt.Topic)
		} else {
			t, err = s.core.TopicByID(ctx, rt.TopicID)
		}
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
			mt.ErrorCode = errorCode(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(t, brokers, brokersErr))
	}
	return ready(resp)
}

// metadataTopic describes one topic's partitions over brokers.
func metadataTopic(t Topic, brokers []Broker, brokersErr error) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr(t.Name)
	mt.TopicID = t.ID
	for p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p
		leader, code := leaderFor(brokers, brokersErr, t.ID, p)
		mp.ErrorCode, mp.Leader = code, leader
		if leader >= 0 {
			mp.Replicas = []int32{leader}
			mp.ISR = []int32{leader}
		} else {
			mp.Replicas, mp.ISR = []int32{}, []int32{}
		}
		mp.OfflineReplicas = []int32{}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// leaderFor returns a partition's leader id and error code: the rendezvous
// leader, or -1 with LEADER_NOT_AVAILABLE when there is no broker (or listing
// them failed with a retriable error; a core error of its own keeps its code).
func leaderFor(brokers []Broker, brokersErr error, topic TopicID, partition int32) (int32, int16) {
	if brokersErr != nil && !errors.Is(brokersErr, ErrUnavailable) {
		return -1, errorCode(brokersErr)
	}
	b, ok := partitionLeader(brokers, topic, partition)
	if !ok {
		return -1, kerr.LeaderNotAvailable.Code
	}
	return b.ID, 0
}
