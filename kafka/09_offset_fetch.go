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
// leader epoch (v5+) is the one the client committed (OffsetCommit v6+,
// TxnOffsetCommit v2+), -1 when it sent none: Strata's partitions have no
// leader epochs (Metadata answers -1), and OffsetForLeaderEpoch answers any
// epoch with the high watermark, so a client validating the epoch it
// committed never sees a truncation. v8+ ask for many groups at once, each
// answered with its own error code.
//
// RequireStable (v7+, KIP-447): a partition with offsets a transaction
// staged (TxnOffsetCommit) and has not completed answers
// UNSTABLE_OFFSET_COMMIT (retriable) with offset -1, per partition as
// Kafka does, so a member taking over a partition from a transactional
// producer waits for its outcome instead of reading the offset about to
// change. With the topic list null only the partitions that have a
// committed offset are answered, as in Kafka. The pending ones are read
// before the committed ones, so a transaction completing in between reads
// as pending, never as a stale stable offset. The member id and epoch of
// v9 (KIP-848) are not checked. v0 (offsets in ZooKeeper) and v10 (topic
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
			got, err := s.fetchGroupOffsets(ctx, req.Group, topics, req.Version >= 7 && req.RequireStable)
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
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset.Offset, p.offset.LeaderEpoch, kmsg.StringPtr(p.offset.Metadata)
					if p.unstable {
						rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = -1, -1, kmsg.StringPtr(""), kerr.UnstableOffsetCommit.Code
					}
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
			got, err := s.fetchGroupOffsets(ctx, g.Group, topics, req.RequireStable)
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
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.partition, p.offset.Offset, p.offset.LeaderEpoch, kmsg.StringPtr(p.offset.Metadata)
					if p.unstable {
						rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = -1, -1, kmsg.StringPtr(""), kerr.UnstableOffsetCommit.Code
					}
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
	// unstable: a transaction staged an offset for it (RequireStable).
	unstable bool
}

// fetchGroupOffsets answers one group: the partitions asked in their order
// (offset -1 for those with none), or every committed one (topics nil),
// sorted by topic and partition; with requireStable, those with offsets of
// a transaction pending are marked unstable.
func (s *Server) fetchGroupOffsets(ctx context.Context, group string, topics []offsetFetchAsk, requireStable bool) ([]fetchedTopic, error) {
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
	var pending map[TopicPartition]bool
	if requireStable {
		// Before the committed offsets: see GroupCore.PendingTxnOffsets.
		var err error
		if pending, err = s.core.PendingTxnOffsets(ctx, group); err != nil {
			return nil, err
		}
	}
	got, err := s.core.FetchOffsets(ctx, group, tps)
	if err != nil {
		return nil, err
	}
	var out []fetchedTopic
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range got {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{tp.Partition, o, pending[tp]})
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
			ft.partitions = append(ft.partitions, fetchedPartition{p, o, pending[TopicPartition{t.Topic, p}]})
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
