package integration

// IBM's sarama, a Kafka client nobody here wrote, against a real agent
// process on MinIO and redis-server: the idempotent producer in every codec
// sarama has, the partition consumer from the oldest offset and from a given
// one, Client.GetOffset by time, and ClusterAdmin's topic and config calls.
// Sarama picks each request's version from the Kafka version it is
// configured for (then clamps it to what ApiVersions advertised), so the
// whole run is repeated for 0.11 (the first with idempotence, headers and
// record batches v2), 2.1 (the first with zstd), sarama's default and the
// newest version it knows.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaVersions are the Kafka versions each test configures sarama for.
var saramaVersions = []sarama.KafkaVersion{sarama.V0_11_0_0, sarama.V2_1_0_0, sarama.DefaultVersion, sarama.MaxVersion}

// saramaConfig is a sarama configuration for version with generous
// timeouts: the machine running the tests is shared and loaded.
func saramaConfig(t *testing.T, version sarama.KafkaVersion) *sarama.Config {
	t.Helper()
	conf := sarama.NewConfig()
	conf.Version = version
	conf.ClientID = "strata-sarama-test"
	conf.Net.DialTimeout = 30 * time.Second
	conf.Net.ReadTimeout = 60 * time.Second
	conf.Net.WriteTimeout = 30 * time.Second
	conf.Metadata.Retry.Max = 10
	conf.Metadata.Retry.Backoff = 250 * time.Millisecond
	conf.Admin.Timeout = 30 * time.Second
	conf.Admin.Retry.Max = 10
	if err := conf.Validate(); err != nil {
		t.Fatalf("sarama config: %v", err)
	}
	return conf
}

// saramaRecord is one record the test produced, and where it was acked.
type saramaRecord struct {
	key, value string
	headers    map[string]string
	timestamp  time.Time
	partition  int32
	offset     int64
}

func TestSaramaProduceConsumeAdmin(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	// Two agents, two brokers: partition leaders are spread over both (by
	// hashing, so a topic's few partitions may all land on one), and
	// sarama's producers and consumers follow them.
	kafkaA, kafkaB := freeAddr(t), freeAddr(t)
	d.startAgent(t, "agent-a", "--kafka-listen", kafkaA)
	d.startAgent(t, "agent-b", "--kafka-listen", kafkaB)
	brokers := []string{kafkaA, kafkaB}

	for _, version := range saramaVersions {
		t.Run("kafka-"+version.String(), func(t *testing.T) {
			conf := saramaConfig(t, version)
			admin, err := sarama.NewClusterAdmin(brokers, conf)
			if err != nil {
				t.Fatalf("NewClusterAdmin: %v", err)
			}
			defer admin.Close()
			topic := "sarama-" + version.String() + "-" + randomHex(3)
			saramaAdmin(t, admin, version, topic)
			records := saramaProduce(t, brokers, version, topic)
			saramaConsume(t, brokers, version, topic, records)
			saramaOffsetsByTime(t, brokers, version, topic, records)

			if err := admin.DeleteTopic(topic); err != nil {
				t.Fatalf("DeleteTopic %s: %v", topic, err)
			}
			if !waitFor(30*time.Second, func() bool {
				topics, err := admin.ListTopics()
				_, listed := topics[topic]
				return err == nil && !listed
			}) {
				t.Fatalf("topic %s still listed 30s after DeleteTopic", topic)
			}
		})
	}
}

const saramaPartitions = 3

