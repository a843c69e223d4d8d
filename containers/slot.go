package containers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hostctl/hostctl/deploy"
)

// Host says where system containers and the files they put on the host go.
type Host struct {
	// Dir holds the slots NAME.0, NAME.1 and the symlink NAME:
	// /var/lib/containers/hostctl of the host (of the stateroot's var for a
	// sysroot that is not booted).
	Dir string
	// Etc is the host's /etc, where units and tmpfiles.d files go (the
	// current deployment's /etc for a sysroot that is not booted).
	Etc string
	// Root is the root hostfs files are copied under and bind-mount sources
	// are looked up in: "/" on a booted host.
	Root string
	// Runtime is the OCI runtime (runc) and its features.
	Runtime         string
	RuntimeFeatures RuntimeFeatures
}

// Slot directory layout.
const (
	slotRootfs   = "rootfs"
	slotUnit     = "unit.service"
	slotTmpfiles = "tmpfiles.conf"
	stateDirName = ".hostctl" // values by digest, applied host files
)

// SlotPath is the directory of slot n (0 or 1) of container name.
func (h Host) SlotPath(name string, n int) string {
	return filepath.Join(h.Dir, name+"."+strconv.Itoa(n))
}

// LinkPath is the symlink naming the active slot.
func (h Host) LinkPath(name string) string { return filepath.Join(h.Dir, name) }

// UnitPath is the systemd unit of container name.
func (h Host) UnitPath(name string) string {
	return filepath.Join(h.Etc, "systemd", "system", name+".service")
}

// TmpfilesPath is the tmpfiles.d file of container name.
func (h Host) TmpfilesPath(name string) string {
	return filepath.Join(h.Etc, "tmpfiles.d", name+".conf")
}

// ActiveSlot returns the slot number NAME points at, or -1 when the
// container is not installed.
func (h Host) ActiveSlot(name string) (int, error) {
	target, err := os.Readlink(h.LinkPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("container %s: %w", name, err)
	}
	switch filepath.Base(target) {
	case name + ".0":
		return 0, nil
	case name + ".1":
		return 1, nil
	}
	return -1, fmt.Errorf("container %s: %s points at %q, not a slot", name, h.LinkPath(name), target)
}

