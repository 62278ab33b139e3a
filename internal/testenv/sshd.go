package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is a private OpenSSH server on 127.0.0.1, with host and user keys
// generated for the test. It serves sftp (internal-sftp).
type SSHD struct {
	Host string
	Port int
	// User is the account the tests log in as (the current user).
	User string
	// IdentityFile is the user's private key (unencrypted OpenSSH format).
	IdentityFile string
	// KnownHosts is a known_hosts file that holds the server's host key.
	KnownHosts string
	// Dir holds the keys, config and log.
	Dir string
}

// Addr is "host:port".
func (s *SSHD) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL is "ssh://user@host:port" followed by path.
func (s *SSHD) URL(path string) string {
	return fmt.Sprintf("ssh://%s@%s%s", s.User, s.Addr(), path)
}

// WrongKnownHosts writes a known_hosts file that pins another key for the
// server's address, as after a man-in-the-middle or a reinstall.
func (s *SSHD) WrongKnownHosts(t testing.TB) string {
	t.Helper()
	_, pub := newKeyPair(t, filepath.Join(s.Dir, "other_host_key"))
	p := filepath.Join(s.Dir, "wrong_known_hosts")
	writeFile(t, p, knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, pub)+"\n", 0o600)
	return p
}

// StartSSHD starts sshd on a free loopback port and stops it when the test
// ends. When sshd is not installed or does not start, the test is skipped
// (or fails in CI) through Unavailable.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	sshdBin := "/usr/sbin/sshd"
	if _, err := os.Stat(sshdBin); err != nil {
		Unavailable(t, "sshd not installed (%v)", err)
	}
	u, err := user.Current()
	if err != nil {
		Unavailable(t, "current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd's privilege-separation directory must exist.
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	dir := t.TempDir()
	s := &SSHD{Host: "127.0.0.1", User: u.Username, Dir: dir,
		IdentityFile: filepath.Join(dir, "user_key"), KnownHosts: filepath.Join(dir, "known_hosts")}
	_, hostPub := newKeyPair(t, filepath.Join(dir, "host_key"))
	_, userPub := newKeyPair(t, s.IdentityFile)
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(ssh.MarshalAuthorizedKey(userPub)), 0o600)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.Port = FreePort(t)
		cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
PidFile %s
Subsystem sftp internal-sftp
UsePAM no
LogLevel ERROR
`, s.Port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
		cfgPath := filepath.Join(dir, "sshd_config")
		writeFile(t, cfgPath, cfg, 0o600)
		logf, err := os.Create(filepath.Join(dir, "sshd.log"))
		if err != nil {
			t.Fatalf("sshd log: %v", err)
		}
		cmd := exec.Command(sshdBin, "-D", "-e", "-f", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			Unavailable(t, "start sshd: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logf.Close() }()
		if lastErr = waitListening(s.Addr(), exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			writeFile(t, s.KnownHosts, knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, hostPub)+"\n", 0o600)
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
	Unavailable(t, "sshd did not start: %v\n%s", lastErr, log)
	return nil
}

func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("sshd exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("sshd not listening on %s after 10s", addr)
}

// newKeyPair writes a fresh ed25519 private key to path (and path.pub).
func newKeyPair(t testing.TB, path string) (ssh.Signer, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	writeFile(t, path, string(pem.EncodeToMemory(blk)), 0o600)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	writeFile(t, path+".pub", string(ssh.MarshalAuthorizedKey(signer.PublicKey())), 0o644)
	return signer, signer.PublicKey()
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
