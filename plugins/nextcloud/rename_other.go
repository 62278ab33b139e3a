//go:build !linux

package nextcloud

import (
	"os"
	"time"
)

func renameNoReplace(tmp, final string) error { return linkNoReplace(tmp, final) }

// createAnon is Linux's O_TMPFILE; elsewhere files go through a named
// temporary file.
func createAnon(string) (*os.File, error) { return nil, errNoAnon }

func linkAnon(*os.File, string, time.Time) error { return errNoAnon }
