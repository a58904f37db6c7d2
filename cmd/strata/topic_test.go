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
	fails(t, "", []string{"topic", "alter", "orders", "--partitions", "2", "--addr", addr}, "can only rise")
	fails(t, "", []string{"topic", "alter", "orders", "--config", "colour=blue", "--addr", addr}, "colour")

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
