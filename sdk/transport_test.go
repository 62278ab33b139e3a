package sdk

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// handshake runs a TLS handshake between client and server configs over a
// loopback connection and returns the client's and the server's errors.
func handshake(t *testing.T, client, server *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		sc := tls.Server(c, server)
		sc.SetDeadline(time.Now().Add(5 * time.Second))
		err = sc.Handshake()
		if err == nil {
			// TLS 1.3: the client's certificate is checked after the
			// client's handshake returns; read to see the verdict.
			_, err = sc.Read(make([]byte, 1))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc := tls.Client(c, client)
	cc.SetDeadline(time.Now().Add(5 * time.Second))
	cerr = cc.Handshake()
	if cerr == nil {
		_, cerr = cc.Write([]byte{1})
		if cerr == nil {
			_, cerr = cc.Read(make([]byte, 1)) // the server's alert, if any
			if errors.Is(cerr, os.ErrDeadlineExceeded) {
				cerr = nil
			}
		}
	}
	cc.Close()
	return cerr, <-done
}

func TestTransportKeysAreMutual(t *testing.T) {
	keys, err := NewTransportKeys()
	if err != nil {
		t.Fatal(err)
	}
	server, err := serverTLS(keys.Payload)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewTransportKeys()
	if err != nil {
		t.Fatal(err)
	}
	otherServer, err := serverTLS(other.Payload)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("matching keys", func(t *testing.T) {
		cerr, serr := handshake(t, keys.Client, server)
		if serr != nil && !strings.Contains(serr.Error(), "EOF") {
			t.Fatalf("server: %v", serr)
		}
		if cerr != nil && !strings.Contains(cerr.Error(), "EOF") {
			t.Fatalf("client: %v", cerr)
		}
	})
	t.Run("engine refuses a server it did not start", func(t *testing.T) {
		cerr, _ := handshake(t, keys.Client, otherServer)
		if cerr == nil || !strings.Contains(cerr.Error(), "certificate") {
			t.Fatalf("client error = %v, want a certificate error", cerr)
		}
	})
	t.Run("plugin refuses an engine that did not start it", func(t *testing.T) {
		// Trusts the right server, but presents another engine's
		// certificate.
		intruder := keys.Client.Clone()
		intruder.Certificates = other.Client.Certificates
		_, serr := handshake(t, intruder, server)
		if serr == nil || !strings.Contains(serr.Error(), "certificate") {
			t.Fatalf("server error = %v, want a certificate error", serr)
		}
	})
	t.Run("plugin refuses a client without certificate", func(t *testing.T) {
		anon := keys.Client.Clone()
		anon.Certificates = nil
		_, serr := handshake(t, anon, server)
		if serr == nil || !strings.Contains(serr.Error(), "certificate") {
			t.Fatalf("server error = %v, want a certificate error", serr)
		}
	})
}

func TestInheritedTLS(t *testing.T) {
	keys, err := NewTransportKeys()
	if err != nil {
		t.Fatal(err)
	}
	pipeWith := func(t *testing.T, data []byte) string {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		defer r.Close()
		// inheritedTLS closes the descriptor it is given: give it its own.
		fd, err := syscall.Dup(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(fd)
	}

	t.Run("no variable: go-plugin's own TLS", func(t *testing.T) {
		os.Unsetenv(EnvTransportFD)
		cfg, err := inheritedTLS()
		if cfg != nil || err != nil {
			t.Fatalf("got %v, %v; want nil, nil", cfg, err)
		}
	})
	t.Run("keys from the pipe, variable removed", func(t *testing.T) {
		t.Setenv(EnvTransportFD, pipeWith(t, keys.Payload))
		cfg, err := inheritedTLS()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ClientAuth != tls.RequireAndVerifyClientCert || len(cfg.Certificates) != 1 {
			t.Fatalf("config does not require the engine's certificate: %+v", cfg)
		}
		if _, ok := os.LookupEnv(EnvTransportFD); ok {
			t.Fatalf("%s is still set: children of the plugin would see it", EnvTransportFD)
		}
	})
	for _, tc := range []struct{ name, value, want string }{
		{"not a number", "x", "not an inherited file descriptor"},
		{"stdio", "1", "not an inherited file descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvTransportFD, tc.value)
			if _, err := inheritedTLS(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("empty pipe", func(t *testing.T) {
		t.Setenv(EnvTransportFD, pipeWith(t, nil))
		if _, err := inheritedTLS(); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Fatalf("err = %v, want empty", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		t.Setenv(EnvTransportFD, pipeWith(t, []byte("not pem")))
		if _, err := inheritedTLS(); err == nil || !strings.Contains(err.Error(), "PEM") {
			t.Fatalf("err = %v, want a PEM error", err)
		}
	})
}

// The engine side made by StartTransportKeys waits for the keys and is as
// strict as NewTransportKeys'.
func TestStartTransportKeys(t *testing.T) {
	start := func(t *testing.T) (*tls.Config, *tls.Config) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		client := StartTransportKeys(w)
		payload, err := io.ReadAll(r) // until the background writer closes w
		if err != nil {
			t.Fatal(err)
		}
		server, err := serverTLS(payload)
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
	client, server := start(t)
	_, otherServer := start(t)
	if cerr, serr := handshake(t, client, server); (cerr != nil && !strings.Contains(cerr.Error(), "EOF")) || (serr != nil && !strings.Contains(serr.Error(), "EOF")) {
		t.Fatalf("matching keys: client %v, server %v", cerr, serr)
	}
	if cerr, _ := handshake(t, client, otherServer); cerr == nil || !strings.Contains(cerr.Error(), "certificate") {
		t.Fatalf("client error = %v, want a certificate error for a server it did not start", cerr)
	}
	// A writer that fails: the handshake reports it instead of hanging.
	bad := StartTransportKeys(failingWriter{})
	if cerr, _ := handshake(t, bad, server); cerr == nil || !strings.Contains(cerr.Error(), "transport keys") {
		t.Fatalf("client error = %v, want the transport keys' error", cerr)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }
func (failingWriter) Close() error              { return nil }
