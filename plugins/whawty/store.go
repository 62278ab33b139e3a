package whawty

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem codes reported by check.
const (
	probInvalidExtension = "invalid_extension"     // a file whawty rejects (fatal for whawty)
	probStrayTemp        = "stray_temp_file"       // rsync/editor temp file (fatal for whawty)
	probDirectory        = "unexpected_directory"  // a directory other than .tmp (fatal for whawty)
	probBothUserAdmin    = "both_user_and_admin"   // x.user beside x.admin (fatal for whawty)
	probNoAdmin          = "no_supported_admin"    // no .admin file with a supported hash (fatal)
	probEmpty            = "empty_file"            // placeholder left by an add
	probUnparseable      = "unparseable_hash"      // line 1 does not parse
	probLegacy           = "legacy_v01_layout"     // v0.1 hash-before-salt layout
	probUnknownSet       = "unknown_parameter_set" // paramID not in the config
	probFormatMismatch   = "format_mismatch"       // format differs from the set's
	probPermissions      = "bad_permissions"       // hash file not 0600 or .tmp not 0700
	probNotRegular       = "not_regular_file"      // symlink, device, ...
	probInvalidUsername  = "invalid_username"      // whawty skips such files
	probNoTmp            = "missing_tmp_dir"       // .tmp/ missing: whawty cannot write
)

