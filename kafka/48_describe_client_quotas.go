package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeClientQuotas: key 48, versions 0-1 (KIP-546; v1 is flexible).
//
// Strata sets no client quotas (Kafka's producer_byte_rate and the rest):
// load is bounded by the produce buffer and answered with
// THROTTLING_QUOTA_EXCEEDED or backpressure instead. So every well-formed
// filter matches nothing: no error and an empty, non-null list of entries,
// as Kafka answers when no quota is set. A filter Kafka refuses is refused
// alike, with the entries null: an empty entity type, a type named twice,
// an exact match with a null match string or a default or "any" match with
// one, an "ip" component beside a "user" or "client-id" one
// (INVALID_REQUEST); an entity type other than user, client-id and ip, or
// an unknown match type (UNSUPPORTED_VERSION). AlterClientQuotas is not
// served.

func (s *Server) handleDescribeClientQuotas(_ context.Context, _ *clientConn, req *kmsg.DescribeClientQuotasRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if err := checkQuotaFilter(req.Components); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		return ready(resp)
	}
	resp.Entries = []kmsg.DescribeClientQuotasResponseEntry{}
	return ready(resp)
}

// checkQuotaFilter checks a DescribeClientQuotas filter as Kafka does.
func checkQuotaFilter(components []kmsg.DescribeClientQuotasRequestComponent) error {
	seen := map[string]bool{}
	for _, c := range components {
		switch {
		case c.EntityType == "":
			return fmt.Errorf("%w: an entity type is empty", ErrInvalidRequest)
		case seen[c.EntityType]:
			return fmt.Errorf("%w: entity type %q appears more than once in the filter", ErrInvalidRequest, c.EntityType)
		case c.EntityType != "user" && c.EntityType != "client-id" && c.EntityType != "ip":
			return fmt.Errorf("%w: entity type %q; the types are user, client-id and ip", ErrUnsupported, c.EntityType)
		}
		seen[c.EntityType] = true
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				return fmt.Errorf("%w: entity type %q asks for an exact match with a null match string", ErrInvalidRequest, c.EntityType)
			}
		case kmsg.QuotasMatchTypeDefault, kmsg.QuotasMatchTypeAny:
			if c.Match != nil {
				return fmt.Errorf("%w: entity type %q asks for the %s match with a match string", ErrInvalidRequest, c.EntityType, c.MatchType)
			}
		default:
			return fmt.Errorf("%w: match type %d; the types are 0 (exact), 1 (default) and 2 (any)", ErrUnsupported, c.MatchType)
		}
	}
	if seen["ip"] && (seen["user"] || seen["client-id"]) {
		return fmt.Errorf("%w: an ip filter component cannot be used with a user or client-id one", ErrInvalidRequest)
	}
	return nil
}
