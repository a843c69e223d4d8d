package layering

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// destDir writes below one directory without ever following a symlink: each
// parent is opened with O_NOFOLLOW relative to the one above it, so the
// destination is the only place written.
type destDir struct {
	root int            // fd of the destination
	fds  map[string]int // open parent directories by relative path
}

const maxOpenDirs = 128

func openDestDir(dir string) (*destDir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open destination %s: %w", dir, err)
	}
	return &destDir{root: fd, fds: map[string]int{}}, nil
}

func (d *destDir) Close() {
	for _, fd := range d.fds {
		unix.Close(fd)
	}
	d.fds = nil
	unix.Close(d.root)
}

// parent returns an fd of the directory holding rel and rel's base name,
// creating missing parents (mode 0755, owned by root). It fails when a
// parent is a symlink or not a directory.
func (d *destDir) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	fd, err := d.dir(dir)
	return fd, base, err
}

func (d *destDir) dir(rel string) (int, error) {
	if rel == "" {
		return d.root, nil
	}
	if fd, ok := d.fds[rel]; ok {
		return fd, nil
	}
	up, base := path.Split(rel)
	pfd, err := d.dir(strings.TrimSuffix(up, "/"))
	if err != nil {
		return -1, err
	}
	fd, err := openDirNoFollow(pfd, base)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(pfd, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create directory %s: %w", rel, err)
		}
		fd, err = openDirNoFollow(pfd, base)
	}
	if err != nil {
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return -1, fmt.Errorf("path passes through symlink %s", rel)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return -1, fmt.Errorf("path passes through %s, which is not a directory", rel)
			}
		}
		return -1, fmt.Errorf("open directory %s: %w", rel, err)
	}
	if len(d.fds) >= maxOpenDirs {
		for k, v := range d.fds {
			unix.Close(v)
			delete(d.fds, k)
		}
	}
	d.fds[rel] = fd
	return fd, nil
}

func openDirNoFollow(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// lstat returns the type bits of rel, or 0 when it does not exist.
func (d *destDir) lstat(rel string) (uint32, error) {
	pfd, base, err := d.parent(rel)
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, err
	}
	return st.Mode & unix.S_IFMT, nil
}
