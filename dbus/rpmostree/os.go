package rpmostree

import (
	"fmt"

	godbus "github.com/godbus/dbus/v5"

	"github.com/hostctl/hostctl/dbus"
	"github.com/hostctl/hostctl/errdefs"
)

// osObject carries the OS methods of one osname.
type osObject struct {
	s    *Server
	name string
}

// begin starts an engine transaction for a method and returns the address
// of its peer-to-peer socket.
func (o *osObject) begin(sender godbus.Sender, method, kind, arg string, opts map[string]godbus.Variant) (string, *godbus.Error) {
	return o.beginThen(sender, method, kind, arg, titleOf(method, arg, nil), opts, nil)
}

// beginThen is begin with the transaction's title and a function told how
// the transaction ended.
func (o *osObject) beginThen(sender godbus.Sender, method, kind, arg, title string, opts map[string]godbus.Variant, onFinish func(*dbus.Result)) (string, *godbus.Error) {
	uid, err := o.s.callerUID(sender)
	if err != nil {
		return "", busError(err)
	}
	txn, err := o.s.eng.Begin(dbus.Request{Kind: kind, Arg: arg, Options: dbus.Options(opts), Caller: uid, Sender: string(sender)})
	if err != nil {
		return "", busError(err)
	}
	addr, err := o.s.servePeer(txn, method, title, string(sender), uid, onFinish)
	if err != nil {
		txn.Cancel(0)
		return "", busError(err)
	}
	return addr, nil
}

// callerUID asks the bus which uid the sender runs as.
func (s *Server) callerUID(sender godbus.Sender) (uint32, error) {
	var uid uint32
	if err := s.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid); err != nil {
		return 0, errdefs.Errorf(errdefs.ErrUnauthorized, "cannot tell who is calling (%v)", err)
	}
	return uid, nil
}

// beginOpts translates a method's rpm-ostree options with rules into
// kind's and begins; the title is the client's initiating-command-line when
// it gave one.
func (o *osObject) beginOpts(sender godbus.Sender, method, kind, arg string, opts map[string]godbus.Variant, rules optRules) (string, *godbus.Error) {
	t, err := translate(method, kind, opts, rules)
	if err != nil {
		return "", busError(err)
	}
	return o.beginThen(sender, method, kind, arg, titleOf(method, arg, opts), t, nil)
}

// AutomaticUpdateTrigger runs hostd's automatic update policy (or the
// option mode) as Host1's AutomaticUpdateTrigger does: (false, "") under
// none, else (true, the transaction's address).
func (o *osObject) AutomaticUpdateTrigger(sender godbus.Sender, opts map[string]godbus.Variant) (bool, string, *godbus.Error) {
	t, err := translate("AutomaticUpdateTrigger", dbus.AutomaticUpdateKind, opts, optRules{
		"mode": {sig: "s", to: every([]string{dbus.AutomaticUpdateKind}, "mode")},
		// hostd's transactions report to their socket and its journal both.
		"output-to-self": {sig: "b", to: every([]string{dbus.AutomaticUpdateKind})},
	})
	if err != nil {
		return false, "", busError(err)
	}
	a, ok := o.s.eng.(dbus.AutomaticEngine)
	if !ok {
		return false, "", nil
	}
	mode, _ := t["mode"].Value().(string)
	if mode == "auto" {
		mode = "" // rpm-ostree's default: the configured AutomaticUpdatePolicy
	}
	uid, err := o.s.callerUID(sender)
	if err != nil {
		return false, "", busError(err)
	}
	policy, err := a.AutomaticPolicy(uid, string(sender), mode)
	if err != nil {
		return false, "", busError(err)
	}
	if policy == "none" {
		return false, "", nil
	}
	addr, berr := o.begin(sender, "AutomaticUpdateTrigger", dbus.AutomaticUpdateKind, "", map[string]godbus.Variant{"mode": godbus.MakeVariant(policy)})
	if berr != nil {
		return false, "", berr
	}
	return true, addr, nil
}

// GetDeploymentsRpmDiff compares the packages of two deployments.
func (o *osObject) GetDeploymentsRpmDiff(from, to string) ([]DiffEntry, *godbus.Error) {
	if from == "" || to == "" {
		return nil, busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "GetDeploymentsRpmDiff needs two deployment ids"))
	}
	d, err := o.s.eng.Diff(from, to)
	if err != nil {
		return nil, busError(err)
	}
	return RpmDiff(d), nil
}

// Upgrade starts an upgrade.
func (o *osObject) Upgrade(sender godbus.Sender, opts map[string]godbus.Variant) (string, *godbus.Error) {
	return o.beginOpts(sender, "Upgrade", kindUpgrade, "", opts, deployRules)
}

