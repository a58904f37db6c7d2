package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// Delivery chooses when positions are committed relative to processing.
type Delivery int

const (
	// AtLeastOnce commits a batch's positions after the application
	// processed it: the records Poll returned count as processed when Poll
	// (or Close) is called again. A crash between processing and the commit
	// repeats records; none is skipped.
	AtLeastOnce Delivery = iota
	// AtMostOnce commits a batch's positions before Poll returns it. A
	// crash while processing skips the rest of the batch; no record is read
	// twice by the group.
	AtMostOnce
)

func (d Delivery) String() string {
	switch d {
	case AtLeastOnce:
		return "at-least-once"
	case AtMostOnce:
		return "at-most-once"
	}
	return fmt.Sprintf("Delivery(%d)", int(d))
}

// ResetPolicy says where to start reading a partition that has no committed
// position, or whose committed position is outside the partition's log (its
// records were deleted by retention, or the topic was made anew).
type ResetPolicy int

const (
	// ResetLatest starts at the high watermark: only records produced from
	// then on. It is the default, as Kafka's auto.offset.reset is. A
	// ReadCommitted consumer starts at the last stable offset instead, so
	// a transaction open at that moment is read once it commits (Kafka's
	// consumer does the same).
	ResetLatest ResetPolicy = iota
	// ResetEarliest starts at the log start: every record still kept.
	ResetEarliest
)

