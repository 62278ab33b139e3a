package whawty

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// paramSet is one entry of the config's params list.
type paramSet struct {
	ID     uint64
	Scrypt *scryptParams
	Argon2 *argon2Params
}

func (p *paramSet) format() string {
	if p.Scrypt != nil {
		return formatScrypt
	}
	return formatArgon2ID
}

// storeConfig is a whawty auth-store.yaml, parsed as whawty does
// (unknown keys are fatal) and kept as a node tree for comment-preserving
// edits.
type storeConfig struct {
	BaseDir string
	Default uint64
	// Sets by id; IDs lists them in file order.
	Sets map[uint64]*paramSet
	IDs  []uint64

	doc *yaml.Node // the document node
}

// configError is a config whawty would refuse (or this plugin cannot edit).
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func cfgErr(format string, args ...any) error { return &configError{fmt.Sprintf(format, args...)} }

// parseConfig parses a config file. It accepts only what current whawty
// accepts.
func parseConfig(src []byte) (*storeConfig, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, cfgErr("parse yaml: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, cfgErr("config is not a YAML mapping")
	}
	c := &storeConfig{Sets: map[uint64]*paramSet{}, doc: &doc}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "basedir":
			c.BaseDir = v.Value
		case "default":
			n, err := uintScalar(v, "default")
			if err != nil {
				return nil, err
			}
			c.Default = n
		case "params":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return nil, cfgErr("params (line %d) is not a list", v.Line)
			}
			for _, item := range v.Content {
				ps, err := parseParamSet(item)
				if err != nil {
					return nil, err
				}
				if _, dup := c.Sets[ps.ID]; !dup {
					c.IDs = append(c.IDs, ps.ID)
				}
				c.Sets[ps.ID] = ps // whawty: a later duplicate overrides
			}
		case "defaultctx", "contexts", "scryptauth", "BaseDir":
			return nil, cfgErr("config uses the pre-2023 format (key %q, line %d); convert it to basedir/default/params first", k.Value, k.Line)
		default:
			return nil, cfgErr("unknown key %q at line %d (whawty rejects unknown keys)", k.Value, k.Line)
		}
	}
	if c.BaseDir == "" {
		return nil, cfgErr("basedir is missing")
	}
	if c.Default == 0 && len(c.Sets) > 0 {
		return nil, cfgErr("default is missing while params is not empty")
	}
	if c.Default != 0 && c.Sets[c.Default] == nil {
		return nil, cfgErr("default parameter-set %d is not in params", c.Default)
	}
	return c, nil
}

func uintScalar(v *yaml.Node, what string) (uint64, error) {
	if v.Kind != yaml.ScalarNode {
		return 0, cfgErr("%s (line %d) is not a number", what, v.Line)
	}
	n, err := strconv.ParseUint(v.Value, 10, 64)
	if err != nil {
		return 0, cfgErr("%s (line %d): %q is not an unsigned integer", what, v.Line, v.Value)
	}
	return n, nil
}

func parseParamSet(n *yaml.Node) (*paramSet, error) {
	if n.Kind != yaml.MappingNode {
		return nil, cfgErr("params entry at line %d is not a mapping", n.Line)
	}
	ps := &paramSet{}
	var haveID bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "id":
			id, err := uintScalar(v, "id")
			if err != nil {
				return nil, err
			}
			ps.ID, haveID = id, true
		case "scryptauth":
			sp, err := parseScrypt(v)
			if err != nil {
				return nil, err
			}
			ps.Scrypt = sp
		case "argon2id":
			ap, err := parseArgon2(v)
			if err != nil {
				return nil, err
			}
			ps.Argon2 = ap
		default:
			return nil, cfgErr("unknown key %q in params entry at line %d", k.Value, k.Line)
		}
	}
	switch {
	case !haveID || ps.ID == 0:
		return nil, cfgErr("params entry at line %d: id is missing or 0 (reserved)", n.Line)
	case ps.Scrypt != nil && ps.Argon2 != nil, ps.Scrypt == nil && ps.Argon2 == nil:
		return nil, cfgErr("parameter-set %d (line %d) must have exactly one of scryptauth and argon2id", ps.ID, n.Line)
	}
	return ps, nil
}

func parseScrypt(n *yaml.Node) (*scryptParams, error) {
	if n.Kind != yaml.MappingNode {
		return nil, cfgErr("scryptauth at line %d is not a mapping", n.Line)
	}
	sp := &scryptParams{R: 8, P: 1}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "hmackey":
			key, err := base64.StdEncoding.DecodeString(v.Value)
			if err != nil || len(key) != 32 {
				return nil, cfgErr("hmackey at line %d is not standard base64 of 32 bytes", v.Line)
			}
			sp.HMACKey = key
		case "cost", "r", "p":
			x, err := uintScalar(v, k.Value)
			if err != nil {
				return nil, err
			}
			switch k.Value {
			case "cost":
				sp.Cost = uint(x)
			case "r":
				if x > 0 {
					sp.R = int(x)
				}
			case "p":
				if x > 0 {
					sp.P = int(x)
				}
			}
		default:
			return nil, cfgErr("unknown key %q in scryptauth at line %d", k.Value, k.Line)
		}
	}
	if sp.HMACKey == nil {
		return nil, cfgErr("scryptauth at line %d has no hmackey", n.Line)
	}
	return sp, nil
}

