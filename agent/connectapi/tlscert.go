package connectapi

// The API port's certificate: loaded at start (a bad pair is a startup
// error) and read again when its files change, so a renewed certificate
// (cert-manager, certbot, a Kubernetes secret) takes effect at the next TLS
// handshake without a restart.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader hands out the certificate of certFile and keyFile, reading
// them again when either one's modification time or size changed since
// the last read. A pair that does not load (a renewal half written: the
// new certificate beside the old key) leaves the last good one in use; the
// next change is tried again.
type certReloader struct {
	certFile, keyFile string

	mu     sync.Mutex
	cert   *tls.Certificate
	stamps [2]fileStamp // of certFile and keyFile as last read
	log    *slog.Logger // nil until Serve sets it
}

// fileStamp tells whether a file changed; os.Stat follows symlinks, so the
// symlink swap of a Kubernetes secret volume counts as a change.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampFiles(certFile, keyFile string) ([2]fileStamp, error) {
	var stamps [2]fileStamp
	for i, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return stamps, err
		}
		stamps[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return stamps, nil
}

// newCertReloader loads the pair; its errors name both flags and files.
func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	stamps, _ := stampFiles(certFile, keyFile) // a missing file fails the load below
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &certReloader{certFile: certFile, keyFile: keyFile, cert: cert, stamps: stamps}, nil
}

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate (tls-cert %s, tls-key %s): %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // LoadX509KeyPair fills it since Go 1.23; be sure
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("load TLS certificate (tls-cert %s): %w", certFile, err)
		}
	}
	return &cert, nil
}

func (r *certReloader) setLogger(log *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = log
}

// current is the certificate in use; it reads the files again first if
// they changed. tls.Config.GetCertificate calls it on every handshake: two
// stats when nothing changed.
func (r *certReloader) current() *tls.Certificate {
	stamps, statErr := stampFiles(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if statErr != nil || stamps == r.stamps {
		// A file missing for a moment (being replaced) keeps the old pair.
		return r.cert
	}
	r.stamps = stamps
	cert, err := loadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.log != nil {
			r.log.Warn("the TLS certificate files changed but do not load; still serving the previous certificate",
				"err", err, "tls_not_after", r.cert.Leaf.NotAfter)
		}
		return r.cert
	}
	r.cert = cert
	if r.log != nil {
		r.log.Info("TLS certificate reloaded", "tls_subject", cert.Leaf.Subject.String(),
			"tls_dns_names", cert.Leaf.DNSNames, "tls_not_after", cert.Leaf.NotAfter)
	}
	return cert
}

// logCertificate logs the certificate in use, warning when it expired.
func (r *certReloader) logCertificate(ctx context.Context, log *slog.Logger) {
	leaf := r.current().Leaf
	level := slog.LevelInfo
	msg := "TLS certificate"
	if time.Now().After(leaf.NotAfter) {
		level, msg = slog.LevelWarn, "the API port's TLS certificate has expired: clients will refuse it"
	}
	log.Log(ctx, level, msg, "tls_cert", r.certFile, "tls_subject", leaf.Subject.String(),
		"tls_dns_names", leaf.DNSNames, "tls_not_after", leaf.NotAfter)
}