func (r ResetPolicy) String() string {
	switch r {
	case ResetLatest:
		return "latest"
	case ResetEarliest:
		return "earliest"
	}
	return fmt.Sprintf("ResetPolicy(%d)", int(r))
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

func compareTopicPartitions(a, b TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// PartitionOffset is a position in one partition: the next offset to read.
type PartitionOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Header is one record header; a nil Value is a null one.
type Header struct {
	Key   string
	Value []byte
}

// Record is one consumed record. A nil Key or Value is a null one.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// GroupConsumerConfig configures a GroupConsumer; NewGroupConsumer checks it.
type GroupConsumerConfig struct {
	// HTTPClient carries every RPC (nil: http.DefaultClient, which speaks
	// HTTP/1.1 to http:// addresses; Connect's unary calls need no more).
	HTTPClient connect.HTTPClient
	// BaseURL is the agent's address, e.g. http://127.0.0.1:7070. Any
	// agent serves any group; put a load balancer in front of several.
	BaseURL string
	// Options are passed to every Connect client (e.g. connect.WithGRPC()).
	Options []connect.ClientOption

	// Group is the group's name.
	Group string
	// Topics to follow by name; exactly one of Topics and TopicRegex.
	Topics []string
	// TopicRegex follows every topic whose whole name matches this RE2
	// expression, topics created later included.
	TopicRegex string
	// MemberID is the member's id; empty lets the agent pick one.
	MemberID string
	// SessionTimeout is how long the group keeps the member without a
	// heartbeat; 0 takes the agent's default. The agent bounds it.
	SessionTimeout time.Duration

	// Delivery is AtLeastOnce (the default) or AtMostOnce.
	Delivery Delivery
	// ManualCommit turns automatic commits off: positions are committed
	// only by Commit. With AtLeastOnce, call Commit after processing, and
	// in OnRevoked to hand partitions over at the right place.
	ManualCommit bool
	// AutoCommitInterval is how often processed positions are committed
	// with AtLeastOnce (default 1s). They are also committed when
	// partitions are revoked and on Close.
	AutoCommitInterval time.Duration
	// Reset is where to start in a partition without a usable committed
	// position (default ResetLatest).
	Reset ResetPolicy
	// MaxWait is the long poll of each fetch (default 500ms): one
	// FetchBatches of all the member's partitions waits up to this long for
	// records in any of them (Kafka's fetch.max.wait.ms).
	MaxWait time.Duration
	// ReadCommitted reads only committed transactions' records, up to each
	// partition's last stable offset (Kafka's isolation.level
	// read_committed, KIP-98); false reads every record (read_uncommitted).
	ReadCommitted bool
	// MaxBytes bounds the record batch bytes of one fetch, over all the
	// member's partitions (Kafka's fetch.max.bytes); 0 is the agent's
	// default (1 MiB). A batch larger than it still comes, alone (KIP-74).
	MaxBytes int32
	// MaxPollRecords bounds the records one Poll returns; 0 means no bound.
	MaxPollRecords int

	// OnAssigned is called when the member starts owning partitions,
	// before any record of them is returned.
	OnAssigned func(ctx context.Context, parts []TopicPartition)
	// OnRevoked is called when partitions move to another member (and on
	// Close), after their fetches stopped and their positions were
	// committed (unless ManualCommit or AtMostOnce), before they are
	// released to the group.
	OnRevoked func(ctx context.Context, parts []TopicPartition)
	// OnLost is called when the member lost partitions without handing them
	// over: its session expired, or a commit was fenced. Their positions
	// are not committed; another member may already read them.
	OnLost func(ctx context.Context, parts []TopicPartition)
	// OnJoined is called when the member joined the group (again, after a
	// loss), before the OnAssigned of that membership.
	OnJoined func(ctx context.Context, memberID string)
	// OnCommit is called after every commit that went to the agent ended:
	// err is nil when offsets were stored.
	OnCommit func(ctx context.Context, offsets []PartitionOffset, err error)
	// The callbacks above run inside Poll, Commit or Close, on the
	// caller's goroutine.

	// Logger receives warnings (retried errors, resets); nil discards them.
	Logger *slog.Logger
}

// ErrClosed is returned by Poll and Commit after Close.
var ErrClosed = errors.New("group consumer closed")

// GroupConsumer is one member of a consumer group. Poll, Commit and Close
// must be called from one goroutine at a time (the application's loop);
// MemberID and Assignment may be called from any.
type GroupConsumer struct {
	cfg      GroupConsumerConfig
	group    stratav1connect.GroupServiceClient
	consumer stratav1connect.ConsumerServiceClient
	admin    stratav1connect.AdminServiceClient
	log      *slog.Logger

	// batches carries fetched records from the fetch loop to Poll.
	batches chan fetchedBatch
	fetches fetchLoop
	// wake tells Poll the membership changed; kick tells the heartbeat
	// goroutine to heartbeat now (partitions released, loss applied).
	wake, kick chan struct{}
	// groupCalls serializes heartbeats and commits, so a commit never
	// carries an epoch that a heartbeat in flight is replacing.
	groupCalls chan struct{}
	bgCtx      context.Context
	bgCancel   context.CancelFunc
	hbDone     chan struct{}

	mu         sync.Mutex
	memberID   string
	epoch      int32
	assigned   map[TopicPartition]bool // the last answer's assigned partitions
	owned      map[TopicPartition]bool // partitions Poll has taken (mirror of active)
	dropped    map[TopicPartition]uint64
	answers    uint64    // heartbeat answers recorded
	joins      uint64    // answers to a join (member epoch 0)
	deadline   time.Time // the session's end unless a heartbeat succeeds; zero: no session
	session    time.Duration
	interval   time.Duration
	hasPending bool
	lost       bool   // the session ended; Poll has not applied it yet
	gen        uint64 // bumped on every loss: older heartbeat answers are stale
	fatal      error
	closed     bool

	// Poll's goroutine only.
	active        map[TopicPartition]*partitionState
	leftover      []Record
	leftoverFrom  *fetcher
	seenJoins     uint64
	lastCommit    time.Time
	retryApplyAt  time.Time
	applyFailures int
	closeOnce     sync.Once
	closeErr      error
}

// partitionState is one owned partition, as Poll sees it.
type partitionState struct {
	fetcher *fetcher
	// returned is the offset after the last record Poll returned (or the
	// start position); processed is what at-least-once may commit;
	// committed is the last position committed (-1: none).
	returned, processed, committed int64
	// topicID is the id of the topic the positions are in ("" when the
	// agent did not say): a topic deleted and created again under its name
	// is another topic, in which these positions mean nothing.
	topicID string
}

// NewGroupConsumer checks cfg, joins the group (one Heartbeat, so an
// unreachable agent or a refused subscription fails here) and starts the
// heartbeat goroutine. Partitions are taken by the first Poll.
func NewGroupConsumer(ctx context.Context, cfg GroupConsumerConfig) (*GroupConsumer, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.AutoCommitInterval == 0 {
		cfg.AutoCommitInterval = time.Second
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 500 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("group", cfg.Group)
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &GroupConsumer{
		cfg:        cfg,
		group:      stratav1connect.NewGroupServiceClient(cfg.HTTPClient, cfg.BaseURL, cfg.Options...),
		consumer:   stratav1connect.NewConsumerServiceClient(cfg.HTTPClient, cfg.BaseURL, cfg.Options...),
		admin:      stratav1connect.NewAdminServiceClient(cfg.HTTPClient, cfg.BaseURL, cfg.Options...),
		log:        log,
		batches:    make(chan fetchedBatch, 16),
		wake:       make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		groupCalls: make(chan struct{}, 1),
		bgCtx:      bgCtx,
		bgCancel:   bgCancel,
		hbDone:     make(chan struct{}),
		memberID:   cfg.MemberID,
		assigned:   map[TopicPartition]bool{},
		owned:      map[TopicPartition]bool{},
		dropped:    map[TopicPartition]uint64{},
		active:     map[TopicPartition]*partitionState{},
		lastCommit: time.Now(),
	}
	if _, err := c.heartbeat(ctx); err != nil {
		bgCancel()
		return nil, fmt.Errorf("join group %q: %w", cfg.Group, err)
	}
	go c.heartbeatLoop()
	return c, nil
}

func (cfg *GroupConsumerConfig) check() error {
	if cfg.BaseURL == "" {
		return errors.New("client: GroupConsumerConfig.BaseURL is empty")
	}
	if cfg.Group == "" {
		return errors.New("client: GroupConsumerConfig.Group is empty")
	}
	if (len(cfg.Topics) == 0) == (cfg.TopicRegex == "") {
		return errors.New("client: set exactly one of GroupConsumerConfig.Topics and TopicRegex")
	}
	if cfg.TopicRegex != "" {
		if _, err := regexp.Compile(cfg.TopicRegex); err != nil {
			return fmt.Errorf("client: topic regular expression: %w", err)
		}
	}
	if slices.Contains(cfg.Topics, "") {
		return errors.New("client: an empty topic name in GroupConsumerConfig.Topics")
	}
	if cfg.Delivery != AtLeastOnce && cfg.Delivery != AtMostOnce {
		return fmt.Errorf("client: unknown %v", cfg.Delivery)
	}
	if cfg.Reset != ResetLatest && cfg.Reset != ResetEarliest {
		return fmt.Errorf("client: unknown %v", cfg.Reset)
	}
	if cfg.SessionTimeout < 0 || cfg.AutoCommitInterval < 0 || cfg.MaxWait < 0 || cfg.MaxBytes < 0 || cfg.MaxPollRecords < 0 {
		return errors.New("client: negative duration or size in GroupConsumerConfig")
	}
	return nil
}

// MemberID is the member's id in the group (chosen by the agent unless the
// config set one).
func (c *GroupConsumer) MemberID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberID
}

// GroupMetadata is a group member's identity at one moment: its group,
// member id and member epoch (Kafka's ConsumerGroupMetadata, KIP-447), for
// Producer.SendGroupOffsetsToTransaction.
type GroupMetadata struct {
	Group       string
	MemberID    string // empty: not a member's commit, nothing is checked
	MemberEpoch int32
}

// GroupMetadata is the member's group, id and epoch now (the epoch of its
// last heartbeat's answer), for Producer.SendGroupOffsetsToTransaction.
func (c *GroupConsumer) GroupMetadata() GroupMetadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	return GroupMetadata{Group: c.cfg.Group, MemberID: c.memberID, MemberEpoch: c.epoch}
}

// Assignment is the partitions the member owns now, as applied by Poll,
// sorted.
func (c *GroupConsumer) Assignment() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sortedParts(c.owned)
}

