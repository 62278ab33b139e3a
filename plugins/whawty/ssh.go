package whawty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/runbookdev/runbook/sdk"
)

// sshOptions are the inputs every action shares for ssh:// locations.
type sshOptions struct {
	KnownHosts   string `cty:"known_hosts"`
	IdentityFile string `cty:"identity_file"`
}

// dialTimeout bounds connecting and the SSH handshake.
const dialTimeout = 20 * time.Second

// conns opens one transport per host and closes them all at the end of an
// action. fs is safe for concurrent use, and so are the file systems.
type conns struct {
	opts sshOptions
	// local is the local disk (replaceable in tests).
	local fileSystem
	mu    sync.Mutex // guards open; held while dialing so one host gets one connection
	// open maps a location's hostKey to its SFTP file system.
	open map[string]*sftpFS
}

func newConns(opts sshOptions) *conns {
	return &conns{opts: opts, local: localFS{}, open: map[string]*sftpFS{}}
}

// fs returns the file system loc lives on, connecting if needed.
func (c *conns) fs(ctx context.Context, loc location) (fileSystem, error) {
	if loc.SSH == nil {
		return c.local, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.open[loc.hostKey()]; ok {
		return f, nil
	}
	f, err := dialSFTP(ctx, loc.SSH, c.opts)
	if err != nil {
		return nil, err
	}
	c.open[loc.hostKey()] = f
	return f, nil
}

// Close closes every connection.
func (c *conns) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, f := range c.open {
		_ = f.Close()
		delete(c.open, k)
	}
}

func homeFile(name string) string {
	h, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(h, ".ssh", name)
}

// authMethods builds the client's auth methods: the identity file when
// given, else the agent (SSH_AUTH_SOCK) and the default key files.
func authMethods(opts sshOptions) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	cleanup := func() {}
	var files []string
	if opts.IdentityFile != "" {
		files = []string{opts.IdentityFile}
	} else {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := homeFile(n); p != "" {
				files = append(files, p)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if opts.IdentityFile == "" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, cleanup, sdk.Errorf(sdk.KindInvalid, false,
				"check identity_file points at a readable private key", "read identity file %s: %v", f, err)
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) && opts.IdentityFile == "" {
				continue // encrypted default key: leave it to the agent
			}
			return nil, cleanup, sdk.Errorf(sdk.KindInvalid, false,
				"use an unencrypted key file, or load the key into ssh-agent and leave identity_file empty",
				"parse identity file %s: %v", f, err)
		}
		signers = append(signers, s)
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && opts.IdentityFile == "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			cleanup = func() { _ = conn.Close() }
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	if len(methods) == 0 {
		return nil, cleanup, sdk.Errorf(sdk.KindAuth, false,
			"set identity_file, or start ssh-agent with the key loaded (SSH_AUTH_SOCK)",
			"no ssh key available: no identity_file, no agent and no default key in ~/.ssh")
	}
	return methods, cleanup, nil
}

func hostKeyCallback(opts sshOptions) (ssh.HostKeyCallback, string, error) {
	kh := opts.KnownHosts
	if kh == "" {
		kh = homeFile("known_hosts")
	}
	cb, err := knownhosts.New(kh)
	if err != nil {
		return nil, kh, sdk.Errorf(sdk.KindInvalid, false,
			"set known_hosts to a readable known_hosts file holding the hosts' keys",
			"read known_hosts %s: %v", kh, err)
	}
	return cb, kh, nil
}

