/* C side of the streaming content writer (content.go): libostree's
 * write_content fed from a Go io.Reader, directory metadata objects, and the
 * commit of a mutable tree inside a transaction the caller holds open. */
#ifndef HOSTCTL_DEPLOY_CONTENT_H
#define HOSTCTL_DEPLOY_CONTENT_H

#include <stdint.h>
#include <ostree.h>

/* hc_xattrs_new builds the a(ayay) variant of N extended attributes:
 * NAMES[i] (NUL-terminated) with VALUES[i] of LENS[i] bytes, in the order
 * given. The result is a full reference (not floating). */
GVariant *hc_xattrs_new (char **names, char **values, size_t *lens, int n);

/* hc_write_file writes a regular file object (SYMLINK_TARGET NULL) of SIZE
 * bytes read through the Go reader behind HANDLE, or a symbolic link object
 * to SYMLINK_TARGET, with UID, GID, MODE (permission bits with setuid, setgid
 * and sticky; the file type is added) and XATTRS (may be NULL). It returns
 * the object's checksum (g_free it) in OUT_CSUM. */
gboolean hc_write_file (OstreeRepo *repo, guint32 uid, guint32 gid, guint32 mode,
                        const char *symlink_target, GVariant *xattrs, guint64 size,
                        uintptr_t handle, char **out_csum,
                        GCancellable *cancellable, GError **error);

/* hc_write_dirmeta writes a directory metadata object for UID, GID, MODE
 * (permission bits; S_IFDIR is added) and XATTRS (may be NULL). */
gboolean hc_write_dirmeta (OstreeRepo *repo, guint32 uid, guint32 gid, guint32 mode,
                           GVariant *xattrs, char **out_csum,
                           GCancellable *cancellable, GError **error);

/* hc_commit_mtree writes MTREE's dirtrees (ostree_repo_write_mtree) and a
 * commit of it with PARENT (may be NULL), SUBJECT, string metadata
 * KEYS/VALUES (N of them) and TIMESTAMP (seconds; 0: now), and, when REF is
 * not NULL, sets REF to it in the open transaction. */
gboolean hc_commit_mtree (OstreeRepo *repo, OstreeMutableTree *mtree, const char *parent,
                          const char *subject, char **keys, char **values, int n,
                          guint64 timestamp, const char *ref, char **out_commit,
                          GCancellable *cancellable, GError **error);

/* hc_mtree_ensure_dir returns (a borrowed pointer to) the subdirectory NAME
 * of SELF, made if missing; NULL with ERROR set when NAME is a file. */
OstreeMutableTree *hc_mtree_ensure_dir (OstreeMutableTree *self, const char *name, GError **error);

#endif

/* hc_mtree_from_commit returns a new mutable tree holding COMMIT's root,
 * loaded lazily from its dirtree objects (only the directories later
 * looked into or changed are read). */
OstreeMutableTree *hc_mtree_from_commit (OstreeRepo *repo, const char *commit,
                                         GCancellable *cancellable, GError **error);

/* hc_mtree_merge_commit merges COMMIT's tree into MTREE as a union
 * checkout (overwrite mode union-identical) of it over a checkout of MTREE
 * would: a directory that exists keeps its metadata, a new one takes
 * COMMIT's, a new file is added, a file that exists with the same object is
 * left. Under the directories named in DROP_NEW (relative paths, NULL
 * terminated; may be NULL) only the entries that exist already are merged.
 * It returns 1 when merged, 0 on an error, and 2 when the result would not
 * be what the checkout gives (a file over a different file, a directory
 * over a file or the other way round), with the path in OUT_PATH (g_free
 * it) and MTREE partly merged. */
int hc_mtree_merge_commit (OstreeRepo *repo, OstreeMutableTree *mtree, const char *commit,
                           char **drop_new, char **out_path,
                           GCancellable *cancellable, GError **error);

/* hc_mtree_replace_dir makes the directory PATH (relative, its parents
 * must be directories of MTREE) of MTREE the content of DIR on disk, as a
 * commit of DIR reads it (modes, owners, extended attributes), writing its
 * objects in the open transaction. */
gboolean hc_mtree_replace_dir (OstreeRepo *repo, OstreeMutableTree *mtree, const char *path,
                               const char *dir, GCancellable *cancellable, GError **error);

/* hc_read_commit_file reads the regular file PATH of COMMIT: its content
 * (g_free it) and size, owner, group and mode. A missing file is a
 * G_IO_ERROR_NOT_FOUND error. */
gboolean hc_read_commit_file (OstreeRepo *repo, const char *commit, const char *path,
                              char **out_data, gsize *out_len, guint32 *out_uid,
                              guint32 *out_gid, guint32 *out_mode,
                              GCancellable *cancellable, GError **error);

/* hc_mtree_lookup_kind says what NAME is in SELF: 0 nothing, 1 a file or
 * symlink, 2 a directory, -1 an error (ERROR set). */
int hc_mtree_lookup_kind (OstreeMutableTree *self, const char *name, GError **error);
