package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	imgspec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hostctl/hostctl/deploy"
)

// Commit metadata keys of image and layer commits. docker.manifest is the
// key atomic's OSTree storage used.
const (
	metaManifest      = "docker.manifest"
	metaDigest        = "docker.digest"
	metaConfig        = "hostctl.config"
	metaName          = "hostctl.name"
	metaLayers        = "hostctl.layers"
	metaLayerDigest   = "hostctl.layer.digest"
	metaLayerSymlinks = "hostctl.layer.symlinks"
	metaLayerDirs     = "hostctl.layer.dirs"
)

// Ref prefixes: ociimage/ is atomic's namespace (layers by blob digest hex,
// images by encoded name); hostctl/image/ keeps every image by manifest
// digest, so a generation that names IMAGE@DIGEST can be restored after the
// name moved on.
const (
	ociPrefix    = "ociimage/"
	digestPrefix = "hostctl/image/"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// LayerRef is the ref of a layer commit: ociimage/<hex of the blob digest>.
func LayerRef(blobDigest string) string {
	return ociPrefix + strings.TrimPrefix(blobDigest, "sha256:")
}

// DigestRef is the ref of an image by its manifest digest.
func DigestRef(manifestDigest string) string {
	return digestPrefix + strings.TrimPrefix(manifestDigest, "sha256:")
}

// ImageRef is the ref of an image by name: ociimage/ and the name with
// every character but letters, digits, "." and "-" written as _XX (hex), as
// atomic encodes it.
func ImageRef(canonicalName string) string {
	var b strings.Builder
	b.WriteString(ociPrefix)
	for i := 0; i < len(canonicalName); i++ {
		c := canonicalName[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// DecodeImageRef reverses ImageRef; ok is false for a layer ref or a ref
// that is not an encoded name.
func DecodeImageRef(ref string) (name string, ok bool) {
	enc, found := strings.CutPrefix(ref, ociPrefix)
	if !found || hex64.MatchString(enc) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if enc[i] != '_' {
			b.WriteByte(enc[i])
			continue
		}
		if i+2 >= len(enc) {
			return "", false
		}
		v, err := strconv.ParseUint(enc[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// Image is a pulled image.
type Image struct {
	Name     string   // canonical name (see CanonicalName)
	Digest   string   // manifest digest, "sha256:..."
	Commit   string   // the image's commit in the repo
	Layers   []string // blob digests, lowest first
	Manifest []byte
	Config   imgspec.Image
}

// ID is the image id: the manifest digest without "sha256:".
func (i *Image) ID() string { return strings.TrimPrefix(i.Digest, "sha256:") }

// LoadImage reads an image commit.
func LoadImage(repo *deploy.Repo, commit string) (*Image, error) {
	_, meta, err := repo.CommitMetadata(commit)
	if err != nil {
		return nil, err
	}
	if meta[metaDigest] == "" {
		return nil, fmt.Errorf("commit %s is not a hostctl image", commit)
	}
	img := &Image{Name: meta[metaName], Digest: meta[metaDigest], Commit: commit,
		Layers: splitLines(meta[metaLayers]), Manifest: []byte(meta[metaManifest])}
	if c := meta[metaConfig]; c != "" {
		if err := json.Unmarshal([]byte(c), &img.Config); err != nil {
			return nil, fmt.Errorf("image %s: config: %w", img.Name, err)
		}
	}
	return img, nil
}

// FindImage finds an image by name (as given, or canonical), by
// NAME@sha256:DIGEST, or by digest alone.
func FindImage(repo *deploy.Repo, name string) (*Image, error) {
	if n, d, ok := strings.Cut(name, "@sha256:"); ok {
		commit, err := repo.Resolve(DigestRef(d))
		if err != nil {
			return nil, fmt.Errorf("image %s@sha256:%s is not in the repo: pull it again (hostctl image pull %s): %w", n, shortDigest(d), n, err)
		}
		return LoadImage(repo, commit)
	}
	if hex64.MatchString(strings.TrimPrefix(name, "sha256:")) {
		commit, err := repo.Resolve(DigestRef(name))
		if err != nil {
			return nil, fmt.Errorf("no image with digest %s: %w", name, err)
		}
		return LoadImage(repo, commit)
	}
	canonical := name
	if ref, err := ParseImageReference(name); err == nil {
		canonical = CanonicalName(ref)
	}
	commit, err := repo.Resolve(ImageRef(canonical))
	if err != nil {
		return nil, fmt.Errorf("image %s is not pulled: hostctl image pull %s: %w", name, name, err)
	}
	return LoadImage(repo, commit)
}

// ListImages lists the images pulled by name, sorted by name.
func ListImages(ctx context.Context, repo *deploy.Repo) ([]*Image, error) {
	refs, err := refsUnder(ctx, repo, ociPrefix)
	if err != nil {
		return nil, err
	}
	var out []*Image
	for ref, commit := range refs {
		if _, ok := DecodeImageRef(ref); !ok {
			continue
		}
		img, err := LoadImage(repo, commit)
		if err != nil {
			continue
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteImage removes the name ref of an image. Its layers and its digest
// ref stay until PruneImages, so installed containers and generations that
// name it keep working.
func DeleteImage(ctx context.Context, repo *deploy.Repo, name string) (*Image, error) {
	img, err := FindImage(repo, name)
	if err != nil {
		return nil, err
	}
	if err := repo.SetRef(ctx, ImageRef(img.Name), ""); err != nil {
		return nil, err
	}
	return img, nil
}

// PruneImages removes the digest refs of images that have no name ref and
// are not in keep (manifest digests in use), then the layer refs no
// remaining image uses. The objects go at the next repo prune (sysroot
// cleanup). It returns the refs removed.
func PruneImages(ctx context.Context, repo *deploy.Repo, keep map[string]bool) ([]string, error) {
	named, err := ListImages(ctx, repo)
	if err != nil {
		return nil, err
	}
	for _, img := range named {
		keep[img.Digest] = true
	}
	byDigest, err := refsUnder(ctx, repo, digestPrefix)
	if err != nil {
		return nil, err
	}
	usedLayers := map[string]bool{}
	var removed []string
	for ref, commit := range byDigest {
		img, err := LoadImage(repo, commit)
		if err == nil && keep[img.Digest] {
			for _, l := range img.Layers {
				usedLayers[LayerRef(l)] = true
			}
			continue
		}
		if err := repo.SetRef(ctx, ref, ""); err != nil {
			return removed, err
		}
		removed = append(removed, ref)
	}
	all, err := refsUnder(ctx, repo, ociPrefix)
	if err != nil {
		return removed, err
	}
	var errs []error
	for ref := range all {
		if !hex64.MatchString(strings.TrimPrefix(ref, ociPrefix)) || usedLayers[ref] {
			continue
		}
		if err := repo.SetRef(ctx, ref, ""); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ref)
	}
	sort.Strings(removed)
	return removed, errors.Join(errs...)
}

// refsUnder lists the refs under prefix ("a/b/"), with their full names.
func refsUnder(ctx context.Context, repo *deploy.Repo, prefix string) (map[string]string, error) {
	refs, err := repo.Refs(ctx, strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(refs))
	for r, c := range refs {
		if !strings.HasPrefix(r, prefix) {
			r = prefix + strings.TrimPrefix(r, "/")
		}
		out[r] = c
	}
	return out, nil
}
