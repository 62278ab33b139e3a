package baseurl

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		raw, user, password       string
		ok                        bool
		url, wantUser, wantPasswd string
	}{
		{raw: " http://127.0.0.1:5984/ ", ok: true, url: "http://127.0.0.1:5984"},
		{raw: "https://a:b@host/x/?q=1#f", ok: true, url: "https://host/x", wantUser: "a", wantPasswd: "b"},
		{raw: "https://a:b@host", user: "u", password: "p", ok: true, url: "https://host", wantUser: "u", wantPasswd: "p"},
		{raw: "https://a@host", password: "p", ok: true, url: "https://host", wantUser: "a", wantPasswd: "p"},
		{raw: "http://host/a%2Fb/", ok: true, url: "http://host/a%2Fb"},
		{raw: "ftp://host"},
		{raw: "host:5984"},
		{raw: "http://"},
		{raw: "http://host/%zz"},
	}
	for _, tc := range tests {
		u, user, password, ok := Parse(tc.raw, tc.user, tc.password)
		if ok != tc.ok {
			t.Errorf("Parse(%q) ok = %v, want %v", tc.raw, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := u.String(); got != tc.url || user != tc.wantUser || password != tc.wantPasswd {
			t.Errorf("Parse(%q) = %q, %q, %q; want %q, %q, %q", tc.raw, got, user, password, tc.url, tc.wantUser, tc.wantPasswd)
		}
	}
}
