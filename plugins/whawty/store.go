package whawty

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
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
	// Names lists Files' keys in order, and List their values in the
	// same order (set by scanStoreWith).
	Names []string
	List  []*userFile
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
	return scanStoreWith(ctx, fsys, dir, scanOpts{cfg: cfg})
}

// scanOpts tunes scanStoreWith.
type scanOpts struct {
	cfg *storeConfig
	// contentOnly: the caller needs the user files' contents but not their
	// modes or owners (a sync source), which saves a stat per file.
	contentOnly bool
	// raw: neither parse the hash lines nor list problems (a sync
	// destination, which is compared byte for byte).
	raw bool
	// each, when not nil, sees files as a snapshot streams them in.
	each func(name string, data []byte)
}

// scanStoreWith lists dir and reads every user file, through the
// transport's snapshot when it has one that pays for the store's size.
func scanStoreWith(ctx context.Context, fsys fileSystem, dir string, o scanOpts) (*storeScan, error) {
	var (
		ents     []entry
		snapData []fileData // by position in ents
		fromSnap bool
	)
	if sn, ok := fsys.(snapshotter); ok {
		var err error
		if ents, snapData, fromSnap, err = sn.Snapshot(ctx, dir, o.each); err != nil {
			return nil, err
		}
	}
	if !fromSnap {
		var err error
		if ents, err = fsys.ReadDir(dir); err != nil {
			return nil, err
		}
	}
	if byName := func(a, b entry) int { return strings.Compare(a.Name, b.Name) }; !fromSnap && !slices.IsSortedFunc(ents, byName) {
		slices.SortFunc(ents, byName) // a snapshot comes sorted, its data aligned
	}
	s := &storeScan{Dir: dir, Files: make(map[string]*userFile, len(ents))}
	files := make([]userFile, 0, len(ents)) // one allocation for all
	var names, missing []string
	var snapFiles []fileData // by position in names
	for k, e := range ents {
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
		files = append(files, userFile{Name: e.Name, User: user, Admin: admin, Entry: e})
		s.Files[e.Name] = &files[len(files)-1]
		names = append(names, e.Name)
		if fromSnap {
			snapFiles = append(snapFiles, snapData[k])
			if snapData[k].Entry == nil {
				missing = append(missing, e.Name) // unreadable in the snapshot: try once more
			}
		}
	}
	// Contents by position in names.
	data := make([]fileData, len(names))
	have := make([]bool, len(names))
	if fromSnap {
		for i := range names {
			data[i], have[i] = snapFiles[i], snapFiles[i].Entry != nil
		}
	}
	if sr, ok := fsys.(slotReader); ok && !fromSnap {
		var err error
		if data, have, err = sr.readSlots(ctx, dir, names, !o.contentOnly); err != nil {
			return nil, err
		}
	} else if len(missing) > 0 || !fromSnap {
		if !fromSnap {
			missing = names
		}
		more, err := fsys.ReadFiles(ctx, dir, missing)
		if err != nil {
			return nil, err
		}
		for i, n := range names {
			if !have[i] {
				data[i], have[i] = more[n]
			}
		}
	}
	s.Names = make([]string, 0, len(names))
	s.List = make([]*userFile, 0, len(names))
	for i, name := range names {
		f := &files[i]
		if !have[i] { // vanished while reading
			delete(s.Files, name)
			continue
		}
		s.Names = append(s.Names, name)
		s.List = append(s.List, f)
		fd := data[i]
		if fd.Entry != nil {
			f.Entry = *fd.Entry
		}
		f.Content = fd.Data
		if !o.raw {
			f.Hash, f.HashErr = parseHashFile(fd.Data)
		}
	}
	if !o.raw {
		s.Problems = s.check(o.cfg)
	}
	return s, nil
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
	names := s.Names
	if len(names) != len(s.Files) {
		names = make([]string, 0, len(s.Files))
		for n := range s.Files {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	supportedAdmin := false
	for _, n := range names {
		f := s.Files[n]
		if f.Admin && s.Files[f.User+".user"] != nil {
			add(n, probBothUserAdmin, "%s.user exists too", f.User)
		}
		if !usernameRE.MatchString(f.User) {
			add(n, probInvalidUsername, "whawty ignores files whose user name does not match %s", usernameRE)
		}
		if !f.Entry.Lazy && f.Entry.Mode.Perm() != 0o600 {
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

// fatalChecks lists the problems that make whawty's own check fail, as
// check does without a config, for a directory holding the user files names
// (sorted) and the entries other. Only admin files' contents are asked for.
func fatalChecks(names []string, other []entry, content func(name string) []byte) []problem {
	var out []problem
	s := &storeScan{Other: other}
	for _, pr := range s.check(nil) { // the other entries, without files
		if fatalProblems[pr.Code] && pr.Code != probNoAdmin {
			out = append(out, pr)
		}
	}
	supportedAdmin := false
	for _, n := range names {
		user, admin, _ := splitName(n)
		if !admin {
			continue
		}
		if _, found := slices.BinarySearch(names, user+".user"); found {
			out = append(out, problem{File: n, Code: probBothUserAdmin, Detail: user + ".user exists too"})
		}
		if b := content(n); len(b) > 0 && !supportedAdmin && usernameRE.MatchString(user) {
			if _, err := parseHashFile(b); err == nil {
				supportedAdmin = true
			}
		}
	}
	if !supportedAdmin {
		out = append(out, problem{Code: probNoAdmin, Detail: "no .admin file has a supported hash; whawty will not start"})
	}
	return out
}
