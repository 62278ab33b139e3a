package rbtest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// FileResult is what one test file gave: its tests' results, or the
// diagnostics that kept it from running.
type FileResult struct {
	Path    string
	Results []*Result
	// Diags, when the file or its runbook has errors (no test ran).
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
	// Err is another error that kept the file from running.
	Err      error
	Duration time.Duration
}

// Passed reports whether the file loaded and every test passed.
func (f *FileResult) Passed() bool {
	if f.Diags.HasErrors() || f.Err != nil {
		return false
	}
	for _, r := range f.Results {
		if !r.Passed() {
			return false
		}
	}
	return true
}

// DiagText renders the file's diagnostics with positions and snippets.
func (f *FileResult) DiagText() string {
	var b bytes.Buffer
	_ = WriteDiagnostics(&b, f.Diags, f.Files)
	return b.String()
}

// WriteDiagnostics prints diagnostics as FILE:LINE:COL, the message and a
// source snippet.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File) error {
	var buf bytes.Buffer
	tw := hcl.NewDiagnosticTextWriter(&buf, files, 100, false)
	for _, d := range diags {
		buf.Reset()
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
		if d.Subject != nil {
			if _, err := fmt.Fprintf(w, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column); err != nil {
				return err
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// JUnit XML, as CI servers read it (the schema Jenkins' xunit plugin
// publishes, junit-10.xsd: testsuites without a skipped attribute;
// testsuite with tests, failures, errors, skipped, time, timestamp;
// testcase with name, classname, time and error, failure, system-out).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Error     *junitMessage `xml:"error,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the files' results as one JUnit XML document: a
// testsuite per test file, a testcase per test (a file that did not load
// is one testcase "load" with an error).
func WriteJUnit(w io.Writer, files []*FileResult, started time.Time) error {
	all := junitSuites{Name: "runbook test"}
	var total time.Duration
	sorted := append([]*FileResult(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		s := junitSuite{Name: f.Path, Time: seconds(f.Duration), Timestamp: started.UTC().Format("2006-01-02T15:04:05")}
		total += f.Duration
		if f.Diags.HasErrors() || f.Err != nil {
			msg := f.DiagText()
			if f.Err != nil {
				msg = f.Err.Error()
			}
			s.Cases = append(s.Cases, junitCase{Name: "load", Classname: f.Path, Time: "0.000",
				Error: &junitMessage{Message: "the test file or its runbook has errors", Type: "diagnostics", Text: msg}})
			s.Errors++
		}
		for _, r := range f.Results {
			c := junitCase{Name: r.Name, Classname: f.Path, Time: seconds(r.Duration), SystemOut: strings.Join(r.Lines, "\n")}
			switch {
			case r.Error != "":
				c.Error = &junitMessage{Message: r.Error, Type: "error", Text: r.Error}
				s.Errors++
			case len(r.Failures) > 0:
				c.Failure = &junitMessage{Message: r.Failures[0], Type: "failure", Text: strings.Join(r.Failures, "\n")}
				s.Failures++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Suites = append(all.Suites, s)
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
