package lang

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

func TestJSONDiagnostics(t *testing.T) {
	cfg, diags := loadSrc(t, "variable \"a\" {}\noutput \"o\" {\n  value = var.b\n}\n")
	diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "no range"})
	var b strings.Builder
	if err := cfg.WriteJSONDiagnostics(&b, diags); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FormatVersion string           `json:"format_version"`
		Valid         bool             `json:"valid"`
		ErrorCount    int              `json:"error_count"`
		WarningCount  int              `json:"warning_count"`
		Diagnostics   []JSONDiagnostic `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatal(err)
	}
	if got.Valid || got.ErrorCount != 1 || got.WarningCount != 1 || got.FormatVersion != "1.0" {
		t.Errorf("header: %+v", got)
	}
	want := JSONDiagnostic{
		Severity: "error",
		Summary:  "Reference to undeclared variable",
		Detail:   `There is no variable "b". Did you mean "a"?`,
		Range:    &JSONRange{Filename: "main.hcl", Start: JSONPos{3, 11, 39}, End: JSONPos{3, 16, 44}},
		Snippet:  &JSONSnippet{StartLine: 3, Code: "  value = var.b"},
	}
	if diff := cmp.Diff(want, got.Diagnostics[0]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got.Diagnostics[1].Range != nil || got.Diagnostics[1].Severity != "warning" {
		t.Errorf("rangeless: %+v", got.Diagnostics[1])
	}
	// A nil config (nothing loaded) still renders.
	var nilCfg *Config
	b.Reset()
	if err := nilCfg.WriteDiagnostics(&b, diags, 80, false); err != nil || !strings.Contains(b.String(), "main.hcl:3:11: Error: Reference to undeclared variable") {
		t.Errorf("nil config: %v %q", err, b.String())
	}
}
