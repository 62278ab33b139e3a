package pluginwire

import (
	"sync"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// typeCacheSize bounds both type caches; steps of one run use few types.
const typeCacheSize = 128

// typeCache memoises cty type <-> JSON conversions, which otherwise
// dominate the cost of encoding small values for the wire.
type typeCache struct {
	mu sync.Mutex // guards enc and dec
	// enc holds recently encoded types and their JSON (linear scan:
	// cty.Type is not comparable, Equals is cheap for small types).
	enc []typeJSON
	// dec maps type JSON to the type.
	dec map[string]cty.Type
}

type typeJSON struct {
	t cty.Type
	j []byte
}

var types = &typeCache{dec: map[string]cty.Type{}}

func (c *typeCache) marshal(t cty.Type) ([]byte, error) {
	c.mu.Lock()
	for _, e := range c.enc {
		if e.t.Equals(t) {
			c.mu.Unlock()
			return e.j, nil
		}
	}
	c.mu.Unlock()
	j, err := ctyjson.MarshalType(t)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.enc) >= typeCacheSize {
		c.enc = c.enc[1:]
	}
	c.enc = append(c.enc, typeJSON{t: t, j: j})
	c.mu.Unlock()
	return j, nil
}

func (c *typeCache) unmarshal(j []byte) (cty.Type, error) {
	c.mu.Lock()
	t, ok := c.dec[string(j)]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := ctyjson.UnmarshalType(j)
	if err != nil {
		return cty.NilType, err
	}
	c.mu.Lock()
	if len(c.dec) >= typeCacheSize {
		clear(c.dec)
	}
	c.dec[string(j)] = t
	c.mu.Unlock()
	return t, nil
}
