package main

import (
	"strings"
	"testing"
)

// A log in the format of Debian's docker-registry (its access log lines, as
// checked against a running one, with its own messages in between).
const registryLog = `time="2026-11-23T16:48:01Z" level=info msg="response completed" go.version=go1.19.8 http.request.method=GET http.request.uri="/v2/"
127.0.0.1 - - [23/Nov/2026:16:48:01 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "skopeo/1.9.3"
127.0.0.1 - - [23/Nov/2026:16:48:01 +0000] "HEAD /v2/ctrbench/manifests/1 HTTP/1.1" 200 1154 "" "skopeo/1.9.3"
127.0.0.1 - - [23/Nov/2026:16:48:01 +0000] "GET /v2/ctrbench/blobs/sha256:32350983ff783d0cc1d288af5d7767a047ddf8efdc78b59c6a775651e3a52362 HTTP/1.1" 200 1064487 "" "skopeo/1.9.3"
127.0.0.1 - - [23/Nov/2026:16:48:01 +0000] "GET /v2/ctrbench/blobs/sha256:aaaa HTTP/1.1" 404 157 "" "Go-http-client/1.1"
127.0.0.1 - - [23/Nov/2026:16:48:01 +0000] "GET /v2/ctrbench/blobs/sha256:bbbb HTTP/1.1" 307 - "" "Go-http-client/1.1"
not a request "GET /x HTTP/1.1" 20 1
`

func TestParseAccessLog(t *testing.T) {
	got := parseAccessLog(registryLog)
	want := []request{
		{"GET", "/v2/", 200, 2},
		{"HEAD", "/v2/ctrbench/manifests/1", 200, 1154},
		{"GET", "/v2/ctrbench/blobs/sha256:32350983ff783d0cc1d288af5d7767a047ddf8efdc78b59c6a775651e3a52362", 200, 1064487},
		{"GET", "/v2/ctrbench/blobs/sha256:aaaa", 404, 157},
		{"GET", "/v2/ctrbench/blobs/sha256:bbbb", 307, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("parseAccessLog: %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	tr := sumTraffic(got)
	if tr.Requests != 5 || tr.BlobGets != 1 || tr.BlobBytes != 1064487 || tr.Bytes != 2+1154+1064487+157 {
		t.Errorf("sumTraffic = %+v", tr)
	}
	if len(parseAccessLog("")) != 0 {
		t.Errorf("an empty log has requests")
	}
}

func TestPullSummary(t *testing.T) {
	tests := []struct {
		out              string
		fetched, present int
		bytes            int64
		ok               bool
	}{
		{"Pulling x\nPulled 127.0.0.1:5000/a:1 (sha256:98a7): 5 layers fetched, 0 already present, 3510723 bytes received.\n", 5, 0, 3510723, true},
		{"Pulled a (sha256:1): 0 layers fetched, 5 already present, 0 bytes received.", 0, 5, 0, true},
		{"error: pull a: refused", 0, 0, 0, false},
		{"99999999999999999999 layers fetched, 1 already present, 1 bytes received", 0, 0, 0, false},
	}
	for _, tt := range tests {
		f, p, b, ok := pullSummary(tt.out)
		if f != tt.fetched || p != tt.present || b != tt.bytes || ok != tt.ok {
			t.Errorf("pullSummary(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.out, f, p, b, ok, tt.fetched, tt.present, tt.bytes, tt.ok)
		}
	}
}

func FuzzParseAccessLog(f *testing.F) {
	f.Add(registryLog)
	f.Add(`"GET / HTTP/1.1" 200 -`)
	f.Add(`"GET / HTTP/1.1" 200 99999999999999999999999`)
	f.Fuzz(func(t *testing.T, log string) {
		reqs := parseAccessLog(log)
		if len(reqs) > strings.Count(log, "\n")+1 {
			t.Fatalf("%d requests from %d lines", len(reqs), strings.Count(log, "\n")+1)
		}
		for _, r := range reqs {
			if r.Bytes < 0 || r.Status < 100 || r.Status > 999 || r.Method == "" || r.Path == "" {
				t.Fatalf("bad request %+v", r)
			}
		}
		tr := sumTraffic(reqs)
		if tr.BlobGets > tr.Requests || tr.BlobBytes > tr.Bytes {
			t.Fatalf("inconsistent traffic %+v", tr)
		}
		pullSummary(log)
	})
}
