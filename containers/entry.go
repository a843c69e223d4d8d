package containers

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Entry is what a generation records of one system container: one line of
// the [containers] group of a deployment's origin,
// IMAGE@sha256:DIGEST;VALUES-DIGEST, with ";follow" when `hostctl upgrade`
// moves the container to the newest image of its tag.
type Entry struct {
	// Image is the image as the user named it (its tag, not its digest).
	Image string
	// Digest is the image's manifest digest, sha256:HEX.
	Digest string
	// Values is the digest of the --set values (ValuesDigest).
	Values string
	// Follow says the container follows Image's tag (container install --follow).
	Follow bool
}

// followFlag marks a container that follows its image's tag.
const followFlag = "follow"

// String is the entry as an origin records it; ParseEntry reads it back.
func (e Entry) String() string {
	s := e.Image + "@" + e.Digest + ";" + e.Values
	if e.Follow {
		s += ";" + followFlag
	}
	return s
}

var (
	imageDigestRe  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	valuesDigestRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// IsDigest says s names a pulled image by its digest (sha256:HEX or HEX)
// rather than by a reference.
func IsDigest(s string) bool {
	return imageDigestRe.MatchString(s) || valuesDigestRe.MatchString(s)
}

// ParseEntry reads a [containers] line written by Entry.String. It is
// strict: anything else is refused, never read as a partial entry.
func ParseEntry(s string) (Entry, error) {
	bad := func(why string) (Entry, error) {
		return Entry{}, fmt.Errorf("origin [containers] entry %q: %s; want IMAGE@sha256:DIGEST;VALUES-DIGEST[;follow]", s, why)
	}
	fields := strings.Split(s, ";")
	if len(fields) < 2 || len(fields) > 3 {
		return bad("wrong number of fields")
	}
	ref := fields[0]
	i := strings.LastIndex(ref, "@")
	if i <= 0 || !imageDigestRe.MatchString(ref[i+1:]) {
		return bad("no image digest")
	}
	if !valuesDigestRe.MatchString(fields[1]) {
		return bad("no values digest")
	}
	e := Entry{Image: ref[:i], Digest: ref[i+1:], Values: fields[1]}
	if len(fields) == 3 {
		if fields[2] != followFlag {
			return bad("unknown flag " + strconv.Quote(fields[2]))
		}
		e.Follow = true
	}
	return e, nil
}

// DefaultName is the container name of an image when none is given: its
// last path component without tag or digest.
func DefaultName(image string) string {
	n := image
	if i := strings.LastIndex(n, "@"); i > 0 {
		n = n[:i]
	}
	n = n[strings.LastIndex(n, "/")+1:]
	if i := strings.LastIndex(n, ":"); i > 0 {
		n = n[:i]
	}
	return n
}
