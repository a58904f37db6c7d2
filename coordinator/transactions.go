package coordinator

// Transactions (issue 11): the index side of Kafka's transactions (KIP-98).
//
// Each transactional id has its own slot, {x:<transactional id>}, shared
// with producers.go's binding of the id to a producer id and epoch
// ({x:<id>} itself, InitTransactionalProducer). InitTxn takes the pid and
// epoch that call returned; the transaction's own state is apart, so
// either side changes without the other. Like the binding, these keys
// expire ProducerIDExpiry after their last write (Kafka's
// transactional.id.expiration.ms):
//
//	{x:<id>}:txn     hash  pid, epoch, state, dpid (producer id the open
//	                       transaction's batches carry), timeout (ms),
//	                       start (ms; 0 when none is open), updated (ms)
//	{x:<id>}:parts   set   "<topic id>:<partition>" added to the transaction
//	{x:<id>}:groups  set   groups whose offsets the transaction commits
//
// {m}:txn-deadlines is a sorted set of transactional ids scored by their
// transaction's deadline (ms), the reaper's hint: in another slot, so it is
// written around the state script (score 0, "look at me", before a
// transaction starts; the real deadline after), and ListExpiredTxns checks
// every candidate against its own slot.
//
// Each partition has, in its slot, txn-open (producer id -> first offset
// of its open transaction) and txn-aborted (the aborted transactions),
// maintained by the segment commit itself (txn_commit.lua, prepended to
// commit.lua): the last stable offset is held back by the same script that
// makes a transactional batch visible.
//
// Transactional offsets wait in {g:<group>}:txn-offsets:<producer id>,
// apart from the group's committed offsets, until CompleteTxn moves them
// in (commit) or drops them (abort).
//
// trim.lua (DeleteRecords, retention) drops aborted entries wholly below the
// new log start, and the drop of a deleted topic's partition deletes both
// partition keys. Still to collect: the pending offsets of a deleted group,
// and the state of transactional ids no producer uses any more (Kafka's
// transactional.id.expiration.ms).

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Kafka's control record types (the key of a control record).
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// MaxTxnTimeout is the longest transaction timeout a producer may ask for
// (Kafka's transaction.max.timeout.ms default, 15 minutes).
const MaxTxnTimeout = 15 * time.Minute

// ErrConcurrentTransactions: the transactional id's previous transaction is
// still being committed or aborted (Kafka CONCURRENT_TRANSACTIONS, retriable).
// It is an ErrConflict too.
var ErrConcurrentTransactions = fmt.Errorf("%w: the previous transaction is still completing", ErrConflict)

// ErrInvalidTxnState: the operation does not apply to the transaction's
// state, e.g. EndTxn with nothing ongoing or a commit of a transaction being
// aborted (Kafka INVALID_TXN_STATE). It is an ErrInvalid too.
var ErrInvalidTxnState = fmt.Errorf("%w: invalid transaction state", ErrInvalid)

// TxnState is a transaction's state, named as Kafka's DescribeTransactions
// (KIP-664) names it.
type TxnState string

// The transaction states. Empty: no transaction yet since InitTxn. Ongoing:
// partitions or groups were added. PrepareCommit/PrepareAbort: EndTxn
// decided and the markers are being written. CompleteCommit/CompleteAbort:
// the markers are written; the next AddPartitionsToTxn starts a new one.
const (
	TxnEmpty          TxnState = "Empty"
	TxnOngoing        TxnState = "Ongoing"
	TxnPrepareCommit  TxnState = "PrepareCommit"
	TxnPrepareAbort   TxnState = "PrepareAbort"
	TxnCompleteCommit TxnState = "CompleteCommit"
	TxnCompleteAbort  TxnState = "CompleteAbort"
)

// TxnPartition is a partition a transaction wrote to (or will).
type TxnPartition struct {
	TopicID   uuid.UUID
	Partition int32
}