// dialSFTP connects to t and starts the sftp subsystem.
func dialSFTP(ctx context.Context, t *sshTarget, opts sshOptions) (*sftpFS, error) {
	hkcb, khFile, err := hostKeyCallback(opts)
	if err != nil {
		return nil, err
	}
	methods, cleanup, err := authMethods(opts)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            methods,
		HostKeyCallback: hkcb,
		Timeout:         dialTimeout,
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", t.addr())
	if err != nil {
		cleanup()
		return nil, classifyDial(t, err)
	}
	// The handshake has no context: bound it with a deadline and close the
	// connection if ctx ends first.
	_ = nc.SetDeadline(time.Now().Add(dialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.addr(), cfg)
	stop()
	if err != nil {
		cleanup()
		_ = nc.Close()
		return nil, classifyHandshake(t, khFile, err)
	}
	_ = nc.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	s := &sftpFS{ssh: client, cleanup: cleanup, target: t, more: make(chan struct{})}
	first, err := newSFTPClient(client)
	if err != nil {
		_ = client.Close()
		cleanup()
		return nil, sdk.Errorf(sdk.KindUnreachable, false,
			"enable the sftp subsystem in the host's sshd_config (Subsystem sftp internal-sftp)",
			"start sftp on %s: %v", t.addr(), err)
	}
	s.clients.Store(&[]*sftp.Client{first})
	// The other sessions start in the background: the first is enough for
	// a snapshot's few requests, and each session costs the server a
	// round trip or two to set up.
	go func() {
		defer close(s.more)
		all := []*sftp.Client{first}
		for i := 1; i < sftpSessions; i++ {
			c, err := newSFTPClient(client)
			if err != nil {
				break // the server limits sessions (or the connection closed): use what we have
			}
			all = append(all, c)
		}
		s.clients.Store(&all)
	}()
	return s, nil
}

func newSFTPClient(c *ssh.Client) (*sftp.Client, error) {
	return sftp.NewClient(c, sftp.UseConcurrentReads(true), sftp.UseConcurrentWrites(true))
}

// sftpSessions is how many SFTP sessions one connection opens: the server
// handles each session's requests in order, so several sessions let many
// small-file reads proceed in parallel.
const sftpSessions = 4

func classifyDial(t *sshTarget, err error) error {
	return sdk.Errorf(sdk.KindUnreachable, true,
		"check that the host is up, the port is right and sshd listens on it",
		"connect to %s: %v", t.addr(), err)
}

func classifyHandshake(t *sshTarget, khFile string, err error) error {
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		if len(ke.Want) == 0 {
			return sdk.Errorf(sdk.KindAuth, false,
				fmt.Sprintf("verify the host's key fingerprint out of band, then add it to %s (ssh-keyscan -p %d %s)", khFile, t.Port, t.Host),
				"host %s is not in %s", t.addr(), khFile)
		}
		return sdk.Errorf(sdk.KindAuth, false,
			fmt.Sprintf("the host key of %s differs from %s: someone may be intercepting the connection, or the host was reinstalled; verify it before updating known_hosts", t.addr(), khFile),
			"host key mismatch for %s", t.addr())
	}
	var rk *knownhosts.RevokedError
	if errors.As(err, &rk) {
		return sdk.Errorf(sdk.KindAuth, false, "the host presents a revoked key; do not connect until it is replaced",
			"host key of %s is revoked", t.addr())
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return sdk.Errorf(sdk.KindAuth, false,
			fmt.Sprintf("check that the key is in %s's authorized_keys on the host", t.User),
			"ssh authentication as %s on %s failed: %v", t.User, t.addr(), err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) {
		return sdk.Errorf(sdk.KindUnreachable, true, "check that sshd on the host is healthy and reachable",
			"ssh handshake with %s: %v", t.addr(), err)
	}
	return sdk.Errorf(sdk.KindUnreachable, true, "check the ssh server's log",
		"ssh handshake with %s: %v", t.addr(), err)
}

// sftpFS is a remote file system over SFTP.
type sftpFS struct {
	// clients are the sessions on the ssh connection: one at first, all
	// of them once the background start-up (which closes more) is done.
	// Each stored slice is immutable.
	clients atomic.Pointer[[]*sftp.Client]
	more    chan struct{}
	next    atomic.Uint32 // round-robin index into clients
	ssh     *ssh.Client
	cleanup func()
	target  *sshTarget
	// noExec disables Snapshot (the host allows no commands, or has no
	// GNU tar).
	noExec atomic.Bool
}

// client picks the next session.
func (s *sftpFS) client() *sftp.Client {
	cs := *s.clients.Load()
	return cs[int(s.next.Add(1))%len(cs)]
}

var _ fileSystem = (*sftpFS)(nil)

func (s *sftpFS) Close() error {
	err := s.ssh.Close() // also ends a background session start-up
	<-s.more
	for _, c := range *s.clients.Load() {
		_ = c.Close()
	}
	s.cleanup()
	return err
}

func (s *sftpFS) Parallelism() int { return 32 }

func sftpEntry(name string, fi fs.FileInfo) entry {
	e := entry{Name: name, Mode: fi.Mode(), Size: fi.Size(), UID: -1, GID: -1,
		Regular: fi.Mode().IsRegular(), Dir: fi.IsDir()}
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		e.UID, e.GID = int(st.UID), int(st.GID)
	}
	return e
}

