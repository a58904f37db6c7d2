package agentcore

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/agent"
)

// BenchmarkGroupHeartbeatIndexCommands measures what a settled group's
// heartbeats cost the index (issue 13): 100 franz-go members in ONE group
// over a 100-partition topic (one partition each), through the classic
// protocol (Heartbeat every 3s, kgo's and Kafka's default
// heartbeat.interval.ms) and the consumer protocol (KIP-848
// ConsumerGroupHeartbeat, at the interval the agents hand out: their
// default group-heartbeat-interval, 5s). The members are real kgo clients
// with their topic paused (PauseFetchTopics), so no fetches run and no
// records flow: what reaches the agents in the window is heartbeats. Two
// agents in process on redis-server (scripts/test-services.sh; skipped
// without it), the members seeded on both, the agents' janitor and
// compactor off (their sweeps over the partitions are not heartbeats).
//
// Each iteration: redis-server's commands over a quiet window with the
// agents alone (their own background work: registration, leases, ...),
// then the 100 members join and settle, then a measured window of
// heartbeats in which no partition moves (a move fails the benchmark: the
// group was not settled). Commands are redis-server's INFO deltas
// (total_commands_processed, which counts the commands a Lua script runs
// as well as the EVALSHA that ran it), less the INFO calls themselves,
// less the agents' quiet rate. Heartbeats are counted by the members
// (answered Heartbeat / ConsumerGroupHeartbeat requests, a kgo hook).
// MONITOR splits the window's commands into those clients sent (round
// trips, pipelined ones each counted) and those scripts ran, and counts
// those on the group's keys ({g:<group>}, a script's commands included),
// which only the members' heartbeats touch; the breakdown by command is
// logged with -v.
//
//	scripts/test-services.sh go test -run '^$' -bench GroupHeartbeatIndexCommands -benchtime 1x -v ./kafka/agentcore/
func BenchmarkGroupHeartbeatIndexCommands(b *testing.B) {
	for _, p := range []struct {
		name     string
		key      int16 // the heartbeat's API key
		interval time.Duration
		opts     []kgo.Opt
	}{
		{"protocol=classic", kmsg.Heartbeat.Int16(), 3 * time.Second, []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())}},
		{"protocol=consumer", kmsg.ConsumerGroupHeartbeat.Int16(), 5 * time.Second, []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}},
	} {
		b.Run(p.name, func(b *testing.B) {
			if os.Getenv("STRATA_TEST_REDIS_ADDR") == "" {
				b.Skip("needs redis-server: run under scripts/test-services.sh")
			}
			benchHeartbeatCommands(b, p.key, p.interval, p.opts)
		})
	}
}

// requestCounts counts a client's answered requests by API key: a kgo
// HookBrokerE2E.
type requestCounts struct{ n [128]atomic.Int64 }

func (c *requestCounts) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if e2e.Err() == nil && key >= 0 && int(key) < len(c.n) {
		c.n[key].Add(1)
	}
}

func (c *requestCounts) snapshot() map[int16]int64 {
	m := map[int16]int64{}
	for k := range c.n {
		if v := c.n[k].Load(); v > 0 {
			m[int16(k)] = v
		}
	}
	return m
}

