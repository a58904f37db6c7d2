//go:build unix

package failpoint_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stratabroker/strata/internal/failpoint"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "compaction.after-upload", want: []string{"compaction.after-upload"}},
		{in: "janitor.after-delete, compaction.after-swap", want: []string{"janitor.after-delete", "compaction.after-swap"}},
		{in: "compaction.after-uplod", wantErr: true},
	} {
		got, err := failpoint.Parse(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if tc.wantErr {
			if !strings.Contains(err.Error(), "compaction.after-upload") {
				t.Errorf("Parse(%q): %v, want the known names listed", tc.in, err)
			}
			continue
		}
		if len(got) != len(tc.want) {
			t.Fatalf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for _, n := range tc.want {
			if !got[n] {
				t.Errorf("Parse(%q) = %v, want %s armed", tc.in, got, n)
			}
		}
	}
}

// helperEnv marks the test binary's own re-run as the child of
// TestHitKillsTheProcess.
const helperEnv = "FAILPOINT_TEST_CHILD"

// TestHitKillsTheProcess re-runs the test binary with a point armed: the
// child passes an unarmed point, then dies by SIGKILL at the armed one and
// never prints what follows it.
func TestHitKillsTheProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		failpoint.Hit(failpoint.CompactionAfterSwap)
		os.Stdout.WriteString("passed the unarmed point\n")
		failpoint.Hit(failpoint.CompactionAfterUpload)
		os.Stdout.WriteString("passed the armed point\n")
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHitKillsTheProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", failpoint.EnvVar+"="+failpoint.CompactionAfterUpload)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child: %v, want killed\n%s", err, out)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL\n%s", exit, out)
	}
	s := string(out)
	if !strings.Contains(s, "passed the unarmed point") || strings.Contains(s, "passed the armed point") ||
		!strings.Contains(s, "failpoint compaction.after-upload: SIGKILL") {
		t.Fatalf("child output:\n%s", s)
	}
}

// TestUnknownNameStopsTheProcess: a typo in STRATA_FAILPOINTS stops the
// process at start, exit status 2.
func TestUnknownNameStopsTheProcess(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), failpoint.EnvVar+"=janitor.after-delet")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), `unknown failpoint "janitor.after-delet"`) {
		t.Fatalf("child: %v, want exit status 2 naming the point\n%s", err, out)
	}
}

// BenchmarkHitUnarmed is the cost of a point in production (none armed).
func BenchmarkHitUnarmed(b *testing.B) {
	for b.Loop() {
		failpoint.Hit(failpoint.CompactionAfterUpload)
	}
}
