//go:build !linux

package nextcloud

func renameNoReplace(tmp, final string) error { return linkNoReplace(tmp, final) }
