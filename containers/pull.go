package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.podman.io/image/v5/docker"
	dockerarchive "go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	ociarchive "go.podman.io/image/v5/oci/archive"
	ocilayout "go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"

	"github.com/hostctl/hostctl/containers/layer"
	"github.com/hostctl/hostctl/deploy"
	"github.com/hostctl/hostctl/internal/httpx"
)

// PullProgress is a snapshot of a pull in flight.
type PullProgress struct {
	Layer, Layers int    // layers done and in all
	Bytes         uint64 // bytes received so far
	Text          string
}

// PullOptions tune Pull.
type PullOptions struct {
	// HostRoot is the root whose /etc/containers/policy.json,
	// registries.conf and registries.conf.d are honoured: "/" on a booted
	// host, the current deployment's checkout for a sysroot that is not
	// booted.
	HostRoot string
	// TempDir is not used any more: layers stream into the repository
	// (layer.Import) without a temporary tree. Kept for callers.
	TempDir string
	// AddTemp is told of every temporary directory before it is created, so
	// a crash can be cleaned up (may be nil). Pull makes none now: a crash
	// leaves only libostree's staging directory, which libostree removes.
	AddTemp func(path string)
	// Progress receives progress (may be nil).
	Progress func(PullProgress)
}

// PullResult is what Pull did.
type PullResult struct {
	Image *Image
	// LayersFetched and LayersPresent count the layers downloaded and the
	// ones already in the repo (not downloaded at all).
	LayersFetched, LayersPresent int
	// Bytes is the number of layer bytes received.
	Bytes uint64
	// Dropped lists device nodes and FIFOs left out of the layers.
	Dropped []string
}

// metadataTimeout bounds fetching an image's manifest, signatures and config.
const metadataTimeout = 2 * time.Minute

