#include "content.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* Implemented in Go (content.go): reads up to COUNT bytes into BUF, returns
 * the number read, 0 at the end, -1 on an error the Go side keeps. */
extern long hcGoRead (uintptr_t handle, void *buf, size_t count);

/* HcGoStream is a GInputStream reading from a Go io.Reader. */
typedef struct { GInputStream parent; uintptr_t handle; } HcGoStream;
typedef struct { GInputStreamClass parent_class; } HcGoStreamClass;

G_DEFINE_TYPE (HcGoStream, hc_go_stream, G_TYPE_INPUT_STREAM)

static gssize
hc_go_stream_read (GInputStream *stream, void *buffer, gsize count,
                   GCancellable *cancellable, GError **error)
{
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return -1;
  long n = hcGoRead (((HcGoStream *) stream)->handle, buffer, count);
  if (n < 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "reading the file's content failed");
      return -1;
    }
  return n;
}

static gboolean
hc_go_stream_close (GInputStream *stream, GCancellable *cancellable, GError **error)
{
  return TRUE;
}

static void
hc_go_stream_class_init (HcGoStreamClass *klass)
{
  GInputStreamClass *c = G_INPUT_STREAM_CLASS (klass);
  c->read_fn = hc_go_stream_read;
  c->close_fn = hc_go_stream_close;
}

static void
hc_go_stream_init (HcGoStream *self)
{
}

GVariant *
hc_xattrs_new (char **names, char **values, size_t *lens, int n)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a(ayay)"));
  for (int i = 0; i < n; i++)
    g_variant_builder_add (&b, "(@ay@ay)", g_variant_new_bytestring (names[i]),
                           g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, values[i], lens[i], 1));
  return g_variant_ref_sink (g_variant_builder_end (&b));
}

static GFileInfo *
hc_file_info (guint32 uid, guint32 gid, guint32 mode)
{
  GFileInfo *info = g_file_info_new ();
  g_file_info_set_attribute_uint32 (info, "unix::uid", uid);
  g_file_info_set_attribute_uint32 (info, "unix::gid", gid);
  g_file_info_set_attribute_uint32 (info, "unix::mode", mode);
  return info;
}

gboolean
hc_write_file (OstreeRepo *repo, guint32 uid, guint32 gid, guint32 mode,
               const char *symlink_target, GVariant *xattrs, guint64 size,
               uintptr_t handle, char **out_csum,
               GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  GInputStream *raw = NULL, *content = NULL;
  guint64 length = 0;
  guchar *csum = NULL;
  GFileInfo *info;

  if (symlink_target != NULL)
    {
      info = hc_file_info (uid, gid, S_IFLNK | 0777);
      g_file_info_set_file_type (info, G_FILE_TYPE_SYMBOLIC_LINK);
      g_file_info_set_is_symlink (info, TRUE);
      g_file_info_set_symlink_target (info, symlink_target);
      g_file_info_set_size (info, 0);
    }
  else
    {
      info = hc_file_info (uid, gid, S_IFREG | (mode & 07777));
      g_file_info_set_file_type (info, G_FILE_TYPE_REGULAR);
      g_file_info_set_size (info, size);
      HcGoStream *s = g_object_new (hc_go_stream_get_type (), NULL);
      s->handle = handle;
      raw = G_INPUT_STREAM (s);
    }
  if (!ostree_raw_file_to_content_stream (raw, info, xattrs, &content, &length, cancellable, error))
    goto out;
  if (!ostree_repo_write_content (repo, NULL, content, length, &csum, cancellable, error))
    goto out;
  *out_csum = ostree_checksum_from_bytes (csum);
  ok = TRUE;

out:
  g_free (csum);
  if (content)
    g_object_unref (content);
  if (raw)
    g_object_unref (raw);
  g_object_unref (info);
  return ok;
}

gboolean
hc_write_dirmeta (OstreeRepo *repo, guint32 uid, guint32 gid, guint32 mode,
                  GVariant *xattrs, char **out_csum,
                  GCancellable *cancellable, GError **error)
{
  GFileInfo *info = hc_file_info (uid, gid, S_IFDIR | (mode & 07777));
  g_file_info_set_file_type (info, G_FILE_TYPE_DIRECTORY);
  GVariant *meta = g_variant_ref_sink (ostree_create_directory_metadata (info, xattrs));
  guchar *csum = NULL;
  gboolean ok = ostree_repo_write_metadata (repo, OSTREE_OBJECT_TYPE_DIR_META, NULL, meta,
                                            &csum, cancellable, error);
  if (ok)
    *out_csum = ostree_checksum_from_bytes (csum);
  g_free (csum);
  g_variant_unref (meta);
  g_object_unref (info);
  return ok;
}