// Txn is a transactional id's state.
type Txn struct {
	TransactionalID string
	// ProducerID and ProducerEpoch: the current incarnation, which every
	// call must present (others are fenced).
	ProducerID    int64
	ProducerEpoch int16
	// DataProducerID is the producer id the transaction's batches carry, so
	// the one its markers must carry: ProducerID, except after InitTxn
	// moved the id to a new producer id (epochs used up). -1 before any
	// transaction.
	DataProducerID int64
	State          TxnState
	Timeout        time.Duration // the producer's transaction.timeout.ms
	// Started is when the open transaction began (zero when none is open);
	// Deadline is Started + Timeout.
	Started  time.Time
	Deadline time.Time
	Updated  time.Time
	// Partitions and Groups added to the transaction (cleared on completion),
	// sorted.
	Partitions []TxnPartition
	Groups     []string
}

// AbortedTxn is one aborted transaction on a partition (Kafka's
// FetchResponse AbortedTransactions entry, with the marker's offset).
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64 // of the transaction's first batch on the partition
	LastOffset  int64 // of its abort marker
}

// Transactions is the index side of Kafka transactions (KIP-98): state per
// transactional id, transactional offset commits, and per partition the
// aborted transactions read_committed fetches skip. The last stable offset
// comes with Log.PartitionState; BatchCommit's Transactional and Control
// flags feed it. Every call fenced by (producerID, epoch) returns ErrFenced
// when they are not the transactional id's current incarnation, and
// ErrNotFound for a transactional id InitTxn never saw.
type Transactions interface {
	// InitTxn records (producerID, epoch) as the transactional id's current
	// incarnation, fencing the older ones, with the producer's transaction
	// timeout (0 < timeout <= MaxTxnTimeout, else ErrInvalid). InitProducerId
	// with a transactional id calls it right after
	// Producers.InitTransactionalProducer, with the id and epoch that
	// returned. An older epoch of the same producer id is ErrFenced; the
	// same epoch again is a retry and changes nothing. When the previous
	// incarnation left a transaction Ongoing it becomes PrepareAbort: the
	// returned Txn then says which partitions need abort markers (with
	// DataProducerID) and which groups' offsets to drop, and the caller
	// writes them and calls CompleteTxn with the new epoch before answering
	// the producer. A returned PrepareCommit is finished the same way.
	InitTxn(ctx context.Context, txnID string, producerID int64, epoch int16, timeout time.Duration) (Txn, error)
	// AddPartitionsToTxn adds partitions (Kafka AddPartitionsToTxn). The
	// first add after InitTxn or a completed transaction starts a
	// transaction (Ongoing) and its deadline. ErrConcurrentTransactions
	// while the previous one is still Prepare*.
	AddPartitionsToTxn(ctx context.Context, txnID string, producerID int64, epoch int16, partitions []TxnPartition) (Txn, error)
	// AddOffsetsToTxn adds a consumer group whose offsets the transaction
	// will commit (Kafka AddOffsetsToTxn); it starts a transaction like
	// AddPartitionsToTxn.
	AddOffsetsToTxn(ctx context.Context, txnID string, producerID int64, epoch int16, group string) (Txn, error)
	// EndTxn begins the commit (commit true) or abort of the Ongoing
	// transaction (Kafka EndTxn): PrepareCommit or PrepareAbort. The
	// returned partitions need a control batch (ControlCommit or
	// ControlAbort, producer DataProducerID) each; then CompleteTxn. A retry
	// with the same outcome returns the state again; anything else is
	// ErrInvalidTxnState.
	EndTxn(ctx context.Context, txnID string, producerID int64, epoch int16, commit bool) (Txn, error)
	// CompleteTxn finishes a Prepare* transaction once its markers are
	// committed: each added group's pending offsets become committed
	// (PrepareCommit) or are dropped (PrepareAbort), then the state becomes
	// CompleteCommit/CompleteAbort and the partitions and groups are
	// cleared. Idempotent; ErrInvalidTxnState when nothing was prepared.
	CompleteTxn(ctx context.Context, txnID string, producerID int64, epoch int16) (Txn, error)
	// DescribeTxn returns the state (Kafka DescribeTransactions);
	// ErrNotFound for an unknown id.
	DescribeTxn(ctx context.Context, txnID string) (Txn, error)
	// ListExpiredTxns returns up to limit transactions past their deadline
	// on the index's clock that are Ongoing (the reaper aborts them with
	// EndTxn under their own producer id and epoch) or stuck in Prepare*
	// (the reaper rewrites their markers and completes them).
	ListExpiredTxns(ctx context.Context, limit int) ([]Txn, error)
	// TxnOffsetCommit stages offsets in the group for the transactional
	// producer (Kafka TxnOffsetCommit): FetchOffsets does not see them until
	// CompleteTxn commits the transaction, and never after an abort.
	// ErrFenced when a newer epoch of the producer already staged offsets.
	// With a fence (KIP-447: the member id and generation or member epoch
	// the client sent), the offsets are staged only while that member holds
	// an unexpired lease at that epoch, checked in the same step as the
	// staging (ErrMemberFenced otherwise), as Groups.CommitOffsets does.
	TxnOffsetCommit(ctx context.Context, group string, producerID int64, epoch int16, fence *MemberFence, offsets map[TopicPartition]CommittedOffset) error
	// PendingTxnOffsets returns the partitions of the group that have
	// offsets staged by a transaction not yet completed (committed or
	// aborted): what OffsetFetch's RequireStable (KIP-447) answers
	// UNSTABLE_OFFSET_COMMIT for. A snapshot: a transaction may complete
	// right after.
	PendingTxnOffsets(ctx context.Context, group string) (map[TopicPartition]bool, error)
	// AbortedTransactions returns the partition's aborted transactions that
	// overlap [fromOffset, toOffset] (first <= toOffset, last >= fromOffset),
	// by first offset, at most 1000.
	AbortedTransactions(ctx context.Context, topicID uuid.UUID, partition int32, fromOffset, toOffset int64) ([]AbortedTxn, error)
}

