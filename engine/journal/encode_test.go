package journal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func recordCases() []*Record {
	k := "key"
	t0 := time.Date(2026, 11, 23, 18, 4, 5, 123456789, time.UTC)
	paris := time.FixedZone("CET", 3600)
	return []*Record{
		{Seq: 1, Time: t0, Type: RecAttemptStarted, Step: "s1", Attempt: 1,
			Inputs: &Value{Type: json.RawMessage(`["object",{"values":"dynamic"}]`), Value: json.RawMessage(`{"values":null}`)}},
		{Seq: 2, Time: t0.In(paris), Type: RecStepSucceeded, Step: `s["a<b>&c"]`, Attempt: 3,
			Outputs:   &Value{Type: json.RawMessage(`"string"`), Value: json.RawMessage(`"x"`), Sealed: []byte{1, 2, 3, 250}},
			UndoState: &Blob{Data: []byte("undo\x00\xff")}},
		{Seq: 3, Time: t0.Truncate(time.Second), Type: RecStepFailed, Step: "s", Message: "line\nnext\ttab \"q\" \\ \b\f\r \x01 \u2028 \u2029 é \xff end",
			Error: &ErrorInfo{Message: "boom <x>", Kind: "conflict", Hint: "fix & retry", Retryable: true}},
		{Seq: 4, Time: t0, Type: RecCheckpoint, Step: "s", Checkpoint: &Blob{Sealed: []byte("sealed"), Redacted: true}},
		{Seq: 5, Time: t0, Type: RecCheckpoint, Step: "s", Checkpoint: &Blob{}, UndoState: &Blob{Data: []byte{}, Redacted: true}},
		{Seq: 6, Time: time.Time{}, Type: RecRunState, State: "succeeded"},
		{Seq: 7, Time: t0, Type: RecStepFailed, Error: &ErrorInfo{}},
		// Spaces inside strings are copied as they are.
		{Seq: 14, Time: t0, Type: RecAttemptStarted, Step: "s", Attempt: 1,
			Inputs: &Value{Type: json.RawMessage(`["object",{"command":"string"}]`), Value: json.RawMessage(`{"command":"echo \"a b\" \\ c\td"}`)}},
		// Not for the fast path: encoding/json writes these.
		{Seq: 8, Time: t0, Type: RecRunStarted, Meta: &Meta{ID: "x", Started: t0}},
		{Seq: 9, Time: t0, Type: RecStepSucceeded, Outputs: &Value{Type: json.RawMessage(`"string"`), Value: json.RawMessage(`"x"`), Sensitive: []Path{{{K: &k}}}}},
		{Seq: 10, Time: t0, Type: RecStepSucceeded, Outputs: &Value{Type: json.RawMessage(`"string"`)}},
		{Seq: 11, Time: t0, Type: RecStepSucceeded, Outputs: &Value{Type: json.RawMessage(`[ "list", "string" ]`), Value: json.RawMessage(`[]`)}},
		{Seq: 13, Time: t0, Type: RecStepSucceeded, Outputs: &Value{Type: json.RawMessage(`"string"`), Value: json.RawMessage("{\"a\":\"x\\\" y\"}\n")}},
		{Seq: 12, Time: t0.In(time.FixedZone("odd", 3601)), Type: RecRunState, State: "failed"},
	}
}

// The fast encoder writes exactly what encoding/json writes.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, r := range recordCases() {
		want, werr := json.Marshal(r)
		got, ok := appendRecordJSON(nil, r)
		if !ok {
			continue
		}
		fast++
		if werr != nil {
			t.Errorf("record %d: encoding/json fails (%v) but the fast path wrote %s", r.Seq, werr, got)
			continue
		}
		if d := cmp.Diff(string(want), string(got)); d != "" {
			t.Errorf("record %d (-encoding/json +fast):\n%s", r.Seq, d)
		}
	}
	if fast != 8 {
		t.Errorf("%d records took the fast path, want the first 8", fast)
	}
	// And every record reads back through appendLine/decodeLine.
	for _, r := range recordCases() {
		line, err := appendLine(nil, r)
		if err != nil {
			if r.Seq == 12 {
				continue // encoding/json refuses the offset with seconds
			}
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		back, err := decodeLine(line[:len(line)-1])
		if err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		// What encoding/json reads back from its own encoding (invalid
		// UTF-8 becomes U+FFFD either way).
		j, _ := json.Marshal(r)
		var want Record
		if err := json.Unmarshal(j, &want); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(&want, back); d != "" {
			t.Errorf("record %d read back (-want +got):\n%s", r.Seq, d)
		}
	}
}

// Raw values are copied as they are: < > & stay unescaped inside their
// strings, which reads back the same as encoding/json's escaped form.
func TestRecordJSONRawValuesReadBack(t *testing.T) {
	r := &Record{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Type: RecAttemptStarted, Step: "s",
		Inputs: &Value{Type: json.RawMessage(`["object",{"command":"string"}]`), Value: json.RawMessage(`{"command":"a > b && c < d"}`)}}
	line, err := appendLine(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeLine(line[:len(line)-1])
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(r)
	var want Record
	if err := json.Unmarshal(j, &want); err != nil {
		t.Fatal(err)
	}
	// The raw bytes differ; the values do not.
	gv, _, gerr := back.Inputs.Decode(nil)
	wv, _, werr := want.Inputs.Decode(nil)
	if gerr != nil || werr != nil || !gv.RawEquals(wv) {
		t.Errorf("inputs read back as %#v (%v), encoding/json's as %#v (%v)", gv, gerr, wv, werr)
	}
	back.Inputs, want.Inputs = nil, nil
	if d := cmp.Diff(&want, back); d != "" {
		t.Errorf("read back (-encoding/json +fast):\n%s", d)
	}
}

func FuzzRecordJSON(f *testing.F) {
	f.Add("s1", "message", "kind", []byte("undo"), int64(1_700_000_000_000_000_000), 3)
	f.Add("a<\u2028>", "\xff\x00\"\\", "", []byte{}, int64(0), 0)
	f.Fuzz(func(t *testing.T, step, msg, kind string, data []byte, nanos int64, attempt int) {
		// A raw value as cty writes it: compact, its strings escaped.
		raw, _ := json.Marshal(map[string]string{"k": msg, step: kind})
		r := &Record{Seq: nanos % 1000, Time: time.Unix(0, nanos).UTC(), Type: RecStepFailed, Step: step, Attempt: attempt,
			Message: msg, UndoState: &Blob{Data: data}, Error: &ErrorInfo{Message: msg, Kind: kind, Hint: step},
			Outputs: &Value{Type: json.RawMessage(`["map","string"]`), Value: raw}}
		got, ok := appendRecordJSON(nil, r)
		if !ok {
			return
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encoding/json fails (%v) but the fast path wrote %s", err, got)
		}
		if string(got) != string(want) {
			t.Fatalf("fast %s\njson %s", got, want)
		}
	})
}
