package rpmmd

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostctl/hostctl/internal/httpx"
	"github.com/hostctl/hostctl/layering/internal/testrpm"
)

// TestRefreshStalledBody: a server that sends the headers and half of
// primary.xml, then nothing, fails the refresh after the idle timeout with
// an error naming the file's URL, and leaves nothing half-written.
func TestRefreshStalledBody(t *testing.T) {
	rpms := testrpm.BuildFile(t, "testdata/hello.spec", "")
	repo := t.TempDir()
	testrpm.CreateRepo(t, repo, "gz", rpms...)
	release := make(chan struct{})
	defer close(release)
	fs := http.FileServer(http.Dir(repo))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "primary") {
			fs.ServeHTTP(w, r)
			return
		}
		b, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	c := &Cache{Dir: t.TempDir(), IdleTimeout: 500 * time.Millisecond}
	start := time.Now()
	_, err := c.Refresh(context.Background(), Source{ID: "r", BaseURLs: []string{srv.URL}}, false)
	if err == nil || !strings.Contains(err.Error(), httpx.ErrStalled.Error()) || !strings.Contains(err.Error(), srv.URL+"/repodata/") {
		t.Fatalf("refresh from a stalled server: %v, want a stall error naming the URL", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled refresh took %v with a 0.5 s idle timeout", d)
	}
	if _, err := c.Load("r"); err == nil {
		t.Fatal("a stalled refresh left metadata in the cache")
	}
	t.Log(err)
}
