package whawty

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestZZProf(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	dir := t.TempDir()
	master := filepath.Join(dir, "m")
	line := func() string {
		salt, hash := make([]byte, 16), make([]byte, 32)
		_, _ = rand.Read(salt)
		_, _ = rand.Read(hash)
		return fmt.Sprintf("argon2id:1700000000:2:%s:%s\n", b64url.EncodeToString(salt), b64url.EncodeToString(hash))
	}
	files := map[string]string{"root.admin": line()}
	for i := 0; i < 100000; i++ {
		files[fmt.Sprintf("user%06d.user", i)] = line()
	}
	newStore(t, master, files)
	slave := filepath.Join(dir, "s")
	exec.Command("cp", "-a", master, slave).Run()
	for i := 0; i < 1000; i++ {
		os.WriteFile(filepath.Join(master, fmt.Sprintf("user%06d.user", i*97)), []byte(line()), 0o600)
	}
	exec.Command("sync").Run()
	c := newConns(sshOptions{})
	t0 := time.Now()
	ents, _ := localFS{}.ReadDir(master)
	t.Logf("readdir src %v (%d)", time.Since(t0), len(ents))
	t0 = time.Now()
	s, _ := scanStore(t.Context(), localFS{}, master, nil)
	t.Logf("scan src %v (%d)", time.Since(t0), len(s.Files))
	t0 = time.Now()
	s2, _ := scanStore(t.Context(), localFS{}, slave, nil)
	t.Logf("scan dst %v (%d)", time.Since(t0), len(s2.Files))
	t0 = time.Now()
	s, _ = scanStore(t.Context(), localFS{}, master, nil)
	t.Logf("scan src again %v (%d)", time.Since(t0), len(s.Files))
	t0 = time.Now()
	p, err := planSync(t.Context(), c, master, slave)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plan %v ops=%d", time.Since(t0), len(p.Ops))
	t0 = time.Now()
	u := &syncUndo{}
	var out syncOutputs
	if err := p.apply(t.Context(), u, &out, &recorder{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("apply %v", time.Since(t0))
	t0 = time.Now()
	p.verifyDestination(t.Context())
	t.Logf("verify %v", time.Since(t0))
	t0 = time.Now()
	p.DstFS.Flush(slave)
	t.Logf("apply %v", time.Since(t0))
	t0 = time.Now()
	u.marshal()
	t.Logf("marshal %v", time.Since(t0))
	t0 = time.Now()
	exec.Command("rsync", "-rlpt", "--delete", "-c", master+"/", slave+"/").Run()
	t.Logf("rsync noop %v", time.Since(t0))
}
