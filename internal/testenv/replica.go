package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// holdReplica gives the calling test the shared replica to itself until it
// ends: an exclusive flock(2) on a file named after the replica's process,
// held across test processes, since go test runs packages in parallel and
// a test of one package stopping the replica (StopRedisReplica) would
// otherwise make another's replicated writes time out, or resume the
// replica under a test that needs it stopped.
func holdReplica(t testing.TB, pid int) {
	t.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("strata-test-replica-%d.lock", pid))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("replica lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		t.Fatalf("replica lock %s: %v", path, err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}

// StopRedisReplica stops the shared replica of RedisReplica (SIGSTOP), so
// that the primary's WAIT times out, and returns the function that
// continues it (SIGCONT), also run at the test's cleanup.
func StopRedisReplica(t testing.TB, rr ReplicatedRedis) (resume func()) {
	t.Helper()
	replica, err := os.FindProcess(rr.ReplicaPID)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the replica: %v", err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := replica.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("continuing the replica: %v", err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}
