package deploy

// #include <stdlib.h>
// #include "helpers.h"
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"strings"
)

// PullOptions tune a pull.
type PullOptions struct {
	// Commit pulls this commit of the ref instead of its tip (the ref moves to it).
	Commit string
	// CommitOnly fetches the commit object alone (enough to compare versions).
	CommitOnly bool
	// Depth also fetches that many parent commits (-1: all); with CommitOnly, history only.
	Depth int
	// Subdirs limits the pull to these paths of the commit (e.g. the rpmdb for a preview).
	Subdirs []string
	// Progress, when set, receives progress snapshots while the pull runs.
	Progress func(PullProgress)
}

// libostree's OstreeRepoPullFlags.
const (
	pullFlagCommitOnly = 1 << 1
)

// SplitRefspec splits REMOTE:REF. A refspec without a remote gives remote "".
func SplitRefspec(refspec string) (remote, ref string, err error) {
	remote, ref, found := strings.Cut(refspec, ":")
	if !found {
		remote, ref = "", refspec
	}
	if ref == "" || strings.ContainsAny(ref, " \t\n") || strings.Contains(ref, "..") || strings.HasPrefix(ref, "/") {
		return "", "", fmt.Errorf("invalid refspec %q: expected REMOTE:REF, e.g. fedora:fedora/x86_64/coreos/stable", refspec)
	}
	if found && remote == "" {
		return "", "", fmt.Errorf("invalid refspec %q: empty remote name", refspec)
	}
	return remote, ref, nil
}

// Pull fetches refspec (REMOTE:REF) into the sysroot's repo and returns the
// commit it now points at. Objects already present are not fetched again.
// Cancelling ctx stops the pull; what was written stays as loose objects that
// a later pull reuses or a cleanup prunes, and no ref moves.
func (s *Sysroot) Pull(ctx context.Context, refspec string, opts PullOptions) (string, error) {
	remote, ref, err := SplitRefspec(refspec)
	if err != nil {
		return "", err
	}
	if remote == "" {
		return "", fmt.Errorf("pull %s: no remote in refspec: use REMOTE:REF", refspec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	cremote, cref := C.CString(remote), C.CString(ref)
	defer cfree(cremote)
	defer cfree(cref)
	ccommit := cstr(opts.Commit, true)
	defer cfree(ccommit)
	flags := C.int(0)
	if opts.CommitOnly {
		flags |= pullFlagCommitOnly
	}
	var handle cgo.Handle
	if opts.Progress != nil {
		handle = cgo.NewHandle(progressFunc(opts.Progress))
		defer handle.Delete()
	}
	subdirs := cstrv(opts.Subdirs)
	defer freeStrv(subdirs, len(opts.Subdirs))
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.hc_pull(s.repo, cremote, cref, ccommit, flags, C.int(opts.Depth), subdirs, C.uintptr_t(handle), c.c, &gerr) == 0 {
		return "", fmt.Errorf("pull %s: %w", refspec, gerror(gerr))
	}
	if opts.Commit != "" {
		return opts.Commit, nil
	}
	csum, err := s.resolveLocked(remote + ":" + ref)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", refspec, err)
	}
	return csum, nil
}

// Remote is a configured remote.
type Remote struct {
	Name, URL string
}

// AddRemote configures a remote in the sysroot's repo (replacing one of the
// same name when replace is set). Turning gpgVerify off is for test and
// development remotes only.
func (s *Sysroot) AddRemote(ctx context.Context, r Remote, gpgVerify, replace bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cname, curl := C.CString(r.Name), C.CString(r.URL)
	defer cfree(cname)
	defer cfree(curl)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	if C.hc_remote_add(s.repo, cname, curl, cbool(gpgVerify), cbool(replace), c.c, &gerr) == 0 {
		return fmt.Errorf("add remote %s: %w", r.Name, gerror(gerr))
	}
	return nil
}

func cbool(b bool) C.gboolean {
	if b {
		return 1
	}
	return 0
}