// saramaAdmin creates topic with three partitions and a retention.ms, and
// checks ClusterAdmin's view of it and of the cluster: validate-only
// creates nothing, a second create is TOPIC_ALREADY_EXISTS, partitions are
// added, configs are described and altered (whole, and incrementally where
// the version has it).
func saramaAdmin(t *testing.T, admin sarama.ClusterAdmin, version sarama.KafkaVersion, topic string) {
	t.Helper()
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: saramaPartitions - 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}
	// Sarama has CreatePartitions (KIP-195) from Kafka 1.0 on; before, the
	// topic is created with every partition.
	addPartitions := version.IsAtLeast(sarama.V1_0_0_0)
	if !addPartitions {
		detail.NumPartitions = saramaPartitions
	}

	if err := admin.CreateTopic(topic, detail, true); err != nil {
		t.Fatalf("CreateTopic %s (validate only): %v", topic, err)
	}
	if topics, err := admin.ListTopics(); err != nil {
		t.Fatalf("ListTopics: %v", err)
	} else if _, ok := topics[topic]; ok {
		t.Fatalf("a validate-only CreateTopic created %s", topic)
	}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	err := admin.CreateTopic(topic, detail, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Fatalf("second CreateTopic %s: %v, want %v", topic, err, sarama.ErrTopicAlreadyExists)
	}
	if addPartitions {
		if err := admin.CreatePartitions(topic, saramaPartitions, nil, false); err != nil {
			t.Fatalf("CreatePartitions %s to %d: %v", topic, saramaPartitions, err)
		}
	}

	var listed sarama.TopicDetail
	if !waitFor(30*time.Second, func() bool {
		topics, err := admin.ListTopics()
		if err != nil {
			return false
		}
		listed = topics[topic]
		return listed.NumPartitions == saramaPartitions
	}) {
		t.Fatalf("ListTopics shows %s with %d partitions, want %d", topic, listed.NumPartitions, saramaPartitions)
	}
	if v := listed.ConfigEntries["retention.ms"]; v == nil || *v != retention {
		t.Fatalf("ListTopics: %s has retention.ms %v, want %s", topic, v, retention)
	}
	metas, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(metas) != 1 {
		t.Fatalf("DescribeTopics %s: %v, %d topics", topic, err, len(metas))
	}
	if metas[0].Err != sarama.ErrNoError || len(metas[0].Partitions) != saramaPartitions {
		t.Fatalf("DescribeTopics %s: error %v, %d partitions, want none and %d", topic, metas[0].Err, len(metas[0].Partitions), saramaPartitions)
	}
	var brokers []*sarama.Broker
	var controller int32
	if !waitFor(30*time.Second, func() bool {
		brokers, controller, err = admin.DescribeCluster()
		return err == nil && len(brokers) == 2
	}) {
		t.Fatalf("DescribeCluster: %d brokers, %v; want both agents", len(brokers), err)
	}
	if !slices.ContainsFunc(brokers, func(b *sarama.Broker) bool { return b.ID() == controller }) {
		t.Fatalf("DescribeCluster: controller %d is none of the brokers", controller)
	}
	ids := map[int32]bool{}
	for _, b := range brokers {
		ids[b.ID()] = true
	}
	for _, p := range metas[0].Partitions {
		if !ids[p.Leader] {
			t.Fatalf("DescribeTopics %s: partition %d is led by %d, none of the brokers %v", topic, p.ID, p.Leader, ids)
		}
	}

	// Synonyms from Kafka 1.1 on (DescribeConfigs v1), types and
	// documentation from 2.6 (v3): sarama asks for them only then.
	opts := sarama.DescribeConfigsOptions{
		IncludeSynonyms:      version.IsAtLeast(sarama.V1_1_0_0),
		IncludeDocumentation: version.IsAtLeast(sarama.V2_6_0_0),
	}
	describe := func(names ...string) map[string]sarama.ConfigEntry {
		t.Helper()
		results, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: names}}, opts)
		if err != nil || len(results) != 1 {
			t.Fatalf("DescribeConfigs %s %v: %d results, %v", topic, names, len(results), err)
		}
		if r := results[0]; r.ErrorCode != sarama.ErrNoError {
			t.Fatalf("DescribeConfigs %s %v: %v %s", topic, names, r.ErrorCode, r.ErrorMsg)
		}
		out := map[string]sarama.ConfigEntry{}
		for _, e := range results[0].Configs {
			if opts.IncludeSynonyms && (len(e.Synonyms) == 0 || e.Synonyms[0].ConfigName != e.Name) {
				t.Fatalf("DescribeConfigs %s: %s has synonyms %+v, want itself first", topic, e.Name, e.Synonyms)
			}
			if opts.IncludeDocumentation && (e.Type == sarama.UnknownConfigType || e.Documentation == nil || *e.Documentation == "") {
				t.Fatalf("DescribeConfigs %s: %s has type %v and documentation %v, want both", topic, e.Name, e.Type, e.Documentation)
			}
			out[e.Name] = e
		}
		return out
	}
	configs := describe()
	if e, ok := configs["retention.ms"]; !ok || e.Value != retention || !saramaSetOnTopic(e) {
		t.Fatalf("DescribeConfig %s: retention.ms is %+v, want %s set on the topic", topic, e, retention)
	}
	if _, ok := configs["max.message.bytes"]; !ok {
		t.Fatalf("DescribeConfig %s with no names lists %v, want every config, max.message.bytes among them", topic, slices.Sorted(maps.Keys(configs)))
	}
	if got := describe("retention.ms"); len(got) != 1 {
		t.Fatalf("DescribeConfig %s retention.ms lists %v, want that one", topic, slices.Sorted(maps.Keys(got)))
	}

	// AlterConfigs replaces the topic's configs: retention.ms, named
	// before, goes back to its default.
	maxBytes := "2097152"
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": &maxBytes}, false); err != nil {
		t.Fatalf("AlterConfig %s: %v", topic, err)
	}
	configs = describe("max.message.bytes", "retention.ms")
	if e := configs["max.message.bytes"]; e.Value != maxBytes || !saramaSetOnTopic(e) {
		t.Fatalf("after AlterConfig, max.message.bytes is %+v, want %s set on the topic", e, maxBytes)
	}
	if e := configs["retention.ms"]; e.Value == retention || saramaSetOnTopic(e) {
		t.Fatalf("after AlterConfig without it, retention.ms is %+v, want its default", e)
	}
	// Sarama sends IncrementalAlterConfigs only when configured for Kafka
	// 2.3 or later (KIP-339), and refuses it itself below.
	if version.IsAtLeast(sarama.V2_3_0_0) {
		if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &retention},
		}, false); err != nil {
			t.Fatalf("IncrementalAlterConfig %s: %v", topic, err)
		}
		configs = describe("max.message.bytes", "retention.ms")
		if configs["retention.ms"].Value != retention || configs["max.message.bytes"].Value != maxBytes {
			t.Fatalf("after IncrementalAlterConfig: %+v, want retention.ms %s and max.message.bytes %s kept", configs, retention, maxBytes)
		}
	}
	bad := "not-a-number"
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &bad}, false); err == nil {
		t.Fatalf("AlterConfig retention.ms=%q succeeded, want an error", bad)
	}
	if err := admin.DeleteTopic("sarama-never-created-" + randomHex(3)); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("DeleteTopic of a topic that does not exist: %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
	}
}

