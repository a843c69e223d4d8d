#include "content.h"
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