// Pull fetches the image name (docker:// when it names no transport; also
// oci:, oci-archive:, docker-archive:, dir:) into repo after checking it
// against the host's signature policy. Each layer becomes its own commit on
// ociimage/<blob digest hex> unless that ref exists already, in which case
// nothing of it is downloaded; the image becomes a commit of an empty tree
// with the manifest and config in its metadata, on ociimage/<encoded name>
// and hostctl/image/<manifest digest hex>.
//
// The layers are streamed into the repository entry by entry (no temporary
// tree), and every layer fetched and the image are written in one repository
// transaction: nothing moves unless all of it is written.
//
// Layers are committed as they are, whiteout files included: they take
// effect when the layers are checked out on top of each other (Install).
// Device nodes and FIFOs are dropped; a path that escapes the layer, a
// symlink pointing out of the root that an entry is written through, and a
// layer that writes below a symlink of a lower layer are refused.
func Pull(ctx context.Context, repo *deploy.Repo, name string, opts PullOptions) (_ *PullResult, err error) {
	ref, err := ParseImageReference(name)
	if err != nil {
		return nil, err
	}
	sys, err := systemContext(opts.HostRoot)
	if err != nil {
		return nil, err
	}
	policy, err := signature.NewPolicyFromFile(sys.SignaturePolicyPath)
	if err != nil {
		return nil, fmt.Errorf("pull %s: read the signature policy: %w: create %s (e.g. {\"default\":[{\"type\":\"insecureAcceptAnything\"}]})", name, err, sys.SignaturePolicyPath)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	defer pc.Destroy()

	report := func(p PullProgress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	report(PullProgress{Text: "Fetching the manifest of " + name})
	// The manifest, signatures and config are small: a registry that does
	// not deliver them within metadataTimeout is not answering.
	mctx, mcancel := context.WithTimeout(ctx, metadataTimeout)
	defer mcancel()
	src, err := ref.NewImageSource(mctx, sys)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	defer src.Close()
	unparsed := image.UnparsedInstance(src, nil)
	if ok, err := pc.IsRunningImageAllowed(mctx, unparsed); !ok || err != nil {
		return nil, &PolicyError{Image: name, Err: err}
	}
	img, err := image.FromUnparsedImage(mctx, sys, unparsed)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	mf, _, err := img.Manifest(mctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: read manifest: %w", name, err)
	}
	mdigest, err := manifest.Digest(mf)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	canonical := CanonicalName(ref)
	if res, ok := pulledAlready(repo, canonical, mdigest.String(), len(img.LayerInfos())); ok {
		return res, nil
	}
	config, err := img.ConfigBlob(mctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: read config: %w", name, err)
	}
	infos := img.LayerInfos()
	res := &PullResult{}
	// Every layer fetched and the image are written in one repository
	// transaction: one sync, and no ref moves unless all of it is written.
	txn, err := repo.BeginTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	defer txn.Abort()
	lower := map[string]bool{} // symlinks of the layers below
	var layerDigests []string
	for i, info := range infos {
		d := info.Digest
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("pull %s: layer %d: %w", name, i, err)
		}
		layerDigests = append(layerDigests, d.String())
		lref := LayerRef(d.String())
		var symlinks, dirs []string
		commit, err := repo.Resolve(lref)
		switch {
		case err == nil:
			res.LayersPresent++
			_, meta, err := repo.CommitMetadata(commit)
			if err != nil {
				return nil, fmt.Errorf("pull %s: %w", name, err)
			}
			symlinks, dirs = splitLines(meta[metaLayerSymlinks]), splitLines(meta[metaLayerDirs])
		case errors.Is(err, deploy.ErrNotFound):
			report(PullProgress{Layer: i, Layers: len(infos), Bytes: res.Bytes, Text: fmt.Sprintf("Fetching layer %s", shortDigest(d.String()))})
			im, err := importLayer(ctx, txn, src, info, res, func(n uint64) {
				report(PullProgress{Layer: i, Layers: len(infos), Bytes: res.Bytes + n, Text: fmt.Sprintf("Fetching layer %s", shortDigest(d.String()))})
			})
			if err != nil {
				return nil, fmt.Errorf("pull %s: layer %s: %w", name, d, err)
			}
			res.LayersFetched++
			symlinks, dirs = im.Symlinks, im.Dirs
		default:
			return nil, fmt.Errorf("pull %s: %w", name, err)
		}
		for _, dir := range dirs {
			if lower[dir] {
				return nil, fmt.Errorf("pull %s: layer %s writes below %q, a symlink of a lower layer: the image is refused (it could write outside the container's root)", name, shortDigest(d.String()), dir)
			}
		}
		for _, l := range symlinks {
			lower[l] = true
		}
	}
	report(PullProgress{Layer: len(infos), Layers: len(infos), Bytes: res.Bytes, Text: "Writing the image"})

	meta := map[string]string{
		metaManifest: string(mf),
		metaDigest:   mdigest.String(),
		metaConfig:   string(config),
		metaName:     canonical,
		metaLayers:   strings.Join(layerDigests, "\n"),
	}
	commit, err := commitImage(ctx, txn, deploy.CommitOptions{Subject: canonical, Metadata: meta, Ref: DigestRef(mdigest.String())})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	txn.SetRef(ImageRef(canonical), commit)
	if err := txn.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	res.Image, err = LoadImage(repo, commit)
	return res, err
}

// pulledAlready answers a pull of an image whose name already points at the
// commit of this manifest, all of its layers present: nothing is fetched
// (not even the config blob, which the commit holds) and nothing is written,
// so a second pull leaves the repository as it was. ok is false when the
// pull has something to do (a new manifest, a name moving, a layer pruned).
func pulledAlready(repo *deploy.Repo, canonical, manifestDigest string, layers int) (*PullResult, bool) {
	commit, err := repo.Resolve(DigestRef(manifestDigest))
	if err != nil {
		return nil, false
	}
	if named, err := repo.Resolve(ImageRef(canonical)); err != nil || named != commit {
		return nil, false
	}
	im, err := LoadImage(repo, commit)
	if err != nil || len(im.Layers) != layers {
		return nil, false
	}
	for _, l := range im.Layers {
		if _, err := repo.Resolve(LayerRef(l)); err != nil {
			return nil, false
		}
	}
	return &PullResult{Image: im, LayersPresent: layers}, true
}

// PolicyError is a pull the signature policy refused.
type PolicyError struct {
	Image string
	Err   error
}

func (e *PolicyError) Error() string {
	reason := "not allowed"
	if e.Err != nil {
		reason = e.Err.Error()
	}
	return fmt.Sprintf("pull %s: refused by the signature policy (/etc/containers/policy.json): %s", e.Image, reason)
}

func (e *PolicyError) Unwrap() error { return e.Err }

// ParseImageReference parses an image name; one without a transport is a
// docker:// reference.
func ParseImageReference(name string) (types.ImageReference, error) {
	if name == "" {
		return nil, fmt.Errorf("no image named")
	}
	ref, err := parseReference(name)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	return ref, nil
}

// transports are the image transports hostctl pulls from, by name.
var transports = map[string]types.ImageTransport{
	"docker":         docker.Transport,
	"oci":            ocilayout.Transport,
	"oci-archive":    ociarchive.Transport,
	"docker-archive": dockerarchive.Transport,
}

// otherTransports are transports of containers/image that hostctl does not pull from.
var otherTransports = map[string]bool{"containers-storage": true, "dir": true, "docker-daemon": true, "ostree": true, "sif": true, "tarball": true}

// parseReference parses TRANSPORT:REFERENCE, or a registry image (docker://
// is the default transport, as for `atomic pull`).
func parseReference(name string) (types.ImageReference, error) {
	if t, rest, ok := strings.Cut(name, ":"); ok {
		if tr, known := transports[t]; known {
			return tr.ParseReference(rest)
		}
		if otherTransports[t] {
			return nil, fmt.Errorf("transport %s: is not supported: use docker://, oci:, oci-archive: or docker-archive:", t)
		}
	}
	return docker.ParseReference("//" + name)
}

// CanonicalName is how an image is recorded: REGISTRY/REPO:TAG for a
// registry image, TRANSPORT:REFERENCE otherwise.
func CanonicalName(ref types.ImageReference) string {
	if dr := ref.DockerReference(); dr != nil && ref.Transport().Name() == "docker" {
		return dr.String()
	}
	return ref.Transport().Name() + ":" + ref.StringWithinTransport()
}

// systemContext reads the signature policy and registries configuration
// of hostRoot.
func systemContext(hostRoot string) (*types.SystemContext, error) {
	if hostRoot == "" {
		hostRoot = "/"
	}
	etc := filepath.Join(hostRoot, "etc", "containers")
	sys := &types.SystemContext{
		SignaturePolicyPath:         filepath.Join(etc, "policy.json"),
		SystemRegistriesConfPath:    filepath.Join(etc, "registries.conf"),
		SystemRegistriesConfDirPath: filepath.Join(etc, "registries.conf.d"),
	}
	if hostRoot != "/" {
		sys.RootForImplicitAbsolutePaths = hostRoot
	}
	return sys, nil
}

// importLayer fetches one layer blob and streams it into txn (layer.Import:
// whiteouts kept, devices dropped, escapes refused), checks its digest, and
// commits it on its ref in txn.
func importLayer(ctx context.Context, txn *deploy.Txn, src types.ImageSource, info types.BlobInfo, res *PullResult, progress func(uint64)) (*layer.Imported, error) {
	rawBlob, _, err := src.GetBlob(ctx, info, none.NoCache)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	// A blob that stops flowing fails after httpx.BodyIdleTimeout (the
	// registry client has no read timeout of its own).
	blob := httpx.IdleReader(rawBlob, "blob "+info.Digest.String(), 0)
	defer blob.Close()
	verifier := info.Digest.Verifier()
	cr := &countingReader{r: io.TeeReader(blob, verifier), progress: progress}
	im, err := layer.Import(ctx, txn, cr)
	if err != nil {
		return nil, err
	}
	defer im.Tree.Close()
	res.Bytes += cr.n
	if !verifier.Verified() {
		return nil, fmt.Errorf("the blob does not match its digest %s: the registry or the file is damaged", info.Digest)
	}
	res.Dropped = append(res.Dropped, im.Dropped...)
	meta := map[string]string{
		metaLayerDigest:   info.Digest.String(),
		metaLayerSymlinks: strings.Join(im.Symlinks, "\n"),
		metaLayerDirs:     strings.Join(im.Dirs, "\n"),
	}
	if _, err := txn.CommitTree(ctx, im.Tree, deploy.CommitOptions{Subject: "layer " + info.Digest.String(), Metadata: meta, Ref: LayerRef(info.Digest.String())}); err != nil {
		return nil, err
	}
	return im, nil
}

// commitImage commits the image: an empty tree (a root directory owned by
// hostd, mode 0755) with the manifest and config in the metadata.
func commitImage(ctx context.Context, txn *deploy.Txn, opts deploy.CommitOptions) (string, error) {
	dirmeta, err := txn.WriteDirMeta(ctx, deploy.FileMeta{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Mode: 0o755})
	if err != nil {
		return "", err
	}
	tree := deploy.NewMutableTree()
	defer tree.Close()
	tree.SetMetadata(dirmeta)
	return txn.CommitTree(ctx, tree, opts)
}

type countingReader struct {
	r        io.Reader
	n        uint64
	progress func(uint64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n)
	}
	return n, err
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
