package sdk

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"time"
)

// Mutual TLS between the engine and a plugin process.
//
// Every launch gets fresh keys: the engine generates an Ed25519 key pair and
// self-signed certificate for itself and another for the plugin, and hands
// the plugin its key pair and the engine's certificate through a pipe the
// plugin inherits (file descriptor number in EnvTransportFD). Each side
// trusts exactly the other's certificate, so only the process that was
// started can serve, and only the engine that started it can call.
//
// This is go-plugin's AutoMTLS scheme with two changes: Ed25519 instead of
// P-521 (P-521 key generation, signing and verification cost the two
// processes about 20 ms of CPU per launch, Ed25519 well under 1 ms), and
// the plugin's key travels over a private pipe instead of being generated
// by the plugin and printed on its stdout. A plugin launched by a go-plugin
// host that uses AutoMTLS instead still works: without EnvTransportFD the
// plugin falls back to AutoMTLS.

// EnvTransportFD names the environment variable holding the number of the
// inherited file descriptor that carries the plugin's TLS material.
const EnvTransportFD = "RUNBOOK_PLUGIN_TLS_FD"

// TransportKeys is the TLS material of one plugin launch, made by the host.
type TransportKeys struct {
	// Client is the engine side's TLS configuration.
	Client *tls.Config
	// Payload is written to the pipe the plugin inherits.
	Payload []byte
}

// NewTransportKeys makes fresh keys and certificates for one launch.
func NewTransportKeys() (*TransportKeys, error) {
	clientCert, clientDER, err := selfSigned("runbook engine")
	if err != nil {
		return nil, err
	}
	serverCert, serverDER, err := selfSigned("runbook plugin")
	if err != nil {
		return nil, err
	}
	serverLeaf, err := x509.ParseCertificate(serverDER)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverLeaf)
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverCert.PrivateKey)
	if err != nil {
		return nil, err
	}
	var payload []byte
	payload = append(payload, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER})...)
	payload = append(payload, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER})...)
	payload = append(payload, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	return &TransportKeys{
		Client: &tls.Config{
			Certificates:     []tls.Certificate{clientCert},
			RootCAs:          roots,
			ServerName:       "localhost",
			MinVersion:       tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.X25519},
		},
		Payload: payload,
	}, nil
}

// StartTransportKeys makes the TLS material of one launch in the background
// and returns at once: the plugin process can start meanwhile (it reads its
// part only when it sets up its server, after its own start-up). The
// plugin's part is written to w, which is then closed; the returned engine
// side's configuration waits for the keys when a handshake needs them and
// accepts exactly the plugin's certificate, as NewTransportKeys' does.
func StartTransportKeys(w io.WriteCloser) *tls.Config {
	ready := make(chan struct{})
	var keys *TransportKeys // set before ready is closed
	var kerr error
	go func() {
		defer close(ready)
		keys, kerr = NewTransportKeys()
		if kerr == nil {
			_, kerr = w.Write(keys.Payload)
		}
		if cerr := w.Close(); kerr == nil {
			kerr = cerr
		}
		if kerr != nil {
			kerr = fmt.Errorf("transport keys: %w", kerr)
		}
	}()
	wait := func() (*TransportKeys, error) {
		<-ready
		return keys, kerr
	}
	return &tls.Config{
		ServerName:       "localhost",
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			k, err := wait()
			if err != nil {
				return nil, err
			}
			return &k.Client.Certificates[0], nil
		},
		// The keys do not exist yet when the configuration is made, so the
		// usual verification against RootCAs is done by hand, once they do.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			k, err := wait()
			if err != nil {
				return err
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the plugin presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: k.Client.RootCAs, DNSName: k.Client.ServerName, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("tls: plugin certificate: %w", err)
			}
			return nil
		},
	}
}

// serverTLS builds the plugin side's TLS configuration from the payload.
func serverTLS(payload []byte) (*tls.Config, error) {
	var blocks []*pem.Block
	for rest := payload; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) != 3 {
		return nil, fmt.Errorf("transport keys: want 3 PEM blocks, got %d", len(blocks))
	}
	clientLeaf, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("transport keys: engine certificate: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[2].Bytes)
	if err != nil {
		return nil, fmt.Errorf("transport keys: plugin key: %w", err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(clientLeaf)
	return &tls.Config{
		Certificates:     []tls.Certificate{{Certificate: [][]byte{blocks[1].Bytes}, PrivateKey: key}},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        clients,
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}, nil
}

// inheritedTLS is the plugin's go-plugin TLSProvider: it reads the TLS
// material from the inherited pipe, or returns nil (go-plugin then uses
// AutoMTLS if the host asked for it) when there is none.
func inheritedTLS() (*tls.Config, error) {
	v, ok := os.LookupEnv(EnvTransportFD)
	if !ok {
		return nil, nil
	}
	// Children of the plugin (core.exec commands) must not see it.
	os.Unsetenv(EnvTransportFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not an inherited file descriptor", EnvTransportFD, v)
	}
	f := os.NewFile(uintptr(fd), "transport-keys")
	if f == nil {
		return nil, fmt.Errorf("%s=%d: no such file descriptor", EnvTransportFD, fd)
	}
	defer f.Close()
	payload, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read transport keys: %w", err)
	}
	if len(payload) == 0 {
		return nil, errors.New("read transport keys: the pipe is empty")
	}
	return serverTLS(payload)
}

// selfSigned makes an Ed25519 key and a self-signed certificate for
// "localhost". It lives as long as the one plugin process it is made for,
// so its validity is long: a run may wait days at an approval gate.
func selfSigned(cn string) (tls.Certificate, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"runbook"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, der, nil
}
