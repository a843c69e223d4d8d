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
