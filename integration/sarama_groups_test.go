package integration

// IBM sarama consumer groups (sarama.ConsumerGroup: JoinGroup, SyncGroup,
// Heartbeat, OffsetCommit, LeaveGroup, with its range and sticky balance
// strategies) under load against two agent processes: the scenario and
// checks of groupload_test.go.
//
// Each member is its own process (testdata/saramamember, built once for the
// package), not a goroutine with its own client: only a process can be
// killed the way a crashed consumer dies, its connections reset by the
// kernel and nothing sent on its way out; a goroutine's client would have to
// be cut off with a fake dialer.

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var saramaMember struct {
	once sync.Once
	bin  string
	err  error
	out  []byte
}

// saramaMemberBin builds testdata/saramamember once and returns the binary.
func saramaMemberBin(t *testing.T) string {
	t.Helper()
	saramaMember.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			saramaMember.err = err
			return
		}
		dir, err := os.MkdirTemp("", "strata-sarama-member-")
		if err != nil {
			saramaMember.err = err
			return
		}
		// Left for the OS to clean with the rest of the temporary
		// directory: tests of the package share it.
		bin := filepath.Join(dir, "saramamember")
		build := exec.Command("go", "build", "-o", bin, "./integration/testdata/saramamember")
		build.Dir = root
		saramaMember.out, saramaMember.err = build.CombinedOutput()
		saramaMember.bin = bin
	})
	if saramaMember.err != nil {
		t.Fatalf("go build ./integration/testdata/saramamember: %v\n%s", saramaMember.err, saramaMember.out)
	}
	return saramaMember.bin
}

// TestSaramaGroupMembersUnderLoad: sarama members join one at a time (1, 2,
// 3) while a producer writes to every partition; one leaves cleanly (Close),
// one is killed with SIGKILL (its partitions move when its session expires),
// the last is stopped and two new ones resume from the committed offsets.
// No partition is ever held by two members, every acked record is consumed
// in order, and only what the killed member had not committed is read twice.
// With the range strategy (sarama's default), sticky (eager too) and
// cooperative-sticky (KIP-429: members keep the partitions that do not move
// and give up the others one by one, in a follow-up rebalance).
func TestSaramaGroupMembersUnderLoad(t *testing.T) {
	t.Parallel()
	bin := saramaMemberBin(t)
	for _, strategy := range []string{"range", "sticky", "cooperative-sticky"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			runGroupLoad(t, groupLoadClient{
				start: func(t *testing.T, name, brokers, topic, group, path string) *proc {
					return startBinary(t, bin, name, childEnv(),
						"-brokers", brokers, "-topic", topic, "-group", group, "-name", name,
						"-events", path, "-session", loadSession.String(), "-strategy", strategy,
						"-process", loadProcess.String())
				},
				perClaim: strategy == "cooperative-sticky",
			})
		})
	}
}
