// Package baseurl reads the base URL a plugin's HTTP client is given: the
// server's address, which may carry the credentials too.
package baseurl

import (
	"net/url"
	"strings"
)

// Parse parses raw (white space trimmed) as an http or https URL with a
// host; ok is false when it is not one. The credentials inside the URL
// (user:pass@host) fill user and password where those are empty: the
// explicit ones win. The URL returned has no userinfo, no query, no
// fragment and no trailing slash in its path.
func Parse(raw, user, password string) (*url.URL, string, string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, "", "", false
	}
	if u.User != nil {
		if user == "" {
			user = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && password == "" {
			password = p
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, user, password, true
}