func (s *sftpFS) ReadDir(dir string) ([]entry, error) {
	fis, err := s.client().ReadDir(dir)
	if err != nil {
		return nil, s.wrap(err)
	}
	out := make([]entry, 0, len(fis))
	for _, fi := range fis {
		out = append(out, sftpEntry(fi.Name(), fi))
	}
	return out, nil
}

func (s *sftpFS) ReadFiles(ctx context.Context, dir string, names []string) (map[string]fileData, error) {
	return parallelRead(ctx, s.Parallelism(), dir, names, func(name string, _ *reader) (fileData, error) {
		b, err := s.ReadFile(path.Join(dir, name))
		return fileData{Data: b}, err
	})
}

// smallRead is enough for any hash file: one read request does.
const smallRead = 4096

func (s *sftpFS) ReadFile(p string) ([]byte, error) {
	f, err := s.client().Open(p)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer f.Close()
	buf := make([]byte, smallRead)
	n, err := f.ReadAt(buf, 0)
	switch {
	case n < smallRead && (err == nil || errors.Is(err, io.EOF)):
		return buf[:n], nil
	case err != nil && !errors.Is(err, io.EOF):
		return nil, s.wrap(err)
	}
	rest, err := io.ReadAll(io.NewSectionReader(f, int64(n), 1<<62))
	return append(buf[:n], rest...), s.wrap(err)
}

func (s *sftpFS) Stat(p string) (entry, error) {
	fi, err := s.client().Lstat(p)
	if err != nil {
		return entry{}, s.wrap(err)
	}
	return sftpEntry(path.Base(p), fi), nil
}

func (s *sftpFS) Readlink(p string) (string, error) {
	t, err := s.client().ReadLink(p)
	return t, s.wrap(err)
}

func (s *sftpFS) WriteAtomic(p, tmpDir string, data []byte, perm fs.FileMode, uid, gid int) error {
	tmp, err := s.Stage(tmpDir, data, perm, uid, gid)
	if err != nil {
		return err
	}
	if err := s.Rename(tmp, p); err != nil {
		_ = s.client().Remove(tmp)
		return err
	}
	return nil
}

// Stage writes and fsyncs (fsync@openssh.com) the temp file: SFTP has no
// way to sync a whole file system, and staging runs in parallel.
func (s *sftpFS) Stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int) (tmp string, err error) {
	tmp = path.Join(tmpDir, tempName())
	c := s.client()
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return "", s.wrap(err)
	}
	defer func() {
		if err != nil {
			_ = c.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err == nil {
		_, err = f.Write(data)
	}
	if err == nil && uid >= 0 && gid >= 0 {
		if cerr := f.Chown(uid, gid); cerr != nil && !os.IsPermission(cerr) && !errors.Is(cerr, fs.ErrPermission) {
			err = cerr
		}
	}
	if err == nil {
		if serr := f.Sync(); serr != nil && !errors.Is(serr, sftp.ErrSSHFxOpUnsupported) {
			err = serr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tmp, s.wrap(err)
}

func (s *sftpFS) Flush(string) error { return nil }

func (s *sftpFS) Rename(oldPath, newPath string) error {
	return s.wrap(s.client().PosixRename(oldPath, newPath))
}

func (s *sftpFS) SyncDir(string) {}

func (s *sftpFS) Remove(p string) error { return s.wrap(s.client().Remove(p)) }

func (s *sftpFS) Mkdir(p string, perm fs.FileMode) error {
	c := s.client()
	if err := c.Mkdir(p); err != nil {
		return s.wrap(err)
	}
	return s.wrap(c.Chmod(p, perm))
}

func (s *sftpFS) Chmod(p string, perm fs.FileMode) error { return s.wrap(s.client().Chmod(p, perm)) }

// wrap maps SFTP status codes to fs errors so callers can use errors.Is,
// and a lost connection to KindUnreachable.
func (s *sftpFS) wrap(err error) error {
	if err == nil {
		return nil
	}
	var se *sftp.StatusError
	if errors.As(err, &se) {
		switch se.FxCode() {
		case sftp.ErrSSHFxNoSuchFile:
			return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
		case sftp.ErrSSHFxPermissionDenied:
			return fmt.Errorf("%w: %v", fs.ErrPermission, err)
		}
		return err
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	if errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return sdk.Errorf(sdk.KindUnreachable, true, "check the network and the ssh server, then retry",
			"connection to %s lost: %v", s.target.addr(), err)
	}
	return err
}