// Deploy starts deploying a revision.
func (o *osObject) Deploy(sender godbus.Sender, revision string, opts map[string]godbus.Variant) (string, *godbus.Error) {
	return o.beginOpts(sender, "Deploy", kindDeploy, revision, opts, deployRules)
}

// Rebase starts switching to another refspec.
func (o *osObject) Rebase(sender godbus.Sender, opts map[string]godbus.Variant, refspec string, packages []string) (string, *godbus.Error) {
	if len(packages) > 0 {
		return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "Rebase: layering packages in the same call is not supported by hostd; rebase, then PkgChange"))
	}
	return o.beginOpts(sender, "Rebase", kindRebase, refspec, opts, rebaseRules)
}

// Rollback starts a rollback.
func (o *osObject) Rollback(sender godbus.Sender, opts map[string]godbus.Variant) (string, *godbus.Error) {
	return o.beginOpts(sender, "Rollback", "rollback", "", opts, rollbackRules)
}

// Cleanup starts removing what elements name.
func (o *osObject) Cleanup(sender godbus.Sender, elements []string) (string, *godbus.Error) {
	opts := map[string]godbus.Variant{}
	for _, e := range elements {
		switch e {
		case "base":
		case "pending-deploy":
			opts["pending"] = godbus.MakeVariant(true)
		case "rollback-deploy":
			opts["rollback"] = godbus.MakeVariant(true)
		case "repomd":
			opts["repomd"] = godbus.MakeVariant(true)
		default:
			return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "Cleanup: unknown element %q (known: base, pending-deploy, rollback-deploy, repomd)", e))
		}
	}
	return o.begin(sender, "Cleanup", "cleanup", "", opts)
}

// PkgChange starts layering and removing packages.
func (o *osObject) PkgChange(sender godbus.Sender, opts map[string]godbus.Variant, add, remove []string) (string, *godbus.Error) {
	t, err := translate("PkgChange", kindPkgChange, opts, deployRules)
	if err != nil {
		return "", busError(err)
	}
	return o.beginThen(sender, "PkgChange", kindPkgChange, "", titleOf("PkgChange", "", opts), withPackages(t, add, remove), nil)
}

func withPackages(opts map[string]godbus.Variant, add, remove []string) map[string]godbus.Variant {
	if len(add) > 0 {
		opts["add"] = godbus.MakeVariant(add)
	}
	if len(remove) > 0 {
		opts["remove"] = godbus.MakeVariant(remove)
	}
	return opts
}

// KernelArgs starts editing the default deployment's kernel arguments.
func (o *osObject) KernelArgs(sender godbus.Sender, existing string, added, replaced, removed []string, opts map[string]godbus.Variant) (string, *godbus.Error) {
	var edits []string
	t, err := translate("KernelArgs", "kargs", opts, kargsRules)
	if err != nil {
		return "", busError(err)
	}
	if existing != "" {
		// What the client read and edited: the engine refuses the edit when
		// the arguments changed since.
		t["expect"] = godbus.MakeVariant(existing)
	}
	if v, ok := opts["final-kernel-args"]; ok {
		s, _ := v.Value().(string)
		edits = append(edits, "set="+s)
	}
	for _, a := range added {
		edits = append(edits, "append="+a)
	}
	for _, a := range replaced {
		edits = append(edits, "replace="+a)
	}
	for _, a := range removed {
		edits = append(edits, "delete="+a)
	}
	for _, key := range []string{"append-if-missing", "delete-if-present"} { // in rpm-ostree's order
		op := key
		if v, ok := opts[key]; ok {
			l, ok := v.Value().([]string)
			if !ok {
				return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "KernelArgs: option %q must be an array of strings (as)", key))
			}
			for _, a := range l {
				edits = append(edits, op+"="+a)
			}
		}
	}
	t["edits"] = godbus.MakeVariant(edits)
	return o.beginThen(sender, "KernelArgs", "kargs", "", titleOf("KernelArgs", "", opts), t, nil)
}

// RefreshMd starts refreshing the rpm-md metadata.
func (o *osObject) RefreshMd(sender godbus.Sender, opts map[string]godbus.Variant) (string, *godbus.Error) {
	// force: hostd's refresh downloads the metadata again in any case.
	return o.beginOpts(sender, "RefreshMd", "refresh-md", "", opts, optRules{"force": {sig: "b", to: every([]string{"refresh-md"})}})
}