// Installed lists the installed containers: the symlinks of Dir, sorted.
func (h Host) Installed() ([]string, error) {
	ents, err := os.ReadDir(h.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 && ValidateName(e.Name()) == nil {
			if n, err := h.ActiveSlot(e.Name()); err == nil && n >= 0 {
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// ValuesDigest is the digest of the values given with --set: what the
// generation records beside the image digest.
func ValuesDigest(set map[string]string) string {
	b, _ := json.Marshal(sortedMap(set))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedMap(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

// SaveValues stores the --set values under their digest, so a generation
// naming the digest can be rendered again.
func (h Host) SaveValues(set map[string]string) (string, error) {
	d := ValuesDigest(set)
	dir := filepath.Join(h.Dir, stateDirName, "values")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	b, _ := json.Marshal(set)
	if set == nil {
		b = []byte("{}")
	}
	return d, writeFileAtomic(filepath.Join(dir, d+".json"), b, 0o600)
}

// LoadValues reads values stored by SaveValues.
func (h Host) LoadValues(digest string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(h.Dir, stateDirName, "values", digest+".json"))
	if err != nil {
		return nil, fmt.Errorf("values %s: %w", shortDigest(digest), err)
	}
	m := map[string]string{}
	return m, json.Unmarshal(b, &m)
}

// PrepareOptions describe a slot to write.
type PrepareOptions struct {
	Name      string
	Image     *Image
	ImageName string            // the image as the user named it
	Set       map[string]string // --set values (all of them, not only the new ones)
	Slot      int
	// AddTemp is told of the slot directory before it is written.
	AddTemp func(string)
}

// Slot is a written slot.
type Slot struct {
	N    int
	Dir  string
	Info *Info
}

// PrepareSlot checks the image out into slot opts.Slot (replacing what was
// there: it must not be the active one) and renders its config.json, unit,
// tmpfiles and info file. Nothing outside the slot directory is touched. On
// error the slot directory is removed.
func PrepareSlot(ctx context.Context, repo *deploy.Repo, h Host, opts PrepareOptions) (_ *Slot, err error) {
	if err := ValidateName(opts.Name); err != nil {
		return nil, err
	}
	dir := h.SlotPath(opts.Name, opts.Slot)
	if opts.AddTemp != nil {
		opts.AddTemp(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	rootfs := filepath.Join(dir, slotRootfs)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	for _, l := range opts.Image.Layers {
		commit, err := repo.Resolve(LayerRef(l))
		if err != nil {
			return nil, fmt.Errorf("install %s: layer %s is missing from the repo: pull the image again: %w", opts.Name, shortDigest(l), err)
		}
		if err := repo.Checkout(ctx, commit, rootfs, deploy.CheckoutOptions{Overwrite: deploy.OverwriteUnion, Whiteouts: true}); err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
	}
	exports := filepath.Join(rootfs, "exports")
	mf := DefaultManifest()
	if b, ok, err := readExport(exports, "manifest.json"); err != nil {
		return nil, err
	} else if ok {
		if mf, err = ParseManifest(b); err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
	}
	unitText, hasUnit, err := readExport(exports, "service.template")
	if err != nil {
		return nil, err
	}
	unitTemplate := UnitTemplate(string(unitText), hasUnit)
	caps, _ := AllProcessCapabilities()
	values, err := ResolveValues(ValueInputs{
		Name: opts.Name, Image: opts.ImageName, ImageID: opts.Image.ID(), Destination: dir,
		HostUID: 0, HostGID: 0, Runtime: h.Runtime, RuntimeFeatures: h.RuntimeFeatures,
		UnitTemplate: unitTemplate, Capabilities: caps,
		Set: opts.Set, Defaults: mf.DefaultValues,
	})
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", opts.Name, err)
	}

	// config.json: a plain one wins over the template (atomic checks it first).
	var config []byte
	if b, ok, err := readExport(exports, "config.json"); err != nil {
		return nil, err
	} else if ok {
		config = b
	} else if b, ok, err := readExport(exports, "config.json.template"); err != nil {
		return nil, err
	} else if ok {
		s, err := Render("config.json.template", string(b), values)
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
		config = []byte(s)
	} else if config, err = DefaultConfig(opts.Image.Config.Config, values); err != nil {
		return nil, fmt.Errorf("install %s: %w", opts.Name, err)
	}
	spec, err := CheckConfig(config)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", opts.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
		return nil, err
	}

	unit, tmpfiles := "", ""
	if mf.HasContainerService() {
		if unit, err = RenderUnit(unitTemplate, values); err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
		if !hasUnit {
			unit = ForkingIfDetached(unit, values["EXEC_START"])
		}
	}
	if b, ok, err := readExport(exports, "tmpfiles.template"); err != nil {
		return nil, err
	} else if ok {
		if tmpfiles, err = RenderTmpfiles(string(b), values); err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
	} else {
		tmpfiles = DefaultTmpfiles(MissingBindSources(spec, h.Root), 0, 0)
	}
	rename, err := RenderRenameFiles(mf.RenameFiles, values)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", opts.Name, err)
	}
	// installedFilesTemplate names host paths after renaming; a renamed
	// path may hold variables, so the entries are rendered like renameFiles.
	templates := make([]string, 0, len(mf.InstalledFilesTemplate))
	for _, p := range mf.InstalledFilesTemplate {
		r, err := Render("manifest.json installedFilesTemplate", p, values)
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", opts.Name, err)
		}
		templates = append(templates, r)
	}
	// hostfs templates are rendered now, so that a bad one fails before the flip.
	if err := checkHostfsTemplates(filepath.Join(exports, "hostfs"), rename, templates, values); err != nil {
		return nil, fmt.Errorf("install %s: %w", opts.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, slotUnit), []byte(unit), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, slotTmpfiles), []byte(tmpfiles), 0o644); err != nil {
		return nil, err
	}
	info := &Info{
		Image: opts.ImageName, Digest: opts.Image.Digest, Revision: opts.Image.ID(), OSTreeCommit: opts.Image.Commit,
		Created: time.Now().Unix(), Values: values, HasContainerService: mf.HasContainerService(),
		InstalledFilesTemplate: templates, RenameInstalledFiles: rename,
		UseLinks: mf.UseLinks, Runtime: values["RUNTIME"],
	}
	if err := WriteInfo(dir, info); err != nil {
		return nil, err
	}
	if err := writeSetValues(dir, opts.Set); err != nil {
		return nil, err
	}
	return &Slot{N: opts.Slot, Dir: dir, Info: info}, nil
}

// setValuesFile keeps the --set values of a slot, which ValuesDigest covers.
const setValuesFile = "set-values.json"

func writeSetValues(dir string, set map[string]string) error {
	if set == nil {
		set = map[string]string{}
	}
	b, _ := json.Marshal(set)
	return writeFileAtomic(filepath.Join(dir, setValuesFile), b, 0o600)
}

// SetValues reads the --set values of a slot.
func SetValues(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, setValuesFile))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	return m, json.Unmarshal(b, &m)
}

