package coordinator_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// agentIDs lists ids and addresses, "id=addr", in the order ListAgents gave.
func agentIDs(t *testing.T, r *coordinator.Redis) []string {
	t.Helper()
	agents, err := r.ListAgents(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.ID + "=" + a.Addr
	}
	return out
}

func TestAgentsRegisterListExpireDeregister(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		before := time.Now()
		for _, a := range []struct {
			info coordinator.AgentInfo
			ttl  time.Duration
		}{
			{coordinator.AgentInfo{ID: "b", Addr: "10.0.0.2:9092"}, longTTL},
			{coordinator.AgentInfo{ID: "a", Addr: "10.0.0.1:9092"}, shortTTL},
			{coordinator.AgentInfo{ID: "c", Addr: "10.0.0.3:9092"}, shortTTL},
		} {
			if err := r.RegisterAgent(ctx, a.info, a.ttl); err != nil {
				t.Fatal(err)
			}
		}
		agents, err := r.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(agents), 3; got != want {
			t.Fatalf("%d agents, want %d", got, want)
		}
		if b := agents[1]; b.ID != "b" || b.Expires.Before(before.Add(longTTL-time.Second)) || b.Expires.After(time.Now().Add(longTTL)) {
			t.Fatalf("agent b = %+v, want Expires about %v from now", b, longTTL)
		}

		// c refreshes in time, a does not.
		if err := r.RegisterAgent(ctx, coordinator.AgentInfo{ID: "c", Addr: "10.0.0.33:9092"}, longTTL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)
		if got, want := agentIDs(t, r), []string{"b=10.0.0.2:9092", "c=10.0.0.33:9092"}; !slices.Equal(got, want) {
			t.Fatalf("after expiry: %v, want %v", got, want)
		}
		// An expired agent that registers again is back.
		if err := r.RegisterAgent(ctx, coordinator.AgentInfo{ID: "a", Addr: "10.0.0.1:9093"}, longTTL); err != nil {
			t.Fatal(err)
		}
		if got, want := agentIDs(t, r), []string{"a=10.0.0.1:9093", "b=10.0.0.2:9092", "c=10.0.0.33:9092"}; !slices.Equal(got, want) {
			t.Fatalf("after re-register: %v, want %v", got, want)
		}

		if err := r.DeregisterAgent(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := r.DeregisterAgent(ctx, "b"); err != nil {
			t.Fatalf("deregistering twice: %v", err)
		}
		if got, want := agentIDs(t, r), []string{"a=10.0.0.1:9093", "c=10.0.0.33:9092"}; !slices.Equal(got, want) {
			t.Fatalf("after deregister: %v, want %v", got, want)
		}
	})
}

func TestAgentsInvalidArguments(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		if err := r.RegisterAgent(t.Context(), coordinator.AgentInfo{Addr: "x:1"}, time.Second); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("empty id: got %v, want ErrInvalid", err)
		}
		if err := r.RegisterAgent(t.Context(), coordinator.AgentInfo{ID: "a"}, 0); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("zero ttl: got %v, want ErrInvalid", err)
		}
		if err := r.DeregisterAgent(t.Context(), ""); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("deregister empty id: got %v, want ErrInvalid", err)
		}
		if got := agentIDs(t, r); len(got) != 0 {
			t.Errorf("invalid registrations left agents %v", got)
		}
	})
}

func TestAgentsKafkaListenerAndClusterID(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		k := coordinator.AgentInfo{ID: "k", Addr: "10.0.0.1:7070", KafkaAddr: "10.0.0.1:9092", NodeID: 77, Zone: "eu-1a"}
		if err := r.RegisterAgent(ctx, k, longTTL); err != nil {
			t.Fatal(err)
		}
		// An agent without a Kafka listener (or of an older version).
		if err := r.RegisterAgent(ctx, coordinator.AgentInfo{ID: "p", Addr: "10.0.0.2:7070"}, longTTL); err != nil {
			t.Fatal(err)
		}
		agents, err := r.ListAgents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(agents) != 2 {
			t.Fatalf("agents %+v, want 2", agents)
		}
		got := agents[0]
		got.Expires = time.Time{}
		if got != k {
			t.Fatalf("agent k lists as %+v, want %+v", got, k)
		}
		if p := agents[1]; p.KafkaAddr != "" || p.NodeID != 0 || p.Zone != "" {
			t.Fatalf("agent p lists with a Kafka listener: %+v", p)
		}
		// Registering without the listener drops it.
		if err := r.RegisterAgent(ctx, coordinator.AgentInfo{ID: "k", Addr: "10.0.0.1:7070"}, longTTL); err != nil {
			t.Fatal(err)
		}
		if agents, err = r.ListAgents(ctx); err != nil || agents[0].KafkaAddr != "" {
			t.Fatalf("after re-register without Kafka: %+v, %v", agents, err)
		}

		id, err := r.ClusterID(ctx, "first")
		if err != nil || id != "first" {
			t.Fatalf("ClusterID = %q, %v; want first", id, err)
		}
		if id, err = r.ClusterID(ctx, "second"); err != nil || id != "first" {
			t.Fatalf("second ClusterID = %q, %v; want the stored first", id, err)
		}
	})
}
