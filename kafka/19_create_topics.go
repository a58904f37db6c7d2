package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics: key 19, versions 2-7.
//
// Creates each topic through the core (validate_only checks and creates
// nothing). Notes:
//
//   - num_partitions -1 takes the core's default (KIP-464).
//   - replication_factor is accepted and not kept: durability is the object
//     store's, and each partition is reported with one replica, its leader.
//     -1 or any positive factor is fine; 0 or below -1 is
//     INVALID_REPLICATION_FACTOR, as Kafka answers. v5+ report factor 1.
//   - A manual replica assignment fixes only the partition count (one entry
//     per partition); giving both an assignment and a partition count is
//     INVALID_REQUEST, as in Kafka.
//   - A topic named twice in one request is INVALID_REQUEST for each entry.
//   - Null config values are skipped (Kafka leaves the default).
//   - v5+ answer with the partition count and the topic's configs; v7 with
//     the topic id.

func (s *Server) handleCreateTopics(ctx context.Context, _ *clientConn, req *kmsg.CreateTopicsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		t := kmsg.NewCreateTopicsResponseTopic()
		t.Topic = rt.Topic
		t.NumPartitions, t.ReplicationFactor = -1, -1
		fail := func(err error) {
			t.ErrorCode, t.ErrorMessage = errorCode(err), errorMessage(err)
		}
		spec := TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, Configs: map[string]string{}}
		switch {
		case seen[rt.Topic] > 1:
			fail(fmt.Errorf("%w: topic %q is named more than once in the request", ErrInvalidRequest, rt.Topic))
		case rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1:
			fail(fmt.Errorf("%w: replication factor %d; use -1 or a positive number", kerr.InvalidReplicationFactor, rt.ReplicationFactor))
		case len(rt.ReplicaAssignment) > 0 && rt.NumPartitions != -1:
			fail(fmt.Errorf("%w: both a replica assignment and a partition count (%d) were given", ErrInvalidRequest, rt.NumPartitions))
		default:
			if len(rt.ReplicaAssignment) > 0 {
				spec.Partitions = int32(len(rt.ReplicaAssignment))
			}
			for _, c := range rt.Configs {
				if c.Value != nil {
					spec.Configs[c.Name] = *c.Value
				}
			}
			created, err := s.core.CreateTopic(ctx, spec, req.ValidateOnly)
			if err != nil {
				fail(err)
				break
			}
			t.TopicID = created.ID
			t.NumPartitions, t.ReplicationFactor = created.Partitions, 1
			if req.Version >= 5 && !req.ValidateOnly {
				configs, err := s.core.TopicConfigs(ctx, rt.Topic)
				if err != nil {
					// Created, so no error; the configs are only a courtesy.
					s.log.Warn("CreateTopics: reading the new topic's configs failed", "topic", rt.Topic, "err", err)
				}
				for _, c := range configs {
					rc := kmsg.NewCreateTopicsResponseTopicConfig()
					rc.Name, rc.Value, rc.ReadOnly, rc.Source, rc.IsSensitive = c.Name, c.Value, c.ReadOnly, int8(c.Source), c.Sensitive
					if c.Sensitive {
						rc.Value = nil
					}
					t.Configs = append(t.Configs, rc)
				}
			}
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
