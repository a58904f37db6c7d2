package main

// strata topic create|list|describe|alter|delete|delete-records: AdminService.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const topicUsage = `Usage:
  strata topic create NAME [--partitions N] [--config key=value]...
  strata topic list [--output table|json]
  strata topic describe NAME [--output table|json]
  strata topic alter NAME [--config key=value]... [--delete-config key]... [--partitions N]
  strata topic delete NAME
  strata topic delete-records NAME --before-offset N [--partition N]...

Run 'strata topic <subcommand> --help' for a subcommand's flags.
`

const topicConfigHelp = `Topic configs use Kafka's key names:
  retention.ms        how long records are kept (default 604800000, 7 days; -1 forever)
  retention.bytes     bytes kept per partition (default -1, no limit)
  max.message.bytes   largest record accepted (default 1048576)
  cleanup.policy      delete (default), compact (the latest record per key), or compact,delete
  delete.retention.ms        compacted topics: how long tombstones stay (default 86400000, 1 day)
  min.compaction.lag.ms      compacted topics: records newer than this are not cleaned (default 0)
  min.cleanable.dirty.ratio  compacted topics: new share of the archive that triggers a cleaning (default 0.5)
  compression.type    producer (default), none, gzip, snappy, lz4 or zstd
`

func runTopic(ctx context.Context, c *cli, args []string) error {
	return runSubcommand(ctx, c, "strata topic", topicUsage, []command{
		{name: "create", run: runTopicCreate},
		{name: "list", run: runTopicList},
		{name: "describe", run: runTopicDescribe},
		{name: "alter", run: runTopicAlter},
		{name: "delete", run: runTopicDelete},
		{name: "delete-records", run: runTopicDeleteRecords},
	}, args)
}

// oneName checks that exactly one positional argument, the topic name, was given.
func oneName(cmd string, positional []string) (string, error) {
	return oneArg(cmd, "topic name", positional)
}

func noArgs(cmd string, positional []string) error {
	if len(positional) > 0 {
		return usagef(cmd, "unexpected argument %q", positional[0])
	}
	return nil
}

func runTopicCreate(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic create"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	partitions := fs.Int("partitions", 1, "number of partitions")
	configs := configMap{}
	fs.Var(configs, "config", "topic config `key=value`; repeat for several")
	positional, err := c.parseFlags(fs, `Usage: strata topic create NAME [--partitions N] [--config key=value]...

Creates a topic. Names follow Kafka's rules: letters, digits, '.', '_' and
'-', at most 249 characters.

`+topicConfigHelp+`
Example:
  strata topic create orders --partitions 6 --config retention.ms=86400000
`, args)
	if err != nil {
		return err
	}
	name, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	if *partitions < 1 || *partitions > math.MaxInt32 {
		return usagef(cmd, "--partitions %d: want a count of at least 1", *partitions)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	resp, err := cl.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{
		Name:       name,
		Partitions: int32(*partitions),
		Configs:    configs,
	}))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		return fmt.Errorf("topic %q already exists (`strata topic describe %s` shows it)", name, name)
	}
	if err != nil {
		return cl.explain(err, "")
	}
	t := resp.Msg.GetTopic()
	fmt.Fprintf(c.stdout, "Created topic %s with %d partition%s (id %s)\n", t.GetName(), t.GetPartitions(), plural(t.GetPartitions()), t.GetId())
	return nil
}

func runTopicList(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic list"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	output := fs.String("output", "table", "output format: table or json")
	positional, err := c.parseFlags(fs, `Usage: strata topic list [--output table|json]

Lists every topic: name, partitions and id. --output json prints
{"topics":[{"name","id","partitions","configs","created_at"}]}.
`, args)
	if err != nil {
		return err
	}
	if err := noArgs(cmd, positional); err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "table", "json"); err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	resp, err := cl.admin.ListTopics(ctx, connect.NewRequest(&stratav1.ListTopicsRequest{}))
	if err != nil {
		return cl.explain(err, "")
	}
	topics := resp.Msg.GetTopics()
	if *output == "json" {
		out := struct {
			Topics []topicJSON `json:"topics"`
		}{Topics: make([]topicJSON, len(topics))}
		for i, t := range topics {
			out.Topics[i] = toTopicJSON(t)
		}
		return writeJSON(c.stdout, out)
	}
	if len(topics) == 0 {
		fmt.Fprintln(c.stdout, "No topics. Create one with `strata topic create NAME`.")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPARTITIONS\tID")
	for _, t := range topics {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", t.GetName(), t.GetPartitions(), t.GetId())
	}
	return tw.Flush()
}

func runTopicDescribe(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic describe"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	output := fs.String("output", "table", "output format: table or json")
	positional, err := c.parseFlags(fs, `Usage: strata topic describe NAME [--output table|json]

