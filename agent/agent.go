package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// Index is what the agent needs of the metadata index.
type Index interface {
	coordinator.Topics
	coordinator.Log
	coordinator.Producers
	coordinator.Notifier
	coordinator.Agents
	coordinator.Groups
	coordinator.Transactions
}

// Agent serves the public API over one object store and one index. It keeps
// no durable state of its own: any number of agents may serve the same
// deployment, and any may die.
type Agent struct {
	cfg    Config
	bucket objectlog.Bucket
	index  Index
	log    *slog.Logger

	topics *topicCache
	// groupTopics is the topic list group subscriptions resolve against.
	groupTopics *topicCounts
	batcher     *batcher
	hub         *hub
	cache       *blockCache
	// archives holds the parsed footers of archive files read lately.
	archives archiveReaders
	// compactorDone is closed when the compaction loop ends.
	compactorDone chan struct{}
	// nodeID is the agent's Kafka node id, fixed at New (pickNodeID).
	nodeID    int32
	clusterID clusterIDCache

	// janitorMu serializes this agent's janitor passes; janitorLive holds
	// the segment keys a pass saw in use, with the partition using them
	// (see janitor.go).
	janitorMu   sync.Mutex
	janitorLive map[string]topicPartition
	janitorDone chan struct{} // closed when the janitor loop ends
	// compactHeld: partitionKey -> the coordinator.IndexEntry the last
	// compaction job kept hot at the log's end (compactor.go holdBack).
	compactHeld sync.Map
	reaperDone  chan struct{} // closed when the transaction reaper ends

	closeOnce sync.Once
	closing   chan struct{} // closed when Close begins
	stop      context.CancelFunc
	// runCtx ends when the agent stops; background work (the janitor,
	// finishing failed commits) runs under it.
	runCtx context.Context
	done   chan struct{}
}

// New starts an agent: it subscribes to the index's notifications and opens
// the produce batcher. Close flushes and stops it.
func New(ctx context.Context, cfg Config, bucket objectlog.Bucket, index Index, log *slog.Logger) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a := &Agent{
		cfg:     cfg,
		bucket:  bucket,
		index:   index,
		log:     log,
		stop:    stop,
		runCtx:  runCtx,
		done:    make(chan struct{}),
		closing: make(chan struct{}),

		janitorLive:   map[string]topicPartition{},
		janitorDone:   make(chan struct{}),
		reaperDone:    make(chan struct{}),
		compactorDone: make(chan struct{}),
	}
	a.topics = newTopicCache(index, cfg.TopicCacheTTL)
	a.groupTopics = &topicCounts{index: index, ttl: cfg.TopicCacheTTL}
	a.cache = newBlockCache(bucket, cfg.CacheBytes, cfg.CacheBlockBytes)
	a.hub = newHub()
	if err := index.SubscribeWatermarks(runCtx, a.hub.publish); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe to watermarks: %w", err)
	}
	a.batcher = newBatcher(a)
	if cfg.KafkaAdvertise != "" {
		var err error
		if a.nodeID, err = a.pickNodeID(ctx); err != nil {
			stop()
			return nil, err
		}
	}
	go a.heartbeat(runCtx)
	if cfg.JanitorInterval > 0 {
		go a.runJanitor(runCtx)
	} else {
		close(a.janitorDone)
	}
	if cfg.TxnReaperInterval > 0 {
		go a.runTxnReaper(runCtx)
	} else {
		close(a.reaperDone)
	}
	if cfg.CompactionInterval > 0 {
		go a.runCompactor(runCtx)
	} else {
		close(a.compactorDone)
	}
	return a, nil
}

// heartbeat keeps the agent in the index's live-agent registry.
func (a *Agent) heartbeat(ctx context.Context) {
	defer close(a.done)
	info := coordinator.AgentInfo{ID: a.cfg.AgentID, Addr: a.cfg.AdvertiseAddr,
		KafkaAddr: a.cfg.KafkaAdvertise, NodeID: a.nodeID, Zone: a.cfg.Zone}
	const ttl = 15 * time.Second
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		if err := a.index.RegisterAgent(ctx, info, ttl); err != nil && ctx.Err() == nil {
			a.log.Warn("agent registry heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = a.index.DeregisterAgent(dctx, info.ID)
			cancel()
			return
		case <-t.C:
		}
	}
}

// Close stops taking records, flushes and commits what is buffered (waiting
// producers get their answers), and stops the background work. It does not
// close the bucket or the index, which the caller owns.
func (a *Agent) Close(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		close(a.closing)
		err = a.batcher.close(ctx)
		a.stop()
		<-a.done
		<-a.janitorDone
		<-a.reaperDone
		<-a.compactorDone
	})
	return err
}

// shuttingDown reports whether Close has begun.
func (a *Agent) shuttingDown() bool {
	select {
	case <-a.closing:
		return true
	default:
		return false
	}
}

// Config is the configuration a was started with, as validated by New; the
// front-ends read their own settings (ports, TLS, CORS, request limits)
// from it.
func (a *Agent) Config() Config { return a.cfg }

// Logger is a's logger, for the front-ends to log through.
func (a *Agent) Logger() *slog.Logger { return a.log }
