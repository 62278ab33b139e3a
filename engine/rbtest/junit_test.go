package rbtest_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/rbtest"
)

// junitRules are the JUnit schema CI servers read (Jenkins' xunit plugin,
// junit-10.xsd), as allowed attributes (required ones marked !) and
// allowed child elements per element.
var junitRules = map[string]struct{ attrs, children []string }{
	"testsuites": {[]string{"name", "time", "tests", "failures", "disabled", "errors"}, []string{"testsuite"}},
	"testsuite": {[]string{"name", "tests!", "failures", "errors", "time", "disabled", "skipped", "skips", "timestamp",
		"hostname", "id", "package", "assertions", "file", "skip", "log", "url"},
		[]string{"testsuite", "properties", "testcase", "system-out", "system-err"}},
	"testcase": {[]string{"name!", "assertions", "time", "timestamp", "classname", "status", "class", "file", "line", "log", "group", "url"},
		[]string{"skipped", "error", "failure", "system-out", "system-err"}},
	"failure":    {[]string{"type", "message"}, nil},
	"error":      {[]string{"type", "message"}, nil},
	"skipped":    {[]string{"type", "message"}, nil},
	"system-out": {nil, nil},
	"system-err": {nil, nil},
}

// checkJUnit walks the document and reports what the schema refuses.
func checkJUnit(t *testing.T, doc []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var stack []string
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			name := el.Name.Local
			rule, ok := junitRules[name]
			if !ok {
				t.Errorf("element %s is not in the schema", name)
				continue
			}
			if root && name != "testsuites" {
				t.Errorf("root is %s", name)
			}
			root = false
			if len(stack) > 0 {
				parent := junitRules[stack[len(stack)-1]]
				if !containsStr(parent.children, name) {
					t.Errorf("%s may not hold %s", stack[len(stack)-1], name)
				}
			}
			have := map[string]bool{}
			for _, a := range el.Attr {
				have[a.Name.Local] = true
				if !containsStr(rule.attrs, a.Name.Local) && !containsStr(rule.attrs, a.Name.Local+"!") {
					t.Errorf("%s has attribute %s, which the schema does not allow", name, a.Name.Local)
				}
			}
			for _, a := range rule.attrs {
				if strings.HasSuffix(a, "!") && !have[strings.TrimSuffix(a, "!")] {
					t.Errorf("%s lacks required attribute %s", name, a)
				}
			}
			stack = append(stack, name)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

func containsStr(xs []string, x string) bool { return contains(xs, x) }

func TestJUnitFollowsTheSchema(t *testing.T) {
	w := &world{names: map[string]bool{}}
	opts := rbtest.Options{Builtins: builtins{w}}
	files := rbtest.RunFiles(context.Background(), []string{
		"testdata/good/main.runbooktest.hcl",
		"testdata/broken/undo_fails.runbooktest.hcl",
		"testdata/broken/mistakes.runbooktest.hcl",
	}, 2, opts, nil, nil)
	var b bytes.Buffer
	if err := rbtest.WriteJUnit(&b, files, time.Now()); err != nil {
		t.Fatal(err)
	}
	checkJUnit(t, b.Bytes())
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	// good: 3 runs + 2 sweeps; undo_fails: 1 sweep; mistakes: load error.
	if doc.Tests != 7 || doc.Failures != 1 || doc.Errors != 1 || len(doc.Suites) != 3 {
		t.Fatalf("tests=%d failures=%d errors=%d suites=%d\n%s", doc.Tests, doc.Failures, doc.Errors, len(doc.Suites), b.String())
	}
	f := doc.Suites[1].Cases[0].Failure
	if doc.Suites[1].Name != "testdata/broken/undo_fails.runbooktest.hcl" || f == nil || !strings.Contains(f.Message, `undo of step b["y"] failed`) {
		t.Errorf("undo_fails suite: %+v %q", doc.Suites[1], f.Message)
	}
}
