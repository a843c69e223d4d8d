package main

import (
	"regexp"
	"strconv"
	"strings"
)

// request is one line of docker-registry's access log (Apache combined
// format: `HOST - - [TIME] "GET /v2/NAME/blobs/sha256:HEX HTTP/1.1" 200 1234
// "REFERER" "AGENT"`).
type request struct {
	Method, Path string
	Status       int
	Bytes        int64
}

var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" ([1-5][0-9]{2}) ([0-9]+|-)`)

// parseAccessLog reads the requests of an access log, skipping every other
// line (the registry logs its own messages in between).
func parseAccessLog(log string) []request {
	var out []request
	for _, line := range strings.Split(log, "\n") {
		m := accessLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[3])
		var n int64
		if m[4] != "-" {
			var err error
			if n, err = strconv.ParseInt(m[4], 10, 64); err != nil {
				continue
			}
		}
		out = append(out, request{Method: m[1], Path: m[2], Status: status, Bytes: n})
	}
	return out
}

// traffic sums what a client fetched from the registry.
type traffic struct {
	Requests  int   // every request
	BlobGets  int   // GET .../blobs/sha256:... answered 200
	BlobBytes int64 // the bytes of those
	Bytes     int64 // bytes of every answer
}

// sumTraffic adds up requests.
func sumTraffic(reqs []request) traffic {
	var t traffic
	for _, r := range reqs {
		t.Requests++
		t.Bytes += r.Bytes
		if r.Method == "GET" && r.Status == 200 && strings.Contains(r.Path, "/blobs/sha256:") {
			t.BlobGets++
			t.BlobBytes += r.Bytes
		}
	}
	return t
}

var bytesReceived = regexp.MustCompile(`(\d+) layers fetched, (\d+) already present, (\d+) bytes received`)

// pullSummary reads the line hostd's pull prints ("Pulled NAME (DIGEST): 3
// layers fetched, 2 already present, 1234 bytes received."); ok is false
// when the output has none.
func pullSummary(out string) (fetched, present int, bytes int64, ok bool) {
	m := bytesReceived.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, false
	}
	f, err1 := strconv.Atoi(m[1])
	p, err2 := strconv.Atoi(m[2])
	b, err3 := strconv.ParseInt(m[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return f, p, b, true
}
