// Package synapse checks a Synapse homeserver and migrates its accounts
// (users, passwords, emails, external IdP links, devices, access and
// refresh tokens) into a blank Matrix Authentication Service database.
package synapse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// New returns the synapse plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "synapse",
		Version: Version,
		Actions: []sdk.Action{&checkAction{}, &migrateAction{}, &exportAction{}},
	}
}

// commonInputAttrs are the inputs every action takes.
var commonInputAttrs = []sdk.Attribute{
	{Name: "synapse_config", Type: cty.List(cty.String), Required: true,
		Description: "Paths of Synapse's config files (homeserver.yaml and any others), merged at the top level; later files win."},
	{Name: "mas_config", Type: cty.String, Required: true,
		Description: "Path of the MAS config file (matrix.homeserver, database, passwords, upstream_oauth2)."},
	{Name: "synapse_database_url", Type: cty.String, Sensitive: true,
		Description: "PostgreSQL URL of the Synapse database; overrides the `database` section of the Synapse config."},
	{Name: "mas_database_url", Type: cty.String, Sensitive: true,
		Description: "PostgreSQL URL of the MAS database; overrides the `database` section of the MAS config."},
	{Name: "ignore_missing_providers", Type: cty.Bool,
		Description: "Report an IdP in use that the Synapse config does not define as a warning instead of an error (its links still need a MAS provider)."},
	{Name: "drop_links_without_mas_provider", Type: cty.Bool,
		Description: "Drop the external IdP links whose IdP no MAS provider maps (synapse_idp_id), with a warning and a count, instead of refusing to migrate."},
}

// env is what both actions load before touching a database.
type env struct {
	syn        *synapseConfig
	mas        *masConfig
	synDB      *dbTarget
	masDB      *dbTarget
	homeserver string
	// providers maps a Synapse IdP id (user_external_ids.auth_provider) to
	// the MAS provider id, from the MAS providers' synapse_idp_id.
	providers map[string]pgtype.UUID
	// badProviders lists MAS provider ids that are not valid ULIDs.
	badProviders []string
}

func loadEnv(synapsePaths []string, masPath, synapseURL, masURL string) (*env, error) {
	syn, err := loadSynapseConfig(synapsePaths)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the synapse_config paths", "%v", err)
	}
	mas, err := loadMASConfig(masPath)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the mas_config path", "%v", err)
	}
	e := &env{syn: syn, mas: mas, homeserver: mas.Matrix.Homeserver, providers: map[string]pgtype.UUID{}}
	var synSettings dbSettings
	if synapseURL == "" {
		synSettings, err = syn.database()
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "set synapse_database_url or fix the Synapse database section", "%v", err)
		}
	}
	if e.synDB, err = newTarget("Synapse", synapseURL, synSettings); err != nil {
		return nil, err
	}
	if e.masDB, err = newTarget("MAS", masURL, mas.database()); err != nil {
		return nil, err
	}
	if e.homeserver == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set matrix.homeserver in the MAS config", "the MAS config has no matrix.homeserver")
	}
	for idp, id := range mas.providersByIdp() {
		u, err := parseULID(id)
		if err != nil {
			e.badProviders = append(e.badProviders, fmt.Sprintf("%s (synapse_idp_id %s)", id, idp))
			continue
		}
		e.providers[idp] = u
	}
	return e, nil
}

// validateCommon checks the known inputs shared by every action.
func validateCommon(inputs cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	if inputs.IsNull() || !inputs.IsKnown() || !inputs.Type().IsObjectType() {
		return d
	}
	if inputs.Type().HasAttribute("synapse_config") {
		v := inputs.GetAttr("synapse_config")
		if v.IsKnown() && !v.IsNull() && v.LengthInt() == 0 {
			d = d.Errorf([]string{"synapse_config"}, "name at least one Synapse config file")
		}
	}
	if inputs.Type().HasAttribute("mas_config") {
		v := inputs.GetAttr("mas_config")
		if v.IsKnown() && !v.IsNull() && v.AsString() == "" {
			d = d.Errorf([]string{"mas_config"}, "the MAS config path is empty")
		}
	}
	return d
}

func (a *checkAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	return validateCommon(inputs)
}

func (a *migrateAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	return validateCommon(inputs)
}

func (a *exportAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	return validateCommon(inputs)
}

var (
	_ sdk.Validator = (*checkAction)(nil)
	_ sdk.Validator = (*migrateAction)(nil)
	_ sdk.Validator = (*exportAction)(nil)
)
