package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs: key 33, versions 0-2 (KIP-133; deprecated by
// IncrementalAlterConfigs, still sent by older tools).
//
// Replaces a topic's whole set of its own configs: the configs named get the
// values given (a null value removes it), and every config the topic set
// before that is not named goes back to its default, which is what Kafka's
// non-incremental API means. The change is one atomic core call per topic;
// validate_only checks and changes nothing. Broker resources are
// INVALID_REQUEST: agents are configured by their flags. A resource named
// twice is INVALID_REQUEST.

func (s *Server) handleAlterConfigs(ctx context.Context, _ *clientConn, req *kmsg.AlterConfigsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	seen := map[[2]string]int{}
	for _, rr := range req.Resources {
		seen[[2]string{fmt.Sprint(rr.ResourceType), rr.ResourceName}]++
	}
	for _, rr := range req.Resources {
		r := kmsg.NewAlterConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		switch {
		case seen[[2]string{fmt.Sprint(rr.ResourceType), rr.ResourceName}] > 1:
			err = fmt.Errorf("%w: resource %q is named more than once in the request", ErrInvalidRequest, rr.ResourceName)
		case rr.ResourceType != kmsg.ConfigResourceTypeTopic:
			err = fmt.Errorf("%w: only topic configs can be altered over Kafka (resource type %d)", ErrInvalidRequest, rr.ResourceType)
		default:
			err = s.replaceTopicConfigs(ctx, rr, req.ValidateOnly)
		}
		if err != nil {
			r.ErrorCode, r.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Resources = append(resp.Resources, r)
	}
	return ready(resp)
}

func (s *Server) replaceTopicConfigs(ctx context.Context, rr kmsg.AlterConfigsRequestResource, validateOnly bool) error {
	current, err := s.core.TopicConfigs(ctx, rr.ResourceName)
	if err != nil {
		return err
	}
	named := map[string]bool{}
	var changes []ConfigChange
	for _, c := range rr.Configs {
		if named[c.Name] {
			return fmt.Errorf("%w: config %q is named more than once", ErrInvalidConfig, c.Name)
		}
		named[c.Name] = true
		changes = append(changes, ConfigChange{Name: c.Name, Value: c.Value})
	}
	for _, c := range current {
		if c.Source == ConfigSourceTopic && !named[c.Name] {
			changes = append(changes, ConfigChange{Name: c.Name})
		}
	}
	return s.core.AlterTopicConfigs(ctx, rr.ResourceName, changes, validateOnly)
}
