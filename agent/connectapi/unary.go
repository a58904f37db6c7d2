package connectapi

import (
	"context"

	"connectrpc.com/connect"
)

// unary is every unary RPC's handler: it hands the request message to the
// core's method of the same name and wraps the answer, or maps the core's
// error (connectError). The core's methods take and return the API's
// message types, so nothing else is left to do here.
func unary[Req, Resp any](ctx context.Context, req *connect.Request[Req], call func(context.Context, *Req) (*Resp, error)) (*connect.Response[Resp], error) {
	resp, err := call(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(resp), nil
}
