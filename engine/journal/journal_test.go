package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestAppendReplayConcurrent(t *testing.T) {
	s := NewLocal(t.TempDir())
	j, err := s.Create(&Meta{Runbook: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			addr := string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			if err := j.Append(&Record{Type: RecAttemptStarted, Step: addr, Attempt: 1}); err != nil {
				t.Error(err)
			}
			if err := j.Append(&Record{Type: RecStepSucceeded, Step: addr, Attempt: 1}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	j.Close()
	ids, _ := s.List()
	st, err := s.Load(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Steps) != 50 || st.Seq != 101 {
		t.Fatalf("got %d steps, seq %d", len(st.Steps), st.Seq)
	}
	for _, x := range st.Steps {
		if x.State != StepSucceeded {
			t.Errorf("%s: %s", x.Address, x.State)
		}
	}
}

// Journals written by earlier versions, which wrote zeros ahead of the
// records, can end in zeros after a crash: the zeros are a torn tail,
// dropped with a warning and cut on Open.
func TestZeroTail(t *testing.T) {
	s := NewLocal(t.TempDir())
	meta := &Meta{}
	j, err := s.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		if err := j.Append(&Record{Type: RecAttemptStarted, Step: fmt.Sprintf("s%d", i), Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	path := filepath.Join(s.Location(meta.ID), journalFile)
	good, _ := os.ReadFile(path)
	for name, tail := range map[string][]byte{
		"zeros":            make([]byte, 64<<10),
		"torn, then zeros": append([]byte(`0000abcd {"seq":9`), make([]byte, 1000)...),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			j, st, err := s.Open(meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Warning == "" || st.State != RunRunning || len(st.Steps) != n {
				t.Fatalf("reopened: state %s, warning %q, %d steps", st.State, st.Warning, len(st.Steps))
			}
			if err := j.Append(&Record{Type: RecStepSucceeded, Step: "s0", Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); bytes.IndexByte(b, 0) >= 0 {
				t.Fatal("zeros left in the journal")
			}
			st, err = s.Load(meta.ID)
			if err != nil || st.Warning != "" || st.Steps["s0"].State != StepSucceeded {
				t.Fatalf("after append: err %v, warning %q, s0 %+v", err, st.Warning, st.Steps["s0"])
			}
		})
	}
}

func TestTornLastRecord(t *testing.T) {
	s := NewLocal(t.TempDir())
	meta := &Meta{}
	j, _ := s.Create(meta)
	j.Append(&Record{Type: RecAttemptStarted, Step: "a", Attempt: 1})
	j.Close()
	path := filepath.Join(s.Location(meta.ID), journalFile)
	good, _ := os.ReadFile(path)
	for name, tail := range map[string]string{
		"partial":  `0000abcd {"seq":3,"type":"step_su`,
		"checksum": "00000000 {\"seq\":3,\"type\":\"step_succeeded\",\"step\":\"a\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600)
			j, st, err := s.Open(meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Warning == "" || st.Steps["a"].State != StepRunning {
				t.Fatalf("warning %q state %s", st.Warning, st.Steps["a"].State)
			}
			if err := j.Append(&Record{Type: RecStepSucceeded, Step: "a", Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			st, err = s.Load(meta.ID)
			if err != nil || st.Warning != "" || st.Steps["a"].State != StepSucceeded {
				t.Fatalf("after append: %v %q %+v", err, st.Warning, st.Steps["a"])
			}
		})
	}
	// Corruption in the middle is no torn tail (see TestCorruptRun).
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"attempt_started"`), []byte(`"attempt_startex"`), 1)
	os.WriteFile(path, b, 0o600)
	if st, err := s.Load(meta.ID); err != nil || st.State != RunCorrupt {
		t.Fatalf("want a corrupt run, got %+v, %v", st, err)
	}
}

func TestValueSealing(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{
		"user": cty.StringVal("admin"),
		"pass": cty.StringVal("canary-0xdeadbeef").Mark(MarkSensitive),
		"list": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("canary-2").Mark(MarkSensitive)}),
	})
	key, _ := NewSealer([]byte("k1-long-enough-passphrase"))
	other, _ := NewSealer([]byte("k2-long-enough-passphrase"))
	for _, sealer := range []*Sealer{nil, key} {
		jv, err := EncodeValue(v, sealer)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := jsonMarshal(jv)
		if bytes.Contains(raw, []byte("canary")) {
			t.Fatalf("secret in clear: %s", raw)
		}
		got, complete, err := jv.Decode(sealer)
		if err != nil {
			t.Fatal(err)
		}
		if sealer == nil {
			if complete || !got.GetAttr("pass").IsNull() || !got.GetAttr("pass").HasMark(MarkSensitive) {
				t.Fatalf("no key: got %#v complete=%v", got, complete)
			}
			continue
		}
		if !complete || !got.RawEquals(v) {
			t.Fatalf("roundtrip: got %#v", got)
		}
		if _, _, err := jv.Decode(other); err == nil {
			t.Fatal("wrong key must fail")
		}
	}
}

func TestLock(t *testing.T) {
	s := NewLocal(t.TempDir())
	m1 := &Meta{}
	j, _ := s.Create(m1)
	j.Close()
	l1, err := s.Lock("k", m1.ID, Holder{User: "u", PID: 1})
	if err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if _, err := s.Lock("k", "other", Holder{}); !errors.As(err, &le) || !le.Live || le.Holder.RunID != m1.ID {
		t.Fatalf("want live lock error, got %v", err)
	}
	if _, err := s.Lock("k2", "other", Holder{}); err != nil {
		t.Fatalf("other key: %v", err)
	}
	// Process gone, run unfinished: a new run is refused, the run itself may take over.
	l1.Release(false)
	if _, err := s.Lock("k", "other", Holder{}); !errors.As(err, &le) || le.Live {
		t.Fatalf("want unfinished lock error, got %v", err)
	}
	l1, err = s.Lock("k", m1.ID, Holder{})
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	l1.Release(true)
	if l, err := s.Lock("k", "other", Holder{}); err != nil {
		t.Fatalf("after finish: %v", err)
	} else {
		l.Release(true)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
