package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs: key 44, versions 0-1 (KIP-339).
//
// Changes a topic's configs one by one: SET (0) a value, DELETE (1) the
// topic's own value so the default applies, APPEND (2) to or SUBTRACT (3)
// from a list config (comma-separated, e.g. cleanup.policy). APPEND and
// SUBTRACT on a non-list config are INVALID_CONFIG, as in Kafka; they are
// resolved against the current value here and the result is written as a
// SET, all of one topic's changes in one atomic core call. A config named
// twice in one resource is INVALID_CONFIG; validate_only checks and changes
// nothing. Broker resources are INVALID_REQUEST: agents are configured by
// their flags.

func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, _ *clientConn, req *kmsg.IncrementalAlterConfigsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		r := kmsg.NewIncrementalAlterConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			err = fmt.Errorf("%w: only topic configs can be altered over Kafka (resource type %d)", ErrInvalidRequest, rr.ResourceType)
		} else {
			err = s.alterTopicConfigs(ctx, rr, req.ValidateOnly)
		}
		if err != nil {
			r.ErrorCode, r.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Resources = append(resp.Resources, r)
	}
	return ready(resp)
}

func (s *Server) alterTopicConfigs(ctx context.Context, rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) error {
	current, err := s.core.TopicConfigs(ctx, rr.ResourceName)
	if err != nil {
		return err
	}
	byName := map[string]TopicConfig{}
	for _, c := range current {
		byName[c.Name] = c
	}
	named := map[string]bool{}
	var changes []ConfigChange
	for _, c := range rr.Configs {
		if named[c.Name] {
			return fmt.Errorf("%w: config %q is named more than once", ErrInvalidConfig, c.Name)
		}
		named[c.Name] = true
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			changes = append(changes, ConfigChange{Name: c.Name, Value: c.Value})
		case kmsg.IncrementalAlterConfigOpDelete:
			changes = append(changes, ConfigChange{Name: c.Name})
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			cur, ok := byName[c.Name]
			if !ok || cur.Type != ConfigTypeList {
				return fmt.Errorf("%w: %s applies to list configs only, and %q is not one", ErrInvalidConfig, c.Op, c.Name)
			}
			var list []string
			if cur.Value != nil && *cur.Value != "" {
				list = strings.Split(*cur.Value, ",")
			}
			var items []string
			if c.Value != nil && *c.Value != "" {
				items = strings.Split(*c.Value, ",")
			}
			for _, it := range items {
				if c.Op == kmsg.IncrementalAlterConfigOpAppend {
					if !slices.Contains(list, it) {
						list = append(list, it)
					}
				} else {
					list = slices.DeleteFunc(list, func(x string) bool { return x == it })
				}
			}
			v := strings.Join(list, ",")
			changes = append(changes, ConfigChange{Name: c.Name, Value: &v})
		default:
			return fmt.Errorf("%w: unknown config operation %d on %q", ErrInvalidRequest, c.Op, c.Name)
		}
	}
	return s.core.AlterTopicConfigs(ctx, rr.ResourceName, changes, validateOnly)
}
