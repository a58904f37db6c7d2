package integration

// The last stable offset across agent processes (issue 11, KIP-98): a
// transactional producer writes through one agent while read_committed
// readers read through another. While a transaction is open they are held
// at its first offset, a long poll among them; its commit lets them go
// (the waiting long poll answers with the records), its abort lets them
// go past records they never see, and so does the reaper of the other
// agent when a transaction outlives its timeout, its producer gone.

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func TestLastStableOffsetAcrossAgents(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	a := d.startAgent(t, "agent-a", "--txn-reaper-interval", "0")
	b := d.startAgent(t, "agent-b", "--txn-reaper-interval", "200ms")
	ctx := t.Context()
	reader := newClients(b.url(), protoConnectH2C)
	if _, err := reader.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: "lso", Partitions: 1})); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	newProducer := func(opts ...client.ProducerOpt) *client.Producer {
		t.Helper()
		p, err := client.NewProducer(hc, a.url(), append(opts, client.Linger(time.Millisecond))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(ctx) })
		return p
	}
	plain := newProducer()
	txp := newProducer(client.TransactionalID("lso-writer", 0))
	if err := txp.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	produce := func(p *client.Producer, values ...string) {
		t.Helper()
		recs := make([]*client.Record, len(values))
		for i, v := range values {
			recs[i] = &client.Record{Topic: "lso", Value: []byte(v)}
		}
		if err := p.ProduceSync(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	// fetch reads from offset at the isolation level (on agent b), with a
	// long poll of wait, and returns the values and the next offset.
	fetch := func(offset int64, level stratav1.IsolationLevel, wait time.Duration) ([]string, int64) {
		t.Helper()
		req := &stratav1.FetchRequest{Topic: "lso", Partition: 0, Offset: offset, IsolationLevel: level}
		if wait > 0 {
			req.MaxWait = durationpb.New(wait)
		}
		resp, err := reader.consumer.Fetch(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("fetch from %d (%v): %v", offset, level, err)
		}
		var out []string
		for _, r := range resp.Msg.GetRecords() {
			out = append(out, string(r.GetValue()))
		}
		return out, resp.Msg.GetNextOffset()
	}
	want := func(what string, got []string, values ...string) {
		t.Helper()
		if !slices.Equal(got, values) {
			t.Fatalf("%s: %q, want %q", what, got, values)
		}
	}
	const rc, ru = stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED, stratav1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED

	// Open: held at the transaction's first offset (1), records after it
	// (plain ones included) too; read_uncommitted sees everything.
	produce(plain, "p0")
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(txp, "c0", "c1")
	produce(plain, "p1")
	got, next := fetch(0, rc, 0)
	want("read_committed, a transaction open", got, "p0")
	if next != 1 {
		t.Fatalf("read_committed next offset %d while the transaction is open, want 1 (its first offset)", next)
	}
	got, _ = fetch(0, ru, 0)
	want("read_uncommitted, a transaction open", got, "p0", "c0", "c1", "p1")

	// Commit: a long poll waiting at the LSO answers with the records.
	polled := make(chan []string, 1)
	go func() {
		got, _ := fetch(1, rc, 30*time.Second)
		polled <- got
	}()
	time.Sleep(200 * time.Millisecond) // most likely waiting by now; either way it must answer with them
	if err := txp.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	want("the long poll at the LSO, after the commit", <-polled, "c0", "c1", "p1")

	// Abort: held, then let past the aborted records, never seeing them.
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(txp, "a0", "a1")
	produce(plain, "p2")
	_, held := fetch(0, rc, 0)
	if err := txp.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = fetch(0, rc, 0)
	want("read_committed after the abort", got, "p0", "c0", "c1", "p1", "p2")
	if held != 5 {
		t.Fatalf("read_committed next offset %d while the second transaction was open, want 5 (its first offset)", held)
	}

	// Timeout: a producer begins a transaction and dies (its agent with
	// it); agent b's reaper aborts it once its timeout passes.
	const timeout = 8 * time.Second
	dead := newProducer(client.TransactionalID("lso-dead", timeout))
	if err := dead.InitTransactions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	produce(dead, "d0")
	a.kill()
	produce2 := newClients(b.url(), protoConnectH2C)
	if _, err := produce2.producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{
		Topics: []*stratav1.TopicRecords{{Topic: "lso", Records: []*stratav1.Record{{Value: []byte("p3")}}}}})); err != nil {
		t.Fatal(err)
	}
	got, next = fetch(0, rc, 0)
	if time.Since(began) < timeout {
		// Still inside the timeout: held at the dead transaction (offset
		// 9; 8 is the abort marker).
		want("read_committed, a dead producer's transaction open", got, "p0", "c0", "c1", "p1", "p2")
		if next != 9 {
			t.Fatalf("read_committed next offset %d inside the dead transaction's timeout, want 9", next)
		}
	} else {
		t.Logf("the check ran %s after the transaction began, past its timeout: only the release is checked", time.Since(began))
	}
	if !waitFor(2*time.Minute, func() bool { got, _ = fetch(0, rc, 0); return len(got) == 6 }) {
		t.Fatalf("read_committed still reads %q two minutes after the dead producer's transaction began (timeout %s)", got, timeout)
	}
	want("read_committed after the reaper (never the dead producer's d0)", got, "p0", "c0", "c1", "p1", "p2", "p3")
}
