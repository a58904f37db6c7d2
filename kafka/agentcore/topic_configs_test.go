package agentcore

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Kafka's standard topic configs that tune a broker's local log or its
// replicas (issue 12): kadm creates topics with each, as Kafka Streams and
// consoles do; DescribeConfigs shows each back with its source; a bad value
// is INVALID_CONFIG naming the limit; IncrementalAlterConfigs sets and
// deletes them. Connect's CreateTopic takes the same keys.
func TestKadmStandardTopicConfigs(t *testing.T) {
	t.Parallel()
	addrs, agents := kafkaAgentsOf(t, 1)
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)

	valid := map[string]string{
		"segment.bytes":                           "52428800",
		"segment.ms":                              "600000",
		"segment.jitter.ms":                       "10",
		"segment.index.bytes":                     "4096",
		"flush.messages":                          "1000",
		"flush.ms":                                "1000",
		"index.interval.bytes":                    "8192",
		"file.delete.delay.ms":                    "1000",
		"preallocate":                             "true",
		"min.insync.replicas":                     "2",
		"unclean.leader.election.enable":          "true",
		"message.downconversion.enable":           "false",
		"message.timestamp.type":                  "CreateTime",
		"message.timestamp.difference.max.ms":     "1000",
		"message.timestamp.before.max.ms":         "1000",
		"message.timestamp.after.max.ms":          "1000",
		"local.retention.ms":                      "1000",
		"local.retention.bytes":                   "1000",
		"remote.storage.enable":                   "true",
		"leader.replication.throttled.replicas":   "*",
		"follower.replication.throttled.replicas": "0:1,1:2",
		"max.compaction.lag.ms":                   "86400000",
	}
	for k, v := range valid {
		topic := "cfg-" + strings.ReplaceAll(k, ".", "-")
		if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{k: &v}, topic); err != nil {
			t.Errorf("create with %s=%s: %v", k, v, err)
			continue
		}
		c := describeConfig(t, adm, topic, k)
		want := kmsg.ConfigSourceDynamicTopicConfig
		if k == "message.timestamp.type" {
			want = kmsg.ConfigSourceDefaultConfig // CreateTime is the default
		}
		if c.Value == nil || *c.Value != v || c.Source != want {
			t.Errorf("%s described as %v (source %v), want %s (source %v)", k, c.MaybeValue(), c.Source, v, want)
		}
	}

	bad := []struct{ key, value, msg string }{
		{"segment.bytes", "1024", "between 1048576 and 2147483647"},
		{"segment.ms", "0", "between 1 and 9223372036854775807"},
		{"min.insync.replicas", "0", "between 1 and 2147483647"},
		{"unclean.leader.election.enable", "maybe", "true or false"},
		{"message.timestamp.type", "LogAppendTime", "LogAppendTime is not supported"},
		{"local.retention.ms", "-3", "between -2 and"},
		{"leader.replication.throttled.replicas", "all", "partition:broker"},
		{"max.compaction.lag.ms", "0", "between 1 and"},
		{"max.message.bytes", "-1", "between 1 and the broker's cap"},
	}
	for _, b := range bad {
		resp, err := adm.CreateTopics(ctx, 1, -1, map[string]*string{b.key: &b.value}, "cfg-bad")
		if err != nil {
			t.Fatal(err)
		}
		r := resp["cfg-bad"]
		if r.Err != kerr.InvalidConfig || !strings.Contains(r.ErrMessage, b.msg) {
			t.Errorf("create with %s=%s: %v %q, want INVALID_CONFIG saying %q", b.key, b.value, r.Err, r.ErrMessage, b.msg)
		}
	}

	// IncrementalAlterConfigs: SET one, DELETE another back to its default.
	const topic = "cfg-alter"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil {
		t.Fatal(err)
	}
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.ms", Value: kadm.StringPtr("3600000")},
		{Op: kadm.DeleteConfig, Name: "min.insync.replicas"},
	}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("incremental alter: %v %v", err, ar)
	}
	if c := describeConfig(t, adm, topic, "segment.ms"); c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("segment.ms after SET: %q (source %v)", c.MaybeValue(), c.Source)
	}
	if c := describeConfig(t, adm, topic, "min.insync.replicas"); c.MaybeValue() != "1" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("min.insync.replicas after DELETE: %q (source %v), want the default 1", c.MaybeValue(), c.Source)
	}
	ar, _ = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.ms", Value: kadm.StringPtr("-5")}}, topic)
	if ar[0].Err != kerr.InvalidConfig {
		t.Errorf("SET segment.ms=-5: %v, want INVALID_CONFIG", ar[0].Err)
	}

	// The Connect API takes and reports the same keys.
	ct, err := agents[0].CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "cfg-connect", Partitions: 1,
		Configs: map[string]string{"segment.bytes": "52428800", "message.timestamp.type": "CreateTime"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ct.GetTopic().GetConfigs()["segment.bytes"]; got != "52428800" {
		t.Errorf("Connect CreateTopic reports segment.bytes %q", got)
	}

	// CreatePartitions says what is wrong once.
	cp, err := adm.UpdatePartitions(ctx, 1, topic)
	if err != nil {
		t.Fatal(err)
	}
	msg := cp[topic].ErrMessage
	if cp[topic].Err != kerr.InvalidPartitions || strings.Count(msg, "invalid number of partitions") != 1 || strings.Contains(msg, "invalid argument") {
		t.Errorf("CreatePartitions to 1: %v %q, want INVALID_PARTITIONS saying its prefix once", cp[topic].Err, msg)
	}
}

func describeConfig(t *testing.T, adm *kadm.Client, topic, key string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("describe %s: no %s", topic, key)
	return kadm.Config{}
}

// DescribeConfigs of this broker answers the broker configs a console
// shows, true of the agent and read-only; another broker's id is
// INVALID_REQUEST, as Kafka answers.
func TestKadmDescribeBrokerConfigs(t *testing.T) {
	t.Parallel()
	addrs, agents := kafkaAgentsOf(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	brokers, err := adm.ListBrokers(t.Context()) // loads the client's metadata
	if err != nil || len(brokers) != 1 || brokers[0].NodeID != agents[0].NodeID() {
		t.Fatalf("brokers %+v, %v; want the agent's node %d", brokers, err, agents[0].NodeID())
	}
	id := agents[0].NodeID()
	rcs, err := adm.DescribeBrokerConfigs(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("describe broker %d: %+v", id, rcs)
	}
	got := map[string]kadm.Config{}
	for _, c := range rcs[0].Configs {
		got[c.Key] = c
	}
	want := map[string]string{
		"broker.id":                  strconv.Itoa(int(id)),
		"message.max.bytes":          "1048576",
		"log.retention.ms":           "604800000",
		"num.partitions":             "1",
		"default.replication.factor": "1",
		"auto.create.topics.enable":  "false",
		"compression.type":           "producer",
	}
	for k, v := range want {
		c, ok := got[k]
		if !ok || c.MaybeValue() != v || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
			t.Errorf("%s: %+v, want %s from the static broker config", k, c, v)
		}
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(id)+1000)
	req.Resources = append(req.Resources, res)
	// Sent to this broker: a client routes a broker resource to its broker.
	raw, err := cl.Broker(int(id)).Request(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := raw.(*kmsg.DescribeConfigsResponse)
	if !ok {
		t.Fatalf("answer %T", raw)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("describe another broker's configs: %+v, want INVALID_REQUEST", resp.Resources)
	}
}
