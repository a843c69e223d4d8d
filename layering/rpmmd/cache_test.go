package rpmmd

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

// server serves dir over HTTP on loopback and counts the requests.
type server struct {
	*httptest.Server
	requests atomic.Int64
}

func serve(t *testing.T, dir string) *server {
	s := &server{}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRefreshCompressions(t *testing.T) {
	rpms := testrpm.BuildFile(t, "testdata/hello.spec", "")
	for _, comp := range []string{"gz", "xz", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			repo := t.TempDir()
			testrpm.CreateRepo(t, repo, comp, rpms...)
			srv := serve(t, repo)
			c := &Cache{Dir: t.TempDir()}
			m, err := c.Refresh(context.Background(), Source{ID: "r", BaseURLs: []string{srv.URL}}, false)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := m.RepoMD.Find("primary")
			wantExt := map[string]string{"gz": ".gz", "xz": ".xz", "zstd": ".zst"}[comp]
			if !strings.HasSuffix(d.Location, wantExt) {
				t.Fatalf("createrepo_c wrote %s, want %s", d.Location, wantExt)
			}
			primary, err := os.ReadFile(m.Primary())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(primary), "<?xml") || !strings.Contains(string(primary), "<name>hello</name>") {
				t.Fatalf("primary not decompressed:\n%.200s", primary)
			}
			if filepath.Dir(m.Primary()) != filepath.Join(c.Dir, "r") || len(m.Downloaded) != 1 {
				t.Fatalf("primary at %s, downloaded %v", m.Primary(), m.Downloaded)
			}
		})
	}
}

