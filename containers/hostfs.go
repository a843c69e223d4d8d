package containers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// Checksums recorded for host files: the sha256 (hex) of a regular file,
// DirChecksum for a directory (atomic's "0"), and "symlink:TARGET" for a
// symbolic link.
const DirChecksum = "0"

// HostFilesOptions say how an image's exports/hostfs is copied to the host.
type HostFilesOptions struct {
	// Rename is manifest.json renameFiles, rendered (RenderRenameFiles).
	Rename map[string]string
	// Templates is manifest.json installedFilesTemplate: host paths, after
	// renaming, whose content is rendered with Values.
	Templates []string
	Values    map[string]string
}

// HostFiles is what InstallHostFiles did.
type HostFiles struct {
	// Installed maps each host path hostctl created ("/etc/foo") to its
	// checksum; directories hostctl had to create are included.
	Installed map[string]string
	// Skipped lists host paths that already existed and were left alone, and
	// hostfs entries that are neither file, directory nor symlink.
	Skipped []string
}

// RenamePath applies renameFiles to a host path the way atomic's
// _do_rename_path does: each prefix /a, /a/b, /a/b/c, ... in turn is replaced
// by its renaming when it has one.
func RenamePath(p string, rename map[string]string) string {
	out := ""
	for _, c := range strings.Split(p, "/")[1:] {
		out = out + "/" + c
		if r, ok := rename[out]; ok {
			out = r
		}
	}
	return out
}

