package agent

// AdminService: topics. Thin over the index's Topics; DescribeTopic adds each
// partition's bounds.

import (
	"context"
	"errors"
	"sort"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// CreateTopic is AdminService.CreateTopic (strata/v1; Kafka's CreateTopics)
// in the core; the Connect front-end, agent/connectapi, wraps it. Partitions
// 0 means 1; configs are Kafka-named (retention.ms, max.message.bytes, ...).
// It is NewTopic, the one implementation both front-ends share, so both
// check names, partitions, configs and metric-name collisions alike and
// leave the caches the same. Errors: coordinator.ErrInvalid naming the bad
// part (ErrInvalidTopicName, ErrInvalidPartitions, ErrInvalidConfig; a
// *coordinator.LimitError for a limit), coordinator.ErrAlreadyExists.
func (a *Agent) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	partitions := req.GetPartitions()
	if partitions == 0 {
		partitions = 1
	}
	t, err := a.NewTopic(ctx, req.GetName(), partitions, req.GetConfigs(), false)
	if err != nil {
		return nil, err
	}
	return &stratav1.CreateTopicResponse{Topic: topicProto(t)}, nil
}

// DeleteTopic is AdminService.DeleteTopic (strata/v1; Kafka's
// DeleteTopics) in the core; the Connect front-end, agent/connectapi, wraps
// it. It is RemoveTopic, shared with the Kafka front-end: its data goes to
// the janitor, and this agent's long polls of the topic wake at once.
// Errors: ErrUnknownTopicOrPartition.
func (a *Agent) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if _, err := a.RemoveTopic(ctx, req.GetName()); err != nil {
		return nil, err
	}
	return &stratav1.DeleteTopicResponse{}, nil
}

// ListTopics is AdminService.ListTopics (strata/v1) in the core; the
// Connect front-end, agent/connectapi, wraps it. Errors: the index's.
func (a *Agent) ListTopics(ctx context.Context, _ *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	ts, err := a.index.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	out := &stratav1.ListTopicsResponse{Topics: make([]*stratav1.Topic, len(ts))}
	for i, t := range ts {
		out.Topics[i] = topicProto(t)
	}
	return out, nil
}

// DescribeTopic is AdminService.DescribeTopic (strata/v1) in the core; the
// Connect front-end, agent/connectapi, wraps it: the topic's configs and
// each partition's offsets, bytes and archived range. Errors:
// ErrUnknownTopicOrPartition.
func (a *Agent) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	t, err := a.index.DescribeTopic(ctx, req.GetName())
	if err != nil {
		return nil, unknownTopic(req.GetName(), err)
	}
	out := &stratav1.DescribeTopicResponse{Topic: topicProto(t), Partitions: make([]*stratav1.PartitionInfo, t.Config.Partitions)}
	for p := range t.Config.Partitions {
		st, err := a.index.PartitionState(ctx, t.ID, p)
		if err != nil {
			return nil, err
		}
		archiveEnd, archived, err := a.archivedPrefix(ctx, t.ID, p, st)
		if err != nil {
			return nil, err
		}
		out.Partitions[p] = &stratav1.PartitionInfo{
			Partition:        p,
			LogStartOffset:   st.LogStartOffset,
			HighWatermark:    st.HighWatermark,
			Records:          st.HighWatermark - st.LogStartOffset,
			Bytes:            st.Bytes,
			ArchiveEndOffset: archiveEnd,
			ArchivedBytes:    archived,
		}
	}
	return out, nil
}

// archivedPrefix walks a partition's archive entries, which come first in
// its log (the compactor archives the oldest hot entries after them), and
// returns where they end and their bytes. Archive entries are a few per
// file, so this is one Lookup in all but huge partitions.
func (a *Agent) archivedPrefix(ctx context.Context, id uuid.UUID, p int32, st coordinator.PartitionState) (end, bytes int64, err error) {
	end = st.LogStartOffset
	for end < st.HighWatermark {
		entries, lst, err := a.index.Lookup(ctx, id, p, end, 1<<50)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && end < lst.LogStartOffset {
			end = lst.LogStartOffset // retention moved the log start meanwhile
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		for _, e := range entries {
			if !e.Archived() {
				return end, bytes, nil
			}
			end = max(end, e.BaseOffset+e.Records)
			bytes += e.ByteLength
		}
		if len(entries) == 0 {
			break
		}
	}
	return end, bytes, nil
}

// UpdateTopicConfig is AdminService.UpdateTopicConfig (strata/v1; Kafka's
// IncrementalAlterConfigs) in the core; the Connect front-end,
// agent/connectapi, wraps it. All or none apply; an empty value restores
// the default. Errors: coordinator.ErrInvalidConfig naming the key,
// ErrUnknownTopicOrPartition.
func (a *Agent) UpdateTopicConfig(ctx context.Context, req *stratav1.UpdateTopicConfigRequest) (*stratav1.UpdateTopicConfigResponse, error) {
	t, err := a.index.UpdateTopicConfig(ctx, req.GetName(), req.GetSet())
	if err != nil {
		return nil, unknownTopic(req.GetName(), err)
	}
	a.topics.put(t)
	return &stratav1.UpdateTopicConfigResponse{Topic: topicProto(t)}, nil
}

// CreatePartitions is AdminService.CreatePartitions (strata/v1; Kafka's
// CreatePartitions, KIP-195) in the core; the Connect front-end,
// agent/connectapi, wraps it. It is AddPartitions, shared with the Kafka
// front-end. Errors: coordinator.ErrInvalidPartitions (the total not above
// the current count, or over the limit), ErrUnknownTopicOrPartition.
func (a *Agent) CreatePartitions(ctx context.Context, req *stratav1.CreatePartitionsRequest) (*stratav1.CreatePartitionsResponse, error) {
	t, err := a.growTopic(ctx, req.GetName(), req.GetTotal(), false)
	if err != nil {
		return nil, err
	}
	return &stratav1.CreatePartitionsResponse{Topic: topicProto(t)}, nil
}

func topicProto(t coordinator.Topic) *stratav1.Topic {
	c := t.Config
	return &stratav1.Topic{
		Name:       t.Name,
		Id:         t.ID.String(),
		Partitions: c.Partitions,
		Configs:    TopicConfigMap(c),
		CreatedAt:  timestamppb.New(t.CreatedAt),
	}
}