// saramaSetOnTopic says the config was set on the topic: its source (v1+)
// is the topic, or (v0, which has no source) it is not a default.
func saramaSetOnTopic(e sarama.ConfigEntry) bool {
	if e.Source == sarama.SourceUnknown {
		return !e.Default
	}
	return e.Source == sarama.SourceTopic
}

// saramaCodecs are every codec sarama produces with (zstd only for Kafka 2.1
// and later).
var saramaCodecs = []sarama.CompressionCodec{
	sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
	sarama.CompressionLZ4, sarama.CompressionZSTD,
}

// saramaProduce produces keyed records with headers and timestamps to topic
// with one idempotent producer per codec (acks=all, one request in flight,
// as sarama requires for idempotence), and returns them with the partitions
// and offsets they were acked at.
func saramaProduce(t *testing.T, brokers []string, version sarama.KafkaVersion, topic string) []saramaRecord {
	t.Helper()
	const perCodec = 40
	// Timestamps are distinct milliseconds, in the past, increasing with
	// the produce order: offsets by time can then be checked exactly.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var records []saramaRecord
	for ci, codec := range saramaCodecs {
		if codec == sarama.CompressionZSTD && !version.IsAtLeast(sarama.V2_1_0_0) {
			continue // KIP-110: zstd needs Produce v7, Kafka 2.1
		}
		conf := saramaConfig(t, version)
		conf.Producer.Idempotent = true
		conf.Net.MaxOpenRequests = 1
		conf.Producer.RequiredAcks = sarama.WaitForAll
		conf.Producer.Retry.Max = 10
		conf.Producer.Retry.Backoff = 200 * time.Millisecond
		conf.Producer.Return.Successes = true
		conf.Producer.Compression = codec
		conf.Producer.Flush.Messages = 10 // several records per batch
		conf.Producer.Flush.Frequency = 5 * time.Millisecond
		prod, err := sarama.NewAsyncProducer(brokers, conf)
		if err != nil {
			t.Fatalf("NewAsyncProducer (%s): %v", codec, err)
		}
		var batch []saramaRecord
		for i := range perCodec {
			n := ci*perCodec + i
			r := saramaRecord{
				key:       fmt.Sprintf("key-%d", n%7),
				value:     fmt.Sprintf("%s-value-%04d", codec, n),
				headers:   map[string]string{"codec": codec.String(), "n": fmt.Sprint(n)},
				timestamp: base.Add(time.Duration(n) * time.Millisecond),
			}
			batch = append(batch, r)
			msg := &sarama.ProducerMessage{
				Topic:     topic,
				Key:       sarama.StringEncoder(r.key),
				Value:     sarama.StringEncoder(r.value),
				Timestamp: r.timestamp,
				Metadata:  len(batch) - 1,
			}
			for _, k := range slices.Sorted(maps.Keys(r.headers)) {
				msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(r.headers[k])})
			}
			prod.Input() <- msg
		}
		for range perCodec {
			select {
			case m := <-prod.Successes():
				i := m.Metadata.(int)
				batch[i].partition, batch[i].offset = m.Partition, m.Offset
			case perr := <-prod.Errors():
				prod.Close()
				t.Fatalf("produce %s (%s): %v", perr.Msg.Value, codec, perr.Err)
			case <-time.After(2 * time.Minute):
				prod.Close()
				t.Fatalf("%s: not every record acked within 2 minutes", codec)
			}
		}
		if err := prod.Close(); err != nil {
			t.Fatalf("close producer (%s): %v", codec, err)
		}
		records = append(records, batch...)
	}
	return records
}

