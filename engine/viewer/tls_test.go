package viewer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/approval"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/viewer"
)

// cert makes a certificate for cn signed by parent (self-signed when nil).
func cert(t *testing.T, cn string, ca bool, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: ca, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	must(t, err)
	leaf, err := x509.ParseCertificate(der)
	must(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestClientCertificateNamesTheApprover: with client certificates, the
// certificate's common name is the user an approval is recorded under; a
// client without one does not get in.
func TestClientCertificateNamesTheApprover(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, stateDir: dir + "/.runbook"}
	id, _ := e.synth(gateRunbook, []string{"a"}, []string{"gate"}, true)
	ca := cert(t, "test CA", true, nil)
	client := cert(t, "carol", false, &ca)
	a, err := viewer.NewAuth(viewer.AuthConfig{Listen: "0.0.0.0:8443", ClientCerts: true})
	must(t, err)
	rs, err := session.New(session.Options{StateDir: e.stateDir, Getenv: func(string) string { return "" }})
	must(t, err)
	v, err := viewer.New(viewer.Options{Runs: rs, Store: journal.NewLocal(e.stateDir), Auth: a,
		Approve: func(runID, step, by string, ok bool) error { return approval.Write(e.stateDir, runID, step, by, ok) }})
	must(t, err)
	srv := httptest.NewUnstartedServer(v)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	defer v.Close()

	anon := srv.Client()
	if resp, err := anon.Get(srv.URL + "/api/runs"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	c := srv.Client()
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{client}
	req, _ := http.NewRequest("POST", srv.URL+"/api/runs/"+id+"/approve", strings.NewReader(`{"step":"gate","decision":"approve"}`))
	req.Header.Set("Origin", srv.URL)
	resp, err := c.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("certificate, no form token: %d, want 403", resp.StatusCode)
	}
	page, err := c.Get(srv.URL + "/runs/" + id)
	must(t, err)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil || !strings.Contains(string(body), "signed in as carol") {
		t.Fatalf("run page: %s", body)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/api/runs/"+id+"/approve", strings.NewReader(`{"step":"gate","decision":"approve"}`))
	req.Header.Set("Origin", srv.URL)
	req.Header.Set("X-CSRF-Token", m[1])
	for _, ck := range page.Cookies() {
		req.AddCookie(ck)
	}
	resp, err = c.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approval: %d", resp.StatusCode)
	}
	ap, err := os.ReadFile(approval.Path(e.stateDir, id, "gate"))
	if err != nil || !strings.Contains(string(ap), `"approved_by":"carol"`) {
		t.Errorf("approval %s (%v): want approved by carol", ap, err)
	}
}