Shows a topic's id, configs and, per partition, the log start offset (the
first offset still readable), the high watermark (the offset the next
record gets), the number of records and the bytes in the object store.
--output json prints {"topic":{...},"partitions":[{"partition",
"log_start_offset","high_watermark","records","bytes"}]}.
`, args)
	if err != nil {
		return err
	}
	name, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	if err := oneOf(cmd, "output", *output, "table", "json"); err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	resp, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
	if err != nil {
		return cl.explain(err, name)
	}
	t := resp.Msg.GetTopic()
	if *output == "json" {
		out := struct {
			Topic      topicJSON       `json:"topic"`
			Partitions []partitionJSON `json:"partitions"`
		}{Topic: toTopicJSON(t), Partitions: make([]partitionJSON, len(resp.Msg.GetPartitions()))}
		for i, p := range resp.Msg.GetPartitions() {
			out.Partitions[i] = partitionJSON{
				Partition:      p.GetPartition(),
				LogStartOffset: p.GetLogStartOffset(),
				HighWatermark:  p.GetHighWatermark(),
				Records:        p.GetRecords(),
				Bytes:          p.GetBytes(),
				ArchiveEnd:     p.GetArchiveEndOffset(),
				ArchivedBytes:  p.GetArchivedBytes(),
				HotBytes:       p.GetBytes() - p.GetArchivedBytes(),
			}
		}
		return writeJSON(c.stdout, out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Topic:\t%s\n", t.GetName())
	fmt.Fprintf(tw, "ID:\t%s\n", t.GetId())
	fmt.Fprintf(tw, "Partitions:\t%d\n", t.GetPartitions())
	if ts := t.GetCreatedAt(); ts != nil {
		fmt.Fprintf(tw, "Created:\t%s\n", ts.AsTime().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "Configs:")
	tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(t.GetConfigs())) {
		fmt.Fprintf(tw, "  %s\t%s\n", k, t.GetConfigs()[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tLOG START\tHIGH WATERMARK\tRECORDS\tBYTES\tARCHIVED\tARCHIVED BYTES\tHOT\tHOT BYTES\t")
	for _, p := range resp.Msg.GetPartitions() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t\n", p.GetPartition(), p.GetLogStartOffset(), p.GetHighWatermark(), p.GetRecords(), p.GetBytes(),
			offsetRange(p.GetLogStartOffset(), p.GetArchiveEndOffset()), p.GetArchivedBytes(),
			offsetRange(max(p.GetArchiveEndOffset(), p.GetLogStartOffset()), p.GetHighWatermark()), p.GetBytes()-p.GetArchivedBytes())
	}
	return tw.Flush()
}

// offsetRange shows offsets [from, to) as "first-last", or "-" when empty.
func offsetRange(from, to int64) string {
	if to <= from {
		return "-"
	}
	return fmt.Sprintf("%d-%d", from, to-1)
}

func runTopicAlter(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic alter"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	partitions := fs.Int("partitions", 0, "raise the partition count to `N` (partitions are never removed)")
	configs := configMap{}
	fs.Var(configs, "config", "set topic config `key=value`; repeat for several")
	var resets configKeys
	fs.Var(&resets, "delete-config", "reset topic config `key` to its default (Kafka's kafka-configs --delete-config); repeat for several")
	positional, err := c.parseFlags(fs, `Usage: strata topic alter NAME [--config key=value]... [--delete-config key]... [--partitions N]

Changes a topic's configs and/or raises its partition count. Keyed records
map to partitions by murmur2(key) mod partitions, so adding partitions
moves where new records with a given key go, as in Kafka. --delete-config
KEY puts a config back to its default.

`+topicConfigHelp+`
Example:
  strata topic alter orders --config retention.ms=3600000 --partitions 12
`, args)
	if err != nil {
		return err
	}
	name, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	partitionsGiven := false
	fs.Visit(func(f *flag.Flag) { partitionsGiven = partitionsGiven || f.Name == "partitions" })
	for _, k := range resets {
		if _, ok := configs[k]; ok {
			return usagef(cmd, "--config %s=... and --delete-config %s: set it or reset it, not both", k, k)
		}
		configs[k] = "" // the API's "back to the default"
	}
	if len(configs) == 0 && !partitionsGiven {
		return usagef(cmd, "nothing to change: give --config key=value, --delete-config key and/or --partitions N")
	}
	if partitionsGiven && *partitions < 1 || *partitions > math.MaxInt32 {
		return usagef(cmd, "--partitions %d: want a partition count above the current one", *partitions)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	var t *stratav1.Topic
	if len(configs) > 0 {
		resp, err := cl.admin.UpdateTopicConfig(ctx, connect.NewRequest(&stratav1.UpdateTopicConfigRequest{Name: name, Set: configs}))
		if err != nil {
			return cl.explain(err, name)
		}
		t = resp.Msg.GetTopic()
		for _, k := range slices.Sorted(maps.Keys(configs)) {
			if configs[k] == "" {
				fmt.Fprintf(c.stdout, "Reset %s to its default %s on topic %s\n", k, t.GetConfigs()[k], name)
				continue
			}
			fmt.Fprintf(c.stdout, "Set %s=%s on topic %s\n", k, t.GetConfigs()[k], name)
		}
	}
	if *partitions > 0 {
		resp, err := cl.admin.CreatePartitions(ctx, connect.NewRequest(&stratav1.CreatePartitionsRequest{Name: name, Total: int32(*partitions)}))
		if err != nil {
			return cl.explain(err, name)
		}
		t = resp.Msg.GetTopic()
		fmt.Fprintf(c.stdout, "Topic %s now has %d partition%s\n", name, t.GetPartitions(), plural(t.GetPartitions()))
	}
	return nil
}

func runTopicDelete(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic delete"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	positional, err := c.parseFlags(fs, `Usage: strata topic delete NAME

