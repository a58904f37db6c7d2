package kafka

import (
	"cmp"
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch: key 9, versions 1-9.
//
// Returns a group's committed offsets, shared with the Connect API's
// groups: those of the partitions asked, or every one when the topic list
// is null (v2+). A partition with no committed offset answers offset -1
// and empty metadata, as Kafka does; offsets of a topic since deleted are
// not returned (they belong to the deleted topic, KIP-516). The committed
// leader epoch (v5+) is -1: partitions have no leader epochs. v8+ ask for
// many groups at once, each answered with its own error code. RequireStable
// (v7+, KIP-447) is not honoured yet: a partition whose offset an open
// transaction staged (TxnOffsetCommit) answers its last committed offset,
// not UNSTABLE_OFFSET_COMMIT, so a member reading it while such a
// transaction is still being completed (an agent died during its EndTxn;
// the reaper finishes it at its deadline) reads the older offset. The member id and epoch
// of v9 (KIP-848) are not checked. v0 (offsets in ZooKeeper) and v10 (topic
// ids) are not served.

func (s *Server) handleOffsetFetch(ctx context.Context, _ *clientConn, req *kmsg.OffsetFetchRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		if req.Version < 8 {
			var topics []offsetFetchAsk
			if req.Topics != nil {
				topics = []offsetFetchAsk{}
				for _, t := range req.Topics {
					topics = append(topics, offsetFetchAsk{t.Topic, t.Partitions})
				}
			}
			got, err := s.fetchGroupOffsets(ctx, req.Group, topics)
			if err != nil {
				resp.ErrorCode = errorCode(err)
				if req.Version < 2 {
					// No top-level code before v2: every partition carries it.
					for _, t := range req.Topics {
						rt := kmsg.NewOffsetFetchResponseTopic()
						rt.Topic = t.Topic
						for _, p := range t.Partitions {
							rp := kmsg.NewOffsetFetchResponseTopicPartition()
							rp.Partition, rp.Offset, rp.ErrorCode = p, -1, errorCode(err)
							rt.Partitions = append(rt.Partitions, rp)
						}
						resp.Topics = append(resp.Topics, rt)
					}
				}
				return resp, nil
			}
			for _, t := range got {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.topic
				for _, p := range t.partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset.Offset, -1, kmsg.StringPtr(p.offset.Metadata)
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil
		}
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			var topics []offsetFetchAsk
			if g.Topics != nil {
				topics = []offsetFetchAsk{}
				for _, t := range g.Topics {
					topics = append(topics, offsetFetchAsk{t.Topic, t.Partitions})
				}
			}
			got, err := s.fetchGroupOffsets(ctx, g.Group, topics)
			if err != nil {
				rg.ErrorCode = errorCode(err)
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			for _, t := range got {
				rt := kmsg.NewOffsetFetchResponseGroupTopic()
				rt.Topic = t.topic
				for _, p := range t.partitions {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset.Offset, -1, kmsg.StringPtr(p.offset.Metadata)
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}
}

// offsetFetchAsk is one topic's partitions asked for.
type offsetFetchAsk struct {
	Topic      string
	Partitions []int32
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	offset    CommittedOffset
}

// fetchGroupOffsets answers one group: the partitions asked in their order
// (offset -1 for those with none), or every committed one (topics nil),
// sorted by topic and partition.
func (s *Server) fetchGroupOffsets(ctx context.Context, group string, topics []offsetFetchAsk) ([]fetchedTopic, error) {
	if group == "" {
		return nil, kerr.InvalidGroupID
	}
	var tps []TopicPartition
	for _, t := range topics {
		for _, p := range t.Partitions {
			tps = append(tps, TopicPartition{t.Topic, p})
		}
	}
	if topics != nil && len(tps) == 0 {
		return nil, nil
	}
	got, err := s.core.FetchOffsets(ctx, group, tps)
	if err != nil {
		return nil, err
	}
	var out []fetchedTopic
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range got {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{tp.Partition, o})
		}
		for _, name := range sortedKeys(byTopic) {
			ps := byTopic[name]
			sortPartitions(ps)
			out = append(out, fetchedTopic{name, ps})
		}
		return out, nil
	}
	for _, t := range topics {
		ft := fetchedTopic{topic: t.Topic}
		for _, p := range t.Partitions {
			o, ok := got[TopicPartition{t.Topic, p}]
			if !ok {
				o = CommittedOffset{Offset: -1, LeaderEpoch: -1}
			}
			ft.partitions = append(ft.partitions, fetchedPartition{p, o})
		}
		out = append(out, ft)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortPartitions(ps []fetchedPartition) {
	slices.SortFunc(ps, func(a, b fetchedPartition) int { return cmp.Compare(a.partition, b.partition) })
}