func parseArgon2(n *yaml.Node) (*argon2Params, error) {
	if n.Kind != yaml.MappingNode {
		return nil, cfgErr("argon2id at line %d is not a mapping", n.Line)
	}
	ap := &argon2Params{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		x, err := uintScalar(v, k.Value)
		if err != nil {
			return nil, err
		}
		switch k.Value {
		case "time":
			ap.Time = uint32(x)
		case "memory":
			ap.Memory = uint32(x)
		case "threads":
			if x > 255 {
				return nil, cfgErr("argon2id threads at line %d exceeds 255", v.Line)
			}
			ap.Threads = uint8(x)
		case "length":
			ap.Length = uint32(x)
		default:
			return nil, cfgErr("unknown key %q in argon2id at line %d", k.Value, k.Line)
		}
	}
	return ap, nil
}

// ---- edits (on the node tree, keeping comments and order) ----

func (c *storeConfig) root() *yaml.Node { return c.doc.Content[0] }

// value returns the value node of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
func intNode(n uint64) *yaml.Node     { return scalar("!!int", strconv.FormatUint(n, 10)) }

func mapping(kv ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
}

// addSet appends ps to params (creating the list if needed).
func (c *storeConfig) addSet(ps *paramSet) error {
	if _, dup := c.Sets[ps.ID]; dup {
		return cfgErr("parameter-set %d already exists", ps.ID)
	}
	var body *yaml.Node
	if ps.Scrypt != nil {
		key := scalar("!!str", base64.StdEncoding.EncodeToString(ps.Scrypt.HMACKey))
		key.Style = yaml.DoubleQuotedStyle
		body = mapping(scalar("!!str", "scryptauth"), mapping(
			scalar("!!str", "hmackey"), key,
			scalar("!!str", "cost"), intNode(uint64(ps.Scrypt.Cost)),
			scalar("!!str", "r"), intNode(uint64(ps.Scrypt.R)),
			scalar("!!str", "p"), intNode(uint64(ps.Scrypt.P)),
		))
	} else {
		a := ps.Argon2
		body = mapping(scalar("!!str", "argon2id"), mapping(
			scalar("!!str", "time"), intNode(uint64(a.Time)),
			scalar("!!str", "memory"), intNode(uint64(a.Memory)),
			scalar("!!str", "threads"), intNode(uint64(a.Threads)),
			scalar("!!str", "length"), intNode(uint64(a.Length)),
		))
	}
	item := mapping(append([]*yaml.Node{scalar("!!str", "id"), intNode(ps.ID)}, body.Content...)...)
	root := c.root()
	params := value(root, "params")
	switch {
	case params == nil:
		params = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, scalar("!!str", "params"), params)
	case params.Kind == yaml.ScalarNode: // null
		*params = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", HeadComment: params.HeadComment, LineComment: params.LineComment}
	}
	if params.Style&yaml.FlowStyle != 0 {
		item.Style = yaml.FlowStyle
	}
	params.Content = append(params.Content, item)
	c.Sets[ps.ID] = ps
	c.IDs = append(c.IDs, ps.ID)
	return nil
}

// setDefault points default at id, which must exist.
func (c *storeConfig) setDefault(id uint64) error {
	if c.Sets[id] == nil {
		return cfgErr("parameter-set %d is not in the config (it has %s)", id, c.idList())
	}
	root := c.root()
	if v := value(root, "default"); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!int", strconv.FormatUint(id, 10), 0
	} else {
		// Put default right after basedir, where whawty's example has it.
		at := len(root.Content)
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "basedir" {
				at = i + 2
			}
		}
		kv := []*yaml.Node{scalar("!!str", "default"), intNode(id)}
		root.Content = append(root.Content[:at], append(kv, root.Content[at:]...)...)
	}
	c.Default = id
	return nil
}

// removeSet deletes every params entry with id.
func (c *storeConfig) removeSet(id uint64) error {
	if c.Sets[id] == nil {
		return cfgErr("parameter-set %d is not in the config (it has %s)", id, c.idList())
	}
	if c.Default == id {
		return cfgErr("parameter-set %d is the default; switch the default first", id)
	}
	params := value(c.root(), "params")
	kept := params.Content[:0]
	for _, item := range params.Content {
		if v := value(item, "id"); v != nil && v.Value == strconv.FormatUint(id, 10) {
			continue
		}
		kept = append(kept, item)
	}
	params.Content = kept
	delete(c.Sets, id)
	ids := c.IDs[:0]
	for _, x := range c.IDs {
		if x != id {
			ids = append(ids, x)
		}
	}
	c.IDs = ids
	return nil
}

func (c *storeConfig) idList() string {
	if len(c.IDs) == 0 {
		return "none"
	}
	ids := append([]uint64(nil), c.IDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(id, 10))
	}
	return b.String()
}

// encode renders the edited config, then parses it again to make sure
// whawty would accept it.
func (c *storeConfig) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.doc); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if _, err := parseConfig(b.Bytes()); err != nil {
		return nil, fmt.Errorf("edited config does not parse again: %w", err)
	}
	return b.Bytes(), nil
}
