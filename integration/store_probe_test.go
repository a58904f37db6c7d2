package integration

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestAgentRefusesAMissingBucket: an agent whose store URL names a bucket
// that does not exist on MinIO exits at startup, saying so and how to fix
// it, instead of serving and failing every produce after its delivery
// timeout; with create_bucket=true the same URL starts.
func TestAgentRefusesAMissingBucket(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	missing := bucketName(t) + "-missing"
	store := fmt.Sprintf("s3://%s/strata?endpoint=%s&insecure=true", missing, d.s3.Endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, "agent", "--listen", freeAddr(t), "--admin-listen", "",
		"--store", store, "--index", d.indexURL)
	cmd.Env = childEnv(d.credentialsEnv()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	setParentDeathSignal(cmd)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the agent was still running after a minute on a missing bucket:\n%s", stderr.String())
	}
	if err == nil || !strings.Contains(stderr.String(), "bucket "+missing+" does not exist") || !strings.Contains(stderr.String(), "create_bucket=true") {
		t.Fatalf("agent on a missing bucket: %v\n%s\nwant a failed start naming the bucket and create_bucket=true", err, stderr.String())
	}

	srv := startServer(t, "created", func(addr string) ([]string, []string) {
		return []string{"agent", "--listen", addr, "--admin-listen", "", "--store", store + "&create_bucket=true", "--index", d.indexURL},
			childEnv(d.credentialsEnv()...)
	})
	mustCLI(t, nil, "topic", "create", "probe", "--addr", srv.url())
}
