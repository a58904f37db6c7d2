package coordinator_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// shortTTL is a lease that a test lets run out; expired is how long it waits
// for that, with room for a loaded CI machine.
const (
	shortTTL = 200 * time.Millisecond
	expired  = 2 * shortTTL
	longTTL  = 30 * time.Second
)

func TestLeaseLifecycle(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		before := time.Now()
		l, err := r.AcquireLease(ctx, "compact-p0", "agent-1", longTTL)
		if err != nil {
			t.Fatal(err)
		}
		if l.Name != "compact-p0" || l.Holder != "agent-1" || l.Token <= 0 {
			t.Fatalf("acquired %+v", l)
		}
		if l.Expires.Before(before.Add(longTTL)) || l.Expires.After(time.Now().Add(longTTL)) {
			t.Fatalf("Expires %v is not ttl after the call", l.Expires)
		}

		// A live lease is refused to everyone, its own holder included.
		for _, holder := range []string{"agent-2", "agent-1"} {
			_, err := r.AcquireLease(ctx, "compact-p0", holder, longTTL)
			if !errors.Is(err, coordinator.ErrConflict) {
				t.Fatalf("second acquire by %s: got %v, want ErrConflict", holder, err)
			}
			if !strings.Contains(err.Error(), `"agent-1"`) {
				t.Fatalf("conflict %q does not name the holder", err)
			}
		}

		time.Sleep(10 * time.Millisecond) // so a renewal visibly moves Expires
		renewed, err := r.RenewLease(ctx, l, longTTL)
		if err != nil {
			t.Fatal(err)
		}
		if renewed.Token != l.Token || !renewed.Expires.After(l.Expires) {
			t.Fatalf("renewed %+v from %+v", renewed, l)
		}
		if err := r.ValidateLease(ctx, renewed); err != nil {
			t.Fatalf("validate held lease: %v", err)
		}
		if err := r.ValidateLease(ctx, coordinator.Lease{Name: l.Name, Token: l.Token + 1}); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("validate with a wrong token: got %v, want ErrFenced", err)
		}

		if err := r.ReleaseLease(ctx, renewed); err != nil {
			t.Fatal(err)
		}
		if err := r.ValidateLease(ctx, renewed); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("validate released lease: got %v, want ErrFenced", err)
		}
		if _, err := r.RenewLease(ctx, renewed, longTTL); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("renew released lease: got %v, want ErrFenced", err)
		}
		if err := r.ReleaseLease(ctx, renewed); err != nil {
			t.Fatalf("releasing twice: %v", err)
		}

		next, err := r.AcquireLease(ctx, "compact-p0", "agent-2", longTTL)
		if err != nil {
			t.Fatalf("acquire after release: %v", err)
		}
		if next.Token <= l.Token {
			t.Fatalf("token after release %d is not above %d", next.Token, l.Token)
		}
		// Another name is another lease.
		if _, err := r.AcquireLease(ctx, "compact-p1", "agent-1", longTTL); err != nil {
			t.Fatalf("acquire another name: %v", err)
		}
	})
}

func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		old, err := r.AcquireLease(ctx, "job", "agent-1", shortTTL)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)

		if err := r.ValidateLease(ctx, old); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("validate expired lease: got %v, want ErrFenced", err)
		}
		// Expired means lost, even while nobody has taken it yet.
		if _, err := r.RenewLease(ctx, old, longTTL); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("renew expired lease: got %v, want ErrFenced", err)
		}

		cur, err := r.AcquireLease(ctx, "job", "agent-2", longTTL)
		if err != nil {
			t.Fatalf("acquire expired lease: %v", err)
		}
		if cur.Token <= old.Token {
			t.Fatalf("token after expiry %d is not above %d", cur.Token, old.Token)
		}
		if _, err := r.RenewLease(ctx, old, longTTL); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("renew taken-over lease: got %v, want ErrFenced", err)
		}
		if err := r.ReleaseLease(ctx, old); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("release taken-over lease: got %v, want ErrFenced", err)
		}
		// The stale release must not have freed the new holder's lease.
		if err := r.ValidateLease(ctx, cur); err != nil {
			t.Fatalf("new holder lost its lease to a stale release: %v", err)
		}
	})
}

func TestLeaseTokensStrictlyIncrease(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		var last int64
		for i := range 6 {
			holder := []string{"agent-a", "agent-b"}[i%2]
			l, err := r.AcquireLease(ctx, "job", holder, shortTTL)
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if l.Token <= last {
				t.Fatalf("round %d: token %d is not above %d", i, l.Token, last)
			}
			last = l.Token
			// Alternate release and expiry, the two ways a lease frees up.
			if i%2 == 0 {
				if err := r.ReleaseLease(ctx, l); err != nil {
					t.Fatal(err)
				}
			} else {
				time.Sleep(expired)
			}
		}
	})
}

func TestLeaseConcurrentAcquireHasOneWinner(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		const n = 16
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			winners   []coordinator.Lease
			conflicts int
		)
		for i := range n {
			wg.Go(func() {
				l, err := r.AcquireLease(t.Context(), "contended", fmt.Sprintf("agent-%d", i), longTTL)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, l)
				case errors.Is(err, coordinator.ErrConflict):
					conflicts++
				default:
					t.Errorf("acquire: %v", err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || conflicts != n-1 {
			t.Fatalf("%d winners and %d conflicts, want 1 and %d", len(winners), conflicts, n-1)
		}
		if err := r.ValidateLease(t.Context(), winners[0]); err != nil {
			t.Fatalf("the winner does not hold the lease: %v", err)
		}
	})
}

func TestLeaseInvalidArguments(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		cases := []struct {
			name   string
			lease  string
			holder string
			ttl    time.Duration
		}{
			{"empty name", "", "agent", time.Second},
			{"empty holder", "job", "", time.Second},
			{"zero ttl", "job", "agent", 0},
			{"sub-millisecond ttl", "job", "agent", time.Microsecond},
		}
		for _, c := range cases {
			_, err := r.AcquireLease(t.Context(), c.lease, c.holder, c.ttl)
			if !errors.Is(err, coordinator.ErrInvalid) {
				t.Errorf("%s: got %v, want ErrInvalid", c.name, err)
			}
		}
		if _, err := r.RenewLease(t.Context(), coordinator.Lease{Name: "job", Token: 1}, 0); !errors.Is(err, coordinator.ErrInvalid) {
			t.Errorf("renew with zero ttl: got %v, want ErrInvalid", err)
		}
	})
}
