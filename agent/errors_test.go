package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

func TestConnectErrorCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want connect.Code
	}{
		{coordinator.ErrNotFound, connect.CodeNotFound},
		{objectlog.ErrNotFound, connect.CodeNotFound},
		{coordinator.ErrTopicDeleted, connect.CodeNotFound},
		{coordinator.ErrOffsetOutOfRange, connect.CodeOutOfRange},
		{coordinator.ErrFenced, connect.CodeFailedPrecondition},
		{coordinator.ErrOutOfOrderSequence, connect.CodeOutOfRange},
		{coordinator.ErrConflict, connect.CodeAborted},
		{coordinator.ErrGroupNotEmpty, connect.CodeAborted},
		{coordinator.ErrAlreadyExists, connect.CodeAlreadyExists},
		{coordinator.ErrUnavailable, connect.CodeUnavailable},
		{objectlog.ErrUnavailable, connect.CodeUnavailable},
		{objectlog.ErrCorrupt, connect.CodeDataLoss},
		{coordinator.ErrInvalid, connect.CodeInvalidArgument},
		{errInvalid, connect.CodeInvalidArgument},
		{errTooLarge, connect.CodeInvalidArgument},
		{errOverloaded, connect.CodeResourceExhausted},
		{errClosed, connect.CodeUnavailable},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
		{context.Canceled, connect.CodeCanceled},
		{errors.New("dial tcp: connection refused"), connect.CodeUnavailable},
		{connect.NewError(connect.CodePermissionDenied, errors.New("no")), connect.CodePermissionDenied},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			t.Parallel()
			// Wrapped twice, as errors travel up from the index or store.
			wrapped := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.err))
			if got := connect.CodeOf(connectError(wrapped)); got != c.want {
				t.Errorf("code of %v = %v, want %v", wrapped, got, c.want)
			}
		})
	}
	if connectError(nil) != nil {
		t.Error("connectError(nil) is not nil")
	}
}
