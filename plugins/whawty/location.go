package whawty

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/runbookdev/runbook/sdk"
)

// location is where a store directory or a config file lives: a local path
// or a path on an SSH host.
type location struct {
	// Path is absolute and cleaned.
	Path string
	// SSH is nil for a local path.
	SSH *sshTarget
}

// sshTarget names an SSH endpoint.
type sshTarget struct {
	User string
	Host string
	Port int
}

func (t *sshTarget) addr() string { return fmt.Sprintf("%s:%d", t.Host, t.Port) }

// String renders the location the way it was written (without secrets:
// ssh URLs never carry a password).
func (l location) String() string {
	if l.SSH == nil {
		return l.Path
	}
	return fmt.Sprintf("ssh://%s@%s%s", l.SSH.User, l.SSH.addr(), l.Path)
}

// hostKey identifies the host a location is on ("" for local), so two
// locations on one host share a connection.
func (l location) hostKey() string {
	if l.SSH == nil {
		return ""
	}
	return l.SSH.User + "@" + l.SSH.addr()
}

// join returns the location of name inside l.
func (l location) join(name string) location {
	l.Path = path.Join(l.Path, name)
	return l
}

// dir returns the location of l's parent directory.
func (l location) dir() location {
	l.Path = path.Dir(l.Path)
	return l
}

// parseLocation accepts "/abs/path" or "ssh://user@host[:port]/abs/path".
func parseLocation(s string) (location, error) {
	invalid := func(format string, args ...any) (location, error) {
		return location{}, sdk.Errorf(sdk.KindInvalid, false,
			"write a local absolute path or ssh://user@host:port/absolute/path",
			"location %q: %s", redactLocation(s), fmt.Sprintf(format, args...))
	}
	if s == "" {
		return invalid("empty")
	}
	if !strings.Contains(s, "://") {
		if !strings.HasPrefix(s, "/") {
			return invalid("a local path must be absolute")
		}
		return location{Path: path.Clean(s)}, nil
	}
	if redactLocation(s) != s {
		return invalid("passwords in URLs are not supported (the password was left out of this message); use a key or the ssh agent")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a password
		}
		return invalid("%v", err)
	}
	if u.Scheme != "ssh" {
		return invalid("unsupported scheme %q", u.Scheme)
	}
	if u.User == nil || u.User.Username() == "" {
		return invalid("missing user")
	}
	if _, ok := u.User.Password(); ok {
		return invalid("passwords in URLs are not supported (the password was left out of this message); use a key or the ssh agent")
	}
	if u.Hostname() == "" {
		return invalid("missing host")
	}
	port := 22
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return invalid("bad port %q", p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return invalid("query and fragment are not allowed")
	}
	if !strings.HasPrefix(u.Path, "/") {
		return invalid("missing absolute path after host:port")
	}
	return location{
		Path: path.Clean(u.Path),
		SSH:  &sshTarget{User: u.User.Username(), Host: u.Hostname(), Port: port},
	}, nil
}

// redactLocation replaces what looks like the password of a URL's
// userinfo by "xxxxx", without parsing the URL (one that does not parse,
// e.g. with a "/" in the password, may hold one too): everything between
// the first ":" and the first "@" after "://", when there is such a ":".
// It errs on the side of hiding too much: it is only for messages.
func redactLocation(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	userinfo, after, ok := strings.Cut(rest, "@")
	if !ok {
		return s
	}
	user, _, hasPassword := strings.Cut(userinfo, ":")
	if !hasPassword {
		return s
	}
	return scheme + "://" + user + ":xxxxx@" + after
}