// saramaConsume reads every partition with sarama's partition consumer from
// the oldest offset and checks that the log is exactly what was produced,
// once each at the acked offsets (dense from 0), keys, values, headers and
// timestamps included; then it starts a read_committed consumer at a middle
// offset.
func saramaConsume(t *testing.T, brokers []string, version sarama.KafkaVersion, topic string, records []saramaRecord) {
	t.Helper()
	conf := saramaConfig(t, version)
	conf.Consumer.Fetch.Default = 1024 // several fetches per partition
	conf.Consumer.MaxWaitTime = 200 * time.Millisecond
	consumer, err := sarama.NewConsumer(brokers, conf)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	conf = saramaConfig(t, version)
	conf.Consumer.IsolationLevel = sarama.ReadCommitted
	committed, err := sarama.NewConsumer(brokers, conf)
	if err != nil {
		t.Fatalf("NewConsumer (read_committed): %v", err)
	}
	defer committed.Close()

	byPartition := map[int32][]saramaRecord{}
	for _, r := range records {
		byPartition[r.partition] = append(byPartition[r.partition], r)
	}
	for p := range int32(saramaPartitions) {
		want := byPartition[p]
		slices.SortFunc(want, func(a, b saramaRecord) int { return int(a.offset - b.offset) })
		for i, r := range want {
			if r.offset != int64(i) {
				t.Fatalf("partition %d: the %dth record was acked at offset %d: acked offsets must be dense from 0, once each", p, i, r.offset)
			}
		}
		got := saramaRead(t, consumer, topic, p, sarama.OffsetOldest, len(want), int64(len(want)))
		for i, m := range got {
			w := want[i]
			if m.Offset != w.offset || string(m.Key) != w.key || string(m.Value) != w.value {
				t.Fatalf("partition %d: read offset %d key %q value %q, want offset %d key %q value %q",
					p, m.Offset, m.Key, m.Value, w.offset, w.key, w.value)
			}
			if !m.Timestamp.Equal(w.timestamp) {
				t.Fatalf("partition %d offset %d: timestamp %v, want %v", p, m.Offset, m.Timestamp, w.timestamp)
			}
			headers := map[string]string{}
			for _, h := range m.Headers {
				headers[string(h.Key)] = string(h.Value)
			}
			if !maps.Equal(headers, w.headers) {
				t.Fatalf("partition %d offset %d: headers %v, want %v", p, m.Offset, headers, w.headers)
			}
		}
		if len(want) > 2 {
			// From a middle offset, read_committed: with no transactions
			// the last stable offset is the high watermark.
			from := int64(len(want) / 2)
			got := saramaRead(t, committed, topic, p, from, len(want)-int(from), int64(len(want)))
			if got[0].Offset != from || string(got[0].Value) != want[from].value {
				t.Fatalf("partition %d from offset %d: first read offset %d %q, want %d %q", p, from, got[0].Offset, got[0].Value, from, want[from].value)
			}
		}
	}
}

