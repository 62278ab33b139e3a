package journal

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecordJSON appends r as encoding/json would marshal it, for the
// records a run writes for every step (no Meta, no sensitive paths), and
// reports false for the others, which go through encoding/json. Reflection
// was most of the cost of journaling a step; the tests hold this to
// json.Marshal byte for byte, with one difference: the values' raw JSON is
// copied as cty wrote it, where encoding/json would also escape <, > and &
// inside its strings (both read back the same).
func appendRecordJSON(b []byte, r *Record) ([]byte, bool) {
	// encoding/json refuses years outside 0-9999 and zone offsets with
	// seconds: leave those to it.
	if _, off := r.Time.Zone(); r.Meta != nil || r.Time.Year() < 0 || r.Time.Year() > 9999 || off%60 != 0 {
		return b, false
	}
	for _, v := range []*Value{r.Inputs, r.Outputs} {
		if v != nil && (len(v.Sensitive) > 0 || !rawOK(v.Type) || !rawOK(v.Value)) {
			return b, false
		}
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"t":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":`...)
	b = appendJSONString(b, string(r.Type))
	if r.State != "" {
		b = append(b, `,"state":`...)
		b = appendJSONString(b, r.State)
	}
	if r.Step != "" {
		b = append(b, `,"step":`...)
		b = appendJSONString(b, r.Step)
	}
	if r.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(r.Attempt), 10)
	}
	if r.Message != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, r.Message)
	}
	b = appendValueJSON(b, `,"inputs":`, r.Inputs)
	b = appendValueJSON(b, `,"outputs":`, r.Outputs)
	b = appendBlobJSON(b, `,"checkpoint":`, r.Checkpoint)
	b = appendBlobJSON(b, `,"undo_state":`, r.UndoState)
	if e := r.Error; e != nil {
		b = append(b, `,"error":{"message":`...)
		b = appendJSONString(b, e.Message)
		if e.Kind != "" {
			b = append(b, `,"kind":`...)
			b = appendJSONString(b, e.Kind)
		}
		if e.Hint != "" {
			b = append(b, `,"hint":`...)
			b = appendJSONString(b, e.Hint)
		}
		if e.Retryable {
			b = append(b, `,"retryable":true`...)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// rawOK reports whether raw can be copied as it is: encoding/json writes a
// nil RawMessage as null and compacts the others (ours come compact from
// cty's encoder; anything with whitespace outside its strings goes through
// encoding/json).
func rawOK(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	inString, escaped := false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		}
	}
	return !inString
}

func appendValueJSON(b []byte, key string, v *Value) []byte {
	if v == nil {
		return b
	}
	b = append(b, key...)
	b = append(b, `{"type":`...)
	b = append(b, v.Type...)
	b = append(b, `,"value":`...)
	b = append(b, v.Value...)
	if len(v.Sealed) > 0 {
		b = append(b, `,"sealed":`...)
		b = appendBase64(b, v.Sealed)
	}
	return append(b, '}')
}

func appendBlobJSON(b []byte, key string, v *Blob) []byte {
	if v == nil {
		return b
	}
	b = append(b, key...)
	b = append(b, '{')
	sep := ""
	if len(v.Data) > 0 {
		b = append(b, `"data":`...)
		b = appendBase64(b, v.Data)
		sep = ","
	}
	if len(v.Sealed) > 0 {
		b = append(b, sep...)
		b = append(b, `"sealed":`...)
		b = appendBase64(b, v.Sealed)
		sep = ","
	}
	if v.Redacted {
		b = append(b, sep...)
		b = append(b, `"redacted":true`...)
	}
	return append(b, '}')
}

func appendBase64(b []byte, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does: HTML-safe, invalid
// UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
