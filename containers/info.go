package containers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// InfoFileName is the name of the info file in a slot directory.
const InfoFileName = "info"

// Info is a slot's info file: what update and rollback need to render the
// container again. Its JSON keys are atomic's, so either tool can read the
// other's slots.
type Info struct {
	Image        string            `json:"image"`                   // the image as the user named it
	Digest       string            `json:"digest,omitempty"`        // manifest digest, "sha256:..."
	Revision     string            `json:"revision"`                // image id: the digest without "sha256:"
	OSTreeCommit string            `json:"ostree-commit,omitempty"` // the image's commit in the repo
	Created      int64             `json:"created"`                 // Unix seconds
	Values       map[string]string `json:"values"`                  // every template value, forced ones included
	// HasContainerService is false for images with noContainerService.
	HasContainerService bool `json:"has-container-service"`
	// InstalledFiles maps each hostfs path copied to the host to its
	// checksum (see InstallHostFiles); InstalledFilesList keeps atomic's list.
	InstalledFiles         map[string]string `json:"installed-files-checksum"`
	InstalledFilesList     []string          `json:"installed-files"`
	InstalledFilesTemplate []string          `json:"installed-files-template"`
	RenameInstalledFiles   map[string]string `json:"rename-installed-files"`
	UseLinks               bool              `json:"use-links"`
	Runtime                string            `json:"runtime"` // the OCI runtime of the EXEC_* commands
}

// WriteInfo writes info into dir/info atomically: a temporary file in dir,
// synced, renamed over the old one, then dir synced. A crash leaves the old
// file or the new one, never a mix.
func WriteInfo(dir string, info *Info) error {
	b, err := json.MarshalIndent(info, "", "    ")
	if err != nil {
		return fmt.Errorf("write info file in %s: %w", dir, err)
	}
	return writeFileAtomic(filepath.Join(dir, InfoFileName), append(b, '\n'), 0o644)
}

// ReadInfo reads dir/info. Values written by atomic as numbers (HOST_UID)
// or booleans come back as the strings Python's str() makes of them; a
// missing has-container-service means true, as in atomic.
func ReadInfo(dir string) (*Info, error) {
	p := filepath.Join(dir, InfoFileName)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read info file: %w", err)
	}
	var raw struct {
		Info
		Values  map[string]any `json:"values"`
		Service *bool          `json:"has-container-service"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("read info file %s: %w: the slot is damaged; reinstall the container", p, describeJSONError(b, err))
	}
	info := raw.Info
	// atomic treats a missing has-container-service as true.
	info.HasContainerService = raw.Service == nil || *raw.Service
	info.Values = make(map[string]string, len(raw.Values))
	for k, v := range raw.Values {
		s, err := pythonStr(v)
		if err != nil {
			return nil, fmt.Errorf("read info file %s: value %s: %w", p, k, err)
		}
		info.Values[k] = s
	}
	return &info, nil
}

// writeFileAtomic replaces path with data by temp file + rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
