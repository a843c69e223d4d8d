package layering

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SysUser is one user or group a package needs, or one membership, as a
// sysusers.d(5) line ("u", "g" or "m") says it.
type SysUser struct {
	// Type is 'u' (a user, and its group of the same name unless Group
	// names another), 'g' (a group) or 'm' (user Name is a member of
	// group Group; both are created when missing, as systemd-sysusers does).
	Type byte
	// Name is the user or group name (for 'm', the user).
	Name string
	// ID is the numeric uid or gid, or "" to allocate one.
	ID string
	// Group is the primary group of a user ("" means a group of its own name).
	Group string
	// GECOS, Home and Shell are the user's passwd fields ("" for defaults).
	GECOS, Home, Shell string
}

// SysusersDir is where packages ship their sysusers.d files.
const SysusersDir = "usr/lib/sysusers.d"

// ParseSysusers reads a sysusers.d file: the "u", "g" and "m" (membership)
// lines become entries; "r" (ranges) lines are accepted and skipped (ids
// are allocated below 1000). Anything else is an error naming the line.
func ParseSysusers(name string, r io.Reader) ([]SysUser, error) {
	var out []SysUser
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f, err := shellFields(text)
		if err != nil || len(f) < 2 {
			return nil, fmt.Errorf("%s:%d: expected TYPE NAME [ID [GECOS [HOME [SHELL]]]]", name, line)
		}
		typ := strings.TrimSuffix(f[0], "!")
		field := func(i int) string {
			if i < len(f) && f[i] != "-" {
				return f[i]
			}
			return ""
		}
		switch typ {
		case "r":
			continue
		case "m":
			if len(f) < 3 || !validAccountName(f[1]) || !validAccountName(f[2]) {
				return nil, fmt.Errorf("%s:%d: expected m USER GROUP", name, line)
			}
			out = append(out, SysUser{Type: 'm', Name: f[1], Group: f[2]})
			continue
		case "u", "g":
		default:
			return nil, fmt.Errorf("%s:%d: unsupported sysusers.d line type %q", name, line, f[0])
		}
		if !validAccountName(f[1]) {
			return nil, fmt.Errorf("%s:%d: invalid user or group name %q", name, line, f[1])
		}
		e := SysUser{Type: typ[0], Name: f[1]}
		id := field(2)
		if typ == "u" {
			if uid, gid, ok := strings.Cut(id, ":"); ok {
				id, e.Group = uid, gid
			}
			e.GECOS, e.Home, e.Shell = field(3), field(4), field(5)
		}
		if id != "" {
			if strings.HasPrefix(id, "/") {
				id = "" // "the uid of this file's owner": allocate instead
			} else if _, err := strconv.ParseUint(id, 10, 32); err != nil {
				return nil, fmt.Errorf("%s:%d: id %q of %q is not a number", name, line, id, e.Name)
			}
		}
		if strings.ContainsAny(e.GECOS+e.Home+e.Shell, ":\n") || (e.Group != "" && !validAccountName(e.Group)) {
			return nil, fmt.Errorf("%s:%d: invalid field of %q", name, line, e.Name)
		}
		e.ID = id
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

func validAccountName(n string) bool {
	if n == "" || len(n) > 32 || n[0] == '-' {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return n != "." && n != ".."
}

// shellFields splits a line into words as sh would for plain words and
// single- or double-quoted strings (no expansions).
func shellFields(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// PreScriptUsers recognises a %pre script whose only effect is creating
// users and groups, the idiom of Fedora's and EPEL's packaging guidelines:
//
//	getent group NAME >/dev/null || groupadd -r NAME
//	getent passwd NAME >/dev/null || useradd -r -g NAME -d HOME -s SHELL -c GECOS NAME
//	exit 0
//
// (with or without the getent guards, backslash continuations, comments
// and a final "exit 0"). It returns the users and groups as sysusers.d
// entries, and false for any script that does anything else.
func PreScriptUsers(body string) ([]SysUser, bool) {
	body = strings.ReplaceAll(body, "\\\n", " ")
	var out []SysUser
	for _, raw := range strings.Split(body, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		for _, stmt := range strings.Split(line, ";") {
			stmt = strings.TrimSpace(stmt)
			if stmt == "" || stmt == ":" || stmt == "exit 0" || stmt == "true" {
				continue
			}
			if strings.ContainsAny(stmt, "$`&|<>(){}*?\\") && !strings.Contains(stmt, "||") {
				return nil, false
			}
			cmd := stmt
			if guard, rest, ok := strings.Cut(stmt, "||"); ok {
				if !getentGuard(guard) {
					return nil, false
				}
				cmd = strings.TrimSpace(rest)
			}
			if strings.ContainsAny(cmd, "$`&|<>(){}*?\\") {
				return nil, false
			}
			words, err := shellFields(cmd)
			if err != nil || len(words) == 0 {
				return nil, false
			}
			e, ok := accountCommand(words)
			if !ok {
				return nil, false
			}
			out = append(out, e)
		}
	}
	return out, len(out) > 0
}

// getentGuard accepts `getent group|passwd NAME` with its output sent to
// /dev/null.
func getentGuard(s string) bool {
	words, err := shellFields(strings.TrimSpace(s))
	if err != nil || len(words) < 3 || filepath.Base(words[0]) != "getent" || (words[1] != "group" && words[1] != "passwd") || !validAccountName(words[2]) {
		return false
	}
	for _, w := range words[3:] {
		switch w {
		case ">/dev/null", "&>/dev/null", "2>&1", "2>/dev/null", ">", "/dev/null":
		default:
			return false
		}
	}
	return true
}

// accountCommand translates one groupadd or useradd command line.
func accountCommand(w []string) (SysUser, bool) {
	var e SysUser
	switch filepath.Base(w[0]) {
	case "groupadd":
		e.Type = 'g'
	case "useradd":
		e.Type = 'u'
	default:
		return e, false
	}
	for i := 1; i < len(w); i++ {
		a := w[i]
		val := func() (string, bool) {
			if i+1 >= len(w) {
				return "", false
			}
			i++
			return w[i], true
		}
		var ok = true
		switch {
		case a == "-r" || a == "--system" || a == "-f" || a == "--force" || a == "-M" || a == "--no-create-home" ||
			a == "-N" || a == "--no-user-group" || a == "-l" || a == "--no-log-init" || a == "-U" || a == "--user-group" || a == "-m" || a == "--create-home":
		case (a == "-g" || a == "--gid") && e.Type == 'g', (a == "-u" || a == "--uid") && e.Type == 'u':
			e.ID, ok = val()
			if _, err := strconv.ParseUint(e.ID, 10, 32); err != nil {
				return e, false
			}
		case a == "-g" || a == "--gid":
			e.Group, ok = val()
		case a == "-G" || a == "--groups":
			_, ok = val() // supplementary groups do not own files
		case a == "-d" || a == "--home-dir" || a == "--home":
			e.Home, ok = val()
		case a == "-s" || a == "--shell":
			e.Shell, ok = val()
		case a == "-c" || a == "--comment":
			e.GECOS, ok = val()
		case strings.HasPrefix(a, "-"):
			return e, false
		default:
			if e.Name != "" || !validAccountName(a) {
				return e, false
			}
			e.Name = a
		}
		if !ok {
			return e, false
		}
	}
	if e.Name == "" || strings.ContainsAny(e.GECOS+e.Home+e.Shell, ":\n") {
		return e, false
	}
	return e, true
}

// idFiles are a tree's passwd and group files, in the order names are looked up.
func idFiles(tree string) (passwd, group []string) {
	return []string{filepath.Join(tree, "usr/etc/passwd"), filepath.Join(tree, "usr/lib/passwd")},
		[]string{filepath.Join(tree, "usr/etc/group"), filepath.Join(tree, "usr/lib/group")}
}

// AccountIDs are the uids and gids accounts had in a tree, by name.
type AccountIDs struct {
	Users, Groups map[string]uint64
}

// PreviousIDs reads the accounts of the tree a new one replaces (the merge
// deployment): its /etc first (the host's own users, which the /etc merge
// carries into the new deployment), then its usr/lib files (the users
// earlier layering added). A missing tree or file gives no accounts.
func PreviousIDs(root string) (AccountIDs, error) {
	if root == "" {
		return AccountIDs{}, nil
	}
	users, _, err := readIDs([]string{filepath.Join(root, "etc/passwd"), filepath.Join(root, "usr/lib/passwd")})
	if err != nil {
		return AccountIDs{}, fmt.Errorf("read the accounts of %s: %w", root, err)
	}
	groups, _, err := readIDs([]string{filepath.Join(root, "etc/group"), filepath.Join(root, "usr/lib/group")})
	if err != nil {
		return AccountIDs{}, fmt.Errorf("read the accounts of %s: %w", root, err)
	}
	return AccountIDs{Users: users, Groups: groups}, nil
}

// AddSysUsers creates the users and groups a tree lacks in its
// usr/lib/passwd and usr/lib/group (where rpm-ostree keeps the users of the
// OS image, read through nss-altfiles): libostree's /etc merge keeps a
// host's changed /etc/passwd, so users added to usr/etc/passwd would be lost
// on a host that has a user of its own. Groups first, then users, then the
// memberships ("m" lines, creating what they name when missing); a user
// with no group gets one of its name (with the same id when it is free).
// An account keeps the id it had in prev (the deployment this tree
// replaces) when that id is free here, so files it owns in /var and /etc
// keep their owner across upgrades and re-layering; other ids are
// allocated downwards from 999, as systemd-sysusers does. The files are
// replaced, never written in place (the tree is a hardlink checkout).
func AddSysUsers(tree string, entries []SysUser, prev AccountIDs) (added []string, err error) {
	pw, gr := idFiles(tree)
	users, uids, err := readIDs(pw)
	if err != nil {
		return nil, err
	}
	groups, gids, err := readIDs(gr)
	if err != nil {
		return nil, err
	}
	var pwLines, grLines []string
	newGroup := map[string]int{} // name -> index in grLines
	free := func(used map[uint64]bool, want string, before uint64, hadBefore bool) (uint64, error) {
		if want != "" {
			id, _ := strconv.ParseUint(want, 10, 32)
			return id, nil
		}
		if hadBefore && before > 0 && before != 65534 && !used[before] {
			return before, nil
		}
		for id := uint64(999); id > 0; id-- {
			if !uids[id] && !gids[id] {
				return id, nil
			}
		}
		return 0, fmt.Errorf("no free system id below 1000")
	}
	addGroup := func(name, id string) (uint64, error) {
		if g, ok := groups[name]; ok {
			return g, nil
		}
		before, had := prev.Groups[name]
		gid, err := free(gids, id, before, had)
		if err != nil {
			return 0, err
		}
		groups[name], gids[gid] = gid, true
		newGroup[name] = len(grLines)
		grLines = append(grLines, fmt.Sprintf("%s:x:%d:", name, gid))
		added = append(added, "group "+name)
		return gid, nil
	}
	addUser := func(e SysUser) error {
		if _, ok := users[e.Name]; ok {
			return nil
		}
		before, had := prev.Users[e.Name]
		uid, err := free(uids, e.ID, before, had)
		if err != nil {
			return err
		}
		uids[uid] = true
		var gid uint64
		switch {
		case e.Group == "":
			want := ""
			if pg, ok := prev.Groups[e.Name]; ok && pg > 0 && pg != 65534 && !gids[pg] {
				want = strconv.FormatUint(pg, 10) // the id it had
			} else if !gids[uid] {
				want = strconv.FormatUint(uid, 10)
			}
			gid, err = addGroup(e.Name, want)
		case isNumber(e.Group):
			gid, _ = strconv.ParseUint(e.Group, 10, 32)
		default:
			var ok bool
			if gid, ok = groups[e.Group]; !ok {
				err = fmt.Errorf("its group %q does not exist", e.Group)
			}
		}
		if err != nil {
			return err
		}
		users[e.Name] = uid
		home, shell := e.Home, e.Shell
		if home == "" {
			home = "/"
		}
		if shell == "" {
			shell = "/usr/sbin/nologin"
		}
		pwLines = append(pwLines, fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", e.Name, uid, gid, e.GECOS, home, shell))
		added = append(added, "user "+e.Name)
		return nil
	}
	for _, e := range entries {
		if e.Type == 'g' {
			if _, err := addGroup(e.Name, e.ID); err != nil {
				return nil, fmt.Errorf("add group %s: %w", e.Name, err)
			}
		}
	}
	for _, e := range entries {
		if e.Type == 'u' {
			if err := addUser(e); err != nil {
				return nil, fmt.Errorf("add user %s: %w", e.Name, err)
			}
		}
	}
	members := map[string][]string{}
	for _, e := range entries {
		if e.Type != 'm' {
			continue
		}
		if _, err := addGroup(e.Group, ""); err != nil {
			return nil, fmt.Errorf("add group %s for member %s: %w", e.Group, e.Name, err)
		}
		if err := addUser(SysUser{Type: 'u', Name: e.Name}); err != nil {
			return nil, fmt.Errorf("add user %s as a member of %s: %w", e.Name, e.Group, err)
		}
		if i, ok := newGroup[e.Group]; ok {
			grLines[i] = withMember(grLines[i], e.Name)
		} else {
			members[e.Group] = append(members[e.Group], e.Name)
		}
		added = append(added, "member "+e.Name+" of "+e.Group)
	}
	if err := appendReplace(filepath.Join(tree, "usr/lib/passwd"), pwLines); err != nil {
		return nil, err
	}
	if err := appendReplace(filepath.Join(tree, "usr/lib/group"), grLines); err != nil {
		return nil, err
	}
	// Groups of the base: their line is rewritten where it is.
	for _, f := range gr {
		if len(members) == 0 {
			break
		}
		if err := addMembers(f, members); err != nil {
			return nil, err
		}
	}
	return added, nil
}

// withMember adds user to a group line's member list unless it is there.
func withMember(line, user string) string {
	f := strings.Split(line, ":")
	if len(f) < 4 {
		return line
	}
	var list []string
	if f[3] != "" {
		list = strings.Split(f[3], ",")
	}
	if slices.Contains(list, user) {
		return line
	}
	f[3] = strings.Join(append(list, user), ",")
	return strings.Join(f, ":")
}

// addMembers adds the members of the groups path defines to their lines,
// replacing path (never writing it in place), and removes those groups
// from members.
func addMembers(path string, members map[string][]string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	changed := false
	for i, l := range lines {
		name, _, _ := strings.Cut(l, ":")
		users, ok := members[name]
		if !ok {
			continue
		}
		for _, u := range users {
			lines[i] = withMember(lines[i], u)
		}
		delete(members, name)
		changed = true
	}
	if !changed {
		return nil
	}
	tmp := path + ".hostctl-new"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// readIDs reads names and ids of passwd- or group-format files.
func readIDs(files []string) (map[string]uint64, map[uint64]bool, error) {
	names := map[string]uint64{}
	for _, f := range files {
		fh, err := os.Open(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		m := map[string]uint32{}
		err = parseIDFile(f, fh, m)
		fh.Close()
		if err != nil {
			return nil, nil, err
		}
		for n, id := range m {
			if _, ok := names[n]; !ok {
				names[n] = uint64(id)
			}
		}
	}
	ids := map[uint64]bool{0: true, 65534: true}
	for _, id := range names {
		ids[id] = true
	}
	return names, ids, nil
}

// appendReplace writes path's content plus lines to a new file and renames
// it over path, so a hardlinked object is never written.
func appendReplace(path string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	data := append(slices.Clone(old), []byte(strings.Join(lines, "\n")+"\n")...)
	tmp := path + ".hostctl-new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// PackageSysusers reads the sysusers.d files the RPM at pkgPath ships
// (usr/lib/sysusers.d/*.conf) from its payload. The header's file list is
// read first, so a package without such files costs no decompression.
func PackageSysusers(ctx context.Context, pkgPath string) ([]SysUser, error) {
	f, err := os.Open(pkgPath)
	if err != nil {
		return nil, fmt.Errorf("read sysusers.d of %s: %w", pkgPath, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	pkg, err := ReadPackage(br)
	if err != nil {
		return nil, fmt.Errorf("read sysusers.d of %s: %w", pkgPath, err)
	}
	files, err := headerFiles(&pkg.Header)
	if err != nil {
		return nil, fmt.Errorf("read sysusers.d of package %s: %w", pkg.Name(), err)
	}
	want := func(p string) bool {
		return strings.HasPrefix(p, "/"+SysusersDir+"/") && strings.HasSuffix(p, ".conf") && !strings.Contains(strings.TrimPrefix(p, "/"+SysusersDir+"/"), "/")
	}
	n := 0
	for p := range files {
		if want(p) {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	payload, closePayload, err := payloadReader(pkg.PayloadCompression(), br)
	if err != nil {
		return nil, fmt.Errorf("read sysusers.d of package %s: %w", pkg.Name(), err)
	}
	defer closePayload()
	table, err := readFileTable(&pkg.Header)
	if err != nil {
		return nil, fmt.Errorf("read sysusers.d of package %s: %w", pkg.Name(), err)
	}
	cr := newCPIOReader(payload)
	var out []SysUser
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := cr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read sysusers.d of package %s: read payload: %w", pkg.Name(), err)
		}
		name, regular, size := e.Name, e.Mode&0o170000 == 0o100000, e.Size
		if e.Stripped {
			// Only the header knows a stripped entry (rpm v6, large files).
			if e.Index < 0 || e.Index >= len(table.files) {
				return nil, fmt.Errorf("read sysusers.d of package %s: payload entry %d is not in the header", pkg.Name(), e.Index)
			}
			f := table.files[e.Index]
			name, regular, size = f.path, f.mode&0o170000 == 0o100000, f.size
			if len(f.set) > 0 && f.set[len(f.set)-1] != e.Index {
				size = 0 // a hardlink set's content is in its last member
			}
			cr.SetSize(size)
		}
		rel, err := SanitizePath(name)
		if err != nil || !want("/"+rel) || !regular || size > 1<<20 {
			continue
		}
		n--
		data, err := io.ReadAll(io.LimitReader(cr, size))
		if err != nil {
			return nil, fmt.Errorf("read sysusers.d of package %s: %w", pkg.Name(), err)
		}
		entries, err := ParseSysusers("/"+rel, bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", pkg.Name(), err)
		}
		out = append(out, entries...)
	}
	return out, nil
}
