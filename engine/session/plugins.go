package session

import (
	"context"
	"fmt"
	"sort"

	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/sdk"
)

// Plugin is one plugin the current directory can use.
type Plugin struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // builtin | external
	Version string `json:"version,omitempty"`
	Path    string `json:"path,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Locked  bool   `json:"locked"`
	Actions int    `json:"actions"`
	Error   string `json:"error,omitempty"`
}

// cwdHost opens a host for the current directory (its lock file).
func (s *Session) cwdHost() (*pluginhost.Host, *pluginhost.LockFile, error) {
	lock, err := pluginhost.ReadLockFile(pluginhost.LockFileName)
	if err != nil {
		return nil, nil, err
	}
	return pluginhost.New(pluginhost.Options{Builtins: s.opts.Builtins, Lock: lock, Stderr: s.stderr}), lock, nil
}

// Plugins lists the builtin plugins and the external ones found in the
// search directories, whether the lock file pins them, and (for those that
// may start) their version and number of actions.
func (s *Session) Plugins(ctx context.Context) ([]Plugin, error) {
	h, lock, err := s.cwdHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var rows []Plugin
	if s.opts.Builtins != nil {
		for _, name := range s.opts.Builtins.Names() {
			rows = append(rows, Plugin{Name: name, Kind: "builtin", Locked: true})
		}
	}
	for name, path := range h.Discover() {
		if s.isBuiltin(name) {
			continue // a builtin name always means the builtin
		}
		r := Plugin{Name: name, Kind: "external", Path: path}
		r.SHA256, _ = pluginhost.FileSHA256(path)
		if err := lock.Check(name, r.SHA256); err != nil {
			r.Error = err.Error()
		} else {
			r.Locked = true
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	for i := range rows {
		r := &rows[i]
		if r.Kind == "external" && !r.Locked {
			continue
		}
		ps, err := h.Schema(ctx, r.Name)
		if err != nil {
			r.Error = err.Error()
			continue
		}
		r.Version, r.Actions = ps.Version, len(ps.Actions)
	}
	return rows, nil
}

// PluginSchema is a plugin's schema, started from the current directory's
// lock file; a refusal carries its hint.
func (s *Session) PluginSchema(ctx context.Context, name string) (*sdk.PluginSchema, error) {
	h, _, err := s.cwdHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ps, err := h.Schema(ctx, name)
	if err != nil {
		if e := sdk.Classify(err); e.Hint != "" {
			return nil, fmt.Errorf("%w\nhint: %s", err, e.Hint)
		}
		return nil, err
	}
	return ps, nil
}