var _ Transactions = (*Redis)(nil)

var (
	//go:embed lua/txn_commit.lua
	txnCommitSrc string
	//go:embed lua/txn_state.lua
	txnStateSrc string
	//go:embed lua/txn_offsets.lua
	txnOffsetsSrc string
	//go:embed lua/txn_aborted.lua
	txnAbortedSrc string

	txnStateScript   = redis.NewScript(luaNowMs + txnStateSrc)
	txnOffsetsScript = redis.NewScript(luaNowMs + txnOffsetsSrc)
	txnAbortedScript = redis.NewScript(txnAbortedSrc)
	// txnExpiredScript: KEYS[1] the deadline index; ARGV[1] limit. Returns
	// {now ms, id, score, ...}: ids whose deadline is at or before the
	// server's now.
	txnExpiredScript = redis.NewScript(luaNowMs + `
local now = now_ms()
local out = { now }
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))) do
  out[#out + 1] = v
end
return out
`)
	// txnForgetScript: KEYS[1] the deadline index; ARGV[1] id, ARGV[2] the
	// score it was listed with. Removes the entry only if the score is
	// unchanged: a transaction that started since has a new deadline, or
	// gets it right after (addToTxn writes it after its script).
	txnForgetScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`)
)

// maxAbortedTxns caps one AbortedTransactions answer.
const maxAbortedTxns = 1000

func (r *Redis) txnKeys(txnID string) []string {
	tag := r.opts.Prefix + "{x:" + txnID + "}:"
	return []string{tag + "txn", tag + "parts", tag + "groups"}
}

func (r *Redis) txnDeadlinesKey() string { return r.metaKey("txn-deadlines") }

// txnPartitionKeys are a partition's open and aborted transaction keys, in
// the order txn_commit.lua expects them at the end of KEYS.
func (r *Redis) txnPartitionKeys(topicID uuid.UUID, partition int32) []string {
	return []string{r.partitionKey(topicID, partition, "txn-open"), r.partitionKey(topicID, partition, "txn-aborted")}
}

func (r *Redis) txnPendingKey(group string, producerID int64) string {
	return r.groupKey(group, "txn-offsets:"+strconv.FormatInt(producerID, 10))
}

// txnProducersKey is the set of producer ids with a pending hash
// (txnPendingKey) in the group.
func (r *Redis) txnProducersKey(group string) string {
	return r.groupKey(group, "txn-producers")
}

// txnOffsetsKeys are txn_offsets.lua's KEYS.
func (r *Redis) txnOffsetsKeys(group string, producerID int64, k groupKeys) []string {
	return []string{r.txnPendingKey(group, producerID), k.offsets, k.members, k.epochs, r.txnProducersKey(group)}
}

// txnFlag is a batch's transaction flag for commit.lua: "" for none.
func txnFlag(b BatchCommit) (string, error) {
	if !b.Transactional && !b.Control {
		return "", nil
	}
	if b.ProducerID < 0 {
		return "", fmt.Errorf("%w: a transactional or control batch needs a producer id, got %d", ErrInvalid, b.ProducerID)
	}
	pid := strconv.FormatInt(b.ProducerID, 10)
	if !b.Control {
		return "T" + pid, nil
	}
	switch b.ControlType {
	case ControlAbort:
		return "A" + pid, nil
	case ControlCommit:
		return "C" + pid, nil
	}
	return "", fmt.Errorf("%w: control record type %d (0 abort, 1 commit)", ErrInvalid, b.ControlType)
}

// withLastStable fills st.LastStableOffset from the partition's open
// transactions, never below the log start (DeleteRecords may have removed
// the start of a transaction still open: what is left of it stays
// unstable). It reads after the caller's read of the high watermark, so
// a transaction closed in between only lets the LSO through to a
// watermark already read, and one opened in between starts at or above it.
func (r *Redis) withLastStable(ctx context.Context, topicID uuid.UUID, partition int32, st PartitionState) (PartitionState, error) {
	st.LastStableOffset = st.HighWatermark
	open, err := r.client.HGetAll(ctx, r.txnPartitionKeys(topicID, partition)[0]).Result()
	if err != nil {
		return PartitionState{}, wrapErr(fmt.Sprintf("last stable offset of topic %s partition %d", topicID, partition), err)
	}
	for f, v := range open {
		if f == "span" {
			continue
		}
		first, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return PartitionState{}, fmt.Errorf("last stable offset of topic %s partition %d: %w: open transaction %s=%q",
				topicID, partition, ErrUnavailable, f, v)
		}
		st.LastStableOffset = min(st.LastStableOffset, first)
	}
	st.LastStableOffset = max(st.LastStableOffset, st.LogStartOffset)
	return st, nil
}

func validTxnID(txnID string) error {
	if txnID == "" || hasBraces(txnID) {
		return fmt.Errorf("%w: transactional id %q must be non-empty and without braces", ErrInvalid, txnID)
	}
	return nil
}

// txnCall runs txn_state.lua and decodes its reply.
func (r *Redis) txnCall(ctx context.Context, op, txnID string, producerID int64, epoch int16, extra ...any) (Txn, bool, error) {
	if err := validTxnID(txnID); err != nil {
		return Txn{}, false, err
	}
	args := append([]any{op, producerID, epoch, ProducerIDExpiry.Milliseconds()}, extra...)
	v, err := r.run(ctx, txnStateScript, r.txnKeys(txnID), args...).Slice()
	if err != nil {
		return Txn{}, false, err
	}
	return r.parseTxn(txnID, producerID, epoch, v)
}

func (r *Redis) parseTxn(txnID string, producerID int64, epoch int16, v []any) (Txn, bool, error) {
	s, err := replyStrings(v)
	if err != nil || len(s) == 0 {
		return Txn{}, false, fmt.Errorf("%w: transaction reply %v", ErrUnavailable, v)
	}
	switch s[0] {
	case "N":
		return Txn{}, false, fmt.Errorf("%w: transactional id %q", ErrNotFound, txnID)
	case "F":
		if len(s) != 3 {
			break
		}
		return Txn{}, false, fmt.Errorf("%w: transactional id %q belongs to producer %s epoch %s, not %d epoch %d",
			ErrFenced, txnID, s[1], s[2], producerID, epoch)
	case "C":
		if len(s) != 2 {
			break
		}
		return Txn{}, false, fmt.Errorf("%w: transactional id %q is %s", ErrConcurrentTransactions, txnID, s[1])
	case "S":
		if len(s) != 2 {
			break
		}
		return Txn{}, false, fmt.Errorf("%w: transactional id %q is %s", ErrInvalidTxnState, txnID, s[1])
	case "K":
		if len(s) < 11 {
			break
		}
		var n [8]int64
		for i, f := range []string{s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10]} {
			if n[i], err = strconv.ParseInt(f, 10, 64); err != nil {
				return Txn{}, false, fmt.Errorf("%w: transaction reply %v", ErrUnavailable, s)
			}
		}
		t := Txn{TransactionalID: txnID, State: TxnState(s[2]), ProducerID: n[0], ProducerEpoch: int16(n[1]),
			DataProducerID: n[2], Timeout: time.Duration(n[3]) * time.Millisecond, Updated: time.UnixMilli(n[5])}
		if n[4] > 0 {
			t.Started = time.UnixMilli(n[4])
			t.Deadline = t.Started.Add(t.Timeout)
		}
		nparts := int(n[7])
		if len(s) < 11+nparts {
			break
		}
		for _, p := range s[11 : 11+nparts] {
			id, part, ok := strings.Cut(p, ":")
			tid, err1 := uuid.Parse(id)
			pn, err2 := strconv.ParseInt(part, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return Txn{}, false, fmt.Errorf("%w: transaction partition %q", ErrUnavailable, p)
			}
			t.Partitions = append(t.Partitions, TxnPartition{TopicID: tid, Partition: int32(pn)})
		}
		slices.SortFunc(t.Partitions, func(a, b TxnPartition) int {
			if c := strings.Compare(a.TopicID.String(), b.TopicID.String()); c != 0 {
				return c
			}
			return int(a.Partition) - int(b.Partition)
		})
		t.Groups = append(t.Groups, s[11+nparts:]...)
		slices.Sort(t.Groups)
		return t, s[1] == "1", nil
	}
	return Txn{}, false, fmt.Errorf("%w: transaction reply %v", ErrUnavailable, s)
}

// InitTxn implements Transactions.InitTxn.
func (r *Redis) InitTxn(ctx context.Context, txnID string, producerID int64, epoch int16, timeout time.Duration) (Txn, error) {
	op := "init transaction " + txnID
	if producerID < 0 || epoch < 0 {
		return Txn{}, wrapErr(op, fmt.Errorf("%w: producer %d epoch %d", ErrInvalid, producerID, epoch))
	}
	if timeout <= 0 || timeout > MaxTxnTimeout {
		return Txn{}, wrapErr(op, fmt.Errorf("%w: transaction timeout %v must be in (0, %v]", ErrInvalid, timeout, MaxTxnTimeout))
	}
	t, _, err := r.txnCall(ctx, "init", txnID, producerID, epoch, timeout.Milliseconds())
	if err != nil {
		return Txn{}, wrapErr(op, err)
	}
	return t, wrapErr(op, r.written(ctx))
}

// addToTxn runs an add op with the deadline index around it: an entry at
// score 0 first, so a transaction never runs without one, and its real
// deadline once the script says it started one.
func (r *Redis) addToTxn(ctx context.Context, op, txnID string, producerID int64, epoch int16, members []any) (Txn, error) {
	if err := validTxnID(txnID); err != nil {
		return Txn{}, err
	}
	if err := r.client.ZAddNX(ctx, r.txnDeadlinesKey(), redis.Z{Score: 0, Member: txnID}).Err(); err != nil {
		return Txn{}, err
	}
	t, started, err := r.txnCall(ctx, op, txnID, producerID, epoch, members...)
	if err != nil {
		return Txn{}, err
	}
	if started {
		if err := r.client.ZAdd(ctx, r.txnDeadlinesKey(), redis.Z{Score: float64(t.Deadline.UnixMilli()), Member: txnID}).Err(); err != nil {
			return Txn{}, err
		}
	}
	return t, r.written(ctx)
}

// AddPartitionsToTxn implements Transactions.AddPartitionsToTxn.
func (r *Redis) AddPartitionsToTxn(ctx context.Context, txnID string, producerID int64, epoch int16, partitions []TxnPartition) (Txn, error) {
	op := "add partitions to transaction " + txnID
	if len(partitions) == 0 {
		return Txn{}, wrapErr(op, fmt.Errorf("%w: no partitions", ErrInvalid))
	}
	members := make([]any, len(partitions))
	for i, p := range partitions {
		if p.Partition < 0 {
			return Txn{}, wrapErr(op, fmt.Errorf("%w: partition %d", ErrInvalid, p.Partition))
		}
		members[i] = p.TopicID.String() + ":" + strconv.Itoa(int(p.Partition))
	}
	t, err := r.addToTxn(ctx, "add", txnID, producerID, epoch, members)
	return t, wrapErr(op, err)
}

// AddOffsetsToTxn implements Transactions.AddOffsetsToTxn.
func (r *Redis) AddOffsetsToTxn(ctx context.Context, txnID string, producerID int64, epoch int16, group string) (Txn, error) {
	op := "add offsets to transaction " + txnID
	if err := validGroup(group); err != nil {
		return Txn{}, wrapErr(op, err)
	}
	t, err := r.addToTxn(ctx, "offsets", txnID, producerID, epoch, []any{group})
	return t, wrapErr(op, err)
}

// EndTxn implements Transactions.EndTxn.
func (r *Redis) EndTxn(ctx context.Context, txnID string, producerID int64, epoch int16, commit bool) (Txn, error) {
	op := "end transaction " + txnID
	flag := "0"
	if commit {
		flag = "1"
	}
	t, _, err := r.txnCall(ctx, "end", txnID, producerID, epoch, flag)
	if err != nil {
		return Txn{}, wrapErr(op, err)
	}
	return t, wrapErr(op, r.written(ctx))
}

// CompleteTxn implements Transactions.CompleteTxn. The groups' scripts run
// first, each idempotent, so a crash before the state changes is repaired
// by the retry.
func (r *Redis) CompleteTxn(ctx context.Context, txnID string, producerID int64, epoch int16) (Txn, error) {
	op := "complete transaction " + txnID
	cur, _, err := r.txnCall(ctx, "describe", txnID, producerID, epoch)
	if err != nil {
		return Txn{}, wrapErr(op, err)
	}
	if cur.ProducerID != producerID || cur.ProducerEpoch != epoch {
		return Txn{}, wrapErr(op, fmt.Errorf("%w: transactional id %q belongs to producer %d epoch %d, not %d epoch %d",
			ErrFenced, txnID, cur.ProducerID, cur.ProducerEpoch, producerID, epoch))
	}
	if cur.State == TxnPrepareCommit || cur.State == TxnPrepareAbort {
		outcome := "abort"
		if cur.State == TxnPrepareCommit {
			outcome = "commit"
		}
		for _, g := range cur.Groups {
			k := r.groupKeys(g)
			if _, err := r.runGroupWrite(ctx, g, txnOffsetsScript, r.txnOffsetsKeys(g, cur.DataProducerID, k),
				outcome, epoch, cur.DataProducerID); err != nil {
				return Txn{}, wrapErr(op, fmt.Errorf("group %q: %w", g, err))
			}
		}
	}
	t, _, err := r.txnCall(ctx, "complete", txnID, producerID, epoch)
	if err != nil {
		return Txn{}, wrapErr(op, err)
	}
	// The deadline entry goes after the state: removing it first could lose
	// an unfinished transaction from the reaper's view.
	if err := r.client.ZRem(ctx, r.txnDeadlinesKey(), txnID).Err(); err != nil {
		return Txn{}, wrapErr(op, err)
	}
	return t, wrapErr(op, r.written(ctx))
}

// DescribeTxn implements Transactions.DescribeTxn.
func (r *Redis) DescribeTxn(ctx context.Context, txnID string) (Txn, error) {
	t, _, err := r.txnCall(ctx, "describe", txnID, -1, -1)
	return t, wrapErr("describe transaction "+txnID, err)
}

// ListExpiredTxns implements Transactions.ListExpiredTxns: candidates from
// the deadline index, each checked against its own state. Candidates with
// no transaction in progress (an add that failed, a completion that did not
// get to remove its entry) are dropped from the index on the way, so they
// cannot crowd out the expired ones.
func (r *Redis) ListExpiredTxns(ctx context.Context, limit int) ([]Txn, error) {
	const op = "list expired transactions"
	if limit <= 0 {
		return nil, wrapErr(op, fmt.Errorf("%w: limit %d", ErrInvalid, limit))
	}
	ids, err := r.run(ctx, txnExpiredScript, []string{r.txnDeadlinesKey()}, limit).StringSlice()
	if err != nil || len(ids) == 0 {
		return nil, wrapErr(op, err)
	}
	nowMs, err := strconv.ParseInt(ids[0], 10, 64)
	if err != nil {
		return nil, wrapErr(op, fmt.Errorf("%w: server time %q", ErrUnavailable, ids[0]))
	}
	now := time.UnixMilli(nowMs)
	var out []Txn
	for i := 1; i+1 < len(ids); i += 2 {
		id, score := ids[i], ids[i+1]
		t, err := r.DescribeTxn(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, wrapErr(op, err)
		}
		switch {
		case err == nil && (t.State == TxnOngoing || t.State == TxnPrepareCommit || t.State == TxnPrepareAbort):
			if !t.Started.IsZero() && !t.Deadline.After(now) {
				out = append(out, t)
			}
		default:
			if err := r.run(ctx, txnForgetScript, []string{r.txnDeadlinesKey()}, id, score).Err(); err != nil {
				return nil, wrapErr(op, err)
			}
		}
	}
	return out, nil
}

// TxnOffsetCommit implements Transactions.TxnOffsetCommit.
func (r *Redis) TxnOffsetCommit(ctx context.Context, group string, producerID int64, epoch int16, fence *MemberFence, offsets map[TopicPartition]CommittedOffset) error {
	const op = "transactional offset commit"
	if err := validGroup(group); err != nil {
		return wrapErr(op, err)
	}
	if producerID < 0 || epoch < 0 {
		return wrapErr(op, fmt.Errorf("%w: producer %d epoch %d", ErrInvalid, producerID, epoch))
	}
	if len(offsets) == 0 {
		return nil
	}
	args := []any{"stage", epoch, producerID, "0", "", 0}
	if fence != nil {
		if fence.MemberID == "" {
			return wrapErr(op, fmt.Errorf("%w: empty member id in fence", ErrInvalid))
		}
		args = []any{"stage", epoch, producerID, "1", fence.MemberID, fence.Epoch}
	}
	args, err := appendOffsetArgs(args, offsets)
	if err != nil {
		return wrapErr(op, err)
	}
	v, err := r.runGroupWrite(ctx, group, txnOffsetsScript, r.txnOffsetsKeys(group, producerID, r.groupKeys(group)), args...)
	if err != nil {
		return wrapErr(op, err)
	}
	status, detail := int64(-1), int64(0)
	if len(v) > 0 {
		status, _ = v[0].(int64)
	}
	if len(v) > 1 {
		detail, _ = v[1].(int64)
	}
	switch status {
	case 0:
		return wrapErr(op, r.written(ctx))
	case 1:
		return wrapErr(op, fmt.Errorf("%w: producer %d epoch %d: epoch %d already staged offsets in group %q",
			ErrFenced, producerID, epoch, detail, group))
	case 2, 3, 4:
		return wrapErr(op, memberFenceError(group, fence, status-1, detail))
	default:
		return wrapErr(op, fmt.Errorf("%w: transactional offset commit reply %v", ErrUnavailable, v))
	}
}

// PendingTxnOffsets implements Transactions.PendingTxnOffsets: the group's
// set of producers with staged offsets, then each one's pending hash.
func (r *Redis) PendingTxnOffsets(ctx context.Context, group string) (map[TopicPartition]bool, error) {
	const op = "pending transactional offsets"
	if err := validGroup(group); err != nil {
		return nil, wrapErr(op, err)
	}
	pids, err := r.client.SMembers(ctx, r.txnProducersKey(group)).Result()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	out := map[TopicPartition]bool{}
	if len(pids) == 0 {
		return out, nil
	}
	// One slot: the pending hashes share the group's hash tag.
	cmds := make([]*redis.StringSliceCmd, len(pids))
	pipe := r.client.Pipeline()
	for i, pid := range pids {
		n, err := strconv.ParseInt(pid, 10, 64)
		if err != nil {
			return nil, wrapErr(op, fmt.Errorf("%w: producer id %q in the pending set", ErrUnavailable, pid))
		}
		cmds[i] = pipe.HKeys(ctx, r.txnPendingKey(group, n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapErr(op, err)
	}
	for _, c := range cmds {
		for _, f := range c.Val() {
			if f == "~epoch" {
				continue
			}
			tp, err := parseOffsetField(f)
			if err != nil {
				return nil, wrapErr(op, err)
			}
			out[tp] = true
		}
	}
	return out, nil
}

// AbortedTransactions implements Transactions.AbortedTransactions.
func (r *Redis) AbortedTransactions(ctx context.Context, topicID uuid.UUID, partition int32, fromOffset, toOffset int64) ([]AbortedTxn, error) {
	op := fmt.Sprintf("aborted transactions of topic %s partition %d [%d, %d]", topicID, partition, fromOffset, toOffset)
	if partition < 0 || fromOffset < 0 || toOffset < fromOffset {
		return nil, wrapErr(op, fmt.Errorf("%w: partition %d, range [%d, %d]", ErrInvalid, partition, fromOffset, toOffset))
	}
	members, err := r.run(ctx, txnAbortedScript, r.txnPartitionKeys(topicID, partition), fromOffset, toOffset, maxAbortedTxns).StringSlice()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	out := make([]AbortedTxn, 0, len(members))
	for _, m := range members {
		f := strings.Split(m, ":")
		var n [3]int64
		ok := len(f) == 3
		for i := 0; ok && i < 3; i++ {
			var err error
			n[i], err = strconv.ParseInt(f[i], 10, 64)
			ok = err == nil
		}
		if !ok {
			return nil, wrapErr(op, fmt.Errorf("%w: aborted transaction %q", ErrUnavailable, m))
		}
		out = append(out, AbortedTxn{FirstOffset: n[0], LastOffset: n[1], ProducerID: n[2]})
	}
	return out, nil
}
