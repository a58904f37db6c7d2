package main

import (
	"encoding/json"
	"strings"
	"testing"
)

type describeOutput struct {
	Topic      topicJSON       `json:"topic"`
	Partitions []partitionJSON `json:"partitions"`
}

func describe(t *testing.T, addr, name string) describeOutput {
	t.Helper()
	var d describeOutput
	if err := json.Unmarshal([]byte(ok(t, "", "topic", "describe", name, "--output", "json", "--addr", addr)), &d); err != nil {
		t.Fatalf("describe --output json: %v", err)
	}
	return d
}

func TestTopicLifecycle(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)

	out := ok(t, "", "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000", "--config", "max.message.bytes=2048", "--addr", addr)
	if !strings.Contains(out, "Created topic orders with 3 partitions") {
		t.Errorf("create printed %q", out)
	}
	// Flags may also come before the name.
	ok(t, "", "topic", "create", "--addr", addr, "audit")
	fails(t, "", []string{"topic", "create", "orders", "--addr", addr}, `topic "orders" already exists`)
	fails(t, "", []string{"topic", "create", "bad name", "--addr", addr}, "bad name")
	fails(t, "", []string{"topic", "create", "x", "--config", "retention.ms=0", "--addr", addr}, "retention.ms")

	// list: table and JSON.
	table := ok(t, "", "topic", "list", "--addr", addr)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "PARTITIONS") || !strings.Contains(lines[0], "ID") {
		t.Fatalf("topic list table:\n%s", table)
	}
	if f := strings.Fields(lines[1]); len(f) != 3 || f[0] != "audit" || f[1] != "1" {
		t.Errorf("topic list row %q, want audit 1 <id>", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 3 || f[0] != "orders" || f[1] != "3" {
		t.Errorf("topic list row %q, want orders 3 <id>", lines[2])
	}
	var list struct {
		Topics []topicJSON `json:"topics"`
	}
	if err := json.Unmarshal([]byte(ok(t, "", "topic", "list", "--output", "json", "--addr", addr)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Topics) != 2 || list.Topics[1].Name != "orders" || list.Topics[1].Partitions != 3 || list.Topics[1].ID == "" || list.Topics[1].Configs["retention.ms"] != "3600000" {
		t.Errorf("topic list --output json: %+v", list.Topics)
	}
	if f := strings.Fields(lines[2]); f[2] != list.Topics[1].ID {
		t.Errorf("table id %s, json id %s", f[2], list.Topics[1].ID)
	}

	// describe: table and JSON, with data in one partition.
	ok(t, "a\nb\n", "produce", "orders", "--partition", "1", "--addr", addr)
	text := ok(t, "", "topic", "describe", "orders", "--addr", addr)
	for _, want := range []string{"Topic:", "orders", "Partitions:", "retention.ms", "3600000", "max.message.bytes", "2048", "LOG START", "HIGH WATERMARK", "RECORDS", "BYTES"} {
		if !strings.Contains(text, want) {
			t.Errorf("topic describe lacks %q:\n%s", want, text)
		}
	}
	d := describe(t, addr, "orders")
	if d.Topic.Name != "orders" || d.Topic.Partitions != 3 || len(d.Partitions) != 3 {
		t.Fatalf("describe: %+v", d)
	}
	if p := d.Partitions[1]; p.HighWatermark != 2 || p.Records != 2 || p.LogStartOffset != 0 || p.Bytes <= 0 {
		t.Errorf("partition 1 after two records: %+v", p)
	}
	if p := d.Partitions[0]; p.HighWatermark != 0 || p.Records != 0 {
		t.Errorf("partition 0 got records: %+v", p)
	}

	// alter: configs and partitions in one go.
	out = ok(t, "", "topic", "alter", "orders", "--config", "retention.ms=7200000", "--partitions", "5", "--addr", addr)
	if !strings.Contains(out, "retention.ms=7200000") || !strings.Contains(out, "now has 5 partitions") {
		t.Errorf("alter printed %q", out)
	}
	d = describe(t, addr, "orders")
	if d.Topic.Partitions != 5 || len(d.Partitions) != 5 || d.Topic.Configs["retention.ms"] != "7200000" || d.Topic.Configs["max.message.bytes"] != "2048" {
		t.Errorf("after alter: %+v", d)
	}
	if r := fails(t, "", []string{"topic", "alter", "orders", "--partitions", "2", "--addr", addr}, "can only rise"); strings.Count(r.stderr, "invalid number of partitions") > 1 || strings.Contains(r.stderr, "invalid argument") {
		t.Errorf("shrinking says its prefix more than once: %q", r.stderr)
	}
	// Out of range names the range, not the bits it would take.
	fails(t, "", []string{"topic", "alter", "orders", "--config", "max.message.bytes=-1", "--addr", addr}, "max.message.bytes must be between 1 and the broker's cap")
	// Kafka's standard configs without effect here are kept and shown.
	ok(t, "", "topic", "alter", "orders", "--config", "segment.ms=600000", "--config", "message.timestamp.type=CreateTime", "--addr", addr)
	if d := describe(t, addr, "orders"); d.Topic.Configs["segment.ms"] != "600000" || d.Topic.Configs["min.insync.replicas"] != "1" {
		t.Errorf("segment.ms after alter: %q, min.insync.replicas %q", d.Topic.Configs["segment.ms"], d.Topic.Configs["min.insync.replicas"])
	}
	fails(t, "", []string{"topic", "alter", "orders", "--config", "message.timestamp.type=LogAppendTime", "--addr", addr}, "LogAppendTime is not supported")
	fails(t, "", []string{"topic", "alter", "orders", "--config", "colour=blue", "--addr", addr}, "colour")
	// An empty value is a mistake more often than a reset: refused, naming
	// the flag that resets.
	fails(t, "", []string{"topic", "alter", "orders", "--config", "retention.ms=", "--addr", addr}, "empty value", "--delete-config retention.ms")
	if d := describe(t, addr, "orders"); d.Topic.Configs["retention.ms"] != "7200000" {
		t.Errorf("retention.ms after a refused empty value: %q", d.Topic.Configs["retention.ms"])
	}
	out = ok(t, "", "topic", "alter", "orders", "--delete-config", "retention.ms", "--addr", addr)
	if !strings.Contains(out, "Reset retention.ms to its default 604800000 on topic orders") {
		t.Errorf("alter --delete-config printed %q", out)
	}
	if d := describe(t, addr, "orders"); d.Topic.Configs["retention.ms"] != "604800000" {
		t.Errorf("retention.ms after --delete-config: %q", d.Topic.Configs["retention.ms"])
	}
	fails(t, "", []string{"topic", "alter", "orders", "--config", "retention.ms=1", "--delete-config", "retention.ms", "--addr", addr}, "not both")

	// delete.
	if out := ok(t, "", "topic", "delete", "orders", "--addr", addr); !strings.Contains(out, "Deleted topic orders") {
		t.Errorf("delete printed %q", out)
	}
	if table := ok(t, "", "topic", "list", "--addr", addr); strings.Contains(table, "orders") {
		t.Errorf("deleted topic still listed:\n%s", table)
	}
	fails(t, "", []string{"topic", "describe", "orders", "--addr", addr}, "strata topic create orders")
	ok(t, "", "topic", "delete", "audit", "--addr", addr)
	if out := ok(t, "", "topic", "list", "--addr", addr); !strings.Contains(out, "No topics") {
		t.Errorf("empty list printed %q", out)
	}
}

// issue 12: names that are one in Kafka's metric names ('.' and '_' the
// same) cannot both be topics.
func TestTopicCreateMetricNameCollision(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "col.a", "--addr", addr)
	fails(t, "", []string{"topic", "create", "col_a", "--addr", addr}, `collides with existing topic "col.a"`)
}

func TestTopicDeleteRecords(t *testing.T) {
	t.Parallel()
	addr := startAgent(t)
	ok(t, "", "topic", "create", "logs", "--partitions", "2", "--addr", addr)
	ok(t, "a\nb\nc\n", "produce", "logs", "--partition", "0", "--addr", addr)
	ok(t, "x\n", "produce", "logs", "--partition", "1", "--addr", addr)

	out := ok(t, "", "topic", "delete-records", "logs", "--partition", "0", "--before-offset", "2", "--addr", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "LOG START") || strings.Join(strings.Fields(lines[1]), " ") != "0 2 3" {
		t.Fatalf("delete-records printed:\n%s", out)
	}
	if p := describe(t, addr, "logs").Partitions; p[0].LogStartOffset != 2 || p[0].Records != 1 || p[1].LogStartOffset != 0 {
		t.Fatalf("after delete-records: %+v", p)
	}
	// The log start never moves back.
	ok(t, "", "topic", "delete-records", "logs", "--partition", "0", "--before-offset", "1", "--addr", addr)
	if p := describe(t, addr, "logs").Partitions; p[0].LogStartOffset != 2 {
		t.Fatalf("log start moved back: %+v", p[0])
	}
	// No --partition: every partition; -1 is the high watermark.
	out = ok(t, "", "topic", "delete-records", "logs", "--before-offset", "-1", "--addr", addr)
	if !strings.Contains(out, "3") || len(strings.Split(strings.TrimSpace(out), "\n")) != 3 {
		t.Fatalf("delete-records of all partitions printed:\n%s", out)
	}
	if p := describe(t, addr, "logs").Partitions; p[0].LogStartOffset != 3 || p[1].LogStartOffset != 1 || p[0].Records != 0 {
		t.Fatalf("after delete-records -1: %+v", p)
	}

	fails(t, "", []string{"topic", "delete-records", "logs", "--addr", addr}, "--before-offset is required")
	fails(t, "", []string{"topic", "delete-records", "logs", "--before-offset", "-2", "--addr", addr}, "--before-offset must be -1")
	fails(t, "", []string{"topic", "delete-records", "logs", "--partition", "5", "--before-offset", "0", "--addr", addr}, "partitions 0 to 1")
	// Past the high watermark: the error names the topic, not its id.
	r := fails(t, "", []string{"topic", "delete-records", "logs", "--partition", "0", "--before-offset", "99", "--addr", addr}, `topic "logs" partition 0`, "high watermark")
	if id := describe(t, addr, "logs").Topic.ID; strings.Contains(r.stderr, id) {
		t.Errorf("delete-records error names the topic id %s: %s", id, r.stderr)
	}
	fails(t, "", []string{"topic", "delete-records", "logs", "--partition", "0", "--before-offset", "10", "--addr", addr}, "high watermark 3")
	fails(t, "", []string{"topic", "delete-records", "nope", "--before-offset", "0", "--addr", addr}, `topic "nope" does not exist`)
}
