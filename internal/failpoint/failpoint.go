// Package failpoint kills its own process (SIGKILL) at named points of the
// agent's multi-step work, for tests of what a crash at exactly that step
// leaves behind. It is test-only machinery: production never sets
// STRATA_FAILPOINTS, and an unset variable makes Hit one load and one
// compare.
//
// STRATA_FAILPOINTS is read once, when the process starts: a
// comma-separated list of the names below. A name not in the list stops the
// process at start with exit status 2, so that a typo in a test cannot
// silently arm nothing.
//
// A kill -9 sent from outside after a log line lands wherever the process
// happens to be by then; a failpoint lands between two exact instructions,
// which is what the crash tests of compaction and garbage collection need
// (integration/failpoint_test.go).
//
// failpoint imports nothing of Strata; agent code calls Hit.
package failpoint

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// The points the agent has. Each is hit on every pass through it; the first
// hit of an armed point kills the process.
const (
	// CompactionAfterUpload: a compaction job uploaded all its Parquet
	// files and has not swapped them into the index yet (agent/compactor.go
	// step 3 to 4). The files are orphans; the index still points at the
	// hot segments.
	CompactionAfterUpload = "compaction.after-upload"
	// CompactionAfterSwap: the index swap succeeded (the archive's entries
	// replaced the hot ones and the segments went to the released set);
	// the job has not released its lease.
	CompactionAfterSwap = "compaction.after-swap"
	// JanitorAfterDelete: the janitor deleted an object (segment or archive
	// file) and has not yet removed the index's references to it (released
	// set, segment refs) (agent/janitor.go collect).
	JanitorAfterDelete = "janitor.after-delete"
)

// Names lists every point, for the check of STRATA_FAILPOINTS.
var Names = []string{CompactionAfterUpload, CompactionAfterSwap, JanitorAfterDelete}

// EnvVar is the environment variable that arms points.
const EnvVar = "STRATA_FAILPOINTS"

// armed is nil unless STRATA_FAILPOINTS named a point.
var armed map[string]bool

func init() {
	var err error
	if armed, err = Parse(os.Getenv(EnvVar)); err != nil {
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		os.Exit(2)
	}
}

// Parse reads a STRATA_FAILPOINTS value: nil for an empty one, an error
// naming the known points for an unknown name.
func Parse(v string) (map[string]bool, error) {
	var out map[string]bool
	for name := range strings.SplitSeq(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(Names, name) {
			return nil, fmt.Errorf("%s: unknown failpoint %q (known: %s)", EnvVar, name, strings.Join(Names, ", "))
		}
		if out == nil {
			out = map[string]bool{}
		}
		out[name] = true
	}
	return out, nil
}

// Hit kills the process with SIGKILL if the point name is armed, after
// writing "failpoint <name>: SIGKILL" to stderr (the test's proof that the
// kill came from here). It does not return then.
func Hit(name string) {
	if armed == nil || !armed[name] {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: SIGKILL\n", name)
	killSelf()
	select {} // the signal is on its way; nothing after the point may run
}