gboolean
hc_commit_mtree (OstreeRepo *repo, OstreeMutableTree *mtree, const char *parent,
                 const char *subject, char **keys, char **values, int n,
                 guint64 timestamp, const char *ref, char **out_commit,
                 GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  GFile *root = NULL;
  GVariant *meta = NULL;

  if (!ostree_repo_write_mtree (repo, mtree, &root, cancellable, error))
    goto out;
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  for (int i = 0; i < n; i++)
    g_variant_builder_add (&b, "{s@v}", keys[i], g_variant_new_variant (g_variant_new_string (values[i])));
  meta = g_variant_ref_sink (g_variant_builder_end (&b));
  if (timestamp == 0)
    timestamp = (guint64) g_get_real_time () / G_USEC_PER_SEC;
  if (!ostree_repo_write_commit_with_time (repo, parent, subject, NULL, meta,
                                           OSTREE_REPO_FILE (root), timestamp,
                                           out_commit, cancellable, error))
    goto out;
  if (ref != NULL)
    ostree_repo_transaction_set_ref (repo, NULL, ref, *out_commit);
  ok = TRUE;

out:
  if (meta)
    g_variant_unref (meta);
  if (root)
    g_object_unref (root);
  return ok;
}

OstreeMutableTree *
hc_mtree_ensure_dir (OstreeMutableTree *self, const char *name, GError **error)
{
  OstreeMutableTree *sub = NULL;
  if (!ostree_mutable_tree_ensure_dir (self, name, &sub, error))
    return NULL;
  /* The parent keeps a reference: hand out a borrowed pointer. */
  g_object_unref (sub);
  return sub;
}

OstreeMutableTree *
hc_mtree_from_commit (OstreeRepo *repo, const char *commit,
                      GCancellable *cancellable, GError **error)
{
  GFile *root = NULL;
  if (!ostree_repo_read_commit (repo, commit, &root, NULL, cancellable, error))
    return NULL;
  OstreeMutableTree *mtree = ostree_mutable_tree_new ();
  /* An empty tree and a repository file with no modifier: libostree only
   * records the root's dirtree and dirmeta checksums (lazy loading). */
  if (!ostree_repo_write_directory_to_mtree (repo, root, mtree, NULL, cancellable, error))
    {
      g_object_unref (mtree);
      mtree = NULL;
    }
  g_object_unref (root);
  return mtree;
}

static gboolean
hc_in_strv (char **v, const char *s)
{
  return v != NULL && g_strv_contains ((const char *const *) v, s);
}

/* Returns 1, 0 or 2 as hc_mtree_merge_commit. */
static int
hc_merge_dirtree (OstreeRepo *repo, OstreeMutableTree *dst, const char *contents,
                  const char *path, char **drop_new, char **out_path,
                  GCancellable *cancellable, GError **error)
{
  GVariant *tree = NULL;
  GVariant *files = NULL, *dirs = NULL;
  int ret = 0;
  gboolean only_existing = hc_in_strv (drop_new, path);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return 0;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_DIR_TREE, contents, &tree, error))
    return 0;
  files = g_variant_get_child_value (tree, 0);
  dirs = g_variant_get_child_value (tree, 1);

  gsize n = g_variant_n_children (files);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      GVariant *csum_v = NULL;
      g_variant_get_child (files, i, "(&s@ay)", &name, &csum_v);
      char *csum = ostree_checksum_from_bytes_v (csum_v);
      g_variant_unref (csum_v);
      g_autofree char *child = *path ? g_build_filename (path, name, NULL) : g_strdup (name);
      g_autofree char *have = NULL;
      OstreeMutableTree *sub = NULL;
      GError *lerr = NULL;
      if (ostree_mutable_tree_lookup (dst, name, &have, &sub, &lerr))
        {
          gboolean same = have != NULL && strcmp (have, csum) == 0;
          if (sub)
            g_object_unref (sub);
          g_free (csum);
          if (!same)
            {
              *out_path = g_steal_pointer (&child);
              ret = 2;
              goto out;
            }
          continue;
        }
      if (!g_error_matches (lerr, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, lerr);
          g_free (csum);
          goto out;
        }
      g_clear_error (&lerr);
      gboolean ok = only_existing || ostree_mutable_tree_replace_file (dst, name, csum, error);
      g_free (csum);
      if (!ok)
        goto out;
    }

  n = g_variant_n_children (dirs);
  for (gsize i = 0; i < n; i++)
    {
      const char *name;
      GVariant *tree_v = NULL, *meta_v = NULL;
      g_variant_get_child (dirs, i, "(&s@ay@ay)", &name, &tree_v, &meta_v);
      g_autofree char *tree_csum = ostree_checksum_from_bytes_v (tree_v);
      g_autofree char *meta_csum = ostree_checksum_from_bytes_v (meta_v);
      g_variant_unref (tree_v);
      g_variant_unref (meta_v);
      g_autofree char *child = *path ? g_build_filename (path, name, NULL) : g_strdup (name);
      g_autofree char *have = NULL;
      OstreeMutableTree *sub = NULL;
      GError *lerr = NULL;
      if (ostree_mutable_tree_lookup (dst, name, &have, &sub, &lerr))
        {
          if (sub == NULL)
            {
              /* A file (or a symlink, which a checkout would follow) where
               * the commit has a directory. */
              *out_path = g_steal_pointer (&child);
              ret = 2;
              goto out;
            }
        }
      else if (!g_error_matches (lerr, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, lerr);
          goto out;
        }
      else
        {
          g_clear_error (&lerr);
          if (only_existing)
            continue;
          if (!ostree_mutable_tree_ensure_dir (dst, name, &sub, error))
            goto out;
          /* A new directory takes the commit's metadata; when nothing
           * under it is dropped it is the commit's subtree as it is. */
          ostree_mutable_tree_set_metadata_checksum (sub, meta_csum);
        }
      int r = hc_merge_dirtree (repo, sub, tree_csum, child, drop_new, out_path, cancellable, error);
      g_object_unref (sub);
      if (r != 1)
        {
          ret = r;
          goto out;
        }
    }
  ret = 1;

