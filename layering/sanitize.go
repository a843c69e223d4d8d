package layering

import (
	"fmt"
	"strings"
)

// maxPayloadPath bounds the length of a payload path.
const maxPayloadPath = 4096

// SanitizePath turns a payload path ("./usr/bin/foo") into a path relative
// to the destination ("usr/bin/foo"). It refuses what could land outside the
// destination or is not canonical: absolute paths after the leading "./",
// "..", "." or empty components, NUL bytes. The archive root ("." or "./")
// yields "" and no error.
func SanitizePath(name string) (string, error) {
	if len(name) > maxPayloadPath {
		return "", fmt.Errorf("payload path %.40q... is longer than %d bytes", name, maxPayloadPath)
	}
	rel := strings.TrimPrefix(name, "./")
	if rel == "" || rel == "." {
		return "", nil
	}
	if strings.IndexByte(rel, 0) >= 0 {
		return "", fmt.Errorf("payload path %q contains a NUL byte", name)
	}
	if rel[0] == '/' {
		return "", fmt.Errorf("payload path %q is absolute", name)
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "..":
			return "", fmt.Errorf("payload path %q leaves the tree (..)", name)
		case "", ".":
			return "", fmt.Errorf("payload path %q is not canonical", name)
		}
	}
	return rel, nil
}