func readExport(exports, name string) ([]byte, bool, error) {
	b, err := os.ReadFile(filepath.Join(exports, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read /exports/%s: %w", name, err)
	}
	return b, true, nil
}

// checkHostfsTemplates renders every hostfs file that is a template, to
// report unknown variables before anything reaches the host.
func checkHostfsTemplates(hostfs string, rename map[string]string, templates []string, values map[string]string) error {
	if len(templates) == 0 {
		return nil
	}
	return filepath.WalkDir(hostfs, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(hostfs, p)
		dest := RenamePath("/"+filepath.ToSlash(rel), rename)
		for _, t := range templates {
			if t == dest {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if _, err := Render("hostfs"+dest, string(b), values); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Activate points NAME at slot n by renaming a new symlink over it: the
// commit point of install, update and rollback.
func Activate(h Host, name string, n int) error {
	tmp := h.LinkPath(name) + ".new"
	os.Remove(tmp)
	if err := os.Symlink(name+"."+strconv.Itoa(n), tmp); err != nil {
		return fmt.Errorf("activate %s: %w", name, err)
	}
	if err := os.Rename(tmp, h.LinkPath(name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("activate %s: %w", name, err)
	}
	return syncDir(h.Dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadSlot reads the info file of slot n, or nil when the slot is empty.
func ReadSlot(h Host, name string, n int) (*Slot, error) {
	dir := h.SlotPath(name, n)
	if _, err := os.Stat(filepath.Join(dir, InfoFileName)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	info, err := ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	return &Slot{N: n, Dir: dir, Info: info}, nil
}

// Matches reports whether the slot holds image digest with --set values
// of valuesDigest.
func (s *Slot) Matches(digest, valuesDigest string) bool {
	if s == nil || s.Info.Digest != digest {
		return false
	}
	set, err := SetValues(s.Dir)
	return err == nil && ValuesDigest(set) == valuesDigest
}

// applied records what was put on the host for a container: from which
// slot, and the hostfs files with their checksums.
type applied struct {
	Slot      string            `json:"slot"`
	Created   int64             `json:"created"`
	HostFiles map[string]string `json:"host-files"`
}

func (h Host) appliedPath(name string) string {
	return filepath.Join(h.Dir, stateDirName, "applied", name+".json")
}

func (h Host) readApplied(name string) (*applied, error) {
	b, err := os.ReadFile(h.appliedPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := &applied{}
	return a, json.Unmarshal(b, a)
}

// HostUpToDate reports whether the host files of name are those of its active slot.
func (h Host) HostUpToDate(name string) bool {
	n, err := h.ActiveSlot(name)
	if err != nil || n < 0 {
		return false
	}
	s, err := ReadSlot(h, name, n)
	if err != nil || s == nil {
		return false
	}
	a, err := h.readApplied(name)
	return err == nil && a != nil && a.Slot == filepath.Base(s.Dir) && a.Created == s.Info.Created
}

// ApplyHostFiles makes the host files of name those of its active slot:
// the unit, the tmpfiles.d file and the hostfs files (the previous slot's
// are removed first). Each file is replaced by a rename; the record of
// what was applied is written last, so after a crash it is done again.
func ApplyHostFiles(h Host, name string) (kept []string, err error) {
	n, err := h.ActiveSlot(name)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("container %s is not installed", name)
	}
	s, err := ReadSlot(h, name, n)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("container %s: the active slot %d is empty", name, n)
	}
	old, err := h.readApplied(name)
	if err != nil {
		return nil, err
	}
	if old != nil && len(old.HostFiles) > 0 {
		if kept, err = RemoveHostFiles(h.Root, old.HostFiles); err != nil {
			return kept, err
		}
	}
	if err := h.writeHostFile(h.UnitPath(name), filepath.Join(s.Dir, slotUnit)); err != nil {
		return kept, err
	}
	if err := h.writeHostFile(h.TmpfilesPath(name), filepath.Join(s.Dir, slotTmpfiles)); err != nil {
		return kept, err
	}
	rec := &applied{Slot: filepath.Base(s.Dir), Created: s.Info.Created, HostFiles: map[string]string{}}
	hostfs := filepath.Join(s.Dir, slotRootfs, "exports", "hostfs")
	if _, err := os.Stat(hostfs); err == nil {
		res, err := InstallHostFiles(hostfs, h.Root, HostFilesOptions{Rename: s.Info.RenameInstalledFiles,
			Templates: s.Info.InstalledFilesTemplate, Values: s.Info.Values})
		if err != nil {
			return kept, err
		}
		rec.HostFiles = res.Installed
		kept = append(kept, res.Skipped...)
	}
	s.Info.InstalledFiles = rec.HostFiles
	s.Info.InstalledFilesList = sortedKeys(rec.HostFiles)
	if err := WriteInfo(s.Dir, s.Info); err != nil {
		return kept, err
	}
	rec.Created = s.Info.Created
	if err := os.MkdirAll(filepath.Dir(h.appliedPath(name)), 0o700); err != nil {
		return kept, err
	}
	b, _ := json.Marshal(rec)
	return kept, writeFileAtomic(h.appliedPath(name), b, 0o600)
}

// writeHostFile copies src to dest by rename, or removes dest when src is empty.
func (h Host) writeHostFile(dest, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(dest, b, 0o644)
}

// RemoveContainer removes everything of container name but the service
// itself (stop it first): the unit, the tmpfiles.d file, the hostfs files,
// the symlink and both slots. Host files someone changed are kept and
// returned.
func RemoveContainer(h Host, name string) (kept []string, err error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	a, err := h.readApplied(name)
	if err != nil {
		return nil, err
	}
	var errs []error
	if a != nil && len(a.HostFiles) > 0 {
		k, err := RemoveHostFiles(h.Root, a.HostFiles)
		kept = k
		errs = append(errs, err)
	}
	for _, p := range []string{h.UnitPath(name), h.TmpfilesPath(name), h.LinkPath(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for n := 0; n < 2; n++ {
		errs = append(errs, os.RemoveAll(h.SlotPath(name, n)))
	}
	errs = append(errs, os.Remove(h.appliedPath(name)))
	if err := errs[len(errs)-1]; errors.Is(err, fs.ErrNotExist) {
		errs = errs[:len(errs)-1]
	}
	return kept, errors.Join(errs...)
}
