package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRepoCommitCheckoutRefs(t *testing.T) {
	ctx := context.Background()
	m := newMiniRemote(t, "1")
	s := newTestSysroot(t, m)
	repo := s.Repo()
	work := t.TempDir()

	base := filepath.Join(work, "base")
	writeTree(t, base, map[string]string{"usr/bin/a": "a", "usr/share/x": "shared"})
	os.Chmod(filepath.Join(base, "usr/bin/a"), 0o755|os.ModeSetuid)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c1, err := repo.Commit(ctx, base, CommitOptions{Ref: "hostctl/test/base", Subject: "base", Metadata: map[string]string{"version": "7", BaseCommitKey: "abc"}, Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := repo.Resolve("hostctl/test/base"); err != nil || got != c1 {
		t.Fatalf("ref: %s %v", got, err)
	}
	subject, meta, err := repo.CommitMetadata(c1)
	if err != nil || subject != "base" || meta["version"] != "7" || meta[BaseCommitKey] != "abc" {
		t.Fatalf("metadata: %q %v %v", subject, meta, err)
	}
	if info, err := s.CommitInfo(c1); err != nil || !info.Timestamp.Equal(ts) || info.Base != "abc" {
		t.Fatalf("commit info %+v %v", info, err)
	}

	// A hardlink checkout shares the repo's objects and keeps modes.
	co := filepath.Join(work, "co")
	devino := NewDevinoCache()
	defer devino.Close()
	if err := repo.Checkout(ctx, c1, co, CheckoutOptions{Devino: devino}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(co, "usr/bin/a"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Sys().(*syscall.Stat_t).Nlink < 2 {
		t.Fatalf("checkout of usr/bin/a: %v %v", fi, err)
	}

	// Union-identical: an identical file is fine, a different one is an error.
	pkg := filepath.Join(work, "pkg")
	writeTree(t, pkg, map[string]string{"usr/share/x": "shared", "usr/bin/b": "b"})
	c2, err := repo.Commit(ctx, pkg, CommitOptions{Ref: "hostctl/test/pkg"})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Checkout(ctx, c2, co, CheckoutOptions{Overwrite: OverwriteUnionIdentical}); err != nil {
		t.Fatalf("identical union: %v", err)
	}
	bad := filepath.Join(work, "bad")
	writeTree(t, bad, map[string]string{"usr/share/x": "different"})
	c3, err := repo.Commit(ctx, bad, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Checkout(ctx, c3, co, CheckoutOptions{Overwrite: OverwriteUnionIdentical}); err == nil {
		t.Fatal("conflicting union succeeded")
	}

	// Committing the assembled hardlink checkout reuses objects; a file
	// replaced (new inode) is read and committed as what it now holds.
	os.Remove(filepath.Join(co, "usr/bin/b"))
	writeTree(t, co, map[string]string{"usr/bin/b": "changed"})
	c4, err := repo.Commit(ctx, co, CommitOptions{Parent: c1, Ref: "hostctl/test/layered", Devino: devino})
	if err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(work, "back")
	if err := repo.Checkout(ctx, c4, back, CheckoutOptions{Copy: true}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"usr/bin/a": "a", "usr/bin/b": "changed", "usr/share/x": "shared"} {
		if got, err := os.ReadFile(filepath.Join(back, p)); err != nil || string(got) != want {
			t.Fatalf("layered commit %s = %q (%v), want %q", p, got, err, want)
		}
	}
	refs, err := repo.Refs(ctx, "hostctl/test")
	if err != nil || refs["hostctl/test/layered"] != c4 || refs["hostctl/test/pkg"] != c2 || len(refs) != 3 {
		t.Fatalf("refs: %v %v", refs, err)
	}
	if err := repo.SetRef(ctx, "hostctl/test/pkg", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Resolve("hostctl/test/pkg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted ref resolves: %v", err)
	}
	if _, err := repo.Commit(ctx, filepath.Join(work, "missing"), CommitOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("commit of a missing dir: %v", err)
	}
	if !repo.HasCommit(c1) || repo.HasCommit(strings.Repeat("0", 64)) {
		t.Fatal("HasCommit")
	}
}

func TestHasCompleteCommit(t *testing.T) {
	ctx := context.Background()
	m := newMiniRemote(t, "1", "2")
	s := newTestSysroot(t, m)
	if s.Repo().HasCompleteCommit(m.commits["2"]) {
		t.Fatal("a commit never pulled is complete")
	}
	if _, err := s.Pull(ctx, "origin:mini/stable", PullOptions{CommitOnly: true}); err != nil {
		t.Fatal(err)
	}
	if s.Repo().HasCompleteCommit(m.commits["2"]) {
		t.Fatal("a commit-only pull counts as complete")
	}
	if _, err := s.Pull(ctx, "origin:mini/stable", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if !s.Repo().HasCompleteCommit(m.commits["2"]) {
		t.Fatal("a pulled commit is not complete")
	}
}
