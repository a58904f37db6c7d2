package agent

// The transaction reaper (DESIGN.md, "Transactions (shape)"): a
// transaction left open past its timeout, its producer dead or stuck, holds
// back the last stable offset of every partition it wrote to, so every
// read_committed reader of them. Every TxnReaperInterval each agent tries
// the reaper lease; the one holding it lists the expired transactions in
// the index and aborts each (Kafka's transaction coordinator does this for
// transaction.timeout.ms): EndTxn(abort) under the transaction's own
// producer id and epoch, an epoch bump that fences that producer (as
// Kafka's coordinator bumps the epoch on a timeout abort), abort markers
// under the new epoch, CompleteTxn. Transactions stuck in
// PrepareCommit or PrepareAbort (an EndTxn whose agent died after the
// decision) are finished the way they were decided. The lease keeps the
// agents from doing the same work at once; the index's state machine keeps
// a late or repeated abort harmless.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// txnReaperLease is the index lease that lets one reaper run at a time.
const txnReaperLease = "txn-reaper"

// txnReapBatch is how many expired transactions one pass lists.
const txnReapBatch = 100

// runTxnReaper runs a reaper pass every TxnReaperInterval until ctx ends.
func (a *Agent) runTxnReaper(ctx context.Context) {
	defer close(a.reaperDone)
	runEvery(ctx, a.cfg.TxnReaperInterval, func() {
		n, err := a.ReapTransactions(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			a.log.Warn("transaction reaper pass failed", "err", err)
		case n > 0:
			a.log.Info("transaction reaper pass", "finished", n)
		}
	})
}

// ReapTransactions runs one reaper pass: it aborts the transactions open
// past their timeout and finishes those stuck committing or aborting, and
// returns how many it finished. It does nothing (0, nil) while another
// agent holds the reaper lease.
func (a *Agent) ReapTransactions(ctx context.Context) (int, error) {
	leases, ok := a.index.(coordinator.Leases)
	if !ok {
		return 0, fmt.Errorf("transaction reaper: the index %T has no leases", a.index)
	}
	ttl := max(3*a.cfg.TxnReaperInterval, 30*time.Second)
	lease, err := leases.AcquireLease(ctx, txnReaperLease, a.cfg.AgentID, ttl)
	if errors.Is(err, coordinator.ErrConflict) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("transaction reaper: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = leases.ReleaseLease(rctx, lease)
	}()
	expired, err := a.index.ListExpiredTxns(ctx, txnReapBatch)
	if err != nil {
		return 0, fmt.Errorf("transaction reaper: %w", err)
	}
	done := 0
	var errs []error
	for _, txn := range expired {
		// Another agent took the lease (this pass outlived it): stop, and
		// leave the rest to it.
		if err := leases.ValidateLease(ctx, lease); err != nil {
			return done, fmt.Errorf("transaction reaper: %w", err)
		}
		if err := a.reapTxn(ctx, txn); err != nil {
			errs = append(errs, fmt.Errorf("transaction %q: %w", txn.TransactionalID, err))
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

// reapTxn aborts one expired transaction, or finishes a prepared one.
func (a *Agent) reapTxn(ctx context.Context, txn coordinator.Txn) error {
	if txn.State == coordinator.TxnOngoing {
		a.log.Info("aborting a transaction past its timeout", "transactional_id", txn.TransactionalID,
			"producer_id", txn.ProducerID, "epoch", txn.ProducerEpoch, "started", txn.Started, "timeout", txn.Timeout)
		var err error
		txn, err = a.index.EndTxn(ctx, txn.TransactionalID, txn.ProducerID, txn.ProducerEpoch, false)
		if errors.Is(err, coordinator.ErrFenced) || errors.Is(err, coordinator.ErrInvalidTxnState) {
			// The producer (or a newer one) ended it in the meantime.
			return nil
		}
		if err != nil {
			return err
		}
		// Fence the producer that left it (Kafka's coordinator bumps the
		// epoch when it aborts on timeout): the zombie's next call is
		// refused, and the abort markers carry the new epoch to the
		// partitions, where its late batches can then never land after
		// them and open a transaction nothing closes.
		if txn, err = a.bumpTimedOutProducer(ctx, txn); err != nil {
			if errors.Is(err, coordinator.ErrFenced) {
				// A new producer took the id meanwhile: it finishes
				// the abort (InitProducerId does).
				return nil
			}
			return err
		}
	}
	return a.finishTxn(ctx, txn)
}

// bumpTimedOutProducer gives the transactional id of txn, which the reaper
// has just moved to PrepareAbort, a new epoch, as a new InitProducerId
// would, and returns the transaction under it, still PrepareAbort.
// ErrFenced when another producer took the id in between.
func (a *Agent) bumpTimedOutProducer(ctx context.Context, txn coordinator.Txn) (coordinator.Txn, error) {
	// Fence, not Init: the producer may come back with its pair and take
	// the id again (KIP-588), which a new producer's init would not let it.
	pid, epoch, err := a.index.FenceTransactionalProducer(ctx, txn.TransactionalID, txn.Timeout)
	if err != nil {
		return txn, fmt.Errorf("bump the epoch of the timed-out producer: %w", err)
	}
	bumped, err := a.index.InitTxn(ctx, txn.TransactionalID, pid, epoch, txn.Timeout)
	if err != nil {
		return txn, fmt.Errorf("bump the epoch of the timed-out producer: %w", err)
	}
	a.log.Info("fenced the producer of a timed-out transaction", "transactional_id", txn.TransactionalID,
		"producer_id", pid, "epoch", epoch, "state", bumped.State)
	return bumped, nil
}
