package sdk

// The plugin side's wire encoders; the host's decoders are in
// internal/pluginclient, the value codecs both share in internal/pluginwire.

import (
	"fmt"
	"sort"
	"strings"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// encodeSchema converts a plugin schema to its wire form.
func encodeSchema(s *PluginSchema) (*pb.GetSchemaResponse, error) {
	resp := &pb.GetSchemaResponse{Name: s.Name, Version: s.Version, SdkVersion: SDKVersion}
	names := make([]string, 0, len(s.Actions))
	for n := range s.Actions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := s.Actions[n]
		pa := &pb.ActionSchema{
			Name:        a.Name,
			Description: a.Description,
			Capabilities: &pb.Capabilities{
				ReadOnly:     a.Capabilities.ReadOnly,
				Idempotent:   a.Capabilities.Idempotent,
				NativeUndo:   a.Capabilities.NativeUndo,
				SupportsPlan: a.Capabilities.SupportsPlan,
			},
			MaxConcurrency: int32(a.MaxConcurrency),
		}
		var err error
		if pa.Inputs, err = encodeAttrs(a.Inputs); err != nil {
			return nil, fmt.Errorf("action %s inputs: %w", n, err)
		}
		if pa.Outputs, err = encodeAttrs(a.Outputs); err != nil {
			return nil, fmt.Errorf("action %s outputs: %w", n, err)
		}
		resp.Actions = append(resp.Actions, pa)
	}
	return resp, nil
}

func encodeAttrs(as []Attribute) ([]*pb.Attribute, error) {
	out := make([]*pb.Attribute, 0, len(as))
	for _, a := range as {
		t, err := ctyjson.MarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		out = append(out, &pb.Attribute{Name: a.Name, Type: t, Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out, nil
}

// encodeDiagnostics converts diagnostics to their wire form.
func encodeDiagnostics(d Diagnostics) []*pb.Diagnostic {
	out := make([]*pb.Diagnostic, 0, len(d))
	for _, x := range d {
		sev := pb.Diagnostic_ERROR
		if x.Severity == SeverityWarning {
			sev = pb.Diagnostic_WARNING
		}
		out = append(out, &pb.Diagnostic{Severity: sev, Summary: x.Summary, Detail: x.Detail, Path: x.Path})
	}
	return out
}

// encodeError converts an error to its wire form (nil for nil), keeping an
// *Error's Kind, Retryable and Hint.
func encodeError(err error) *pb.Error {
	if err == nil {
		return nil
	}
	e := Classify(err)
	msg := err.Error()
	if e.Kind != KindUnknown {
		// The kind travels on its own and Error() prefixes it again on the
		// other side: drop the "kind: " that the *Error inside err wrote.
		msg = strings.Replace(msg, string(e.Kind)+": ", "", 1)
	}
	return &pb.Error{Kind: string(e.Kind), Retryable: e.Retryable, Hint: e.Hint, Message: msg}
}
