package nextcloud

import (
	"context"
	"net/url"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// connAttrs are the inputs naming one server and account; with a prefix
// ("target_") they name the other side of a copy.
func connAttrs(prefix, side string, required bool) []sdk.Attribute {
	if side != "" {
		side += " "
	}
	return []sdk.Attribute{
		{Name: prefix + "url", Type: cty.String, Required: required,
			Description: "Root URL of the " + side + "server, e.g. https://cloud.example.net (where /remote.php and /ocs live)."},
		{Name: prefix + "login", Type: cty.String,
			Description: "Login name (may differ from the user id, e.g. an e-mail address)."},
		{Name: prefix + "password", Type: cty.String, Sensitive: true,
			Description: "Password or, better, an app password; never printed."},
		{Name: prefix + "user_id", Type: cty.String,
			Description: "The user id in DAV paths (/remote.php/dav/files/USER_ID). Empty: resolved with the OCS user endpoint, as nextcloud.probe does."},
	}
}

// conn holds the connection inputs of one server.
type conn struct {
	URL, Login, Password, UserID string
}

func connFrom(in cty.Value, prefix string) conn {
	return conn{
		URL:      ctyx.StringAttr(in, prefix+"url"),
		Login:    ctyx.StringAttr(in, prefix+"login"),
		Password: ctyx.StringAttr(in, prefix+"password"),
		UserID:   ctyx.StringAttr(in, prefix+"user_id"),
	}
}

func (c conn) client() (*Client, error) { return NewClient(c.URL, c.Login, c.Password) }

// davRoot opens a client and resolves the DAV files root of the account:
// /remote.php/dav/files/{user id}.
func (c conn) davRoot(ctx context.Context) (*Client, string, error) {
	cl, err := c.client()
	if err != nil {
		return nil, "", err
	}
	id := c.UserID
	if id == "" {
		u, err := probeUser(ctx, cl)
		if err != nil {
			cl.Close()
			return nil, "", err
		}
		id = u.ID
	}
	return cl, filesRoot(id), nil
}

// filesRoot is the DAV path of a user's files.
func filesRoot(userID string) string { return "/remote.php/dav/files/" + userID }

// joinPath joins a DAV root and a relative path ("/", "a/b", "/a/b/").
func joinPath(root, rel string) string {
	rel = strings.Trim(rel, "/")
	if rel == "" {
		return root
	}
	return root + "/" + rel
}

// validateConn checks a connection's URL when known.
func validateConn(in cty.Value, prefix string) sdk.Diagnostics {
	var d sdk.Diagnostics
	v := ctyx.Attr(in, prefix+"url")
	if v.IsNull() || !v.IsKnown() {
		return d
	}
	u, err := url.Parse(v.AsString())
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		d = d.Errorf([]string{prefix + "url"}, "must be an http(s) URL with a host")
	}
	return d
}

// intAttr returns a known number attribute, or def.
func intAttr(in cty.Value, name string, def int) int {
	i, _ := ctyx.IntAttr(in, name, int64(def))
	return int(i)
}
