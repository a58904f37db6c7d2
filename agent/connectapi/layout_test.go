package connectapi_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFrontEndsArePeers: the Connect front-end does not depend on the Kafka
// front-end (DESIGN.md, "The layout"); what both need is in the core.
func TestFrontEndsArePeers(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	found := false
	for _, dep := range deps {
		if dep == "github.com/stratabroker/strata/agent" {
			found = true
		}
		if dep == "github.com/stratabroker/strata/kafka" || strings.HasPrefix(dep, "github.com/stratabroker/strata/kafka/") {
			t.Errorf("package connectapi depends on %s", dep)
		}
	}
	if !found {
		t.Fatalf("go list -deps does not list the core, package agent: %q", out)
	}
}
