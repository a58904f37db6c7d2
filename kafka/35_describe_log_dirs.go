package kafka

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs: key 35, versions 1-4 (KIP-113; v2 is flexible, v3 adds
// the top-level error code, v4 each dir's total and usable bytes, KIP-827).
//
// Strata keeps no log on a broker's disk: partitions live in the object
// store and any agent serves any of them. So every agent answers with one
// log dir, LogDir, holding the partitions it leads as Metadata names the
// leaders for this client (leaders.go, the client's zone included): a
// console that asks every broker it knows and sums the answers (kadm's
// DescribeAllLogDirs, AKHQ, Kafka UI) counts each partition once.
//
//   - A partition's size is the bytes of record batches its live index
//     entries point at, hot segments and archive files alike
//     (StorageCore.PartitionBytes; the Connect API's DescribeTopic reports
//     the same bytes). Offset lag is 0 and is_future false: no replica
//     moves between dirs.
//   - Topics null asks for every topic. Otherwise only the topics and
//     partitions named; one that does not exist, or that this broker does
//     not lead, is left out, as Kafka leaves out what a broker does not host.
//     A topic deleted while the answer is built is left out too.
//   - Total and usable bytes (v4) are -1, Kafka's "unknown": an object
//     store has no capacity to report.
//   - When the brokers or topics cannot be read, the dir answers
//     KAFKA_STORAGE_ERROR (Kafka's offline log dir) with no topics; the
//     top-level error (v3+) is for authorization only, and stays 0.

// LogDir is the one log dir every broker reports in DescribeLogDirs.
const LogDir = "/strata"

func (s *Server) handleDescribeLogDirs(ctx context.Context, cc *clientConn, req *kmsg.DescribeLogDirsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = LogDir
	topics, err := s.logDirTopics(ctx, cc, req.Topics)
	if err != nil {
		dir.ErrorCode = errorCode(err)
		s.log.Warn("DescribeLogDirs: reading the partitions failed", "err", err)
	} else {
		dir.Topics = topics
	}
	resp.Dirs = append(resp.Dirs, dir)
	return ready(resp)
}

// logDirTopics lists the partitions this broker leads among those asked
// (nil: all), with their sizes.
func (s *Server) logDirTopics(ctx context.Context, cc *clientConn, asked []kmsg.DescribeLogDirsRequestTopic) ([]kmsg.DescribeLogDirsResponseDirTopic, error) {
	brokers, err := s.brokersFor(ctx, cc)
	if err != nil {
		return nil, err
	}
	type want struct {
		topic      Topic
		partitions []int32 // nil: all
	}
	var wants []want
	if asked == nil {
		all, err := s.core.Topics(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range all {
			wants = append(wants, want{topic: t})
		}
	} else {
		byName := map[string]int{}
		for _, rt := range asked {
			i, seen := byName[rt.Topic]
			if !seen {
				t, err := s.core.Topic(ctx, rt.Topic)
				if errors.Is(err, ErrUnknownTopicOrPartition) {
					continue
				}
				if err != nil {
					return nil, err
				}
				i = len(wants)
				byName[rt.Topic] = i
				wants = append(wants, want{topic: t, partitions: []int32{}})
			}
			wants[i].partitions = append(wants[i].partitions, rt.Partitions...)
		}
	}
	self := s.core.NodeID()
	out := []kmsg.DescribeLogDirsResponseDirTopic{}
	for _, w := range wants {
		var led []int32
		for p := range w.topic.Partitions {
			if w.partitions != nil && !slices.Contains(w.partitions, p) {
				continue
			}
			if b, ok := partitionLeader(brokers, w.topic.ID, p); ok && b.ID == self {
				led = append(led, p)
			}
		}
		if len(led) == 0 {
			continue
		}
		sizes, err := s.core.PartitionBytes(ctx, w.topic.ID, led)
		if errors.Is(err, ErrUnknownTopicOrPartition) || errors.Is(err, ErrUnknownTopicID) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = w.topic.Name
		for i, p := range led {
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p, sizes[i]
			dt.Partitions = append(dt.Partitions, dp)
		}
		out = append(out, dt)
	}
	return out, nil
}
