package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster: key 60, versions 0-1 (KIP-700).
//
// The cluster id, the controller (the lowest broker id listed, as in
// Metadata) and the live agents as brokers, zone-filtered for a client that
// names its zone, exactly as Metadata lists them. v1 adds the endpoint type:
// only brokers (1) are served; asking a broker for controllers (2) is
// UNSUPPORTED_ENDPOINT_TYPE, as Kafka answers. Authorized operations are not
// computed.

func (s *Server) handleDescribeCluster(ctx context.Context, cc *clientConn, req *kmsg.DescribeClusterRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = kmsg.StringPtr("only the broker endpoint type (1) is served")
		return ready(resp)
	}
	brokers, err := s.brokersFor(ctx, cc)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		return ready(resp)
	}
	resp.ClusterID = s.core.ClusterID()
	resp.ControllerID = controllerID(brokers)
	for _, b := range brokers {
		db := kmsg.NewDescribeClusterResponseBroker()
		db.NodeID, db.Host, db.Port = b.ID, b.Host, b.Port
		if b.Zone != "" {
			db.Rack = kmsg.StringPtr(b.Zone)
		}
		resp.Brokers = append(resp.Brokers, db)
	}
	return ready(resp)
}
