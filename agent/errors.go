package agent

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// Errors of the agent's own, mapped with the index's and the store's below.
var (
	// errInvalid: a request the agent refuses before touching anything.
	errInvalid = errors.New("invalid request")
	// errTooLarge: a record or request over a limit; the message names it.
	errTooLarge = errors.New("too large")
	// errOverloaded: the produce buffer stayed full.
	errOverloaded = errors.New("overloaded")
)

// codeTable maps domain errors to Connect codes, most specific first. It is
// the one place where that mapping lives (DESIGN.md, "Failure model").
var codeTable = []struct {
	err  error
	code connect.Code
}{
	{coordinator.ErrNotFound, connect.CodeNotFound},
	{objectlog.ErrNotFound, connect.CodeNotFound},
	{coordinator.ErrTopicDeleted, connect.CodeNotFound},
	{coordinator.ErrOffsetOutOfRange, connect.CodeOutOfRange},
	{coordinator.ErrFenced, connect.CodeFailedPrecondition},
	// A sequence gap is OUT_OF_RANGE, apart from a fenced epoch, so a client
	// can tell the gap it may retry from the fencing it may not (producer.proto).
	{coordinator.ErrOutOfOrderSequence, connect.CodeOutOfRange},
	{coordinator.ErrConflict, connect.CodeAborted},
	{coordinator.ErrAlreadyExists, connect.CodeAlreadyExists},
	{objectlog.ErrAlreadyExists, connect.CodeAlreadyExists},
	{coordinator.ErrUnavailable, connect.CodeUnavailable},
	{objectlog.ErrUnavailable, connect.CodeUnavailable},
	{objectlog.ErrInvalidRange, connect.CodeOutOfRange},
	{objectlog.ErrCorrupt, connect.CodeDataLoss},
	{coordinator.ErrInvalid, connect.CodeInvalidArgument},
	{errInvalid, connect.CodeInvalidArgument},
	{errTooLarge, connect.CodeInvalidArgument},
	{errOverloaded, connect.CodeResourceExhausted},
	{errClosed, connect.CodeUnavailable},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	{context.Canceled, connect.CodeCanceled},
}

// connectError turns any error into a Connect error with the right code.
// Errors not in the table come from the store's transport (timeouts,
// refused connections after retries), so they are Unavailable: retryable.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return connect.NewError(e.code, err)
		}
	}
	return connect.NewError(connect.CodeUnavailable, err)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}
