// Package ctyx holds small cty helpers: the engine calls them on every
// step, the plugins read their inputs with them.
package ctyx

import "github.com/zclconf/go-cty/cty"

// ContainsMarked reports whether v or any value inside it is marked, like
// cty.Value.ContainsMarked. It walks objects and tuples by attribute and
// index instead of through cty.Walk's element iterators (which sort the
// attribute names and allocate at every level); most step inputs and
// outputs are small unmarked objects, checked several times per step.
func ContainsMarked(v cty.Value) bool {
	if v.IsMarked() {
		return true
	}
	if !v.IsKnown() || v.IsNull() {
		return false
	}
	ty := v.Type()
	switch {
	case ty.IsObjectType():
		for name := range ty.AttributeTypes() {
			if ContainsMarked(v.GetAttr(name)) {
				return true
			}
		}
	case ty.IsTupleType():
		for i := range ty.TupleElementTypes() {
			if ContainsMarked(v.Index(cty.NumberIntVal(int64(i)))) {
				return true
			}
		}
	case ty.IsListType() || ty.IsSetType() || ty.IsMapType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if ContainsMarked(e) {
				return true
			}
		}
	}
	return false
}
