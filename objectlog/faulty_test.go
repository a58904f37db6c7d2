package objectlog_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/objectlog"
)

// A FaultyBucket with no faults is a Bucket like any other.
func TestFaultyBucketAcceptance(t *testing.T) {
	objectlog.AcceptanceTest(t, func(t *testing.T) objectlog.Bucket {
		return objectlog.NewFaultyBucket(objectlog.NewMemBucket())
	})
}

var errInjected = errors.New("injected")

func newFaulty(t *testing.T, keys ...string) *objectlog.FaultyBucket {
	t.Helper()
	inner := objectlog.NewMemBucket()
	for _, k := range keys {
		if err := inner.PutIfAbsent(t.Context(), k, strings.NewReader("0123456789"), 10); err != nil {
			t.Fatal(err)
		}
	}
	return objectlog.NewFaultyBucket(inner)
}

func getString(ctx context.Context, b objectlog.Bucket, key string) (string, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), err
}

func TestFaultyBucketSelection(t *testing.T) {
	tests := []struct {
		name  string
		fault objectlog.Fault
		calls []string // keys of successive Gets
		fail  []bool   // which of them fail
	}{
		{"every call", objectlog.Fault{Err: errInjected}, []string{"a/1", "b/1", "a/1"}, []bool{true, true, true}},
		{"pattern", objectlog.Fault{Key: "a/*", Err: errInjected}, []string{"a/1", "b/1", "a/2", "a/x/1"}, []bool{true, false, true, false}},
		{"prefix", objectlog.Fault{Prefix: "a/", Err: errInjected}, []string{"a/1", "b/1", "a/x/1"}, []bool{true, false, true}},
		{"nth only", objectlog.Fault{Nth: 2, Err: errInjected}, []string{"a/1", "a/1", "a/1", "a/1"}, []bool{false, true, false, false}},
		{"first times", objectlog.Fault{Times: 2, Err: errInjected}, []string{"a/1", "a/1", "a/1"}, []bool{true, true, false}},
		{"nth and times", objectlog.Fault{Nth: 2, Times: 2, Err: errInjected}, []string{"a/1", "a/1", "a/1", "a/1"}, []bool{false, true, true, false}},
		{"nth counts matching calls only", objectlog.Fault{Prefix: "a/", Nth: 2, Err: errInjected}, []string{"b/1", "a/1", "b/1", "a/2", "a/3"}, []bool{false, false, false, true, false}},
		{"other operation", objectlog.Fault{Ops: objectlog.OpPut | objectlog.OpDelete, Err: errInjected}, []string{"a/1"}, []bool{false}},
		{"read operations", objectlog.Fault{Ops: objectlog.OpRead, Err: errInjected}, []string{"a/1"}, []bool{true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newFaulty(t, "a/1", "a/2", "a/3", "a/x/1", "b/1")
			in := b.Inject(tc.fault)
			fired := 0
			for i, key := range tc.calls {
				_, err := getString(t.Context(), b, key)
				if got := err != nil; got != tc.fail[i] {
					t.Errorf("call %d (%s): error %v, want failure %v", i+1, key, err, tc.fail[i])
				}
				if err != nil {
					fired++
					if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), key) {
						t.Errorf("call %d: error %q does not wrap the injected one with the key", i+1, err)
					}
				}
			}
			if in.Fired() != fired {
				t.Errorf("Fired() = %d, want %d", in.Fired(), fired)
			}
		})
	}
}

