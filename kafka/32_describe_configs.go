package kafka

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs: key 32, versions 0-4 (KIP-133, KIP-226, KIP-336).
//
// Topic resources (type 2) list the topic's configs from the core: every one
// when the names are null or empty (Kafka reads both so), else those named.
// Each has its value, its source (v1+: the topic's own value or a default),
// read-only and sensitive flags (sensitive values are null), its type (v3+)
// and, when asked, its documentation (v3+). With include_synonyms (v1+) each
// config lists itself as its only synonym: there is no chain of broker-level
// overrides to show. v0 has is_default instead of a source.
//
// A broker resource (4) named by this agent's node id lists the read-only
// broker configs a console shows, from a core that implements
// BrokerConfigCore (message.max.bytes, log.retention.ms, num.partitions,
// broker.id, ...), each STATIC_BROKER_CONFIG: agents are configured by
// their flags, not over Kafka. Another broker's id is INVALID_REQUEST, as
// Kafka answers ("unexpected broker id"); the cluster default (an empty
// name) and broker-logger (8) resources have no configs. Other resource
// types are INVALID_REQUEST. An unknown topic is UNKNOWN_TOPIC_OR_PARTITION.

func (s *Server) handleDescribeConfigs(ctx context.Context, _ *clientConn, req *kmsg.DescribeConfigsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		r := kmsg.NewDescribeConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			configs, err := s.core.TopicConfigs(ctx, rr.ResourceName)
			if err != nil {
				r.ErrorCode, r.ErrorMessage = errorCode(err), errorMessage(err)
				break
			}
			r.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
			for _, c := range configs {
				if len(rr.ConfigNames) > 0 && !contains(rr.ConfigNames, c.Name) {
					continue
				}
				r.Configs = append(r.Configs, describeConfig(req, c))
			}
		case kmsg.ConfigResourceTypeBroker:
			r.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
			bc, ok := s.core.(BrokerConfigCore)
			if !ok || rr.ResourceName == "" {
				break
			}
			if want := strconv.Itoa(int(bc.NodeID())); rr.ResourceName != want {
				err := fmt.Errorf("%w: unexpected broker id, expected %s but received %q", ErrInvalidRequest, want, rr.ResourceName)
				r.ErrorCode, r.ErrorMessage = errorCode(err), errorMessage(err)
				break
			}
			for _, c := range bc.BrokerConfigs() {
				if len(rr.ConfigNames) > 0 && !contains(rr.ConfigNames, c.Name) {
					continue
				}
				r.Configs = append(r.Configs, describeConfig(req, c))
			}
		case kmsg.ConfigResourceTypeBrokerLogger:
			r.Configs = []kmsg.DescribeConfigsResponseResourceConfig{}
		default:
			err := fmt.Errorf("%w: config resource type %d is not served", ErrInvalidRequest, rr.ResourceType)
			r.ErrorCode, r.ErrorMessage = errorCode(err), errorMessage(err)
		}
		resp.Resources = append(resp.Resources, r)
	}
	return ready(resp)
}

// BrokerConfigCore is a core that reports its broker-level configs.
type BrokerConfigCore interface {
	// NodeID is this broker's node id, the name of its broker resource.
	NodeID() int32
	// BrokerConfigs returns the broker's configs, read-only, sorted by
	// name; TopicConfig's fields describe each.
	BrokerConfigs() []TopicConfig
}

func describeConfig(req *kmsg.DescribeConfigsRequest, c TopicConfig) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name, rc.Value, rc.ReadOnly, rc.IsSensitive = c.Name, c.Value, c.ReadOnly, c.Sensitive
	if c.Sensitive {
		rc.Value = nil
	}
	rc.IsDefault = c.Source != ConfigSourceTopic
	rc.Source = kmsg.ConfigSource(c.Source)
	rc.ConfigType = kmsg.ConfigType(c.Type)
	if req.IncludeSynonyms {
		syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		syn.Name, syn.Value, syn.Source = c.Name, rc.Value, rc.Source
		rc.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{syn}
	}
	if req.IncludeDocumentation && c.Documentation != "" {
		rc.Documentation = kmsg.StringPtr(c.Documentation)
	}
	return rc
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
