/* hostctl "Host updates" page: plain JavaScript on cockpit.js, talking to
 * hostd's D-Bus API (org.hostctl.Host1, dbus/org.hostctl.Host1.xml).
 *
 * Every change is a transaction: the method returns a transaction object
 * path (org.hostctl.Transaction1); the page listens to the signals of every
 * transaction, then calls Start() and shows Progress and Message until
 * Finished. hostd does all the work; the page only renders state.
 *
 * The bus: the system bus by default. For a hostd on another bus, open the
 * page with ?address=unix:path=/run/... (cockpit.dbus's bus "none" with that
 * address).
 */
(function () {
    "use strict";

    var BUS_NAME = "org.hostctl.Host1";
    var HOST_PATH = "/org/hostctl/Host1";
    var HOST_IFACE = "org.hostctl.Host1";
    var TXN_IFACE = "org.hostctl.Transaction1";
    var PROPS_IFACE = "org.freedesktop.DBus.Properties";
    var ERR = "org.hostctl.Host1.Error.";

    var client = null;
    var state = {
        props: {},
        containers: [],
        txnPath: null, // the transaction shown in the progress card
        txnMessages: [],
        lastFailure: null,
        cancelling: false, // Cancel was asked for the shown transaction
    };

    function $(id) { return document.getElementById(id); }

    function el(tag, attrs, children) {
        var e = document.createElement(tag);
        Object.keys(attrs || {}).forEach(function (k) {
            if (k === "text")
                e.textContent = attrs[k];
            else if (k === "class")
                e.className = attrs[k];
            else if (k === "onclick")
                e.addEventListener("click", attrs[k]);
            else
                e.setAttribute(k, attrs[k]);
        });
        (children || []).forEach(function (c) {
            if (c !== null && c !== undefined)
                e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
        });
        return e;
    }

    /* dbus-json3 gives variants as {t, v}: unwrap them, recursively. */
    function unv(x) {
        if (Array.isArray(x))
            return x.map(unv);
        if (x && typeof x === "object") {
            var keys = Object.keys(x);
            if (keys.length === 2 && "t" in x && "v" in x && typeof x.t === "string")
                return unv(x.v);
            var o = {};
            keys.forEach(function (k) { o[k] = unv(x[k]) });
            return o;
        }
        return x;
    }

    function str(x) { return x === undefined || x === null ? "" : String(x) }
    function list(x) { return Array.isArray(x) ? x : [] }

    /* The kernel arguments a person set: libostree's own ostree= is left out,
       as `hostctl kargs` leaves it out. */
    function userKargs(kargs) {
        return str(kargs).split(/\s+/).filter(function (a) {
            return a !== "" && a.indexOf("ostree=") !== 0;
        }).join(" ");
    }

    /* What a transaction kind is called on the page. */
    var KIND_WORDS = {
        "upgrade": "The update",
        "deploy": "The deployment",
        "rebase": "The rebase",
        "rollback": "The roll back",
        "cleanup": "The clean up",
        "pkg-change": "The package change",
        "container-install": "The container install",
        "container-update": "The container update",
        "container-rollback": "The container roll back",
        "container-uninstall": "The container uninstall",
    };

    function kindWords(kind) { return KIND_WORDS[kind] || ("The change" + (kind ? " (" + kind + ")" : "")) }

    /* containerEntry shortens a generation's container entry,
       NAME=IMAGE@sha256:DIGEST;VALUES-DIGEST[;follow], to the name, the image
       and the digest as the container rows show it. */
    function containerEntry(entry) {
        var m = /^([^=]+)=([^;]*?)@(sha256:[0-9a-f]{12})[0-9a-f]*(;.*)?$/.exec(str(entry));
        if (!m)
            return str(entry);
        return m[1] + ": " + m[2] + " " + m[3] + (/;follow$/.test(m[4] || "") ? " (follows its tag)" : "");
    }

    /* deploymentName shortens a deployment id, OSNAME-CHECKSUM.SERIAL. */
    function deploymentName(id) {
        var m = /^(.*)-([0-9a-f]{64})\.(\d+)$/.exec(str(id));
        return m ? m[1] + " " + m[2].slice(0, 12) + "." + m[3] : str(id);
    }

    function fmtTime(secs) {
        if (!secs)
            return "";
        return new Date(secs * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    }

    /* ---- errors in words a person can act on ---- */

    /* describeError says what went wrong and what to do, from the error's
     * D-Bus name (org.hostctl.Host1.Error.*, dbus/errors.go) and hostd's
     * message. An unknown name (a newer hostd's) shows the message as it is.
     * AccessDenied does not show hostd's message: it speaks to a shell
     * user (sudo), not to a person in a web page. */
    function describeError(name, message) {
        name = str(name);
        message = str(message).trim().replace(/\.$/, "");
        var detail = message ? " (" + message + ")" : "";
        var kind = name.indexOf(ERR) === 0 ? name.slice(ERR.length) : "";
        switch (kind) {
        case "AccessDenied":
            return "Not authorized: this change needs administrative access. " +
                "Turn on administrative access (Cockpit's \u201cLimited access\u201d button), or ask an administrator to make the change.";
        case "Busy":
            return "Another change is running on this host" + detail +
                ". Wait for it to finish, or cancel it, then try again.";
        case "NoSpace":
            return "Not enough disk space" + detail +
                ". Remove old generations (Clean up) or free space in /boot and /sysroot, then try again. Nothing was changed.";
        case "UnsupportedScript":
            return "Refused by hostctl's package policy" + detail +
                ". hostctl does not run %pre, %pretrans or trigger scripts: leave that package out, or ask its packager for a build without them. Nothing was changed.";
        case "SignatureInvalid":
            return "Refused: a signature is missing or does not verify" + detail +
                ". Nothing was installed. Check that the right key is configured for the remote or repository, or ask its publisher to sign it.";
        case "NotFound":
            return "Not found" + detail + ". Check the name or version, and that the repository or remote that has it is configured.";
        case "InvalidArgument":
            return "The request was not accepted" + detail + ". Check what was asked for (a package name, a version) and try again.";
        case "Cancelled":
            return "Cancelled before it finished" + detail + ". The host is as it was.";
        case "NotCancellable":
            return "Too late to cancel" + detail + ". Wait for it to finish; Roll back undoes it afterwards.";
        case "NoTransaction":
            return "Nothing to cancel: the change already ended.";
        case "Failed":
            return "The change failed" + detail + ". Fix what the message names and try again; hostd's log (journalctl -u hostd) has the details.";
        }
        if (name === "org.freedesktop.DBus.Error.ServiceUnknown" || name === "org.freedesktop.DBus.Error.NameHasNoOwner" || name === "not-found")
            return "hostd is not running (" + BUS_NAME + " is not on the bus): start hostd.service. " + message;
        return (message || name || "The change failed.");
    }

    /* describeRecord says why a transaction of the history did not succeed:
       by its error's name (hostd records it since error-name exists), else
       hostd's message as it is. */
    function describeRecord(rec) {
        if (rec.state === "interrupted")
            return "hostd stopped while it ran (" + str(rec.error).replace(/\.$/, "") +
                "). The leftovers were cleaned up: try the change again.";
        if (rec["error-name"])
            return describeError(rec["error-name"], rec.error);
        return str(rec.error) || "The change failed.";
    }

    function showError(text) {
        var e = $("error");
        e.textContent = text;
        e.hidden = !text;
    }

    function showNotice(text) {
        var e = $("notice");
        e.textContent = text;
        e.hidden = !text;
    }

    /* ---- confirmation, in the page (no window.confirm) ---- */

    function confirmChange(text) {
        return new Promise(function (resolve) {
            var m = $("confirm");
            $("confirm-text").textContent = text;
            m.hidden = false;
            function done(ok) {
                m.hidden = true;
                $("confirm-yes").removeEventListener("click", yes);
                $("confirm-no").removeEventListener("click", no);
                resolve(ok);
            }
            function yes() { done(true) }
            function no() { done(false) }
            $("confirm-yes").addEventListener("click", yes);
            $("confirm-no").addEventListener("click", no);
        });
    }

    /* ---- state from hostd ---- */

    function refreshProps() {
        return client.call(HOST_PATH, PROPS_IFACE, "GetAll", [HOST_IFACE], { type: "s" })
                .then(function (reply) {
                    state.props = unv(reply[0]);
                    render();
                });
    }

    function refreshContainers() {
        return client.call(HOST_PATH, HOST_IFACE, "ListContainers", [], { type: "" })
                .then(function (reply) {
                    state.containers = unv(reply[0]);
                    renderContainers();
                });
    }

    function refreshHistory() {
        return client.call(HOST_PATH, HOST_IFACE, "History", [10], { type: "u" })
                .then(function (reply) {
                    var recs = unv(reply[0]);
                    state.lastFailure = null;
                    // The newest record, if it failed: a later success supersedes it.
                    if (recs.length > 0 && (recs[0].state === "failed" || recs[0].state === "interrupted"))
                        state.lastFailure = recs[0];
                    renderFailure();
                });
    }

    function refreshAll() {
        return Promise.all([refreshProps(), refreshContainers(), refreshHistory()])
                .catch(function (ex) { showError(describeError(ex.name, ex.message)) });
    }

    /* ---- rendering ---- */

    function flag(name) { return el("span", { class: "flag " + name, text: name }) }

    function render() {
        renderReboot();
        renderHostState();
        renderGenerations();
        renderPackages();
        renderTransaction();
        renderAvailable();
    }

    function deployments() { return list(state.props.Deployments) }

    function genName(d) {
        return (str(d.version) ? "version " + str(d.version) + ", " : "") + deploymentName(d.id);
    }

    /* rebootNotice says, from the deployments (default first), whether the
     * host must reboot to use what it has: the default generation is not
     * the booted one (an update, a roll back, a package change made it), or
     * one is staged (it becomes the default at shutdown). "" when nothing
     * waits for a reboot, and on an offline sysroot (none is booted from
     * it: the default is what boots first, nothing to reboot into). */
    function rebootNotice(deps) {
        deps = list(deps);
        var booted = deps.filter(function (d) { return d.booted })[0];
        var def = deps[0];
        if (!booted || !def)
            return "";
        var staged = deps.filter(function (d) { return d.staged })[0];
        if (staged)
            return "Reboot to use it: generation " + genName(staged) + " is staged; it becomes the default when the host shuts down. The host runs " + genName(booted) + ".";
        if (def.id !== booted.id)
            return "Reboot to use it: generation " + genName(def) + " is the default at the next boot. The host runs " + genName(booted) + ".";
        return "";
    }

    function renderReboot() {
        var text = rebootNotice(deployments());
        var box = $("reboot");
        box.textContent = text;
        box.hidden = !text;
    }

    /* The automatic update policy, the reboot strategy and what it waits
     * for (RebootState), and the cleanup hostd does after a change. */
    function renderHostState() {
        var p = state.props, parts = [];
        var policy = p.AutomaticUpdatePolicy;
        if (policy)
            parts.push("Automatic updates: " + (policy === "none" ? "off" : policy));
        var r = p.RebootState || {};
        if (r.strategy) {
            var line = "Reboots: " + r.strategy;
            if (r.strategy === "fleet" && r.group)
                line += " (group " + r.group + ")";
            if (r.message)
                line += "; " + r.message;
            parts.push(line);
        }
        if (p.CleanupPending)
            parts.push("Cleaning up after the last change…");
        var deps = deployments();
        if (deps.length > 0 && !deps.some(function (d) { return d.booted }))
            parts.push("No generation is booted from this sysroot (offline): the default one boots first");
        $("host-state").textContent = parts.join(" · ");
    }

    function renderGenerations() {
        var body = $("generations").querySelector("tbody");
        body.textContent = "";
        deployments().forEach(function (d, i) {
            var flags = [];
            if (d.default)
                flags.push(flag("default"));
            if (d.rollback)
                flags.push(flag("rollback"));
            if (d.pinned)
                flags.push(flag("pinned"));
            if (d.staged)
                flags.push(flag("staged"));
            if (d.booted)
                flags.unshift(flag("booted"));
            var origin = str(d.origin);
            if (d["remote-error"])
                origin += " (" + d["remote-error"] + ")";
            var ctrs = list(d.containers).map(function (c) { return el("li", { title: c, text: containerEntry(c) }) });
            var pkgs = list(d.packages).map(function (p) { return el("li", { text: p }) });
            var commit = str(d.checksum);
            var commitCell = el("td", { class: "commit", title: commit, text: commit.slice(0, 12) });
            if (d["base-checksum"])
                commitCell.appendChild(el("div", { class: "muted", text: "base " + str(d["base-checksum"]).slice(0, 12) }));
            body.appendChild(el("tr", { class: "generation", "data-id": str(d.id), "data-index": String(i) }, [
                el("td", { class: "booted", title: d.booted ? "booted" : "", text: d.booted ? "●" : "" }),
                el("td", { class: "version", text: str(d.version) || "(no version)" }),
                el("td", { class: "flags" }, flags),
                commitCell,
                el("td", { class: "origin", text: origin }),
                el("td", { class: "timestamp", text: fmtTime(d.timestamp) }),
                el("td", { class: "packages" }, [pkgs.length ? el("ul", { class: "plain" }, pkgs) : ""]),
                el("td", { class: "kargs", text: userKargs(d.kargs) }),
                el("td", { class: "containers" }, [ctrs.length ? el("ul", { class: "plain" }, ctrs) : ""]),
            ]));
        });
    }

    function renderPackages() {
        var ul = $("packages");
        ul.textContent = "";
        var def = deployments()[0];
        var pkgs = def ? list(def.packages) : [];
        if (pkgs.length === 0)
            ul.appendChild(el("li", { class: "muted", text: "No layered packages." }));
        pkgs.forEach(function (p) {
            ul.appendChild(el("li", { class: "package", "data-name": p }, [
                el("span", { class: "name", text: p + " " }),
                el("button", {
                    class: "small remove-package", type: "button", text: "Remove",
                    onclick: function () { pkgChange([], [p]) }
                }),
            ]));
        });
    }

    function renderContainers() {
        var body = $("containers").querySelector("tbody");
        body.textContent = "";
        if (state.containers.length === 0)
            body.appendChild(el("tr", {}, [el("td", { class: "muted", colspan: "6", text: "No system containers." })]));
        state.containers.forEach(function (c) {
            var name = str(c.name);
            body.appendChild(el("tr", { class: "container", "data-name": name }, [
                el("td", { class: "name", text: name }),
                el("td", { class: "image", text: str(c.image) }),
                el("td", { class: "digest", title: str(c.digest), text: str(c.digest).replace(/^(sha256:.{12}).*/, "$1") }),
                el("td", { class: "slot", text: str(c.slot) }),
                el("td", { class: "state", text: str(c.state) }),
                el("td", { class: "actions" }, [
                    el("button", {
                        class: "small container-update", type: "button", text: "Update",
                        onclick: function () { containerChange("ContainerUpdate", name, str(c.image), "Update container " + name + " to the newest image of " + (str(c.image) || "its tag") + "? It is pulled first; the container restarts now, in a new generation.") }
                    }),
                    " ",
                    el("button", {
                        class: "small container-rollback", type: "button", text: "Roll back",
                        onclick: function () { containerChange("ContainerRollback", name, "", "Roll container " + name + " back to its previous image and values? It restarts now, in a new generation.") }
                    }),
                ]),
            ]));
        });
    }

    function renderFailure() {
        var f = state.lastFailure;
        $("last-failure").hidden = !f;
        if (f)
            $("failure-text").textContent = kindWords(f.kind) + " failed (" + fmtTime(f.ended || f.started) + "): " + describeRecord(f);
    }

    var available = null;

    function renderAvailable() {
        var box = $("available");
        box.hidden = !available;
        if (!available)
            return;
        var r = available;
        if (!r["update-available"]) {
            $("available-summary").textContent = "No updates available.";
            $("available-diff").textContent = "";
            return;
        }
        $("available-summary").textContent = "Version " + (str(r.version) || "(no version)") +
            " (" + str(r.checksum).slice(0, 12) + ", " + fmtTime(r.timestamp) + ")" +
            (r["current-version"] ? ", now " + r["current-version"] : "");
        var diff = $("available-diff");
        diff.textContent = "";
        [["upgraded", "Upgraded"], ["downgraded", "Downgraded"], ["removed", "Removed"], ["added", "Added"], ["layered-changes", "Layered packages"]].forEach(function (sec) {
            var items = list(r[sec[0]]);
            if (items.length === 0)
                return;
            diff.appendChild(el("div", { class: "diff-section " + sec[0] }, [
                el("h3", { text: sec[1] }),
                el("ul", { class: "plain" }, items.map(function (it) { return el("li", { text: it }) })),
            ]));
        });
    }

    /* ---- transactions ---- */

    var progress = null; // last Progress of the shown transaction

    function renderTransaction() {
        var at = list(state.props.ActiveTransaction);
        var active = at.length === 3 && at[2] && at[2] !== "/";
        if (active && state.txnPath !== at[2]) {
            // Somebody's transaction (maybe another client's): show its progress.
            state.txnPath = at[2];
            state.txnMessages = [];
            state.cancelling = false;
            progress = null;
        }
        var card = $("transaction");
        card.hidden = !active;
        if (!active)
            return;
        $("txn-kind").textContent = str(at[1]);
        $("txn-state").textContent = state.cancelling ? "(cancelling…)" : "";
        $("cancel").disabled = state.cancelling;
        var bar = $("txn-progress");
        if (progress && progress.total > 0) {
            bar.max = progress.total;
            bar.value = Math.min(progress.done, progress.total);
        } else {
            bar.removeAttribute("value"); // indeterminate
        }
        var text = "";
        if (progress) {
            text = progress.stage;
            if (progress.total > 0)
                text += " " + progress.done + "/" + progress.total;
            if (progress.bytes > 0)
                text += ", " + cockpit.format_bytes(progress.bytes);
            if (progress.text)
                text += ": " + progress.text;
        }
        $("txn-text").textContent = text;
        var ul = $("txn-messages");
        ul.textContent = "";
        state.txnMessages.forEach(function (m) { ul.appendChild(el("li", { text: m })) });
    }

    var waiters = {}; // transaction path -> {resolve}

    function onTxnSignal(path, iface, signal, args) {
        if (signal === "Progress") {
            if (path === state.txnPath || waiters[path]) {
                state.txnPath = path;
                progress = { stage: args[0], done: args[1], total: args[2], bytes: args[3], text: args[4] };
                renderTransaction();
            }
        } else if (signal === "Message") {
            if (path === state.txnPath || waiters[path]) {
                state.txnPath = path;
                state.txnMessages.push(args[0]);
                renderTransaction();
            }
        } else if (signal === "Finished") {
            var w = waiters[path];
            delete waiters[path];
            if (w) {
                w.resolve({ success: args[0], name: args[1], message: args[2], result: unv(args[3]) });
            } else if (path === state.txnPath && args[1] === ERR + "Cancelled") {
                // Another client's transaction, shown in the progress card.
                var at = list(state.props.ActiveTransaction);
                showNotice(kindWords(at.length === 3 ? at[1] : "") + " was cancelled.");
            }
            if (path === state.txnPath)
                state.cancelling = false;
            refreshAll();
        }
    }

    var busy = false;

    /* run calls a method that begins a transaction, starts it, and resolves
     * with its Finished (success, name, message, result). */
    function run(method, args, type) {
        return client.call(HOST_PATH, HOST_IFACE, method, args, { type: type })
                .then(function (reply) {
                    var path = reply[0];
                    var finished = new Promise(function (resolve) { waiters[path] = { resolve: resolve } });
                    state.txnPath = path;
                    state.txnMessages = [];
                    state.cancelling = false;
                    progress = null;
                    return client.call(path, TXN_IFACE, "Start", [], { type: "" })
                            .then(function () { return finished });
                });
    }

    /* change runs one change with the page's notices: confirmation first
     * (text, when it changes what boots), then the outcome; what names the
     * change in the notice of a cancel. */
    function change(confirmText, method, args, type, after, what) {
        return changeWith(confirmText, function () { return run(method, args, type) }, after, what);
    }

    /* changeWith is change for an action that runs one or more
     * transactions and resolves with the Finished of the last it ran. */
    function changeWith(confirmText, action, after, what) {
        if (busy)
            return Promise.resolve();
        var ask = confirmText ? confirmChange(confirmText) : Promise.resolve(true);
        return ask.then(function (ok) {
            if (!ok)
                return;
            busy = true;
            showError("");
            showNotice("");
            var before = deployments()[0];
            return action()
                    .then(function (fin) {
                        if (fin.name === ERR + "Cancelled")
                            return refreshProps().then(function () { cancelledNotice(what, before) });
                        if (!fin.success) {
                            showError(describeError(fin.name, fin.message));
                            return;
                        }
                        if (after)
                            after(fin.result);
                    })
                    .catch(function (ex) { showError(describeError(ex.name, ex.message)) })
                    .then(function () { busy = false; return refreshAll() });
        });
    }

    /* cancelledNotice says a change the user cancelled ended, and whether
       the default generation is still the one it was before. */
    function cancelledNotice(what, before) {
        var now = deployments()[0];
        var text = (what || "The change") + " was cancelled.";
        if (before && now && now.id === before.id)
            text += " Nothing changed: " + (str(before.version) || str(before.id)) + " is still the default generation.";
        else if (now)
            text += " The default generation is now " + (str(now.version) || str(now.id)) + ".";
        showNotice(text);
    }

    /* deployedNotice says what a change deployed; the reboot notice
       follows from the deployments (renderReboot). */
    function deployedNotice(result) {
        var changed = result.changed !== false && (result.deployment || result.checksum || result["update-available"]);
        if (changed)
            showNotice("Deployed " + (result.deployment ? "generation " + deploymentName(result.deployment) : str(result.version || result.checksum)) + ".");
        else
            showNotice("No change.");
    }

    function opts(o) {
        var out = {};
        Object.keys(o || {}).forEach(function (k) {
            var v = o[k];
            out[k] = { t: typeof v === "boolean" ? "b" : Array.isArray(v) ? "as" : "s", v: v };
        });
        return out;
    }

    function checkForUpdates() {
        return change(null, "Upgrade", [opts({ preview: true })], "a{sv}", function (r) {
            available = r;
            renderAvailable();
            showNotice(r["update-available"] ? "An update is available." : "No updates available.");
        }, "The check for updates");
    }

    function update() {
        var v = available && available["update-available"] ? " to " + (available.version || available.checksum) : "";
        return change("Update the host" + v + "? The new generation becomes the default at the next boot.",
                      "Upgrade", [opts({})], "a{sv}", function (r) {
                          if (r["update-available"] === false) {
                              showNotice("No updates available.");
                              return;
                          }
                          available = null;
                          deployedNotice(r);
                      }, kindWords("upgrade"));
    }

    /* rollback makes the rollback generation (hostd marks it) the default. */
    function rollback() {
        var d = deployments().filter(function (x) { return x.rollback })[0];
        var what = d ? " to " + genName(d) : "";
        return change("Roll back" + what + "? It becomes the default at the next boot, with its packages and containers.",
                      "Rollback", [opts({})], "a{sv}", function () {
                          showNotice("Rolled back" + what + ".");
                      }, kindWords("rollback"));
    }

    /* cleanup removes the generations below the booted (offline: the
       default) one that are not pinned, and the files only they used. */
    function cleanup() {
        var deps = deployments();
        var cur = deps.filter(function (d) { return d.booted })[0] || deps[0];
        var at = deps.indexOf(cur);
        var gone = deps.filter(function (d, i) { return i > at && !d.pinned });
        var text = gone.length === 0
            ? "Clean up? No generation would be removed (the older ones are pinned, or there are none); unused files are."
            : "Clean up? This removes " + gone.length + " older generation" + (gone.length > 1 ? "s" : "") + " (" +
              gone.map(genName).join("; ") + "): Roll back can no longer go to " + (gone.length > 1 ? "them" : "it") + ". Pinned generations stay.";
        return change(text, "Cleanup", [opts({ rollback: true })], "a{sv}", function (r) {
            var removed = list(r.removed);
            showNotice(removed.length === 0 ? "Cleaned up: no generation was removed."
                : "Cleaned up: removed " + removed.map(deploymentName).join(", ") + ".");
        }, kindWords("cleanup"));
    }

    function pkgChange(add, remove) {
        var text = add.length
            ? "Layer " + add.join(", ") + "? A new generation with it becomes the default at the next boot."
            : "Remove " + remove.join(", ") + "? A new generation without it becomes the default at the next boot.";
        return change(text, "PkgChange", [add, remove, opts({})], "asasa{sv}", deployedNotice, kindWords("pkg-change"));
    }

    /* containerChange updates (method ContainerUpdate) or rolls back
       container name. An update pulls the container's image first (option
       pull, in the same transaction), so that it moves to the newest image
       of its tag, as the person clicking Update expects: ContainerUpdate
       alone takes the image last pulled. */
    function containerChange(method, name, image, text) {
        var isUpdate = method === "ContainerUpdate";
        var action = function () {
            return run(method, [name, opts(isUpdate && image ? { pull: true } : {})], "sa{sv}");
        };
        return changeWith(text, action, function (r) {
            if (isUpdate && r.changed === false)
                showNotice(name + " is up to date: no newer image for its tag.");
            else
                showNotice((isUpdate ? "Updated " : "Rolled back ") + name + (r.digest ? " to " + str(r.digest).slice(0, 19) : "") + "; it runs now.");
        }, kindWords(isUpdate ? "container-update" : "container-rollback"));
    }

    function cancel() {
        showError("");
        state.cancelling = true;
        renderTransaction();
        return client.call(HOST_PATH, HOST_IFACE, "Cancel", [], { type: "" })
                .then(function () {
                    // Unless the Finished signal came first.
                    if (state.cancelling)
                        showNotice("Cancelling…");
                })
                .catch(function (ex) {
                    state.cancelling = false;
                    renderTransaction();
                    showError(describeError(ex.name, ex.message));
                });
    }

    function init() {
        var options = { superuser: "try" };
        var address = cockpit.location.options.address;
        if (address) {
            options.bus = "none";
            options.address = String(address);
        }
        client = cockpit.dbus(BUS_NAME, options);
        client.subscribe({ interface: TXN_IFACE }, onTxnSignal);
        client.subscribe({ path: HOST_PATH, interface: PROPS_IFACE, member: "PropertiesChanged" }, function (path, iface, signal, args) {
            if (args[0] !== HOST_IFACE)
                return;
            var changed = unv(args[1]);
            Object.keys(changed).forEach(function (k) { state.props[k] = changed[k] });
            if ("Deployments" in changed)
                refreshContainers().catch(function () {});
            render();
        });
        client.addEventListener("close", function (ev, options) {
            showError(describeError(options.problem, "The connection to hostd closed."));
        });

        $("check").addEventListener("click", checkForUpdates);
        $("update").addEventListener("click", update);
        $("rollback").addEventListener("click", rollback);
        $("cleanup").addEventListener("click", cleanup);
        $("cancel").addEventListener("click", cancel);
        $("pkg-add-form").addEventListener("submit", function (ev) {
            ev.preventDefault();
            var name = $("pkg-add-name").value.trim();
            if (name)
                pkgChange([name], []).then(function () { $("pkg-add-name").value = "" });
        });

        refreshAll().then(function () {
            document.body.setAttribute("data-loaded", "true");
        });
        cockpit.transport.wait(function () {});
    }

    /* What the tests check in the browser without a booted host. */
    window.HostctlPage = { rebootNotice: rebootNotice, describeError: describeError, describeRecord: describeRecord };

    document.addEventListener("DOMContentLoaded", init);
}());