func TestFaultyBucketOperations(t *testing.T) {
	ctx := t.Context()

	t.Run("put fails before storing", func(t *testing.T) {
		b := newFaulty(t)
		b.Inject(objectlog.Fault{Ops: objectlog.OpPut, Err: errInjected})
		if err := b.PutIfAbsent(ctx, "k", strings.NewReader("x"), 1); !errors.Is(err, errInjected) {
			t.Fatalf("put: %v", err)
		}
		if _, err := b.Unwrap().Attributes(ctx, "k"); !errors.Is(err, objectlog.ErrNotFound) {
			t.Errorf("a failed put stored the object: %v", err)
		}
	})

	t.Run("put with a lost answer", func(t *testing.T) {
		b := newFaulty(t)
		b.Inject(objectlog.Fault{Ops: objectlog.OpPut, Err: errInjected, After: true, Nth: 1})
		if err := b.PutIfAbsent(ctx, "k", strings.NewReader("x"), 1); !errors.Is(err, errInjected) {
			t.Fatalf("put: %v", err)
		}
		if got, err := getString(ctx, b, "k"); err != nil || got != "x" {
			t.Errorf("the object of a put whose answer was lost: %q, %v; want it stored", got, err)
		}
		if err := b.PutIfAbsent(ctx, "k", strings.NewReader("y"), 1); !errors.Is(err, objectlog.ErrAlreadyExists) {
			t.Errorf("retried put: %v; want ErrAlreadyExists", err)
		}
	})

	t.Run("truncated put stores nothing", func(t *testing.T) {
		b := newFaulty(t)
		b.Inject(objectlog.Fault{Ops: objectlog.OpPut, Truncate: true, TruncateAt: 3})
		r := strings.NewReader("0123456789")
		if err := b.PutIfAbsent(ctx, "k", r, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("put: %v; want io.ErrUnexpectedEOF", err)
		}
		if r.Len() != 7 {
			t.Errorf("truncated put read %d bytes of its body, want 3", 10-r.Len())
		}
		if _, err := b.Attributes(ctx, "k"); !errors.Is(err, objectlog.ErrNotFound) {
			t.Errorf("a truncated put stored the object: %v", err)
		}
	})

	t.Run("truncated reads", func(t *testing.T) {
		b := newFaulty(t, "k")
		b.Inject(objectlog.Fault{Ops: objectlog.OpGet | objectlog.OpGetRange, Truncate: true, TruncateAt: 4})
		got, err := getString(ctx, b, "k")
		if got != "0123" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated Get: %q, %v; want 0123 and io.ErrUnexpectedEOF", got, err)
		}
		rc, err := b.GetRange(ctx, "k", 2, 5)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if string(data) != "2345" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated GetRange: %q, %v", data, err)
		}
		// A cut past the end changes nothing.
		b.Clear()
		b.Inject(objectlog.Fault{Truncate: true, TruncateAt: 100, Err: errInjected})
		if got, err := getString(ctx, b, "k"); got != "0123456789" || err != nil {
			t.Errorf("cut past the end: %q, %v", got, err)
		}
	})

	t.Run("truncated listing", func(t *testing.T) {
		b := newFaulty(t, "a", "b", "c")
		b.Inject(objectlog.Fault{Ops: objectlog.OpList, Truncate: true, TruncateAt: 2, Err: errInjected})
		var keys []string
		var lastErr error
		for oi, err := range b.List(ctx, "") {
			if err != nil {
				lastErr = err
				break
			}
			keys = append(keys, oi.Key)
		}
		if strings.Join(keys, ",") != "a,b" || !errors.Is(lastErr, errInjected) {
			t.Errorf("truncated List: %v, %v", keys, lastErr)
		}
	})

	t.Run("failing attributes and delete", func(t *testing.T) {
		b := newFaulty(t, "k")
		b.Inject(objectlog.Fault{Ops: objectlog.OpAttributes | objectlog.OpDelete, Err: errInjected})
		if _, err := b.Attributes(ctx, "k"); !errors.Is(err, errInjected) {
			t.Errorf("Attributes: %v", err)
		}
		if err := b.Delete(ctx, "k"); !errors.Is(err, errInjected) {
			t.Errorf("Delete: %v", err)
		}
		if _, err := b.Unwrap().Attributes(ctx, "k"); err != nil {
			t.Errorf("a failed delete removed the object: %v", err)
		}
	})

	t.Run("delay", func(t *testing.T) {
		b := newFaulty(t, "k")
		b.Inject(objectlog.Fault{Ops: objectlog.OpGet, Delay: 50 * time.Millisecond})
		start := time.Now()
		if got, err := getString(ctx, b, "k"); err != nil || got != "0123456789" {
			t.Fatalf("delayed Get: %q, %v", got, err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("delayed Get took %v, want at least 50ms", d)
		}
		// A delay ends with the caller's context.
		b.Clear()
		b.Inject(objectlog.Fault{Delay: time.Hour})
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		if _, err := getString(cctx, b, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get delayed past its deadline: %v", err)
		}
	})

	t.Run("first added applies, all count", func(t *testing.T) {
		b := newFaulty(t, "k")
		errSecond := errors.New("second")
		first := b.Inject(objectlog.Fault{Nth: 1, Err: errInjected})
		second := b.Inject(objectlog.Fault{Times: 2, Err: errSecond})
		_, err1 := getString(ctx, b, "k")
		_, err2 := getString(ctx, b, "k")
		_, err3 := getString(ctx, b, "k")
		if !errors.Is(err1, errInjected) || !errors.Is(err2, errSecond) || err3 != nil {
			t.Errorf("errors: %v, %v, %v; want injected, second, nil", err1, err2, err3)
		}
		if first.Fired() != 1 || second.Fired() != 1 {
			t.Errorf("Fired: %d, %d; want 1, 1", first.Fired(), second.Fired())
		}
	})

	t.Run("remove and clear", func(t *testing.T) {
		b := newFaulty(t, "k")
		in := b.Inject(objectlog.Fault{Err: errInjected})
		if _, err := getString(ctx, b, "k"); err == nil {
			t.Fatal("fault did not fire")
		}
		in.Remove()
		if _, err := getString(ctx, b, "k"); err != nil {
			t.Errorf("after Remove: %v", err)
		}
		b.Inject(objectlog.Fault{Err: errInjected})
		b.Inject(objectlog.Fault{Ops: objectlog.OpGet, Err: errInjected})
		b.Clear()
		if _, err := getString(ctx, b, "k"); err != nil {
			t.Errorf("after Clear: %v", err)
		}
	})
}

// Faults are added, counted and removed while calls run: the race detector
// is the judge.
func TestFaultyBucketConcurrent(t *testing.T) {
	b := newFaulty(t, "k")
	in := b.Inject(objectlog.Fault{Ops: objectlog.OpGet, Times: 100, Err: errInjected})
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := getString(t.Context(), b, "k"); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			b.Inject(objectlog.Fault{Ops: objectlog.OpDelete, Err: errInjected}).Remove()
		}
	})
	wg.Wait()
	if failed != 100 || in.Fired() != 100 {
		t.Errorf("%d of 400 gets failed, Fired() = %d; want exactly 100", failed, in.Fired())
	}
}