func sortedParts[V any](m map[TopicPartition]V) []TopicPartition {
	parts := slices.Collect(maps.Keys(m))
	slices.SortFunc(parts, compareTopicPartitions)
	return parts
}

// autoCommits: positions are committed by the consumer itself on revoke,
// on Close and every AutoCommitInterval.
func (c *GroupConsumer) autoCommits() bool {
	return c.cfg.Delivery == AtLeastOnce && !c.cfg.ManualCommit
}

// Poll returns the next records of the partitions the member owns, blocking
// until there are some or ctx is done. It first applies what the group
// decided since the last call: with AtLeastOnce the records the last Poll
// returned count as processed; revoked partitions are committed, reported
// to OnRevoked and released; new ones are reported to OnAssigned and
// fetched. A member whose session ended loses every partition (OnLost)
// and joins again. Poll never returns a record after the member's session
// deadline passed.
func (c *GroupConsumer) Poll(ctx context.Context) ([]Record, error) {
	return c.PollN(ctx, c.cfg.MaxPollRecords)
}

// PollN is Poll returning at most max records (0: no bound); the rest wait
// for the next call.
func (c *GroupConsumer) PollN(ctx context.Context, max int) ([]Record, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if c.cfg.Delivery == AtLeastOnce {
		for _, st := range c.active {
			st.processed = st.returned
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wctx, cancel := c.workContext(ctx)
		err := c.apply(wctx)
		if err == nil && c.autoCommits() && time.Since(c.lastCommit) >= c.cfg.AutoCommitInterval {
			_ = c.commitProcessed(wctx, nil) // logged; the next one retries
		}
		cancel()
		if err != nil {
			return nil, err
		}
		recs := c.gather(ctx, max)
		if len(recs) == 0 {
			continue
		}
		if !c.sessionLive() {
			continue // apply turns it into a loss
		}
		if c.cfg.Delivery == AtMostOnce {
			pos := positionsAfter(recs)
			wctx, cancel := c.workContext(ctx)
			err := c.commit(wctx, pos)
			cancel()
			if err != nil {
				c.log.Warn("at-most-once commit failed: the batch is dropped", "err", err)
				continue
			}
			if !c.sessionLive() {
				continue
			}
		}
		out := make([]Record, 0, len(recs))
		for _, r := range recs {
			st := c.active[TopicPartition{r.Topic, r.Partition}]
			if st == nil {
				continue // lost by a fenced commit just now
			}
			st.returned = r.Offset + 1
			if c.cfg.Delivery == AtMostOnce {
				st.processed = st.returned
			}
			out = append(out, r)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// workContext is the context of the membership work inside Poll (commits,
// hand-overs, callbacks): ctx's values without its cancellation, bounded by
// the session timeout. Poll's ctx bounds the wait for records; a revoked
// partition's commit must not be cut short because that wait ended.
func (c *GroupConsumer) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	c.mu.Lock()
	d := c.session
	c.mu.Unlock()
	if d <= 0 {
		d = defaultCallTimeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// positionsAfter is the position after each partition's last record.
func positionsAfter(recs []Record) map[TopicPartition]int64 {
	pos := map[TopicPartition]int64{}
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		pos[tp] = max(pos[tp], r.Offset+1)
	}
	return pos
}

// gather waits for fetched records (or a reason to apply changes first)
// and returns up to max of them, in order per partition. It returns none
// when Poll should look at the membership again.
func (c *GroupConsumer) gather(ctx context.Context, max int) []Record {
	var out []Record
	take := func(f *fetcher, recs []Record) bool {
		if f.stopped || c.active[f.tp] == nil || c.active[f.tp].fetcher != f {
			return true // of a partition given up: dropped
		}
		if max > 0 && len(out)+len(recs) > max {
			n := max - len(out)
			out = append(out, recs[:n]...)
			c.leftover, c.leftoverFrom = recs[n:], f
			return false
		}
		out = append(out, recs...)
		return max == 0 || len(out) < max
	}
	if len(c.leftover) > 0 {
		recs, f := c.leftover, c.leftoverFrom
		c.leftover, c.leftoverFrom = nil, nil
		if !take(f, recs) {
			return out
		}
	}
	if len(out) == 0 {
		timer := time.NewTimer(c.nextWakeup())
		defer timer.Stop()
		select {
		case b := <-c.batches:
			if !take(b.f, b.records) {
				return out
			}
		case <-c.wake:
			return nil
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	// Whatever else is already fetched, without waiting.
	for {
		select {
		case b := <-c.batches:
			if !take(b.f, b.records) {
				return out
			}
		default:
			return out
		}
	}
}

// nextWakeup is how long Poll may wait for records before it must look at
// the membership again: the session deadline, the next auto-commit, a
// retry of a failed assignment.
func (c *GroupConsumer) nextWakeup() time.Duration {
	d := time.Minute
	now := time.Now()
	if c.autoCommits() {
		d = min(d, c.cfg.AutoCommitInterval-now.Sub(c.lastCommit))
	}
	if !c.retryApplyAt.IsZero() {
		d = min(d, c.retryApplyAt.Sub(now))
	}
	if len(c.active) > 0 {
		c.mu.Lock()
		if !c.deadline.IsZero() {
			d = min(d, c.deadline.Sub(now))
		}
		c.mu.Unlock()
	}
	return max(d, time.Millisecond)
}

// sessionLive reports whether records may still be returned: the session
// has not ended, by the agent's word or by the deadline.
func (c *GroupConsumer) sessionLive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.lost && c.fatal == nil && (c.deadline.IsZero() || time.Now().Before(c.deadline))
}

func (c *GroupConsumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// apply brings the partitions Poll reads in line with the membership: a
// lost session drops everything, revoked partitions are handed over, new
// ones are started.
func (c *GroupConsumer) apply(ctx context.Context) error {
	now := time.Now()
	c.mu.Lock()
	if c.fatal != nil {
		err := c.fatal
		c.mu.Unlock()
		return err
	}
	if !c.lost && !c.deadline.IsZero() && !now.Before(c.deadline) {
		// No heartbeat succeeded for a session timeout: the agent may have
		// ended the session already, so the partitions are gone.
		c.log.Warn("no heartbeat succeeded within the session timeout; giving up every partition", "member", c.memberID, "session_timeout", c.session)
		c.lost = true
		c.gen++
	}
	lost := c.lost
	target := maps.Clone(c.assigned)
	for tp, at := range c.dropped {
		if at == c.answers {
			delete(target, tp) // given up after a fenced commit; wait for the next answer
		}
	}
	joins, memberID := c.joins, c.memberID
	c.mu.Unlock()

	if lost {
		c.loseAll(ctx)
		return nil
	}
	if joins != c.seenJoins {
		c.seenJoins = joins
		if c.cfg.OnJoined != nil {
			c.cfg.OnJoined(ctx, memberID)
		}
	}
	var revoked, added []TopicPartition
	for tp := range c.active {
		if !target[tp] {
			revoked = append(revoked, tp)
		}
	}
	for tp := range target {
		if c.active[tp] == nil {
			added = append(added, tp)
		}
	}
	if len(revoked) > 0 {
		slices.SortFunc(revoked, compareTopicPartitions)
		c.revoke(ctx, revoked)
	}
	if len(added) > 0 && (c.retryApplyAt.IsZero() || !now.Before(c.retryApplyAt)) {
		slices.SortFunc(added, compareTopicPartitions)
		if err := c.assign(ctx, added); err != nil {
			c.applyFailures++
			c.retryApplyAt = time.Now().Add(backoff(c.applyFailures))
			c.log.Warn("starting assigned partitions failed; retrying", "partitions", added, "err", err)
			return nil
		}
		c.applyFailures, c.retryApplyAt = 0, time.Time{}
	}
	return nil
}

// assign starts reading new partitions from their committed positions.
func (c *GroupConsumer) assign(ctx context.Context, parts []TopicPartition) error {
	starts, committed, topicIDs, err := c.startPositions(ctx, parts)
	if err != nil {
		return err
	}
	for _, tp := range parts {
		c.active[tp] = &partitionState{returned: starts[tp], processed: starts[tp], committed: committed[tp], topicID: topicIDs[tp]}
	}
	c.mu.Lock()
	for _, tp := range parts {
		c.owned[tp] = true
	}
	c.mu.Unlock()
	if c.cfg.OnAssigned != nil {
		c.cfg.OnAssigned(ctx, slices.Clone(parts))
	}
	for _, tp := range parts {
		if st := c.active[tp]; st != nil && st.fetcher == nil {
			st.fetcher = c.startFetcher(tp, st.returned, st.topicID)
		}
	}
	return nil
}

// startPositions finds where to read each partition: its committed offset
// when it is inside the log, else the reset policy's end. committed is -1
// for partitions without a committed offset, or whose committed offset was
// committed to a topic since deleted (a topic of the same name made again
// is another topic: Kafka's topic ids, KIP-516). topicIDs is the id of the
// topic the start positions are in.
func (c *GroupConsumer) startPositions(ctx context.Context, parts []TopicPartition) (starts, committed map[TopicPartition]int64, topicIDs map[TopicPartition]string, err error) {
	req := &stratav1.FetchOffsetsRequest{Group: c.cfg.Group, Partitions: toTopicPartitions(parts)}
	resp, err := c.group.FetchOffsets(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fetch committed offsets: %w", err)
	}
	committed = map[TopicPartition]int64{}
	committedIn := map[TopicPartition]string{}
	for _, tp := range parts {
		committed[tp] = -1
	}
	for _, o := range resp.Msg.GetOffsets() {
		tp := TopicPartition{o.GetTopic(), o.GetPartition()}
		if _, ok := committed[tp]; ok {
			committed[tp] = o.GetOffset()
			committedIn[tp] = o.GetTopicId()
		}
	}
	// Read after the offsets: a topic deleted and made again in between
	// shows as an id the offsets do not have.
	bounds, err := c.bounds(ctx, parts)
	if err != nil {
		return nil, nil, nil, err
	}
	starts = map[TopicPartition]int64{}
	topicIDs = map[TopicPartition]string{}
	for _, tp := range parts {
		b, known := bounds[tp]
		topicIDs[tp] = b.topicID
		if in := committedIn[tp]; committed[tp] >= 0 && in != "" && b.topicID != "" && in != b.topicID {
			c.log.Warn("committed offset belongs to a deleted topic of the same name; ignoring it", "partition", tp,
				"committed", committed[tp], "committed_topic_id", in, "topic_id", b.topicID)
			committed[tp] = -1
		}
		off := committed[tp]
		switch {
		case !known:
			// A partition newer than the agent's answer: nothing in it
			// can be out of range yet.
			starts[tp] = max(off, 0)
		case off >= b.logStart && off <= b.highWatermark:
			starts[tp] = off
		case off >= 0:
			starts[tp] = b.reset(c.cfg.Reset)
			c.log.Warn("committed offset outside the log; resetting", "partition", tp, "committed", off,
				"log_start", b.logStart, "high_watermark", b.highWatermark, "reset", c.cfg.Reset, "start", starts[tp])
		default:
			starts[tp] = b.reset(c.cfg.Reset)
		}
	}
	return starts, committed, topicIDs, nil
}

// partitionBounds is a partition's log bounds, and the id of the topic
// they are of ("" when the agent did not say). latest is where
// ResetLatest starts: the high watermark, or for a read_committed consumer
// the last stable offset.
type partitionBounds struct {
	logStart, highWatermark int64
	topicID                 string
	latest                  int64
}

func (b partitionBounds) reset(p ResetPolicy) int64 {
	if p == ResetEarliest {
		return b.logStart
	}
	return b.latest
}

// bounds asks the agent for the log start and high watermark of parts,
// one DescribeTopic per topic. A partition the answer lacks (created since)
// is left out. A read_committed consumer also asks for the partitions' last
// stable offsets (ListOffsets latest under read_committed, as Kafka's
// consumer does, KIP-98): starting "latest" at the high watermark would
// skip the records of a transaction open at that moment, once it commits.
func (c *GroupConsumer) bounds(ctx context.Context, parts []TopicPartition) (map[TopicPartition]partitionBounds, error) {
	out := map[TopicPartition]partitionBounds{}
	seen := map[string]bool{}
	for _, tp := range parts {
		if seen[tp.Topic] {
			continue
		}
		seen[tp.Topic] = true
		resp, err := c.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: tp.Topic}))
		if err != nil {
			return nil, fmt.Errorf("describe topic %s: %w", tp.Topic, err)
		}
		id := resp.Msg.GetTopic().GetId()
		for _, p := range resp.Msg.GetPartitions() {
			out[TopicPartition{tp.Topic, p.GetPartition()}] = partitionBounds{p.GetLogStartOffset(), p.GetHighWatermark(), id, p.GetHighWatermark()}
		}
	}
	if !c.cfg.ReadCommitted {
		return out, nil
	}
	var lookups []*stratav1.ListOffsetsPartition
	for _, tp := range parts {
		if _, ok := out[tp]; ok {
			lookups = append(lookups, &stratav1.ListOffsetsPartition{Topic: tp.Topic, Partition: tp.Partition,
				Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}})
		}
	}
	for len(lookups) > 0 {
		n := min(len(lookups), maxListOffsetsLookups)
		resp, err := c.consumer.ListOffsets(ctx, connect.NewRequest(&stratav1.ListOffsetsRequest{Partitions: lookups[:n],
			IsolationLevel: stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED}))
		if err != nil {
			return nil, fmt.Errorf("list last stable offsets: %w", err)
		}
		for _, r := range resp.Msg.GetPartitions() {
			tp := TopicPartition{r.GetTopic(), r.GetPartition()}
			if b, ok := out[tp]; ok {
				b.latest = r.GetOffset()
				out[tp] = b
			}
		}
		lookups = lookups[n:]
	}
	return out, nil
}

// maxListOffsetsLookups is the agent's limit of lookups in one ListOffsets.
const maxListOffsetsLookups = 1000

func toTopicPartitions(parts []TopicPartition) []*stratav1.TopicPartitions {
	var out []*stratav1.TopicPartitions
	for _, tp := range parts {
		if n := len(out); n > 0 && out[n-1].GetTopic() == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, &stratav1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

func fromTopicPartitions(tps []*stratav1.TopicPartitions) map[TopicPartition]bool {
	out := map[TopicPartition]bool{}
	for _, t := range tps {
		for _, p := range t.GetPartitions() {
			out[TopicPartition{t.GetTopic(), p}] = true
		}
	}
	return out
}

// stop ends the fetches of parts and drops what they buffered.
func (c *GroupConsumer) stop(parts []TopicPartition) {
	for _, tp := range parts {
		st := c.active[tp]
		if st == nil || st.fetcher == nil {
			continue
		}
		st.fetcher.stop()
		if c.leftoverFrom == st.fetcher {
			c.leftover, c.leftoverFrom = nil, nil
		}
	}
	for _, tp := range parts {
		if st := c.active[tp]; st != nil && st.fetcher != nil {
			<-st.fetcher.done
		}
	}
}

// release forgets parts and lets the next heartbeat leave them out of the
// owned partitions, at once.
func (c *GroupConsumer) release(parts []TopicPartition) {
	for _, tp := range parts {
		delete(c.active, tp)
	}
	c.mu.Lock()
	for _, tp := range parts {
		delete(c.owned, tp)
	}
	c.mu.Unlock()
	signal(c.kick)
}

// revoke hands parts over: stop, commit, OnRevoked, release.
func (c *GroupConsumer) revoke(ctx context.Context, parts []TopicPartition) {
	c.stop(parts)
	if c.autoCommits() {
		if err := c.commitProcessed(ctx, parts); err != nil && isFenced(err) {
			// commit already reported them lost and released them
			parts = slices.DeleteFunc(parts, func(tp TopicPartition) bool { return c.active[tp] == nil })
		}
	}
	if len(parts) == 0 {
		return
	}
	if c.cfg.OnRevoked != nil {
		c.cfg.OnRevoked(ctx, slices.Clone(parts))
	}
	c.release(parts)
}

// loseAll applies the end of the session: every partition goes, nothing is
// committed, and the heartbeat goroutine joins again with epoch 0.
func (c *GroupConsumer) loseAll(ctx context.Context) {
	parts := sortedParts(c.active)
	c.stop(parts)
	c.leftover, c.leftoverFrom = nil, nil
	if len(parts) > 0 && c.cfg.OnLost != nil {
		c.cfg.OnLost(ctx, slices.Clone(parts))
	}
	for _, tp := range parts {
		delete(c.active, tp)
	}
	c.mu.Lock()
	c.lost = false
	c.epoch = 0
	c.assigned = map[TopicPartition]bool{}
	c.owned = map[TopicPartition]bool{}
	c.dropped = map[TopicPartition]uint64{}
	c.deadline = time.Time{}
	c.hasPending = false
	c.mu.Unlock()
	signal(c.kick)
}

// loseSome gives up parts after a fenced commit: no commit, OnLost, and
// they stay out of the owned partitions until the next heartbeat answer.
func (c *GroupConsumer) loseSome(ctx context.Context, parts []TopicPartition) {
	parts = slices.DeleteFunc(slices.Clone(parts), func(tp TopicPartition) bool { return c.active[tp] == nil })
	if len(parts) == 0 {
		return
	}
	c.stop(parts)
	if c.cfg.OnLost != nil {
		c.cfg.OnLost(ctx, slices.Clone(parts))
	}
	for _, tp := range parts {
		delete(c.active, tp)
	}
	c.mu.Lock()
	for _, tp := range parts {
		delete(c.owned, tp)
		c.dropped[tp] = c.answers
	}
	c.mu.Unlock()
	signal(c.kick)
}

// Commit commits the position after every record Poll returned so far, in
// every partition the member owns. It is how ManualCommit consumers
// commit; others may call it too. A commit the group refuses because the
// member no longer owns a partition (connect.CodeFailedPrecondition) is not
// retried: those partitions are reported to OnLost and given up.
func (c *GroupConsumer) Commit(ctx context.Context) error {
	if c.isClosed() {
		return ErrClosed
	}
	pos := map[TopicPartition]int64{}
	for tp, st := range c.active {
		st.processed = st.returned
		if st.returned != st.committed {
			pos[tp] = st.returned
		}
	}
	return c.commit(ctx, pos)
}

// commitProcessed commits the processed positions of parts (nil: every
// owned partition) that moved since their last commit.
func (c *GroupConsumer) commitProcessed(ctx context.Context, parts []TopicPartition) error {
	c.lastCommit = time.Now()
	pos := map[TopicPartition]int64{}
	for tp, st := range c.active {
		if parts != nil && !slices.Contains(parts, tp) {
			continue
		}
		if st.processed != st.committed && st.processed >= 0 {
			pos[tp] = st.processed
		}
	}
	err := c.commit(ctx, pos)
	if err != nil && !isFenced(err) && ctx.Err() == nil {
		c.log.Warn("commit failed", "err", err)
	}
	return err
}

func isFenced(err error) bool { return connect.CodeOf(err) == connect.CodeFailedPrecondition }

// commit stores pos at the member's epoch, retrying errors that may pass.
func (c *GroupConsumer) commit(ctx context.Context, pos map[TopicPartition]int64) error {
	if len(pos) == 0 {
		return nil
	}
	parts := sortedParts(pos)
	offsets := make([]PartitionOffset, len(parts))
	req := &stratav1.CommitOffsetsRequest{Group: c.cfg.Group}
	for i, tp := range parts {
		offsets[i] = PartitionOffset{tp.Topic, tp.Partition, pos[tp]}
		po := &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: pos[tp]}
		if st := c.active[tp]; st != nil {
			// The agent refuses a position in a topic since deleted
			// (FAILED_PRECONDITION: the partition is lost), so it is never
			// stored for a new topic of the same name.
			po.TopicId = st.topicID
		}
		req.Offsets = append(req.Offsets, po)
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = c.commitOnce(ctx, req)
		if err == nil || isFenced(err) || !retryable(err) || attempt == 5 || ctx.Err() != nil {
			break
		}
		if !sleep(ctx, backoff(attempt)) {
			err = ctx.Err()
			break
		}
	}
	if err == nil {
		for _, o := range offsets {
			if st := c.active[TopicPartition{o.Topic, o.Partition}]; st != nil {
				st.committed = o.Offset
			}
		}
	}
	if c.cfg.OnCommit != nil && !errors.Is(err, context.Canceled) {
		c.cfg.OnCommit(ctx, offsets, err)
	}
	if err != nil {
		if isFenced(err) {
			c.loseSome(ctx, parts)
		}
		return fmt.Errorf("commit offsets: %w", err)
	}
	return nil
}

func (c *GroupConsumer) commitOnce(ctx context.Context, req *stratav1.CommitOffsetsRequest) error {
	select {
	case c.groupCalls <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.groupCalls }()
	c.mu.Lock()
	req.MemberId, req.MemberEpoch = c.memberID, c.epoch
	c.mu.Unlock()
	_, err := c.group.CommitOffsets(ctx, connect.NewRequest(req))
	return err
}

// Close ends the membership: with automatic at-least-once commits it
// commits the position after every record Poll returned, reports the
// partitions to OnRevoked, leaves the group (releasing them at once) and
// stops every goroutine. Calling it again returns the first call's result.
func (c *GroupConsumer) Close(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *GroupConsumer) close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	lost := c.lost || c.fatal != nil || (!c.deadline.IsZero() && !time.Now().Before(c.deadline))
	c.mu.Unlock()
	var errs []error
	parts := sortedParts(c.active)
	c.stop(parts)
	c.leftover, c.leftoverFrom = nil, nil
	if len(parts) > 0 {
		if lost {
			if c.cfg.OnLost != nil {
				c.cfg.OnLost(ctx, parts)
			}
		} else {
			if c.autoCommits() {
				for _, st := range c.active {
					st.processed = st.returned
				}
				if err := c.commitProcessed(ctx, parts); err != nil {
					errs = append(errs, err)
					parts = slices.DeleteFunc(parts, func(tp TopicPartition) bool { return c.active[tp] == nil })
				}
			}
			if len(parts) > 0 && c.cfg.OnRevoked != nil {
				c.cfg.OnRevoked(ctx, parts)
			}
		}
	}
	c.bgCancel()
	<-c.hbDone
	c.mu.Lock()
	memberID := c.memberID
	c.owned = map[TopicPartition]bool{}
	c.mu.Unlock()
	clear(c.active)
	if memberID != "" {
		_, err := c.group.LeaveGroup(ctx, connect.NewRequest(&stratav1.LeaveGroupRequest{Group: c.cfg.Group, MemberId: memberID}))
		if err != nil && connect.CodeOf(err) != connect.CodeFailedPrecondition {
			// FAILED_PRECONDITION: the session had ended already.
			errs = append(errs, fmt.Errorf("leave group: %w", err))
		}
	}
	return errors.Join(errs...)
}

// retryable reports whether an RPC error may pass: anything but an answer
// that says the request itself is wrong. Unavailable, overloaded or slow
// agents and broken connections are retried, and so is CANCELED, which an
// agent shutting down answers to calls in flight (the caller's own
// cancellation is checked before this).
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeAlreadyExists,
		connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeFailedPrecondition,
		connect.CodeOutOfRange, connect.CodeUnimplemented, connect.CodeDataLoss:
		return false
	}
	return true
}

// backoff is the wait before retry n (1, 2, ...): 100ms doubling to 2s.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < 2*time.Second; i++ {
		d *= 2
	}
	return min(d, 2*time.Second)
}

// sleep waits d or until ctx is done; false when ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// signal wakes the reader of a one-slot channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