// InstallHostFiles copies the tree hostfsDir (an image's exports/hostfs) onto
// hostRoot ("/" on a booted host) as atomic's rm_add_files_to_host does:
// every entry goes to the same path on the host, renamed by opts.Rename;
// templates are rendered; an existing host path is never overwritten (it is
// listed in Skipped). Unlike atomic, files are always copied (never hard
// linked into the checkout, whose files belong to the OSTree repository), and
// every directory created on the way is recorded so that uninstall can remove
// it once empty. Nothing is written outside hostRoot: a host path through a
// symlink that leaves hostRoot is an error. On error everything created so far
// is removed again.
func InstallHostFiles(hostfsDir, hostRoot string, opts HostFilesOptions) (res *HostFiles, err error) {
	root, err := os.OpenRoot(hostRoot)
	if err != nil {
		return nil, fmt.Errorf("install host files: %w", err)
	}
	defer root.Close()
	res = &HostFiles{Installed: map[string]string{}}
	defer func() {
		if err != nil {
			_, _ = removeHostFiles(root, res.Installed)
			res = nil
		}
	}()
	err = filepath.WalkDir(hostfsDir, func(src string, d fs.DirEntry, werr error) error {
		if werr != nil {
			return fmt.Errorf("install host files: %w", werr)
		}
		rel, err := filepath.Rel(hostfsDir, src)
		if err != nil || rel == "." {
			return err
		}
		dest := RenamePath("/"+filepath.ToSlash(rel), opts.Rename)
		if !strings.HasPrefix(dest, "/") || hasDotDot(dest) || path.Clean(dest) == "/" {
			return fmt.Errorf("install host files: %s is renamed to %q, not a path under /", rel, dest)
		}
		destRel := strings.TrimPrefix(path.Clean(dest), "/")
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("install host files: %w", err)
		}
		if existing, err := root.Lstat(destRel); err == nil {
			if !(existing.IsDir() && fi.IsDir()) {
				res.Skipped = append(res.Skipped, dest)
			}
			if fi.IsDir() && !existing.IsDir() {
				return fs.SkipDir
			}
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("install host files: %s: %w", dest, err)
		}
		if err := ensureHostDirs(root, path.Dir(destRel), res.Installed); err != nil {
			return fmt.Errorf("install host files: %s: %w", dest, err)
		}
		switch {
		case fi.IsDir():
			if err := root.Mkdir(destRel, fi.Mode().Perm()); err != nil {
				return fmt.Errorf("install host files: %w", err)
			}
			if err := root.Chmod(destRel, fi.Mode().Perm()); err != nil {
				return fmt.Errorf("install host files: %w", err)
			}
			res.Installed["/"+destRel] = DirChecksum
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return fmt.Errorf("install host files: %w", err)
			}
			if err := root.Symlink(target, destRel); err != nil {
				return fmt.Errorf("install host files: %w", err)
			}
			res.Installed["/"+destRel] = "symlink:" + target
		case fi.Mode().IsRegular():
			sum, err := copyHostFile(root, src, destRel, fi.Mode().Perm(), opts, slices.Contains(opts.Templates, "/"+destRel))
			if err != nil {
				return fmt.Errorf("install host files: %s: %w", dest, err)
			}
			res.Installed["/"+destRel] = sum
		default:
			res.Skipped = append(res.Skipped, dest)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// ensureHostDirs creates the missing directories of dir, recording each.
func ensureHostDirs(root *os.Root, dir string, created map[string]string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		cur = path.Join(cur, c)
		fi, err := root.Stat(cur)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("/%s is not a directory", cur)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := root.Mkdir(cur, 0o755); err != nil {
			return err
		}
		created["/"+cur] = DirChecksum
	}
	return nil
}

// copyHostFile writes src (rendered when it is a template) to dest, never
// replacing an existing file, and returns the sha256 of what it wrote.
func copyHostFile(root *os.Root, src, dest string, perm fs.FileMode, opts HostFilesOptions, template bool) (string, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer in.Close()
	var r io.Reader = in
	if template {
		b, err := io.ReadAll(in)
		if err != nil {
			return "", err
		}
		out, err := Render(src, string(b), opts.Values)
		if err != nil {
			return "", err
		}
		r = strings.NewReader(out)
	}
	out, err := root.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Chmod(perm)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HostFileChecksum computes the checksum InstallHostFiles records for the
// host path p ("/etc/foo") under hostRoot.
func HostFileChecksum(hostRoot, p string) (string, error) {
	root, err := os.OpenRoot(hostRoot)
	if err != nil {
		return "", err
	}
	defer root.Close()
	return checksumIn(root, strings.TrimPrefix(path.Clean(p), "/"))
}

func checksumIn(root *os.Root, rel string) (string, error) {
	fi, err := root.Lstat(rel)
	if err != nil {
		return "", err
	}
	switch {
	case fi.IsDir():
		return DirChecksum, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := root.Readlink(rel)
		if err != nil {
			return "", err
		}
		return "symlink:" + t, nil
	case fi.Mode().IsRegular():
		f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return "", err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	return "", fmt.Errorf("%s is not a file, directory or symlink", rel)
}

// RemoveHostFiles removes the host files InstallHostFiles recorded, children
// before their directories. A file whose checksum changed since (edited by
// someone) is kept, as is a directory that is not empty; both are returned in
// kept. Paths already gone are fine.
func RemoveHostFiles(hostRoot string, installed map[string]string) (kept []string, err error) {
	root, err := os.OpenRoot(hostRoot)
	if err != nil {
		return nil, fmt.Errorf("remove host files: %w", err)
	}
	defer root.Close()
	return removeHostFiles(root, installed)
}

func removeHostFiles(root *os.Root, installed map[string]string) (kept []string, err error) {
	paths := make([]string, 0, len(installed))
	for p := range installed {
		paths = append(paths, p)
	}
	// Reverse lexical order puts /a/b before /a.
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	var errs []error
	for _, p := range paths {
		rel := strings.TrimPrefix(path.Clean(p), "/")
		if rel == "" || hasDotDot(p) {
			errs = append(errs, fmt.Errorf("remove host files: refusing %q", p))
			continue
		}
		sum, err := checksumIn(root, rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || sum != installed[p] {
			kept = append(kept, p)
			continue
		}
		if err := root.Remove(rel); err != nil {
			if sum == DirChecksum && isNotEmpty(err) {
				kept = append(kept, p)
				continue
			}
			errs = append(errs, fmt.Errorf("remove host file %s: %w", p, err))
		}
	}
	sort.Strings(kept)
	return kept, errors.Join(errs...)
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
