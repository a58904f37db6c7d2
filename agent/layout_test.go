package agent_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreImportsNoFrontEnd holds DESIGN.md's layout: the core depends on
// neither front-end, nor on Connect, so that each front-end is a peer over
// it. (objectlog's segment format is Kafka's RecordBatch, encoded with
// franz-go's kmsg: that is storage, not the Kafka protocol.)
func TestCoreImportsNoFrontEnd(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"connectrpc.com/",
		"github.com/stratabroker/strata/agent/connectapi",
		"github.com/stratabroker/strata/kafka",
		"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages, want the agent's dependencies: %q", len(deps), out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("package agent depends on %s", dep)
			}
		}
	}
}
