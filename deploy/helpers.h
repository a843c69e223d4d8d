/* C helpers for the libostree binding: the parts of the API that are variadic,
 * macros, or need a main context, wrapped as plain functions cgo can call. */
#ifndef HOSTCTL_DEPLOY_HELPERS_H
#define HOSTCTL_DEPLOY_HELPERS_H

#include <stdint.h>
#include <ostree.h>

/* hc_pull pulls REF (or OVERRIDE_COMMIT when not NULL) from REMOTE into REPO.
 * FLAGS are OstreeRepoPullFlags; DEPTH as ostree's "depth" option (0: none);
 * SUBDIRS (NULL-terminated, may be NULL) limits the pull to those paths.
 * When HANDLE is not 0, progress is reported to the Go side through it. */
gboolean hc_pull (OstreeRepo *repo, const char *remote, const char *ref,
                  const char *override_commit, int flags, int depth, char **subdirs,
                  uintptr_t handle, GCancellable *cancellable, GError **error);

/* hc_open_sysroot_repo opens a new OstreeRepo object for REPO_PATH of the
 * sysroot at SYSROOT_PATH (whose etc/ostree/remotes.d holds its remotes),
 * independent of the sysroot's own, so a pull can run without it. */
OstreeRepo *hc_open_sysroot_repo (const char *repo_path, const char *sysroot_path,
                                  GCancellable *cancellable, GError **error);

/* hc_commit_info loads COMMIT and returns its version metadata (or NULL),
 * its timestamp, its parent (or NULL) and the string metadata KEY2 (or NULL). */
gboolean hc_commit_info (OstreeRepo *repo, const char *commit, char **out_version,
                         guint64 *out_timestamp, char **out_parent,
                         const char *key2, char **out_value2, GError **error);

/* hc_commit_meta_blob loads COMMIT and returns a D-Bus message (GDBus's
 * encoding, little-endian) whose body is the commit's a{sv} metadata, in
 * OUT_BLOB (g_free it) of OUT_SIZE bytes: D-Bus is how Go reads GVariants. */
gboolean hc_commit_meta_blob (OstreeRepo *repo, const char *commit, guchar **out_blob,
                              gsize *out_size, GError **error);

/* hc_remote_add adds (or, when REPLACE, replaces) a remote with gpg-verify set as given. */
gboolean hc_remote_add (OstreeRepo *repo, const char *name, const char *url,
                        gboolean gpg_verify, gboolean replace,
                        GCancellable *cancellable, GError **error);

/* hc_deploy_tree deploys REVISION with the origin in ORIGIN_DATA (key file text),
 * using MERGE (may be NULL) for the /etc merge; KARGS may be NULL. */
gboolean hc_deploy_tree (OstreeSysroot *sysroot, const char *osname, const char *revision,
                         const char *origin_data, OstreeDeployment *merge, char **kargs,
                         OstreeDeployment **out_deployment, GCancellable *cancellable,
                         GError **error);

/* hc_stage_tree is hc_deploy_tree staged: libostree writes the deployment
 * and records it in /run/ostree/staged-deployment; ostree-finalize-staged.service
 * adds it to the boot entries at shutdown. Needs a booted sysroot. */
gboolean hc_stage_tree (OstreeSysroot *sysroot, const char *osname, const char *revision,
                        const char *origin_data, OstreeDeployment *merge, char **kargs,
                        OstreeDeployment **out_deployment, GCancellable *cancellable,
                        GError **error);

/* hc_write_deployments writes the deployment list (the first one is the default). */
gboolean hc_write_deployments (OstreeSysroot *sysroot, OstreeDeployment **deployments, int n,
                               GCancellable *cancellable, GError **error);

/* hc_deployment_at returns the I-th element of a GPtrArray of deployments. */
OstreeDeployment *hc_deployment_at (GPtrArray *arr, guint i);

/* hc_deployment_origin returns the deployment's origin as key file text (or NULL). */
char *hc_deployment_origin (OstreeDeployment *d);

/* hc_deployment_options returns the "options" of the deployment's boot config (or NULL). */
char *hc_deployment_options (OstreeDeployment *d);

/* hc_set_origin writes a new origin (key file text) for an existing deployment. */
gboolean hc_set_origin (OstreeSysroot *sysroot, OstreeDeployment *d, const char *origin_data,
                        GCancellable *cancellable, GError **error);

/* hc_error_matches tells whether ERR is DOMAIN-less G_IO_ERROR CODE. */
gboolean hc_io_error_is (GError *err, int code);

/* hc_sysroot_prune prunes the sysroot's repository as ostree_sysroot_cleanup
 * does after its ostree_sysroot_prepare_cleanup: the objects no ref and no
 * deployment reaches (commit depth 0) are deleted. */
gboolean hc_sysroot_prune (OstreeSysroot *sysroot, GCancellable *cancellable, GError **error);

#endif

/* hc_commit_dir_in_txn is hc_commit_dir inside the transaction REPO has
 * open (REF moves when it commits). */
gboolean hc_commit_dir_in_txn (OstreeRepo *repo, const char *dir, const char *parent,
                               const char *subject, char **keys, char **values, int n,
                               guint64 timestamp, const char *ref, OstreeRepoDevInoCache *devino,
                               char **out_commit, GCancellable *cancellable, GError **error);
/* hc_commit_dir writes the directory DIR as a commit with PARENT (may be NULL),
 * SUBJECT, string metadata KEYS/VALUES (N of them) and TIMESTAMP (seconds; 0:
 * now), and points REF at it when REF is not NULL, in one repo transaction.
 * Files hardlinked from the repo's objects by a checkout that filled DEVINO
 * (may be NULL) are recognised and not read again. */
gboolean hc_commit_dir (OstreeRepo *repo, const char *dir, const char *parent,
                        const char *subject, char **keys, char **values, int n,
                        guint64 timestamp, const char *ref, OstreeRepoDevInoCache *devino,
                        char **out_commit, GCancellable *cancellable, GError **error);

/* hc_checkout checks out COMMIT (or its SUBPATH) to DEST with hardlinks where
 * possible. OVERWRITE is an OstreeRepoCheckoutOverwriteMode; WHITEOUTS turns on
 * OCI whiteout processing; FORCE_COPY copies every file. */
gboolean hc_checkout (OstreeRepo *repo, const char *commit, const char *dest,
                      const char *subpath, int overwrite, gboolean whiteouts,
                      gboolean force_copy, OstreeRepoDevInoCache *devino,
                      GCancellable *cancellable, GError **error);

/* hc_list_refs returns "REF\tCOMMIT" strings for the local refs starting with PREFIX. */
char **hc_list_refs (OstreeRepo *repo, const char *prefix, GCancellable *cancellable, GError **error);

/* hc_commit_metadata returns "KEY\tVALUE" strings for the string metadata of COMMIT,
 * and its subject in OUT_SUBJECT. */
char **hc_commit_metadata (OstreeRepo *repo, const char *commit, char **out_subject, GError **error);