Deletes a topic and, soon after, its data. A topic created again under the
same name is a new topic (new id) and never sees the old records.
`, args)
	if err != nil {
		return err
	}
	name, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	if _, err := cl.admin.DeleteTopic(ctx, connect.NewRequest(&stratav1.DeleteTopicRequest{Name: name})); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return fmt.Errorf("topic %q does not exist (`strata topic list` shows the topics)", name)
		}
		return cl.explain(err, name)
	}
	fmt.Fprintf(c.stdout, "Deleted topic %s\n", name)
	return nil
}

func runTopicDeleteRecords(ctx context.Context, c *cli, args []string) error {
	const cmd = "strata topic delete-records"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var partitions partitionList
	fs.Var(&partitions, "partition", "partition `N`; repeat for several (default: all)")
	before := fs.Int64("before-offset", math.MinInt64, "delete the records below `OFFSET`, which becomes the log start; -1 means the high watermark (everything)")
	positional, err := c.parseFlags(fs, `Usage: strata topic delete-records NAME --before-offset N [--partition N]...

Deletes a partition's records below an offset, as Kafka's DeleteRecords
does: the offset becomes the log start, reads below it fail as out of range,
and the janitor deletes the data once nothing needs it. The log start never
moves back; an offset above the high watermark is an error.

Example:
  strata topic delete-records orders --partition 0 --before-offset 1000
`, args)
	if err != nil {
		return err
	}
	name, err := oneName(cmd, positional)
	if err != nil {
		return err
	}
	if *before == math.MinInt64 {
		return usagef(cmd, "--before-offset is required")
	}
	if *before < -1 {
		return usagef(cmd, "--before-offset must be -1 (the high watermark) or at least 0, got %d", *before)
	}
	cl, err := cf.dial(fs)
	if err != nil {
		return err
	}
	defer cl.close()
	if len(partitions) == 0 {
		resp, err := cl.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: name}))
		if err != nil {
			return cl.explain(err, name)
		}
		for p := range resp.Msg.GetTopic().GetPartitions() {
			partitions = append(partitions, p)
		}
	}
	req := &stratav1.DeleteRecordsRequest{Topic: name}
	for _, p := range partitions {
		req.Partitions = append(req.Partitions, &stratav1.DeleteRecordsPartition{Partition: p, BeforeOffset: *before})
	}
	resp, err := cl.admin.DeleteRecords(ctx, connect.NewRequest(req))
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() == connect.CodeNotFound {
			// The topic, or one of the partitions: the agent's message says which.
			return errors.New(ce.Message())
		}
		return cl.explain(err, name)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tLOG START\tHIGH WATERMARK\t")
	for _, p := range resp.Msg.GetPartitions() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t\n", p.GetPartition(), p.GetLogStartOffset(), p.GetHighWatermark())
	}
	return tw.Flush()
}

// topicJSON is a topic in --output json.
type topicJSON struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs"`
	CreatedAt  string            `json:"created_at,omitempty"`
}

func toTopicJSON(t *stratav1.Topic) topicJSON {
	out := topicJSON{Name: t.GetName(), ID: t.GetId(), Partitions: t.GetPartitions(), Configs: t.GetConfigs()}
	if out.Configs == nil {
		out.Configs = map[string]string{}
	}
	if ts := t.GetCreatedAt(); ts != nil {
		out.CreatedAt = ts.AsTime().Format(time.RFC3339Nano)
	}
	return out
}

// partitionJSON is one partition in `topic describe --output json`.
type partitionJSON struct {
	Partition      int32 `json:"partition"`
	LogStartOffset int64 `json:"log_start_offset"`
	HighWatermark  int64 `json:"high_watermark"`
	Records        int64 `json:"records"`
	Bytes          int64 `json:"bytes"`
	// ArchiveEnd ends the archived offsets [log_start_offset, archive_end_offset);
	// the rest up to high_watermark are hot.
	ArchiveEnd    int64 `json:"archive_end_offset"`
	ArchivedBytes int64 `json:"archived_bytes"`
	HotBytes      int64 `json:"hot_bytes"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func plural(n int32) string {
	if n == 1 {
		return ""
	}
	return "s"
}