func TestRefreshExpiryAndUpdates(t *testing.T) {
	hello := testrpm.BuildFile(t, "testdata/hello.spec", "")
	world := testrpm.BuildFile(t, "testdata/world.spec", "")
	repo := t.TempDir()
	testrpm.CreateRepo(t, repo, "zstd", hello...)
	srv := serve(t, repo)
	now := time.Now()
	c := &Cache{Dir: t.TempDir(), Now: func() time.Time { return now }}
	src := Source{ID: "r", BaseURLs: []string{srv.URL + "/"}, MetadataExpire: time.Hour}
	ctx := context.Background()

	first, err := c.Refresh(ctx, src, false)
	if err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != 2 {
		t.Fatalf("first refresh made %d requests, want 2 (repomd + primary)", srv.requests.Load())
	}

	// Fresh: no request at all.
	now = now.Add(30 * time.Minute)
	m, err := c.Refresh(ctx, src, false)
	if err != nil || m.Contacted || srv.requests.Load() != 2 || m.Primary() != first.Primary() {
		t.Fatalf("fresh refresh: err=%v contacted=%v requests=%d", err, m.Contacted, srv.requests.Load())
	}

	// Expired, unchanged upstream: repomd fetched, primary kept.
	now = now.Add(time.Hour)
	m, err = c.Refresh(ctx, src, false)
	if err != nil || !m.Contacted || len(m.Downloaded) != 0 || srv.requests.Load() != 3 {
		t.Fatalf("expired refresh: err=%v contacted=%v downloaded=%v requests=%d", err, m.Contacted, m.Downloaded, srv.requests.Load())
	}
	if !m.Checked.Equal(now.Truncate(time.Second)) && m.Checked.Sub(now).Abs() > time.Second {
		t.Fatalf("checked %v, want %v", m.Checked, now)
	}
	loaded, err := c.Load("r")
	if err != nil || loaded.Checked.Sub(now).Abs() > time.Second {
		t.Fatalf("Load: %v, checked %v want %v", err, loaded.Checked, now)
	}

	// A .solv cache beside the primary stays while the primary does.
	if err := os.WriteFile(first.Primary()+".solv", []byte("solv"), 0o644); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := c.Refresh(ctx, src, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Primary() + ".solv"); err != nil {
		t.Fatalf("solv cache of the current primary removed: %v", err)
	}

	// Upstream changes; force refresh downloads the new primary and drops the old one.
	testrpm.CreateRepo(t, repo, "zstd", world...)
	m, err = c.Refresh(ctx, src, true)
	if err != nil || len(m.Downloaded) != 1 {
		t.Fatalf("forced refresh: %v %v", err, m)
	}
	primary, _ := os.ReadFile(m.Primary())
	if !strings.Contains(string(primary), "<name>world</name>") {
		t.Fatal("new primary lacks the new package")
	}
	for _, old := range []string{first.Primary(), first.Primary() + ".solv"} {
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Fatalf("%s still cached: %v", old, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(c.Dir, "r"))
	if len(entries) != 2 {
		t.Fatalf("cache dir has %d entries, want repomd.xml and one primary", len(entries))
	}
}

func TestRefreshFailuresKeepCache(t *testing.T) {
	hello := testrpm.BuildFile(t, "testdata/hello.spec", "")
	world := testrpm.BuildFile(t, "testdata/world.spec", "")
	repo := t.TempDir()
	testrpm.CreateRepo(t, repo, "gz", hello...)
	srv := serve(t, repo)
	c := &Cache{Dir: t.TempDir()}
	src := Source{ID: "r", BaseURLs: []string{srv.URL}}
	ctx := context.Background()
	good, err := c.Refresh(ctx, src, false)
	if err != nil {
		t.Fatal(err)
	}
	goodRepoMD, _ := os.ReadFile(filepath.Join(c.Dir, "r", "repomd.xml"))

	assertKept := func(t *testing.T) {
		t.Helper()
		m, err := c.Load("r")
		if err != nil || m.Primary() != good.Primary() {
			t.Fatalf("cache changed: %v %v", m, err)
		}
		now, _ := os.ReadFile(filepath.Join(c.Dir, "r", "repomd.xml"))
		if string(now) != string(goodRepoMD) {
			t.Fatal("repomd.xml changed")
		}
		entries, _ := os.ReadDir(filepath.Join(c.Dir, "r"))
		if len(entries) != 2 {
			t.Fatalf("cache dir has %d entries (temporary files left?)", len(entries))
		}
	}

	t.Run("checksum mismatch", func(t *testing.T) {
		testrpm.CreateRepo(t, repo, "gz", world...)
		m, _ := (&Cache{Dir: t.TempDir()}).Refresh(ctx, src, false)
		d, _ := m.RepoMD.Find("primary")
		// Serve a primary that is not the one repomd.xml names.
		other := t.TempDir()
		testrpm.CreateRepo(t, other, "gz", hello...)
		om, _ := (&Cache{Dir: t.TempDir()}).Refresh(ctx, Source{ID: "o", BaseURLs: []string{"file://" + other}}, false)
		od, _ := om.RepoMD.Find("primary")
		data, _ := os.ReadFile(filepath.Join(other, od.Location))
		if err := os.WriteFile(filepath.Join(repo, d.Location), data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.Refresh(ctx, src, true)
		if err == nil || !strings.Contains(err.Error(), "sha256 checksum mismatch") || !strings.Contains(err.Error(), "is kept") {
			t.Fatalf("error = %v", err)
		}
		assertKept(t)
	})

	t.Run("repo down", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		_, err := c.Refresh(ctx, Source{ID: "r", BaseURLs: []string{down.URL}}, true)
		if err == nil || !strings.Contains(err.Error(), `refresh metadata of repo "r": GET `+down.URL+"/repodata/repomd.xml") ||
			!strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("error = %v", err)
		}
		assertKept(t)
	})

	t.Run("404", func(t *testing.T) {
		_, err := c.Refresh(ctx, Source{ID: "r", BaseURLs: []string{srv.URL + "/nothing"}}, true)
		if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
			t.Fatalf("error = %v", err)
		}
		assertKept(t)
	})
}

func TestRefreshMirrorFallbackAndFileURL(t *testing.T) {
	hello := testrpm.BuildFile(t, "testdata/hello.spec", "")
	repo := t.TempDir()
	testrpm.CreateRepo(t, repo, "xz", hello...)
	c := &Cache{Dir: t.TempDir()}
	m, err := c.Refresh(context.Background(), Source{ID: "r", BaseURLs: []string{"file:///nonexistent", "file://" + repo}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Downloaded) != 1 {
		t.Fatalf("downloaded %v", m.Downloaded)
	}
	if _, err := c.Refresh(context.Background(), Source{ID: "../x", BaseURLs: []string{"file://" + repo}}, false); err == nil {
		t.Fatal("repo id with / accepted")
	}
}

func TestRefreshCancelled(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := (&Cache{Dir: t.TempDir()}).Refresh(ctx, Source{ID: "r", BaseURLs: []string{srv.URL}}, false)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("error = %v", err)
	}
}