out:
  g_variant_unref (files);
  g_variant_unref (dirs);
  g_variant_unref (tree);
  return ret;
}

int
hc_mtree_merge_commit (OstreeRepo *repo, OstreeMutableTree *mtree, const char *commit,
                       char **drop_new, char **out_path,
                       GCancellable *cancellable, GError **error)
{
  GVariant *c = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &c, error))
    return 0;
  GVariant *tree_v = g_variant_get_child_value (c, 6);
  char *contents = ostree_checksum_from_bytes_v (tree_v);
  g_variant_unref (tree_v);
  g_variant_unref (c);
  int r = hc_merge_dirtree (repo, mtree, contents, "", drop_new, out_path, cancellable, error);
  g_free (contents);
  return r;
}

gboolean
hc_mtree_replace_dir (OstreeRepo *repo, OstreeMutableTree *mtree, const char *path,
                      const char *dir, GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);
  guint n = g_strv_length (parts);
  OstreeMutableTree *parent = g_object_ref (mtree);
  OstreeMutableTree *sub = NULL;
  OstreeRepoCommitModifier *modifier = NULL;

  if (n == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "replace the tree's root");
      goto out;
    }
  for (guint i = 0; i + 1 < n; i++)
    {
      OstreeMutableTree *next = NULL;
      if (!ostree_mutable_tree_ensure_dir (parent, parts[i], &next, error))
        goto out;
      g_object_unref (parent);
      parent = next;
    }
  if (!ostree_mutable_tree_remove (parent, parts[n - 1], TRUE, error))
    goto out;
  if (!ostree_mutable_tree_ensure_dir (parent, parts[n - 1], &sub, error))
    goto out;
  /* The same (empty) modifier the commit of a whole tree uses. */
  modifier = ostree_repo_commit_modifier_new (OSTREE_REPO_COMMIT_MODIFIER_FLAGS_NONE, NULL, NULL, NULL);
  if (!ostree_repo_write_dfd_to_mtree (repo, AT_FDCWD, dir, sub, modifier, cancellable, error))
    goto out;
  ok = TRUE;

out:
  if (modifier)
    ostree_repo_commit_modifier_unref (modifier);
  if (sub)
    g_object_unref (sub);
  g_object_unref (parent);
  return ok;
}

gboolean
hc_read_commit_file (OstreeRepo *repo, const char *commit, const char *path,
                     char **out_data, gsize *out_len, guint32 *out_uid,
                     guint32 *out_gid, guint32 *out_mode,
                     GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  GFile *root = NULL, *f = NULL;
  GFileInfo *info = NULL;

  if (!ostree_repo_read_commit (repo, commit, &root, NULL, cancellable, error))
    return FALSE;
  f = g_file_resolve_relative_path (root, path);
  info = g_file_query_info (f, "standard::type,unix::uid,unix::gid,unix::mode",
                            G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, cancellable, error);
  if (info == NULL)
    goto out;
  if (g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE, "%s is not a regular file", path);
      goto out;
    }
  if (!g_file_load_contents (f, cancellable, out_data, out_len, NULL, error))
    goto out;
  *out_uid = g_file_info_get_attribute_uint32 (info, "unix::uid");
  *out_gid = g_file_info_get_attribute_uint32 (info, "unix::gid");
  *out_mode = g_file_info_get_attribute_uint32 (info, "unix::mode");
  ok = TRUE;

out:
  if (info)
    g_object_unref (info);
  if (f)
    g_object_unref (f);
  g_object_unref (root);
  return ok;
}

int
hc_mtree_lookup_kind (OstreeMutableTree *self, const char *name, GError **error)
{
  g_autofree char *file = NULL;
  OstreeMutableTree *sub = NULL;
  GError *lerr = NULL;
  if (!ostree_mutable_tree_lookup (self, name, &file, &sub, &lerr))
    {
      if (g_error_matches (lerr, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_error_free (lerr);
          return 0;
        }
      g_propagate_error (error, lerr);
      return -1;
    }
  if (sub)
    {
      g_object_unref (sub);
      return 2;
    }
  return 1;
}