// saramaRead consumes n records of topic/p from offset, then checks that
// nothing more comes within a few fetches and that the consumer saw the
// high watermark hwm.
func saramaRead(t *testing.T, consumer sarama.Consumer, topic string, p int32, offset int64, n int, hwm int64) []*sarama.ConsumerMessage {
	t.Helper()
	pc, err := consumer.ConsumePartition(topic, p, offset)
	if err != nil {
		t.Fatalf("ConsumePartition %s/%d at %d: %v", topic, p, offset, err)
	}
	defer pc.Close()
	var got []*sarama.ConsumerMessage
	timeout := time.After(2 * time.Minute)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case cerr := <-pc.Errors():
			t.Fatalf("consume %s/%d: %v", topic, p, cerr)
		case <-timeout:
			t.Fatalf("consume %s/%d from %d: %d of %d records within 2 minutes", topic, p, offset, len(got), n)
		}
	}
	select {
	case m := <-pc.Messages():
		t.Fatalf("consume %s/%d: an extra record at offset %d (%q) after the %d produced", topic, p, m.Offset, m.Value, n)
	case <-time.After(time.Second):
	}
	if got := pc.HighWaterMarkOffset(); got != hwm {
		t.Fatalf("consume %s/%d: high watermark %d, want %d", topic, p, got, hwm)
	}
	return got
}

// saramaOffsetsByTime checks Client.GetOffset (ListOffsets) by time and at
// the ends of each partition against the produced timestamps.
func saramaOffsetsByTime(t *testing.T, brokers []string, version sarama.KafkaVersion, topic string, records []saramaRecord) {
	t.Helper()
	client, err := sarama.NewClient(brokers, saramaConfig(t, version))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	byPartition := map[int32][]saramaRecord{}
	for _, r := range records {
		byPartition[r.partition] = append(byPartition[r.partition], r)
	}
	for p, rs := range byPartition {
		slices.SortFunc(rs, func(a, b saramaRecord) int { return int(a.offset - b.offset) })
		get := func(at int64) int64 {
			t.Helper()
			off, err := client.GetOffset(topic, p, at)
			if err != nil {
				t.Fatalf("GetOffset %s/%d at %d: %v", topic, p, at, err)
			}
			return off
		}
		if got := get(sarama.OffsetOldest); got != 0 {
			t.Fatalf("partition %d: oldest offset %d, want 0", p, got)
		}
		if got, want := get(sarama.OffsetNewest), int64(len(rs)); got != want {
			t.Fatalf("partition %d: newest offset %d, want %d", p, got, want)
		}
		// The first offset at or after each record's timestamp is its own
		// (timestamps increase with offsets); a millisecond earlier than
		// the first record is offset 0; past every record is -1.
		for _, r := range []saramaRecord{rs[0], rs[len(rs)/2], rs[len(rs)-1]} {
			if got := get(r.timestamp.UnixMilli()); got != r.offset {
				t.Fatalf("partition %d: offset for time %d is %d, want %d (the record of that time)", p, r.timestamp.UnixMilli(), got, r.offset)
			}
		}
		if got := get(rs[0].timestamp.UnixMilli() - 1); got != 0 {
			t.Fatalf("partition %d: offset for a time before every record is %d, want 0", p, got)
		}
		if got := get(rs[len(rs)-1].timestamp.UnixMilli() + 1); got != -1 {
			t.Fatalf("partition %d: offset for a time after every record is %d, want -1", p, got)
		}
	}
}

