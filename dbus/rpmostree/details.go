package rpmostree

import (
	"strconv"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
)

// The keys of rpm-ostree's deployment dictionaries that come from the
// commits and the remotes rather than from the engine's status, as
// rpm-ostree's rpmostreed-deployment-utils.cxx builds them:
//
//   - base-commit-meta a{sv}: the base commit's metadata (of the commit
//     itself when nothing is layered), without the keys rpm-ostree filters
//     out (the package list, the advisories, what other keys promote);
//   - base-version s, base-timestamp t: the base commit's, when layered;
//   - base-removals av: the base packages removed, each rpm-ostree's
//     package variant (nevra, name, epoch, version, release, arch),
//     (sstsss), read from the package diff of the base to the commit;
//   - base-local-replacements a(vv): the base packages replaced from local
//     RPM files, (new, old) each such a variant;
//   - gpg-enabled b: whether the origin's remote verifies signatures.
//
// signatures (av of libostree's GPG verification variants) is left out:
// hostd does not produce libostree's OstreeGpgVerifyResult variants.
// Commits never change, so what is read of one is kept.

// filteredMeta are the commit metadata keys rpm-ostree leaves out of
// base-commit-meta (filter_commit_meta).
var filteredMeta = []string{"rpmostree.rpmdb.pkglist", "rpmostree.advisories", "rpmostree.packages", "rpmostree.modules",
	"rpmostree.spec", "rpmostree.removed-base-packages", "rpmostree.replaced-base-packages", "rpmostree.replaced-base-remote-packages"}

// nevraTuple is rpm-ostree's package variant, (sstsss).
type nevraTuple struct {
	NEVRA, Name string
	Epoch       uint64
	Version     string
	Release     string
	Arch        string
}

// replacement is one element of base-local-replacements: (new, old).
type replacement struct {
	New, Old godbus.Variant
}

// commitDetails is what is kept of one deployment's commits.
type commitDetails map[string]godbus.Variant

// detailsKey names what a deployment's details depend on.
func detailsKey(d dbus.Deployment) string {
	return d.ID + "\x00" + d.Checksum + "\x00" + d.BaseChecksum + "\x00" + strings.Join(d.RemovedBasePackages, ",") + "\x00" + strings.Join(d.ReplacedBasePackages, ",")
}

// details computes the commit-derived keys of every deployment of st,
// from the cache where it knows them. It runs outside s.mu: it reads the
// repository.
func (s *Server) details(st dbus.Status) map[string]commitDetails {
	out := map[string]commitDetails{}
	cr, _ := s.eng.(dbus.CommitReader)
	gpg := map[string]bool{}
	if rl, ok := s.eng.(dbus.RemoteLister); ok {
		if rs, err := rl.Remotes(); err == nil {
			for _, r := range rs {
				gpg[r.Name] = r.GPGVerify
			}
		}
	}
	s.mu.Lock()
	cache := s.detailCache
	s.mu.Unlock()
	next := map[string]commitDetails{}
	for _, d := range st.Deployments {
		key := detailsKey(d)
		det, ok := cache[key]
		if !ok {
			det = s.readDetails(cr, d)
		}
		next[key] = det
		m := commitDetails{}
		for k, v := range det {
			m[k] = v
		}
		if remote, _, ok := strings.Cut(d.Origin, ":"); ok {
			if v, known := gpg[remote]; known {
				m["gpg-enabled"] = godbus.MakeVariant(v)
			}
		}
		out[d.ID] = m
	}
	s.mu.Lock()
	s.detailCache = next // what no deployment uses any more goes
	s.mu.Unlock()
	return out
}

// readDetails reads the commit-derived keys of d; what cannot be read is
// left out (and logged).
func (s *Server) readDetails(cr dbus.CommitReader, d dbus.Deployment) commitDetails {
	m := commitDetails{}
	layered := d.BaseChecksum != "" && d.BaseChecksum != d.Checksum
	base := d.Checksum
	if layered {
		base = d.BaseChecksum
	}
	if cr != nil {
		if c, err := cr.Commit(base); err != nil {
			s.log.Warn("read the base commit of a deployment", "deployment", d.ID, "commit", base, "err", err)
		} else {
			meta := make(map[string]godbus.Variant, len(c.Metadata))
			for k, v := range c.Metadata {
				meta[k] = v
			}
			for _, k := range filteredMeta {
				delete(meta, k)
			}
			m["base-commit-meta"] = godbus.MakeVariant(meta)
			if layered {
				if c.Version != "" {
					m["base-version"] = godbus.MakeVariant(c.Version)
				}
				if c.Timestamp > 0 {
					m["base-timestamp"] = godbus.MakeVariant(c.Timestamp)
				}
			}
		}
	}
	removals := []godbus.Variant{}
	if layered && len(d.RemovedBasePackages) > 0 {
		removed := map[string]bool{}
		for _, n := range d.RemovedBasePackages {
			removed[n] = true
		}
		if diff, err := s.eng.Diff(d.BaseChecksum, d.Checksum); err != nil {
			s.log.Warn("read the base packages a deployment removes", "deployment", d.ID, "err", err)
		} else {
			for _, p := range diff.Removed {
				if removed[p.Name] {
					removals = append(removals, godbus.MakeVariant(nevraOf(p.Name, p.EVR, p.Arch)))
				}
			}
		}
	}
	m["base-removals"] = godbus.MakeVariant(removals)
	local := map[string]bool{}
	if cr != nil {
		for _, n := range cr.LocalReplacements(d.ID) {
			local[n] = true
		}
	}
	repl := []replacement{}
	for _, line := range d.ReplacedBasePackages {
		oldNEVRA, newNEVRA, ok := strings.Cut(line, " -> ")
		if !ok || !local[newNEVRA] {
			continue
		}
		o, okOld := parseNEVRA(oldNEVRA)
		n, okNew := parseNEVRA(newNEVRA)
		if okOld && okNew {
			repl = append(repl, replacement{New: godbus.MakeVariant(n), Old: godbus.MakeVariant(o)})
		}
	}
	m["base-local-replacements"] = godbus.MakeVariant(repl)
	return m
}

// nevraOf is the package variant of name, evr ([EPOCH:]VERSION-RELEASE)
// and arch; the nevra string leaves out an epoch of 0, as rpm does.
func nevraOf(name, evr, arch string) nevraTuple {
	var epoch uint64
	ev := evr
	if e, rest, ok := strings.Cut(evr, ":"); ok {
		if n, err := strconv.ParseUint(e, 10, 64); err == nil {
			epoch = n
		}
		ev = rest
	}
	version, release := ev, ""
	if i := strings.LastIndexByte(ev, '-'); i >= 0 {
		version, release = ev[:i], ev[i+1:]
	}
	nevra := name + "-"
	if epoch != 0 {
		nevra += strconv.FormatUint(epoch, 10) + ":"
	}
	nevra += version + "-" + release + "." + arch
	return nevraTuple{NEVRA: nevra, Name: name, Epoch: epoch, Version: version, Release: release, Arch: arch}
}

// parseNEVRA reads NAME-[EPOCH:]VERSION-RELEASE.ARCH.
func parseNEVRA(s string) (nevraTuple, bool) {
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 {
		return nevraTuple{}, false
	}
	nevr, arch := s[:dot], s[dot+1:]
	r := strings.LastIndexByte(nevr, '-')
	if r < 0 {
		return nevraTuple{}, false
	}
	v := strings.LastIndexByte(nevr[:r], '-')
	if v < 0 {
		return nevraTuple{}, false
	}
	return nevraOf(nevr[:v], nevr[v+1:], arch), true
}
