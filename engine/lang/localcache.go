package lang

import (
	"reflect"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// localCache remembers, for the locals of a Config, what every evaluation
// of a step would otherwise compute again: the references of each local's
// expression and the value of the locals that depend on no step. Without
// it, each instance of a for_each step that reads local.items[each.key]
// walked and evaluated the whole local: 100,000 instances over a
// 100,000-entry map, 10^10 steps of work.
//
// Shared by the copies of a Config; safe for concurrent use; a nil cache
// remembers nothing.
type localCache struct {
	mu sync.Mutex
	// vars: local name -> the references of its expression; guarded by mu.
	vars map[string][]hcl.Traversal
	// stepFree: local name -> whether it, and every local it refers to,
	// refers to no step (and so has the same value for the whole life of a
	// Scope); guarded by mu.
	stepFree map[string]bool
	// values: the values of step-free locals, for one Scope and its Vars
	// map; guarded by mu.
	scope  *Scope
	varsOf map[string]cty.Value
	values map[string]localValue
}

type localValue struct {
	v     cty.Value
	diags hcl.Diagnostics
}

func newLocalCache() *localCache {
	return &localCache{vars: map[string][]hcl.Traversal{}, stepFree: map[string]bool{}}
}

// localVars returns the references of local name's expression.
func (c *Config) localVars(name string) []hcl.Traversal {
	l := c.Locals[name]
	if l == nil {
		return nil
	}
	lc := c.localMemo
	if lc == nil {
		return l.Expr.Variables()
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.varsLocked(c, name)
}

func (lc *localCache) varsLocked(c *Config, name string) []hcl.Traversal {
	t, ok := lc.vars[name]
	if !ok {
		t = c.Locals[name].Expr.Variables()
		lc.vars[name] = t
	}
	return t
}

// isStepFree reports whether local name depends on no step, directly or
// through other locals. Guarded by lc.mu.
func (lc *localCache) isStepFreeLocked(c *Config, name string) bool {
	if free, ok := lc.stepFree[name]; ok {
		return free
	}
	lc.stepFree[name] = false // a cycle is not step-free
	free := true
	for _, t := range lc.varsLocked(c, name) {
		switch t.RootName() {
		case "step":
			free = false
		case "local":
			dep, ok := attrAt(t, 1)
			if !ok {
				free = false // the whole local object
			} else if _, declared := c.Locals[dep]; declared && !lc.isStepFreeLocked(c, dep) {
				free = false
			}
		}
		if !free {
			break
		}
	}
	lc.stepFree[name] = free
	return free
}

// cached returns the remembered value of local name for s, when it is
// step-free and was evaluated for s (and its Vars) before.
func (lc *localCache) cached(s *Scope, name string) (localValue, bool) {
	if lc == nil {
		return localValue{}, false
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.scope != s || !sameMap(lc.varsOf, s.Vars) {
		return localValue{}, false
	}
	lv, ok := lc.values[name]
	return lv, ok
}

// remember keeps the value of local name for s when it is step-free.
func (lc *localCache) remember(s *Scope, name string, lv localValue) {
	if lc == nil {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if !lc.isStepFreeLocked(s.Config, name) {
		return
	}
	if lc.scope != s || !sameMap(lc.varsOf, s.Vars) {
		lc.scope, lc.varsOf, lc.values = s, s.Vars, map[string]localValue{}
	}
	lc.values[name] = lv
}

// sameMap reports whether a and b are the same map (not equal contents).
func sameMap(a, b map[string]cty.Value) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
