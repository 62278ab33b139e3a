//go:build !unix

package pluginhost

// fileIdentity: without a change time that a user cannot set back, a cached
// sum could be stale; the binary is hashed every time.
func fileIdentity(string) (string, bool) { return "", false }
