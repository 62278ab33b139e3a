package pluginclient

import (
	"errors"
	"fmt"

	"github.com/runbookdev/runbook/sdk"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// The decoders of what a plugin sends; their encoders are the plugin side's,
// in sdk/wire.go.

// decodeSchema converts a wire schema back.
func decodeSchema(r *pb.GetSchemaResponse) (*sdk.PluginSchema, error) {
	s := &sdk.PluginSchema{Name: r.Name, Version: r.Version, Actions: map[string]sdk.ActionSchema{}}
	for _, pa := range r.Actions {
		a := sdk.ActionSchema{
			Name:           pa.Name,
			Description:    pa.Description,
			MaxConcurrency: int(pa.MaxConcurrency),
		}
		if c := pa.Capabilities; c != nil {
			a.Capabilities = sdk.Capabilities{ReadOnly: c.ReadOnly, Idempotent: c.Idempotent, NativeUndo: c.NativeUndo, SupportsPlan: c.SupportsPlan}
		}
		var err error
		if a.Inputs, err = decodeAttrs(pa.Inputs); err != nil {
			return nil, fmt.Errorf("action %s inputs: %w", pa.Name, err)
		}
		if a.Outputs, err = decodeAttrs(pa.Outputs); err != nil {
			return nil, fmt.Errorf("action %s outputs: %w", pa.Name, err)
		}
		s.Actions[a.Name] = a
	}
	return s, nil
}

func decodeAttrs(as []*pb.Attribute) ([]sdk.Attribute, error) {
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]sdk.Attribute, 0, len(as))
	for _, a := range as {
		t, err := ctyjson.UnmarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		out = append(out, sdk.Attribute{Name: a.Name, Type: t, Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out, nil
}

// decodeDiagnostics converts wire diagnostics back.
func decodeDiagnostics(d []*pb.Diagnostic) sdk.Diagnostics {
	if len(d) == 0 {
		return nil
	}
	out := make(sdk.Diagnostics, 0, len(d))
	for _, x := range d {
		sev := sdk.SeverityError
		if x.Severity == pb.Diagnostic_WARNING {
			sev = sdk.SeverityWarning
		}
		out = append(out, sdk.Diagnostic{Severity: sev, Summary: x.Summary, Detail: x.Detail, Path: x.Path})
	}
	return out
}

// decodeError rebuilds an *sdk.Error from its wire form (nil for nil).
func decodeError(e *pb.Error) error {
	if e == nil {
		return nil
	}
	return &sdk.Error{Kind: sdk.Kind(e.Kind), Retryable: e.Retryable, Hint: e.Hint, Err: errors.New(e.Message)}
}