// TestSaramaAcks: sarama's SyncProducer without idempotence, at acks=0
// (NoResponse: the agent answers nothing, and sarama sends the next request
// without waiting) and acks=1, five requests in flight. Every record is
// stored once, in the order sent, at dense offsets; then ClusterAdmin's
// DeleteRecords moves the log start.
func TestSaramaAcks(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	kafkaAddr := freeAddr(t)
	d.startAgent(t, "agent", "--kafka-listen", kafkaAddr)
	brokers := []string{kafkaAddr}
	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig(t, sarama.DefaultVersion))
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	defer admin.Close()

	for _, acks := range []sarama.RequiredAcks{sarama.NoResponse, sarama.WaitForLocal} {
		t.Run(fmt.Sprintf("acks=%d", acks), func(t *testing.T) {
			topic := fmt.Sprintf("sarama-acks%d-%s", acks, randomHex(3))
			if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
				t.Fatalf("CreateTopic %s: %v", topic, err)
			}
			conf := saramaConfig(t, sarama.DefaultVersion)
			conf.Producer.RequiredAcks = acks
			conf.Producer.Return.Successes = true
			conf.Producer.Flush.Messages = 5
			conf.Producer.Flush.Frequency = time.Millisecond
			prod, err := sarama.NewSyncProducer(brokers, conf)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			const n = 50
			var msgs []*sarama.ProducerMessage
			for i := range n {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("v%03d", i))})
			}
			if err := prod.SendMessages(msgs); err != nil {
				prod.Close()
				t.Fatalf("SendMessages: %v", err)
			}
			if err := prod.Close(); err != nil {
				t.Fatalf("close producer: %v", err)
			}
			if acks == sarama.WaitForLocal {
				for i, m := range msgs {
					if m.Offset != int64(i) {
						t.Fatalf("record %d acked at offset %d, want %d", i, m.Offset, i)
					}
				}
			}
			// acks=0 has no answer to wait for: wait for the log instead.
			client, err := sarama.NewClient(brokers, saramaConfig(t, sarama.DefaultVersion))
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			defer client.Close()
			var hwm int64
			if !waitFor(60*time.Second, func() bool {
				hwm, err = client.GetOffset(topic, 0, sarama.OffsetNewest)
				return err == nil && hwm >= n
			}) {
				t.Fatalf("high watermark %d (%v) 60s after producing %d records", hwm, err, n)
			}
			consumer, err := sarama.NewConsumer(brokers, saramaConfig(t, sarama.DefaultVersion))
			if err != nil {
				t.Fatalf("NewConsumer: %v", err)
			}
			defer consumer.Close()
			for i, m := range saramaRead(t, consumer, topic, 0, sarama.OffsetOldest, n, n) {
				if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%03d", i) {
					t.Fatalf("offset %d holds %q, want v%03d at offset %d", m.Offset, m.Value, i, i)
				}
			}

			// DeleteRecords (KIP-107) moves the log start: the oldest
			// offset is then the one given, and reads start there.
			const start = 20
			if err := admin.DeleteRecords(topic, map[int32]int64{0: start}); err != nil {
				t.Fatalf("DeleteRecords %s/0 below %d: %v", topic, start, err)
			}
			if err := client.RefreshMetadata(topic); err != nil {
				t.Fatalf("RefreshMetadata: %v", err)
			}
			if got, err := client.GetOffset(topic, 0, sarama.OffsetOldest); err != nil || got != start {
				t.Fatalf("oldest offset after DeleteRecords: %d, %v; want %d", got, err, start)
			}
			if m := saramaRead(t, consumer, topic, 0, sarama.OffsetOldest, n-start, n); m[0].Offset != start {
				t.Fatalf("after DeleteRecords, the oldest record read is at %d, want %d", m[0].Offset, start)
			}
		})
	}
}
