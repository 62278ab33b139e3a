package synapse

import (
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// synapseConfig is what the plugin reads from Synapse's homeserver.yaml
// files (merged at the top level, later files win).
type synapseConfig struct {
	raw map[string]any
}

// loadSynapseConfig reads and merges the files.
func loadSynapseConfig(paths []string) (*synapseConfig, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no Synapse config file given")
	}
	merged := map[string]any{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read Synapse config: %w", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("parse Synapse config %s: %w", p, err)
		}
		for k, v := range m {
			merged[k] = v
		}
	}
	return &synapseConfig{raw: merged}, nil
}

// get walks nested maps by keys.
func get(m map[string]any, keys ...string) (any, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func getBool(m map[string]any, def bool, keys ...string) bool {
	v, ok := get(m, keys...)
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		return def
	}
	return b
}

func getString(m map[string]any, keys ...string) string {
	v, ok := get(m, keys...)
	if !ok || v == nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case int, int64, float64, bool:
		return fmt.Sprint(v)
	}
	return ""
}

func (c *synapseConfig) serverName() string { return getString(c.raw, "server_name") }

// explicitTrue reports whether key is present and set to true.
func (c *synapseConfig) explicitTrue(keys ...string) bool { return getBool(c.raw, false, keys...) }

func (c *synapseConfig) has(key string) bool {
	v, ok := c.raw[key]
	return ok && v != nil
}

// idpIDs returns the IdP ids Synapse stores in user_external_ids for its
// OIDC providers, as Synapse derives them: the configured idp_id (default
// "oidc") prefixed with "oidc-" unless it is exactly "oidc".
func (c *synapseConfig) idpIDs() map[string]bool {
	out := map[string]bool{}
	norm := func(id string) string {
		if id == "" {
			id = "oidc"
		}
		if id != "oidc" {
			id = "oidc-" + id
		}
		return id
	}
	if oc, ok := c.raw["oidc_config"].(map[string]any); ok {
		if getBool(oc, true, "enabled") && getString(oc, "issuer") != "" && getString(oc, "client_id") != "" {
			out[norm(getString(oc, "idp_id"))] = true
		}
	}
	if list, ok := c.raw["oidc_providers"].([]any); ok {
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				out[norm(getString(pm, "idp_id"))] = true
			}
		}
	}
	return out
}

// dbSettings is the database section of either config.
type dbSettings struct {
	URI      string
	Host     string
	Port     string
	User     string
	Password string
	Database string
}

// database reads the `database:` section.
func (c *synapseConfig) database() (dbSettings, error) {
	var s dbSettings
	db, ok := c.raw["database"].(map[string]any)
	if !ok {
		return s, fmt.Errorf("the Synapse config has no database section")
	}
	if name := getString(db, "name"); name != "psycopg2" {
		if name == "sqlite3" {
			return s, fmt.Errorf("the Synapse config uses the sqlite3 database driver: only PostgreSQL (psycopg2) is supported")
		}
		return s, fmt.Errorf("the Synapse config uses database driver %q: only psycopg2 (PostgreSQL) is supported", name)
	}
	args, _ := db["args"].(map[string]any)
	s.Host = getString(args, "host")
	s.Port = getString(args, "port")
	s.User = getString(args, "user")
	s.Password = getString(args, "password")
	dbname, database := getString(args, "dbname"), getString(args, "database")
	if dbname != "" && database != "" {
		return s, fmt.Errorf("the Synapse database args set both dbname and database")
	}
	s.Database = dbname + database
	return s, nil
}

// masConfig is what the plugin reads from the MAS config file.
type masConfig struct {
	Matrix struct {
		Homeserver string `yaml:"homeserver"`
	} `yaml:"matrix"`
	Database struct {
		URI      string `yaml:"uri"`
		Host     string `yaml:"host"`
		Port     any    `yaml:"port"`
		Username string `yaml:"username"`
		Password string `yaml:"password"`
		Database string `yaml:"database"`
	} `yaml:"database"`
	Passwords struct {
		Enabled *bool            `yaml:"enabled"`
		Schemes []passwordScheme `yaml:"schemes"`
	} `yaml:"passwords"`
	UpstreamOAuth2 struct {
		Providers []masProvider `yaml:"providers"`
	} `yaml:"upstream_oauth2"`
	Captcha struct {
		Service string `yaml:"service"`
	} `yaml:"captcha"`
	Branding struct {
		TOSURI string `yaml:"tos_uri"`
	} `yaml:"branding"`
}

type passwordScheme struct {
	Version              int    `yaml:"version"`
	Algorithm            string `yaml:"algorithm"`
	Cost                 int    `yaml:"cost,omitempty"`
	Secret               string `yaml:"secret,omitempty"`
	SecretFile           string `yaml:"secret_file,omitempty"`
	UnicodeNormalization bool   `yaml:"unicode_normalization,omitempty"`
}

type masProvider struct {
	ID           string `yaml:"id"`
	SynapseIdpID string `yaml:"synapse_idp_id"`
	Issuer       string `yaml:"issuer"`
}

// defaultSchemes is MAS's default when `passwords.schemes` is absent.
var defaultSchemes = []passwordScheme{{Version: 1, Algorithm: "argon2id"}}

func loadMASConfig(path string) (*masConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read MAS config: %w", err)
	}
	var c masConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse MAS config %s: %w", path, err)
	}
	if c.Passwords.Schemes == nil {
		c.Passwords.Schemes = defaultSchemes
	}
	return &c, nil
}

func (c *masConfig) database() dbSettings {
	d := c.Database
	port := ""
	if d.Port != nil {
		port = fmt.Sprint(d.Port)
	}
	return dbSettings{URI: d.URI, Host: d.Host, Port: port, User: d.Username, Password: d.Password, Database: d.Database}
}

// v1Scheme returns the password scheme with version 1, if any.
func (c *masConfig) v1Scheme() (passwordScheme, bool) {
	for _, s := range c.Passwords.Schemes {
		if s.Version == 1 {
			return s, true
		}
	}
	return passwordScheme{}, false
}

// secretBytes returns the scheme's pepper (secret or secret_file content).
func (s passwordScheme) secretBytes() ([]byte, error) {
	if s.SecretFile != "" {
		b, err := os.ReadFile(s.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("read password secret_file: %w", err)
		}
		return b, nil
	}
	if s.Secret != "" {
		return []byte(s.Secret), nil
	}
	return nil, nil
}

// providersByIdp maps synapse_idp_id to the MAS provider id (a ULID).
func (c *masConfig) providersByIdp() map[string]string {
	out := map[string]string{}
	for _, p := range c.UpstreamOAuth2.Providers {
		if p.SynapseIdpID != "" {
			out[strings.TrimSpace(p.SynapseIdpID)] = p.ID
		}
	}
	return out
}
