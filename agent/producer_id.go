package agent

// ProducerService.InitProducerId: Kafka's InitProducerId (KIP-98), with the
// epoch bump of an existing id (KIP-360). The index keeps ids, epochs and
// transactional ids (coordinator.Producers); the sequence checks happen in
// the segment commit. A transactional id also makes the new epoch the
// transaction's current producer (txn.go), finishing what an older one
// left open.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const (
	// defaultTransactionTimeout is Kafka's transaction.timeout.ms default.
	defaultTransactionTimeout = time.Minute
	// maxTransactionTimeout is Kafka's transaction.max.timeout.ms default.
	maxTransactionTimeout = 15 * time.Minute
)

// InitProducerId is ProducerService.InitProducerId (strata/v1; KIP-98,
// KIP-360) in the core; the Connect front-end, agent/connectapi, wraps it.
// Errors: ErrInvalid, coordinator.ErrFenced (an older epoch than the
// producer's), the index's.
func (a *Agent) InitProducerId(ctx context.Context, req *stratav1.InitProducerIdRequest) (*stratav1.InitProducerIdResponse, error) {
	id, epoch, err := a.initProducerID(ctx, req)
	if err != nil {
		return nil, err
	}
	return &stratav1.InitProducerIdResponse{ProducerId: id, ProducerEpoch: int32(epoch)}, nil
}

func (a *Agent) initProducerID(ctx context.Context, req *stratav1.InitProducerIdRequest) (int64, int16, error) {
	if tid := req.GetTransactionalId(); tid != "" {
		timeout := defaultTransactionTimeout
		if req.TransactionTimeout != nil {
			timeout = req.GetTransactionTimeout().AsDuration()
			if timeout <= 0 || timeout > maxTransactionTimeout {
				return 0, 0, invalidf("transaction_timeout %s: want more than 0 and at most %s (Kafka's transaction.max.timeout.ms)", timeout, maxTransactionTimeout)
			}
		}
		id, epoch, err := a.index.InitTransactionalProducer(ctx, tid, timeout)
		if err != nil {
			return 0, 0, err
		}
		if err := a.initTxn(ctx, tid, id, epoch, timeout); err != nil {
			return 0, 0, err
		}
		return id, epoch, nil
	}
	if req.TransactionTimeout != nil {
		return 0, 0, invalidf("transaction_timeout needs a transactional_id")
	}
	switch id := req.GetProducerId(); {
	case id < 0:
		return 0, 0, invalidf("producer_id %d: want an id from InitProducerId, or 0 for a new one", id)
	case id > 0:
		epoch, err := a.index.BumpEpoch(ctx, id)
		if err == nil {
			return id, epoch, nil
		}
		// Expired, or out of epochs: a new id serves as well (KIP-360).
		if !errors.Is(err, coordinator.ErrNotFound) && !errors.Is(err, coordinator.ErrFenced) {
			return 0, 0, fmt.Errorf("bump the epoch of producer %d: %w", id, err)
		}
		a.log.Info("producer id not bumped, allocating a new one", "producer_id", id, "reason", err)
	}
	return a.index.InitProducer(ctx)
}
