package whawty

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    location
		wantErr bool
	}{
		{in: "/var/lib/whawty/auth/store/", want: location{Path: "/var/lib/whawty/auth/store"}},
		{in: "ssh://root@auth1:2222/var/lib/store", want: location{Path: "/var/lib/store", SSH: &sshTarget{User: "root", Host: "auth1", Port: 2222}}},
		{in: "ssh://whawty@[::1]/etc/whawty/auth-store.yaml", want: location{Path: "/etc/whawty/auth-store.yaml", SSH: &sshTarget{User: "whawty", Host: "::1", Port: 22}}},
		{in: "relative/path", wantErr: true},
		{in: "", wantErr: true},
		{in: "ssh://auth1/x", wantErr: true},            // no user
		{in: "ssh://root:pw@auth1/x", wantErr: true},    // password
		{in: "ssh://root@auth1:0/x", wantErr: true},     // bad port
		{in: "ssh://root@auth1:22", wantErr: true},      // no path
		{in: "sftp://root@auth1/x", wantErr: true},      // scheme
		{in: "ssh://root@auth1/x?opt=1", wantErr: true}, // query
	}
	for _, tt := range tests {
		got, err := parseLocation(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil {
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("%q (-want +got):\n%s", tt.in, d)
			}
			if again, _ := parseLocation(got.String()); !cmp.Equal(again, got) {
				t.Errorf("%q: String() does not round-trip: %s", tt.in, got)
			}
		}
	}
	// A password is refused without being repeated, whether the URL
	// parses or not.
	for _, in := range []string{"ssh://root:hunter2@auth1/x", "ssh://root:hunter2@auth1:bad/x", "ssh://root:hunter2@auth1%zz/x", "ssh://root:hun/ter2@auth1/x"} {
		_, err := parseLocation(in)
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun/ter2") {
			t.Errorf("%q: err = %v, want refused without the password", in, err)
		}
	}
	if kindOf(func() error { _, err := parseLocation("x"); return err }()) != "invalid" {
		t.Error("bad location not classified invalid")
	}
}
