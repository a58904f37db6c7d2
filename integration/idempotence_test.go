package integration

// Exactly-once producing through crashes (issue 11): the idempotent Go
// producer of package client writes while its agent is killed with SIGKILL
// and restarted, twice, and the index's redis-server (appendonly,
// appendfsync always) is restarted once with SIGTERM and twice killed with
// SIGKILL and started again on its port; in the end every record is in the
// log once, each key's records in produce order, at the offsets the
// producer was told.

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/client"
	"github.com/stratabroker/strata/internal/testenv"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// ownRedis is a redis-server of the test's own, persisting every write
// (appendfsync always) so that a restart keeps what was acknowledged.
type ownRedis struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	r := &ownRedis{t: t, bin: testenv.RedisServerBin(t), dir: t.TempDir(), addr: freeAddr(t)}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

func (r *ownRedis) start() {
	r.t.Helper()
	port := r.addr[strings.LastIndex(r.addr, ":")+1:]
	r.cmd = exec.Command(r.bin, "--bind", "127.0.0.1", "--port", port, "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
		"--daemonize", "no", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	if !waitFor(20*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }) {
		r.t.Fatalf("redis-server on %s did not start (log in %s)", r.addr, r.dir)
	}
}

// restart stops the server the way an operator's restart does (SIGTERM,
// which writes out what is pending) and starts it again on the same port.
func (r *ownRedis) restart() {
	r.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
	r.start()
}

// crash kills the server with SIGKILL, nothing written out on the way, and
// starts it again on the same port: only what appendfsync always put in
// the append-only file survives, which must be everything acknowledged.
func (r *ownRedis) crash() {
	r.t.Helper()
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.start()
}

// startAgentAt runs `strata agent` on a fixed address, so a restarted agent
// is found where the producer looks, plus extra flags.
func (d *deployment) startAgentAt(t *testing.T, name, addr string, extra ...string) *server {
	t.Helper()
	args := []string{"agent", "--listen", addr, "--admin-listen", "", "--store", d.storeURL,
		"--index", d.indexURL, "--flush-interval", "20ms", "--agent-id", name}
	args = append(args, extra...)
	p := startProc(t, name, childEnv(d.credentialsEnv()...), args...)
	if err := waitReady(t.Context(), p, addr); err != nil {
		t.Fatalf("%s did not come up on %s: %v", name, addr, err)
	}
	return &server{proc: p, addr: addr}
}

func TestIdempotentProduceThroughCrashes(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	rdb := startOwnRedis(t)
	d.indexURL = "redis://" + rdb.addr + "/0"
	addr := freeAddr(t)
	agent := d.startAgentAt(t, "agent-1", addr)
	api := newClients(agent.url(), protoConnectH2C)
	if _, err := api.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: "crash", Partitions: 4})); err != nil {
		t.Fatal(err)
	}

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	prod, err := client.NewProducer(&http.Client{Transport: tr}, agent.url(),
		client.Linger(5*time.Millisecond), client.BatchMaxBytes(4<<10),
		client.RequestTimeout(15*time.Second), client.DeliveryTimeout(5*time.Minute),
		client.RetryBackoff(50*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	const n = 30000
	produced := make([]*client.Record, n)
	var (
		mu     sync.Mutex
		failed []error
		acked  atomic.Int64
	)
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		for i := range n {
			key := fmt.Sprintf("k%02d", i%50)
			r := &client.Record{Topic: "crash", Key: []byte(key), Value: fmt.Appendf(nil, "%s %06d", key, i)}
			produced[i] = r
			prod.Produce(t.Context(), r, func(_ *client.Record, err error) {
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					return
				}
				acked.Add(1)
			})
			if i%5 == 0 {
				time.Sleep(time.Millisecond) // spread the records over the faults
			}
		}
	}()

	// The faults, while records flow: each once more records were
	// acknowledged since the one before.
	afterAcks := func(k int64, what string) {
		t.Helper()
		if !waitFor(2*time.Minute, func() bool { return acked.Load() >= k }) {
			t.Fatalf("%d of %d records acknowledged after 2 minutes, waiting for %d to %s", acked.Load(), n, k, what)
		}
		t.Logf("%d records acknowledged; %s", acked.Load(), what)
	}
	afterAcks(n/8, "killing the agent (SIGKILL)")
	agent.kill()
	agent = d.startAgentAt(t, "agent-2", addr)
	afterAcks(2*n/8, "restarting redis-server (SIGTERM)")
	rdb.restart()
	afterAcks(3*n/8, "killing the agent (SIGKILL) again")
	agent.kill()
	agent = d.startAgentAt(t, "agent-3", addr)
	afterAcks(4*n/8, "killing redis-server (SIGKILL) and starting it again")
	rdb.crash()
	afterAcks(5*n/8, "killing redis-server (SIGKILL) under the agent once more")
	rdb.crash()

	<-producing
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := prod.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	mu.Lock()
	if len(failed) > 0 {
		t.Fatalf("%d records failed; first: %v", len(failed), failed[0])
	}
	mu.Unlock()

	// Read the log back: each value once, each key in order, where the
	// producer was told it went.
	type pos struct {
		p int32
		o int64
	}
	at := map[string]pos{}
	last := map[string]int{}
	api = newClients(agent.url(), protoConnectH2C)
	for p := range int32(4) {
		var next int64
		for {
			resp, err := api.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "crash", Partition: p, Offset: next, MaxBytes: 1 << 20}))
			if err != nil {
				t.Fatalf("fetch crash/%d at %d: %v", p, next, err)
			}
			for _, r := range resp.Msg.GetRecords() {
				v := string(r.GetValue())
				if prev, dup := at[v]; dup {
					t.Fatalf("%q is in the log twice: %v and %d/%d", v, prev, p, r.GetOffset())
				}
				at[v] = pos{p, r.GetOffset()}
				var key string
				var seq int
				if _, err := fmt.Sscanf(v, "%s %d", &key, &seq); err != nil {
					t.Fatalf("value %q: %v", v, err)
				}
				if prev, ok := last[key]; ok && seq <= prev {
					t.Fatalf("key %s: %d after %d in partition %d: order broken", key, seq, prev, p)
				}
				last[key] = seq
			}
			next = resp.Msg.GetNextOffset()
			if next >= resp.Msg.GetHighWatermark() {
				break
			}
		}
	}
	if len(at) != n {
		t.Errorf("the log holds %d records, %d were produced", len(at), n)
	}
	for _, r := range produced {
		got, ok := at[string(r.Value)]
		if !ok {
			t.Fatalf("acknowledged %q is not in the log: lost", r.Value)
		}
		if got != (pos{r.Partition, r.Offset}) {
			t.Fatalf("%q acknowledged at %d/%d, in the log at %v", r.Value, r.Partition, r.Offset, got)
		}
	}
	t.Logf("%d records, 0 duplicates, 0 lost, order kept", n)
}