// GetCachedUpdateRpmDiff returns the package diff of the cached update
// against the base of deployid ("": the default deployment).
func (o *osObject) GetCachedUpdateRpmDiff(deployid string) ([]DiffEntry, map[string]godbus.Variant, *godbus.Error) {
	st := o.s.eng.Status()
	_, def, _ := osDeployments(st, o.name)
	if def == nil {
		return nil, nil, busError(errdefs.Errorf(errdefs.ErrNotFound, "osname %s has no deployment", o.name))
	}
	base := def.BaseChecksum
	if base == "" {
		base = def.Checksum
	}
	if deployid != "" {
		found := false
		for _, d := range st.Deployments {
			if d.ID == deployid {
				base, found = d.BaseChecksum, true
				if base == "" {
					base = d.Checksum
				}
			}
		}
		if !found {
			return nil, nil, busError(errdefs.Errorf(errdefs.ErrNotFound, "no deployment %q", deployid))
		}
	}
	u := st.CachedUpdate
	if u == nil || u.Checksum == "" || u.Refspec != def.Origin {
		// rpm-ostree answers an empty diff when there is no cached update.
		return []DiffEntry{}, map[string]godbus.Variant{}, nil
	}
	d, err := o.s.eng.Diff(base, u.Checksum)
	if err != nil {
		return nil, nil, busError(fmt.Errorf("%w (call DownloadUpdateRpmDiff first)", err))
	}
	return RpmDiff(d), updateDetails(u, o.name), nil
}

// DownloadUpdateRpmDiff starts checking for an update and fetching its
// package database (Upgrade with preview).
func (o *osObject) DownloadUpdateRpmDiff(sender godbus.Sender) (string, *godbus.Error) {
	return o.begin(sender, "DownloadUpdateRpmDiff", "upgrade", "", map[string]godbus.Variant{"preview": godbus.MakeVariant(true)})
}

// GetCachedRebaseRpmDiff returns what the last DownloadRebaseRpmDiff of
// refspec found: the package diff from the default deployment's base to the
// commit refspec points at, and that commit's details. Before any, it answers
// an empty diff, as rpm-ostree does with nothing cached.
func (o *osObject) GetCachedRebaseRpmDiff(refspec string, packages []string) ([]DiffEntry, map[string]godbus.Variant, *godbus.Error) {
	if len(packages) > 0 {
		return nil, nil, busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "GetCachedRebaseRpmDiff: packages layered in the same rebase are not supported by hostd; rebase, then PkgChange"))
	}
	o.s.mu.Lock()
	d, ok := o.s.rebaseDiffs[o.name+"\x00"+refspec]
	o.s.mu.Unlock()
	if !ok {
		return []DiffEntry{}, map[string]godbus.Variant{}, nil
	}
	return d.diff, d.details, nil
}

// DownloadRebaseRpmDiff starts fetching the commit refspec points at and its
// package database (a rebase with preview: nothing is deployed); when it
// has finished, GetCachedRebaseRpmDiff answers with the diff.
func (o *osObject) DownloadRebaseRpmDiff(sender godbus.Sender, refspec string, packages []string) (string, *godbus.Error) {
	if len(packages) > 0 {
		return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "DownloadRebaseRpmDiff: packages layered in the same rebase are not supported by hostd; rebase, then PkgChange"))
	}
	return o.beginThen(sender, "DownloadRebaseRpmDiff", "rebase", refspec, titleOf("DownloadRebaseRpmDiff", refspec, nil), map[string]godbus.Variant{"preview": godbus.MakeVariant(true)}, func(r *dbus.Result) {
		csum, _ := r.Data["checksum"].(string)
		if r.Err != nil || csum == "" {
			return
		}
		_, def, _ := osDeployments(o.s.eng.Status(), o.name)
		if def == nil {
			return
		}
		base := def.BaseChecksum
		if base == "" {
			base = def.Checksum
		}
		diff, err := o.s.eng.Diff(base, csum)
		if err != nil {
			o.s.log.Warn("rebase diff", "refspec", refspec, "err", err)
			return
		}
		details := map[string]godbus.Variant{"osname": godbus.MakeVariant(o.name), "checksum": godbus.MakeVariant(csum)}
		if v, _ := r.Data["version"].(string); v != "" {
			details["version"] = godbus.MakeVariant(v)
		}
		if ts, ok := r.Data["timestamp"].(uint64); ok {
			details["timestamp"] = godbus.MakeVariant(ts)
		}
		if rs, _ := r.Data["refspec"].(string); rs != "" {
			details["origin"] = godbus.MakeVariant(rs)
		}
		o.s.mu.Lock()
		o.s.rebaseDiffs[o.name+"\x00"+refspec] = rebaseDiff{diff: RpmDiff(diff), details: details}
		o.s.mu.Unlock()
	})
}

