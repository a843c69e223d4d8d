package rpmmd

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// RepoMD is the parsed repodata/repomd.xml of a repository.
type RepoMD struct {
	// Revision is the repository's revision string, often a timestamp.
	Revision string
	// Data lists the metadata files, in document order.
	Data []Data
}

// Data is one <data type="..."> entry of repomd.xml.
type Data struct {
	// Type is e.g. "primary", "filelists", "other", "primary_zck".
	Type string
	// Location is the href relative to the repository's base URL, e.g.
	// "repodata/HASH-primary.xml.gz".
	Location string
	// Checksum is the digest of the file as stored (compressed).
	Checksum Checksum
	// OpenChecksum is the digest of the decompressed file; zero if absent.
	OpenChecksum Checksum
	// Timestamp is the file's timestamp in seconds since the epoch.
	Timestamp int64
	// Size and OpenSize are the stored and decompressed sizes; 0 if absent.
	Size, OpenSize int64
}

// Checksum is a digest named by its algorithm: sha1, sha256, sha512 (also
// sha224, sha384; "sha" means sha1, as in old createrepo output).
type Checksum struct {
	Type  string
	Value string // lowercase hex
}

// IsZero reports whether c is absent.
func (c Checksum) IsZero() bool { return c.Type == "" && c.Value == "" }

// String returns "type:value".
func (c Checksum) String() string { return c.Type + ":" + c.Value }

type xmlRepoMD struct {
	XMLName  xml.Name  `xml:"repomd"`
	Revision string    `xml:"revision"`
	Data     []xmlData `xml:"data"`
}

type xmlChecksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type xmlData struct {
	Type         string       `xml:"type,attr"`
	Location     xmlLocation  `xml:"location"`
	Checksum     *xmlChecksum `xml:"checksum"`
	OpenChecksum *xmlChecksum `xml:"open-checksum"`
	Timestamp    string       `xml:"timestamp"`
	Size         string       `xml:"size"`
	OpenSize     string       `xml:"open-size"`
}

type xmlLocation struct {
	Href string `xml:"href,attr"`
}

// maxRepoMD bounds the size of a repomd.xml (Fedora's is a few KiB).
const maxRepoMD = 4 << 20

// ParseRepoMD parses repomd.xml from r. Every data entry must have a type, a
// relative location inside the repository and a supported checksum.
func ParseRepoMD(r io.Reader) (*RepoMD, error) {
	var x xmlRepoMD
	dec := xml.NewDecoder(io.LimitReader(r, maxRepoMD))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("parse repomd.xml: %w", err)
	}
	md := &RepoMD{Revision: strings.TrimSpace(x.Revision)}
	seen := map[string]bool{}
	for i, d := range x.Data {
		out, err := d.convert()
		if err != nil {
			return nil, fmt.Errorf("parse repomd.xml: data entry %d (%q): %w", i+1, d.Type, err)
		}
		if seen[out.Type] {
			return nil, fmt.Errorf("parse repomd.xml: data type %q listed twice", out.Type)
		}
		seen[out.Type] = true
		md.Data = append(md.Data, out)
	}
	return md, nil
}

func (d xmlData) convert() (Data, error) {
	out := Data{Type: strings.TrimSpace(d.Type)}
	if out.Type == "" {
		return out, errors.New("no type attribute")
	}
	loc, err := cleanLocation(d.Location.Href)
	if err != nil {
		return out, err
	}
	out.Location = loc
	if d.Checksum == nil {
		return out, errors.New("no checksum")
	}
	if out.Checksum, err = parseChecksum(*d.Checksum); err != nil {
		return out, fmt.Errorf("checksum: %w", err)
	}
	if d.OpenChecksum != nil {
		if out.OpenChecksum, err = parseChecksum(*d.OpenChecksum); err != nil {
			return out, fmt.Errorf("open-checksum: %w", err)
		}
	}
	if out.Timestamp, err = parseInt(d.Timestamp); err != nil {
		return out, fmt.Errorf("timestamp: %w", err)
	}
	if out.Size, err = parseInt(d.Size); err != nil {
		return out, fmt.Errorf("size: %w", err)
	}
	if out.OpenSize, err = parseInt(d.OpenSize); err != nil {
		return out, fmt.Errorf("open-size: %w", err)
	}
	return out, nil
}

// cleanLocation accepts a relative href that stays inside the repository.
func cleanLocation(href string) (string, error) {
	href = strings.TrimSpace(href)
	if href == "" {
		return "", errors.New("no location href")
	}
	if strings.Contains(href, "://") || strings.HasPrefix(href, "/") || strings.ContainsAny(href, "\x00\\?#") {
		return "", fmt.Errorf("location %q is not a relative path inside the repository", href)
	}
	clean := path.Clean(href)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("location %q leaves the repository", href)
	}
	return clean, nil
}

func parseInt(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var n int64
	// Timestamps are sometimes written as floats ("1700000000.0"): keep the seconds.
	whole, _, _ := strings.Cut(s, ".")
	if whole == "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	for _, c := range whole {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		if n > (1<<63-1)/10-1 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// digestHexLen returns the hex length of a digest algorithm hostctl verifies.
func digestHexLen(typ string) (int, bool) {
	switch typ {
	case "sha1":
		return 40, true
	case "sha224":
		return 56, true
	case "sha256":
		return 64, true
	case "sha384":
		return 96, true
	case "sha512":
		return 128, true
	}
	return 0, false
}

func parseChecksum(x xmlChecksum) (Checksum, error) {
	typ := strings.ToLower(strings.TrimSpace(x.Type))
	if typ == "sha" {
		typ = "sha1"
	}
	val := strings.ToLower(strings.TrimSpace(x.Value))
	n, ok := digestHexLen(typ)
	if !ok {
		return Checksum{}, fmt.Errorf("unsupported checksum type %q (want sha1, sha256 or sha512)", x.Type)
	}
	if len(val) != n || strings.Trim(val, "0123456789abcdef") != "" {
		return Checksum{}, fmt.Errorf("%s value %q is not %d hex digits", typ, val, n)
	}
	return Checksum{Type: typ, Value: val}, nil
}

// Find returns the data entry of the given type.
func (m *RepoMD) Find(typ string) (Data, bool) {
	for _, d := range m.Data {
		if d.Type == typ {
			return d, true
		}
	}
	return Data{}, false
}