func benchHeartbeatCommands(b *testing.B, hbKey int16, interval time.Duration, opts []kgo.Opt) {
	const members, partitions = 100, 100
	const quiet, window = 15 * time.Second, 30 * time.Second
	// The janitor and the compactor sweep every partition each minute: off,
	// so that the window holds heartbeats, not a sweep of 100 partitions.
	c := benchAgents(b, 2, backendDefault, func(cfg *agent.Config) { cfg.JanitorInterval, cfg.CompactionInterval = 0, 0 })
	ctx := b.Context()
	rdb := redis.NewClient(&redis.Options{Addr: c.redisAddr})
	defer rdb.Close()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs[0]))
	if err != nil {
		b.Fatal(err)
	}
	defer admCl.Close()
	var (
		hbs, cmds, quietRate, clientCmds, scriptCmds, groupCmds, other float64
		byCommand                                                      = map[string]int64{}
	)
	for i := 0; b.Loop(); i++ {
		topic, group := fmt.Sprintf("bench-hb-%d", i), fmt.Sprintf("bench-hb-group-%d", i)
		if _, err := kadm.NewClient(admCl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
			b.Fatal(err)
		}
		// The agents alone.
		before := redisCommands(b, rdb)
		time.Sleep(quiet)
		rate := float64(redisCommands(b, rdb)-before) / quiet.Seconds()

		var (
			mu      sync.Mutex
			owner   = map[int32]string{}
			changes []string // partitions moving, for the log
		)
		counts := &requestCounts{}
		var clients []*kgo.Client
		for m := range members {
			name := fmt.Sprintf("m%03d", m)
			cl, err := kgo.NewClient(append([]kgo.Opt{
				kgo.SeedBrokers(c.addrs[m%2]),
				kgo.ConsumerGroup(group),
				kgo.ConsumeTopics(topic),
				kgo.WithHooks(counts),
				kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
					mu.Lock()
					defer mu.Unlock()
					if len(a[topic]) > 0 {
						changes = append(changes, fmt.Sprintf("%v %s assigned %v", time.Now().Format("15:04:05.000"), name, a[topic]))
					}
					for _, p := range a[topic] {
						owner[p] = name
					}
				}),
				kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
					mu.Lock()
					defer mu.Unlock()
					if len(r[topic]) > 0 {
						changes = append(changes, fmt.Sprintf("%v %s revoked %v", time.Now().Format("15:04:05.000"), name, r[topic]))
					}
					for _, p := range r[topic] {
						if owner[p] == name {
							delete(owner, p)
						}
					}
				}),
			}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			cl.PauseFetchTopics(topic) // heartbeats only: no fetches
			clients = append(clients, cl)
		}
		closeAll := func() {
			var wg sync.WaitGroup
			for _, cl := range clients {
				wg.Go(cl.Close) // leaves the group
			}
			wg.Wait()
		}
		settled := func() bool {
			mu.Lock()
			defer mu.Unlock()
			seen := map[string]bool{}
			for _, o := range owner {
				seen[o] = true
			}
			return len(owner) == partitions && len(seen) == members
		}
		deadline := time.Now().Add(3 * time.Minute)
		for !settled() {
			if time.Now().After(deadline) {
				closeAll()
				b.Fatalf("the %d members did not settle on %d partitions", members, partitions)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Logf("settled in %v", time.Since(deadline.Add(-3*time.Minute)).Round(time.Millisecond))
		// Two more intervals: the last members' follow-up heartbeats.
		time.Sleep(2 * interval)

		mu.Lock()
		changesBefore := len(changes)
		mu.Unlock()
		reqBefore := counts.snapshot()
		mon := startMonitor(b, c.redisAddr)
		before = redisCommands(b, rdb)
		start := time.Now()
		time.Sleep(window)
		total := redisCommands(b, rdb) - before
		elapsed := time.Since(start)
		breakdown := mon.stop()
		reqAfter := counts.snapshot()
		mu.Lock()
		moved := changes[changesBefore:]
		mu.Unlock()
		ok := settled()
		closeAll()
		if len(moved) > 0 || !ok {
			b.Fatalf("partitions moved in the measured window from %v: the group was not settled: %d moves: %v", start.Format("15:04:05.000"), len(moved), moved[:min(len(moved), 20)])
		}
		hbs += float64(reqAfter[hbKey] - reqBefore[hbKey])
		for k, v := range reqAfter {
			if k != hbKey {
				other += float64(v - reqBefore[k])
			}
		}
		cmds += float64(total) - rate*elapsed.Seconds()
		quietRate += rate
		for name, n := range breakdown {
			byCommand[name] += n
			if strings.HasSuffix(name, "{g}") {
				groupCmds += float64(n)
			}
			if strings.HasPrefix(name, "lua:") {
				scriptCmds += float64(n)
			} else {
				clientCmds += float64(n)
			}
		}
		b.Logf("window %v: %d heartbeats, %d commands (quiet rate %.1f/s), other requests %v", elapsed.Round(time.Millisecond),
			reqAfter[hbKey]-reqBefore[hbKey], total, rate, reqAfter)
	}
	seconds := window.Seconds() * float64(b.N)
	b.ReportMetric(hbs/seconds, "heartbeats/s")
	b.ReportMetric(cmds/seconds, "index-cmds/s")
	b.ReportMetric(cmds/hbs, "index-cmds/heartbeat")
	b.ReportMetric(clientCmds/hbs, "sent-cmds/heartbeat")
	b.ReportMetric(scriptCmds/hbs, "script-cmds/heartbeat")
	b.ReportMetric(groupCmds/hbs, "group-key-cmds/heartbeat")
	b.ReportMetric(quietRate/float64(b.N), "quiet-cmds/s")
	b.ReportMetric(other, "other-requests")
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(byCommand)) {
		lines = append(lines, fmt.Sprintf("%s %.2f", name, float64(byCommand[name])/hbs))
	}
	b.Logf("window commands per heartbeat (agents' own background work included; lua: ran in a script): %s", strings.Join(lines, ", "))
}