// UpdateDeployment makes one kind of change: a rebase (set-refspec, with
// set-revision that revision of it, as Rebase's revision), a deploy
// (set-revision), a package change, a reset (no-layering, no-overrides), or
// else an upgrade. The options are the deployment options (deployRules).
func (o *osObject) UpdateDeployment(sender godbus.Sender, modifiers, opts map[string]godbus.Variant) (string, *godbus.Error) {
	mod := dbus.Options(modifiers)
	if err := mod.Check(dbus.OptionSpec{"set-refspec": "s", "set-revision": "s", "install-packages": "as", "uninstall-packages": "as",
		"override-remove-packages": "as", "override-reset-packages": "as"}); err != nil {
		return "", busError(fmt.Errorf("UpdateDeployment modifiers: %w", err))
	}
	rest := map[string]godbus.Variant{}
	for k, v := range opts {
		rest[k] = v
	}
	reset := dbus.OptionSpec{"no-layering": "b", "no-overrides": "b"}
	for k, sig := range reset {
		if v, ok := rest[k]; ok && v.Signature().String() != sig {
			return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "UpdateDeployment: option %q must have type %s, got %s", k, sig, v.Signature()))
		}
	}
	o2 := dbus.Options(rest)
	noLayering, noOverrides := o2.Bool("no-layering"), o2.Bool("no-overrides")
	delete(rest, "no-layering")
	delete(rest, "no-overrides")
	refspec, revision := mod.String("set-refspec"), mod.String("set-revision")
	pkgs := len(mod.Strings("install-packages"))+len(mod.Strings("uninstall-packages"))+len(mod.Strings("override-remove-packages"))+len(mod.Strings("override-reset-packages")) > 0
	kinds := 0
	for _, b := range []bool{refspec != "" || revision != "", pkgs, noLayering || noOverrides} {
		if b {
			kinds++
		}
	}
	if kinds > 1 {
		return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "UpdateDeployment: hostd makes one kind of change per call (a rebase, a revision, a package change, or no-layering/no-overrides); split it into several calls"))
	}
	title := titleOf("UpdateDeployment", "", rest)
	var kind, arg string
	switch {
	case refspec != "":
		kind, arg = kindRebase, refspec
	case revision != "":
		kind, arg = kindDeploy, revision
	case pkgs:
		kind = kindPkgChange
	case noLayering || noOverrides:
		kind = kindReset
	default:
		kind = kindUpgrade
	}
	t, err := translate("UpdateDeployment", kind, rest, deployRules)
	if err != nil {
		return "", busError(err)
	}
	switch kind {
	case kindRebase:
		if revision != "" {
			t["revision"] = godbus.MakeVariant(revision)
		}
	case kindPkgChange:
		t = withPackages(t, mod.Strings("install-packages"), mod.Strings("uninstall-packages"))
		if l := mod.Strings("override-remove-packages"); len(l) > 0 {
			t["override-remove"] = godbus.MakeVariant(l)
		}
		if l := mod.Strings("override-reset-packages"); len(l) > 0 {
			t["override-reset"] = godbus.MakeVariant(l)
		}
	case kindReset:
		if noLayering {
			t["overlays"] = godbus.MakeVariant(true)
		}
		if noOverrides {
			t["overrides"] = godbus.MakeVariant(true)
		}
	}
	return o.beginThen(sender, "UpdateDeployment", kind, arg, title, t, nil)
}

// FinalizeDeployment starts unlocking the staged deployment's finalization
// and rebooting into it. As rpm-ostree's, it wants the staged commit in the
// option checksum, unless allow-missing-checksum says any will do.
func (o *osObject) FinalizeDeployment(sender godbus.Sender, opts map[string]godbus.Variant) (string, *godbus.Error) {
	checksum, _ := opts["checksum"].Value().(string)
	allowMissing, _ := opts["allow-missing-checksum"].Value().(bool)
	for k := range opts {
		if k != "checksum" && k != "allow-missing-checksum" {
			return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "FinalizeDeployment: option %q is not supported by hostd (supported: checksum, allow-missing-checksum)", k))
		}
	}
	if checksum == "" && !allowMissing {
		return "", busError(errdefs.Errorf(errdefs.ErrInvalidArgument, "FinalizeDeployment: give the staged commit in the option checksum, or allow-missing-checksum true"))
	}
	return o.begin(sender, "FinalizeDeployment", "finalize", checksum, map[string]godbus.Variant{"reboot": godbus.MakeVariant(true)})
}