// fatalProblems are the problems that make whawty's own Check fail.
var fatalProblems = map[string]bool{
	probInvalidExtension: true, probStrayTemp: true, probDirectory: true,
	probBothUserAdmin: true, probNoAdmin: true,
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][-_.@A-Za-z0-9]*$`)

// problem is one finding of check.
type problem struct {
	File   string
	Code   string
	Detail string
}

func (p problem) String() string {
	if p.File == "" {
		return p.Code + ": " + p.Detail
	}
	return p.File + ": " + p.Code + ": " + p.Detail
}

// userFile is one <user>.admin or <user>.user file.
type userFile struct {
	Name    string // file name
	User    string
	Admin   bool
	Entry   entry
	Content []byte
	Hash    hashLine
	HashErr error // nil when line 1 parsed
}

// storeScan is what a store directory holds.
type storeScan struct {
	Dir   string
	Files map[string]*userFile // by file name
	// Other lists every entry that is neither a user file nor .tmp.
	Other    []entry
	Tmp      *entry // nil when .tmp is missing
	Problems []problem
}

// splitName returns the user and admin flag of a hash file name.
func splitName(name string) (user string, admin, ok bool) {
	if u, found := strings.CutSuffix(name, ".admin"); found && u != "" {
		return u, true, true
	}
	if u, found := strings.CutSuffix(name, ".user"); found && u != "" {
		return u, false, true
	}
	return "", false, false
}

// isTempName recognises temp files of rsync (.<name>.XXXXXX), its
// --delay-updates dir (.~tmp~) and editors.
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".swp")
}

// scanStore lists dir and reads every user file. With cfg it also checks
// parameter-sets and supported admins.
func scanStore(ctx context.Context, fsys fileSystem, dir string, cfg *storeConfig) (*storeScan, error) {
	// A snapshot starts while the directory is listed: over ssh, starting
	// the remote command (the user's shell and its rc files) and listing
	// by SFTP each take a noticeable time, and they overlap.
	snap := startSnapshot(ctx, fsys, dir)
	defer snap.stop()
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	s := &storeScan{Dir: dir, Files: map[string]*userFile{}}
	var names []string
	for _, e := range ents {
		if e.Name == ".tmp" {
			e := e
			s.Tmp = &e
			continue
		}
		user, admin, ok := splitName(e.Name)
		if !ok || !e.Regular {
			if e.Lazy { // stray regular file: its mode matters for undo
				if full, err := fsys.Stat(path.Join(dir, e.Name)); err == nil {
					e = full
				}
			}
			s.Other = append(s.Other, e)
			continue
		}
		s.Files[e.Name] = &userFile{Name: e.Name, User: user, Admin: admin, Entry: e}
		names = append(names, e.Name)
	}
	contents, err := readContents(ctx, fsys, dir, names, snap)
	if err != nil {
		return nil, err
	}
	for name, f := range s.Files {
		fd, ok := contents[name]
		if !ok { // vanished while reading
			delete(s.Files, name)
			continue
		}
		if fd.Entry != nil {
			f.Entry = *fd.Entry
		}
		f.Content = fd.Data
		f.Hash, f.HashErr = parseHashFile(fd.Data)
	}
	s.Problems = s.check(cfg)
	return s, nil
}

// snapshotMin is the store size from which a transport's one-stream
// snapshot pays for its start-up cost (an exec session on the host).
var snapshotMin = 2000

// pendingSnapshot is a snapshot running in the background (nil when the
// transport has none).
type pendingSnapshot struct {
	cancel context.CancelFunc
	done   chan struct{}
	data   map[string]fileData
	ok     bool
	err    error
}

func startSnapshot(ctx context.Context, fsys fileSystem, dir string) *pendingSnapshot {
	sn, ok := fsys.(snapshotter)
	if !ok {
		return nil
	}
	sctx, cancel := context.WithCancel(ctx)
	p := &pendingSnapshot{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.data, p.ok, p.err = sn.Snapshot(sctx, dir)
	}()
	return p
}

// stop cancels the snapshot if it still runs and waits for it to end.
func (p *pendingSnapshot) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// wait returns the snapshot's result.
func (p *pendingSnapshot) wait() (map[string]fileData, bool, error) {
	<-p.done
	return p.data, p.ok, p.err
}

// readContents reads names in dir, through the snapshot when the transport
// has one and the store is large. Names the snapshot lacks (created while
// it ran) are read one by one.
func readContents(ctx context.Context, fsys fileSystem, dir string, names []string, snap *pendingSnapshot) (map[string]fileData, error) {
	if snap != nil && len(names) >= snapshotMin {
		data, have, err := snap.wait()
		if err != nil {
			return nil, err
		}
		if have {
			var missing []string
			for _, n := range names {
				if _, ok := data[n]; !ok {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				more, err := fsys.ReadFiles(ctx, dir, missing)
				if err != nil {
					return nil, err
				}
				for n, fd := range more {
					data[n] = fd
				}
			}
			return data, nil
		}
	}
	snap.stop()
	return fsys.ReadFiles(ctx, dir, names)
}

// check lists the store's problems.
func (s *storeScan) check(cfg *storeConfig) []problem {
	var out []problem
	add := func(file, code, format string, args ...any) {
		out = append(out, problem{File: file, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	switch {
	case s.Tmp == nil:
		add(".tmp", probNoTmp, "whawty writes through .tmp/; create it with mode 0700")
	case !s.Tmp.Dir:
		add(".tmp", probNotRegular, ".tmp is not a directory")
	case s.Tmp.Mode.Perm() != 0o700:
		add(".tmp", probPermissions, "mode %04o, want 0700", s.Tmp.Mode.Perm())
	}
	for _, e := range s.Other {
		_, _, hashName := splitName(e.Name)
		switch {
		case e.Dir:
			add(e.Name, probDirectory, "whawty allows no directory but .tmp")
		case hashName:
			add(e.Name, probNotRegular, "not a regular file (mode %s)", e.Mode.Type())
		case isTempName(e.Name):
			add(e.Name, probStrayTemp, "temp file in the store directory; whawty check fails while it exists")
		default:
			add(e.Name, probInvalidExtension, "not <user>.admin or <user>.user")
		}
	}
	names := make([]string, 0, len(s.Files))
	for n := range s.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	supportedAdmin := false
	for _, n := range names {
		f := s.Files[n]
		if f.Admin && s.Files[f.User+".user"] != nil {
			add(n, probBothUserAdmin, "%s.user exists too", f.User)
		}
		if !usernameRE.MatchString(f.User) {
			add(n, probInvalidUsername, "whawty ignores files whose user name does not match %s", usernameRE)
		}
		if f.Entry.Mode.Perm() != 0o600 {
			add(n, probPermissions, "mode %04o, want 0600", f.Entry.Mode.Perm())
		}
		switch {
		case len(f.Content) == 0:
			add(n, probEmpty, "empty file (placeholder of an interrupted add?)")
			continue
		case f.HashErr == errLegacyLayout:
			add(n, probLegacy, "%v", f.HashErr)
			continue
		case f.HashErr != nil:
			add(n, probUnparseable, "%v", f.HashErr)
			continue
		}
		supported := true
		if cfg != nil {
			set := cfg.Sets[f.Hash.ParamID]
			switch {
			case set == nil:
				add(n, probUnknownSet, "parameter-set %d is not in the config", f.Hash.ParamID)
				supported = false
			case set.format() != f.Hash.Format:
				add(n, probFormatMismatch, "hash is %s but parameter-set %d is %s", f.Hash.Format, f.Hash.ParamID, set.format())
				supported = false
			}
		}
		if f.Admin && supported && usernameRE.MatchString(f.User) {
			supportedAdmin = true
		}
	}
	if !supportedAdmin {
		add("", probNoAdmin, "no .admin file has a supported hash; whawty will not start")
	}
	return out
}

// fatal reports whether whawty's own check would fail.
func (s *storeScan) fatal() []problem {
	var out []problem
	for _, p := range s.Problems {
		if fatalProblems[p.Code] {
			out = append(out, p)
		}
	}
	return out
}

// perSet counts parseable hashes per parameter-set id (as a string key).
func (s *storeScan) perSet() map[string]int64 {
	m := map[string]int64{}
	for _, f := range s.Files {
		if f.HashErr == nil && len(f.Content) > 0 {
			m[strconv.FormatUint(f.Hash.ParamID, 10)]++
		}
	}
	return m
}

func (s *storeScan) path(name string) string { return path.Join(s.Dir, name) }
