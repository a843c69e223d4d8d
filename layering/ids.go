package layering

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// IDs maps user and group names to the numeric ids a tree gives them, as its
// passwd and group files define them. root is always 0, as rpm assumes.
type IDs struct {
	users, groups map[string]uint32
}

// LoadIDs reads passwd-format files (e.g. TREE/usr/etc/passwd and
// TREE/usr/lib/passwd) and group-format files. A file that does not exist is
// skipped; the first file naming an entry wins.
func LoadIDs(passwdFiles, groupFiles []string) (*IDs, error) {
	ids := &IDs{users: map[string]uint32{"root": 0}, groups: map[string]uint32{"root": 0}}
	for _, set := range []struct {
		files []string
		into  map[string]uint32
	}{{passwdFiles, ids.users}, {groupFiles, ids.groups}} {
		for _, name := range set.files {
			f, err := os.Open(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("load ids: %w", err)
			}
			err = parseIDFile(name, f, set.into)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// parseIDFile reads name:x:ID:... lines; the id is the third field in both
// passwd and group files.
func parseIDFile(name string, r io.Reader, into map[string]uint32) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' || text[0] == '+' || text[0] == '-' {
			continue
		}
		fields := strings.Split(text, ":")
		if len(fields) < 3 || fields[0] == "" {
			return fmt.Errorf("%s:%d: expected name:password:id:...", name, line)
		}
		id, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			return fmt.Errorf("%s:%d: id %q of %q is not a number", name, line, fields[2], fields[0])
		}
		if _, ok := into[fields[0]]; !ok {
			into[fields[0]] = uint32(id)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// User returns the uid of a user name.
func (ids *IDs) User(name string) (uint32, bool) {
	id, ok := ids.users[name]
	return id, ok
}

// Group returns the gid of a group name.
func (ids *IDs) Group(name string) (uint32, bool) {
	id, ok := ids.groups[name]
	return id, ok
}
