// Package solv is hostctl's binding of libsolv, the dependency solver of dnf,
// zypper and rpm-ostree: a Pool with the installed packages of a tree (read
// from a copy of its rpmdb) and the available packages of rpm-md
// repositories (primary.xml, with .solv caches), solved for an install
// request that must leave every installed package in place.
//
// Everything libsolv allocates is freed by Pool.Close or before a method
// returns. A Pool is not safe for concurrent use.
package solv

/*
#cgo pkg-config: libsolv libsolvext
#include <stdlib.h>
#include "helpers.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/hostctl/hostctl/internal/rpmdb"
)

// Pool holds the installed and available packages libsolv solves against.
type Pool struct {
	p *C.Pool
}

// NewPool returns an empty pool for packages of arch (e.g. "x86_64"); noarch
// packages are always accepted.
func NewPool(arch string) *Pool {
	p := C.pool_create()
	C.pool_setdisttype(p, C.DISTTYPE_RPM)
	carch := C.CString(arch)
	defer C.free(unsafe.Pointer(carch))
	C.pool_setarch(p, carch)
	return &Pool{p: p}
}

// Close frees the pool and every repository in it.
func (p *Pool) Close() {
	if p.p != nil {
		C.pool_free(p.p)
		p.p = nil
	}
}

// LoadInstalled reads the rpmdb of the tree at root as the installed
// repository. The tree's rpmdb is never opened: it is copied to a temporary
// directory first, since sqlite writes beside a database even to read it and
// a deployment's files are shared with every other deployment.
func (p *Pool) LoadInstalled(root string) (int, error) {
	var src string
	// Where a tree keeps its rpmdb, newest layout first.
	for _, d := range []string{"usr/lib/sysimage/rpm", "var/lib/rpm"} {
		if st, err := os.Stat(filepath.Join(root, d)); err == nil && st.IsDir() {
			src = filepath.Join(root, d)
			break
		}
	}
	if src == "" {
		return 0, fmt.Errorf("load installed packages of %s: no rpmdb in usr/lib/sysimage/rpm or var/lib/rpm", root)
	}
	tmp, err := os.MkdirTemp("", "hostctl-rpmdb-")
	if err != nil {
		return 0, fmt.Errorf("load installed packages of %s: %w", root, err)
	}
	defer os.RemoveAll(tmp)
	// libsolv looks for the rpmdb of a root at var/lib/rpm first: put the copy there.
	if err := rpmdb.CopyDB(context.Background(), src, filepath.Join(tmp, "var/lib/rpm")); err != nil {
		return 0, fmt.Errorf("load installed packages of %s: copy rpmdb: %w", root, err)
	}
	croot := C.CString(tmp)
	defer C.free(unsafe.Pointer(croot))
	C.pool_set_rootdir(p.p, croot)
	defer C.pool_set_rootdir(p.p, nil)

	name := C.CString("@System")
	defer C.free(unsafe.Pointer(name))
	repo := C.repo_create(p.p, name)
	if C.repo_add_rpmdb(repo, nil, C.REPO_USE_ROOTDIR) != 0 {
		msg := C.GoString(C.hc_pool_errstr(p.p))
		C.repo_free(repo, 1)
		return 0, fmt.Errorf("load installed packages of %s: read rpmdb: %s", root, msg)
	}
	C.pool_set_installed(p.p, repo)
	return int(C.hc_repo_nsolvables(repo)), nil
}

// AddRepoMD adds the packages of an rpm-md repository named name from its
// decompressed primary.xml. When solvCache is not empty it is a .solv cache
// of exactly that primary.xml (name it after the primary's checksum): read
// when it exists, written (atomically) when it does not. It reports whether
// the cache was used.
func (p *Pool) AddRepoMD(name, primary, solvCache string) (fromCache bool, err error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if solvCache != "" {
		repo := C.repo_create(p.p, cname)
		err := withCFile(solvCache, "r", func(fp *C.FILE) error {
			if C.repo_add_solv(repo, fp, 0) != 0 {
				return errors.New(C.GoString(C.hc_pool_errstr(p.p)))
			}
			return nil
		})
		if err == nil {
			return true, nil
		}
		C.repo_free(repo, 1)
		if !errors.Is(err, fs.ErrNotExist) {
			// A broken cache is rebuilt from the XML below.
			os.Remove(solvCache)
		}
	}
	repo := C.repo_create(p.p, cname)
	err = withCFile(primary, "r", func(fp *C.FILE) error {
		if C.repo_add_rpmmd(repo, fp, nil, 0) != 0 {
			return errors.New(C.GoString(C.hc_pool_errstr(p.p)))
		}
		return nil
	})
	if err != nil {
		C.repo_free(repo, 1)
		return false, fmt.Errorf("load metadata of repo %q from %s: %w", name, primary, err)
	}
	if solvCache != "" {
		if err := writeSolv(repo, solvCache); err != nil {
			return false, fmt.Errorf("write solv cache of repo %q: %w", name, err)
		}
	}
	return false, nil
}

func writeSolv(repo *C.Repo, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-solv-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	err = withCFile(tmpName, "w", func(fp *C.FILE) error {
		if C.repo_write(repo, fp) != 0 {
			return errors.New(C.GoString(C.hc_pool_errstr(repo.pool)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return os.Rename(tmpName, path)
}

// withCFile opens path with fopen, runs fn and closes the file; a close
// error of a file opened for writing is returned.
func withCFile(path, mode string, fn func(*C.FILE) error) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	cmode := C.CString(mode)
	defer C.free(unsafe.Pointer(cmode))
	fp, errno := C.fopen(cpath, cmode)
	if fp == nil {
		return &fs.PathError{Op: "open", Path: path, Err: errno}
	}
	err := fn(fp)
	if C.fclose(fp) != 0 && err == nil && mode != "r" {
		return fmt.Errorf("close %s: write failed", path)
	}
	return err
}

// AddRPMs adds RPM files given on the command line (rpm-ostree's local
// packages) as the repository name, read from their headers with their
// sha256 digests, and returns them in the order of paths.
func (p *Pool) AddRPMs(name string, paths []string) ([]Package, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	repo := C.repo_create(p.p, cname)
	var ids []C.Id
	for _, path := range paths {
		cpath := C.CString(path)
		id := C.hc_add_rpm(repo, cpath)
		C.free(unsafe.Pointer(cpath))
		if id == 0 {
			msg := C.GoString(C.hc_pool_errstr(p.p))
			C.repo_free(repo, 1)
			return nil, fmt.Errorf("read RPM %s: %s", filepath.Base(path), msg)
		}
		ids = append(ids, id)
	}
	C.hc_repo_internalize(repo)
	out := make([]Package, len(ids))
	for i, id := range ids {
		out[i] = p.pkg(id)
	}
	return out, nil
}
