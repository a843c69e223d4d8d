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
//
// With a pull helper configured (SetPullHelper), the pull runs in that
// process, which is killed (as a process group) when ctx is done or when the
// remote sends nothing for the stall timeout: libostree 2022.7 does not
// abort a request in flight on cancel, so a remote that accepts the
// connection and never answers would otherwise hold the pull forever.
// Without one, it runs in this process. Either way the sysroot is not locked
// for the length of the pull: Deployments and the other reads answer while
// it runs.
func (s *Sysroot) Pull(ctx context.Context, refspec string, opts PullOptions) (string, error) {
	remote, ref, err := SplitRefspec(refspec)
	if err != nil {
		return "", err
	}
	if remote == "" {
		return "", fmt.Errorf("pull %s: no remote in refspec: use REMOTE:REF", refspec)
	}
	req := pullRequest{
		Sysroot: s.path, Repo: s.RepoPath(), Remote: remote, Ref: ref, Commit: opts.Commit,
		CommitOnly: opts.CommitOnly, Depth: opts.Depth, Subdirs: opts.Subdirs,
	}
	s.mu.Lock()
	helper, stall := s.pullHelper, s.pullStall
	s.mu.Unlock()
	var csum string
	if helper != "" {
		csum, err = pullInHelper(ctx, helper, stall, req, opts.Progress)
	} else {
		csum, err = pullInProcess(ctx, req, opts.Progress)
	}
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", refspec, s.explainSignature(ctx, remote, err))
	}
	return csum, nil
}

// pullInProcess runs the pull on a repo object of its own, so the
// sysroot's lock is not held while the network is waited for.
func pullInProcess(ctx context.Context, req pullRequest, progress func(PullProgress)) (string, error) {
	crepo, csysroot := C.CString(req.Repo), C.CString(req.Sysroot)
	defer cfree(crepo)
	defer cfree(csysroot)
	c := newCancellable(ctx)
	defer c.free()
	var gerr *C.GError
	repo := C.hc_open_sysroot_repo(crepo, csysroot, c.c, &gerr)
	if repo == nil {
		return "", fmt.Errorf("open repo %s: %w", req.Repo, gerror(gerr))
	}
	defer C.g_object_unref(C.gpointer(repo))

	cremote, cref := C.CString(req.Remote), C.CString(req.Ref)
	defer cfree(cremote)
	defer cfree(cref)
	ccommit := cstr(req.Commit, true)
	defer cfree(ccommit)
	flags := C.int(0)
	if req.CommitOnly {
		flags |= pullFlagCommitOnly
	}
	var handle cgo.Handle
	if progress != nil {
		handle = cgo.NewHandle(progressFunc(progress))
		defer handle.Delete()
	}
	subdirs := cstrv(req.Subdirs)
	defer freeStrv(subdirs, len(req.Subdirs))
	if C.hc_pull(repo, cremote, cref, ccommit, flags, C.int(req.Depth), subdirs, C.uintptr_t(handle), c.c, &gerr) == 0 {
		return "", gerror(gerr)
	}
	if req.Commit != "" {
		return req.Commit, nil
	}
	return resolveRev(repo, req.Remote+":"+req.Ref)
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
