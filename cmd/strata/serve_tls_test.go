package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stratabroker/strata/internal/testcert"
)

// TestDevServesTLS: with --tls-cert and --tls-key the dev broker's banner
// gives an https address, and a client trusting the certificate reaches the
// API there over HTTP/2.
func TestDevServesTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := testcert.Write(t, dir, "dev")
	pr, pw := io.Pipe()
	s := startServer(t, pw, "dev", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "", "--kafka-listen", "",
		"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile)
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("strata dev printed no banner; stderr:\n%s", s.stderr)
	}
	m := regexp.MustCompile(`^Strata dev broker listening on (https://127\.0\.0\.1:\d+) `).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("banner %q does not give an https address", sc.Text())
	}
	if !sc.Scan() || !strings.Contains(sc.Text(), "--addr "+m[1]) {
		t.Errorf("banner's first command lacks --addr %s: %q", m[1], sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, m[1]+"/strata.v1.AdminService/ListTopics", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Fatalf("ListTopics over TLS: %s %s: %s", resp.Proto, resp.Status, body)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "tls=true") {
		t.Errorf("the serving log does not say TLS is on:\n%s", s.stderr)
	}
}

// TestAgentBadTLSFlags: a certificate the agent cannot use stops it at
// start with an error naming the flag and the file.
func TestAgentBadTLSFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := testcert.Write(t, dir, "agent")
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--tls-cert", missing, "--tls-key", cert.KeyFile}, "tls-cert " + missing},
		{[]string{"--tls-cert", cert.CertFile, "--tls-key", missing}, "tls-key " + missing},
		{[]string{"--tls-cert", cert.CertFile}, "tls-cert and tls-key go together"},
	} {
		args := append([]string{"agent", "--store", "memory://", "--index", "memory://", "--listen", "127.0.0.1:0", "--admin-listen", ""}, tc.flags...)
		r := strata(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want a failure saying %q", tc.flags, r.code, r.stderr, tc.want)
		}
	}
}