// redisCommands is redis-server's total_commands_processed less the INFO
// calls it answered, this one included.
func redisCommands(b *testing.B, rdb *redis.Client) int64 {
	info, err := rdb.Info(b.Context(), "stats", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total, infos int64 = -1, 0
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			total, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "cmdstat_info:calls="); ok {
			v, _, _ = strings.Cut(v, ",")
			infos, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if total < 0 {
		b.Fatalf("INFO has no total_commands_processed: %q", info)
	}
	// This INFO is counted once it has answered: add it to what it shows.
	return total - (infos + 1)
}

// monitor counts the commands redis-server runs, by name, from MONITOR:
// a command a Lua script ran is named "lua:<name>", and a command whose
// arguments hold a key's hash tag is named with the tag's kind, e.g.
// "hmget{g}" for a group's key.
type monitor struct {
	conn   net.Conn
	done   chan struct{}
	counts map[string]int64
}

func startMonitor(b *testing.B, addr string) *monitor {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	m := &monitor{conn: conn, done: make(chan struct{}), counts: map[string]int64{}}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		b.Fatalf("MONITOR answered %q, %v", line, err)
	}
	go func() {
		defer close(m.done)
		script := "" // the tag of the last command a client sent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			// +1700000000.123456 [0 127.0.0.1:5555] "evalsha" "..." ...
			// +1700000000.123456 [0 lua] "hmget" "..."
			src, rest, ok := strings.Cut(line, "] \"")
			if !ok {
				continue
			}
			name, args, _ := strings.Cut(rest, "\"")
			name = strings.ToLower(name)
			if name == "info" {
				continue // the benchmark's own
			}
			// The first key's hash tag kind ({g:...} a group's, {t:...} a
			// partition's, {m} the topic list's, ...), when it has one,
			// says whose command it is. A script's own commands follow its
			// EVALSHA (scripts run whole): one without a key (TIME) is the
			// script's.
			tag := ""
			if _, rest, ok := strings.Cut(args, "{"); ok {
				if end := strings.IndexAny(rest, ":}"); end > 0 && end <= 2 {
					tag = "{" + rest[:end] + "}"
				}
			}
			if strings.HasSuffix(src, " lua") {
				if tag == "" {
					tag = script
				}
				name = "lua:" + name
			} else {
				script = tag
			}
			m.counts[name+tag]++
		}
	}()
	return m
}

// stop ends MONITOR and returns its counts.
func (m *monitor) stop() map[string]int64 {
	_ = m.conn.Close()
	<-m.done
	return m.counts
}
