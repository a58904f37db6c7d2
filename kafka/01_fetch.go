package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch: key 1, versions 4-16.
//
// Many partitions per request, read by the core in one long poll: it waits up
// to MaxWaitMillis for MinBytes, then returns whole stored batches, bounded
// per partition (PartitionMaxBytes) and per request (MaxBytes), except that
// the first partition with data always gets one whole batch (KIP-74). Notes:
//
//   - Any agent serves any partition: no NOT_LEADER_OR_FOLLOWER, no
//     preferred read replica (-1): a client already reads from an agent of
//     its zone when it named one (leaders.go).
//   - An empty record set is sent as empty bytes, never null: some clients
//     treat null as an error.
//   - isolation_level 1 (read_committed) reads up to the last stable offset
//     and returns the aborted transactions in range (KIP-98).
//   - Fetch sessions (KIP-227, v7+): we keep none. A sessionless fetch
//     (session id 0, epoch -1) and a request for a new session (id 0,
//     epoch 0) are both answered in full with session id 0, which tells the
//     client that no session was created, so it keeps sending full fetches. A
//     session id we never gave is FETCH_SESSION_ID_NOT_FOUND (the client
//     resets to a full fetch); an incremental epoch without a session is
//     INVALID_FETCH_SESSION_EPOCH.
//   - v13+ name topics by id; an id we do not know is UNKNOWN_TOPIC_ID in
//     each of its partitions.
//   - Leader epochs in the request (current leader epoch, last fetched
//     epoch) are ignored: we report -1 everywhere and never truncate.

func (s *Server) handleFetch(ctx context.Context, _ *clientConn, req *kmsg.FetchRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.Version >= 7 {
		switch {
		case req.SessionID != 0:
			resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
			return ready(resp)
		case req.SessionEpoch > 0:
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return ready(resp)
		}
	}

	fr := FetchRequest{
		MaxWait:       time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond,
		MinBytes:      req.MinBytes,
		MaxBytes:      req.MaxBytes,
		ReadCommitted: req.IsolationLevel == 1,
	}
	if fr.MaxBytes <= 0 {
		fr.MaxBytes = 1<<31 - 1
	}
	// slot i of fr.Partitions fills the response partition at index[i].
	var index []*kmsg.FetchResponseTopicPartition
	byID := map[TopicID]Topic{}
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		t := &resp.Topics[i]
		*t = kmsg.NewFetchResponseTopic()
		t.Topic, t.TopicID = rt.Topic, rt.TopicID
		name, topicErr := rt.Topic, error(nil)
		if req.Version >= 13 {
			topic, ok := byID[rt.TopicID]
			if !ok {
				var err error
				if topic, err = s.core.TopicByID(ctx, rt.TopicID); err == nil {
					byID[rt.TopicID] = topic
				} else {
					topicErr = err
				}
			}
			name = topic.Name
		}
		t.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			p := &t.Partitions[j]
			*p = kmsg.NewFetchResponseTopicPartition()
			p.Partition = rp.Partition
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
			p.PreferredReadReplica = -1
			p.RecordBatches = []byte{}
			if topicErr != nil {
				p.ErrorCode = errorCode(topicErr)
				continue
			}
			fr.Partitions = append(fr.Partitions, FetchPartition{
				Topic:     name,
				Partition: rp.Partition,
				Offset:    rp.FetchOffset,
				MaxBytes:  rp.PartitionMaxBytes,
			})
			index = append(index, p)
		}
	}
	if len(fr.Partitions) == 0 {
		return ready(resp)
	}

	type fetched struct {
		results []FetchResult
		err     error
	}
	done := make(chan fetched, 1)
	go func() {
		results, err := s.core.Fetch(ctx, fr)
		done <- fetched{results, err}
	}()
	return func() (kmsg.Response, error) {
		var f fetched
		select {
		case f = <-done:
		case <-ctx.Done():
			return nil, nil // the connection is going away
		}
		if f.err == nil && len(f.results) != len(index) {
			f.err = errShortFetch
		}
		for i, p := range index {
			if f.err != nil {
				p.ErrorCode = errorCode(f.err)
				continue
			}
			r := f.results[i]
			p.ErrorCode = errorCode(r.Err)
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = r.HighWatermark, r.LastStableOffset, r.LogStartOffset
			if r.Batches != nil {
				p.RecordBatches = r.Batches
			}
			if fr.ReadCommitted {
				p.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(r.AbortedTransactions))
				for _, a := range r.AbortedTransactions {
					at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
					at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
					p.AbortedTransactions = append(p.AbortedTransactions, at)
				}
			}
		}
		return resp, nil
	}
}
