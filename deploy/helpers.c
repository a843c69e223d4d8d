#include "helpers.h"
#include <fcntl.h>

/* Implemented in Go (progress.go). */
extern void hcGoProgress (uintptr_t handle, OstreeAsyncProgress *progress);

static void
hc_progress_changed (OstreeAsyncProgress *progress, gpointer user_data)
{
  hcGoProgress ((uintptr_t) user_data, progress);
}

gboolean
hc_pull (OstreeRepo *repo, const char *remote, const char *ref,
         const char *override_commit, int flags, int depth, char **subdirs,
         uintptr_t handle, GCancellable *cancellable, GError **error)
{
  /* libostree iterates the thread-default main context while pulling and
   * attaches the progress callbacks to the context current at their creation:
   * a private context, pushed for the duration of the call, serves both. */
  GMainContext *ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);

  OstreeAsyncProgress *progress = NULL;
  if (handle != 0)
    progress = ostree_async_progress_new_and_connect (hc_progress_changed, (gpointer) handle);

  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  const char *refs[] = { ref, NULL };
  g_variant_builder_add (&b, "{s@v}", "refs",
                         g_variant_new_variant (g_variant_new_strv (refs, -1)));
  if (override_commit != NULL)
    {
      const char *ids[] = { override_commit, NULL };
      g_variant_builder_add (&b, "{s@v}", "override-commit-ids",
                             g_variant_new_variant (g_variant_new_strv (ids, -1)));
    }
  g_variant_builder_add (&b, "{s@v}", "flags",
                         g_variant_new_variant (g_variant_new_int32 (flags)));
  if (subdirs != NULL)
    g_variant_builder_add (&b, "{s@v}", "subdirs",
                           g_variant_new_variant (g_variant_new_strv ((const char *const *) subdirs, -1)));
  if (depth != 0)
    g_variant_builder_add (&b, "{s@v}", "depth",
                           g_variant_new_variant (g_variant_new_int32 (depth)));
  /* Fetch limits. libostree 2022.7 (Debian 12) knows n-network-retries only
   * (its curl fetcher has a fixed 30 s connect timeout and no read timeout);
   * from 2023.7 it also honours the low-speed pair, as curl's
   * LOW_SPEED_LIMIT/TIME: a request slower than 1000 B/s for 30 s fails.
   * Older versions ignore keys they do not know. The stall that no option
   * covers on 2022.7 (a remote that accepts and never answers) is handled
   * by running the pull in a helper process that Go kills. */
  g_variant_builder_add (&b, "{s@v}", "n-network-retries",
                         g_variant_new_variant (g_variant_new_uint32 (3)));
  g_variant_builder_add (&b, "{s@v}", "low-speed-limit-bytes",
                         g_variant_new_variant (g_variant_new_uint32 (1000)));
  g_variant_builder_add (&b, "{s@v}", "low-speed-time-seconds",
                         g_variant_new_variant (g_variant_new_uint32 (30)));
  GVariant *opts = g_variant_ref_sink (g_variant_builder_end (&b));

  gboolean ok = ostree_repo_pull_with_options (repo, remote, opts, progress, cancellable, error);

  if (progress != NULL)
    {
      ostree_async_progress_finish (progress);
      g_object_unref (progress);
    }
  g_variant_unref (opts);
  g_main_context_pop_thread_default (ctx);
  g_main_context_unref (ctx);
  return ok;
}

gboolean
hc_commit_info (OstreeRepo *repo, const char *commit, char **out_version,
                guint64 *out_timestamp, char **out_parent,
                const char *key2, char **out_value2, GError **error)
{
  GVariant *v = NULL;
  *out_version = NULL;
  *out_parent = NULL;
  *out_timestamp = 0;
  if (out_value2 != NULL)
    *out_value2 = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return FALSE;
  GVariant *meta = g_variant_get_child_value (v, 0);
  const char *s = NULL;
  if (g_variant_lookup (meta, "version", "&s", &s))
    *out_version = g_strdup (s);
  if (key2 != NULL && out_value2 != NULL && g_variant_lookup (meta, key2, "&s", &s))
    *out_value2 = g_strdup (s);
  g_variant_unref (meta);
  *out_timestamp = ostree_commit_get_timestamp (v);
  *out_parent = ostree_commit_get_parent (v);
  g_variant_unref (v);
  return TRUE;
}

gboolean
hc_commit_meta_blob (OstreeRepo *repo, const char *commit, guchar **out_blob,
                     gsize *out_size, GError **error)
{
  GVariant *v = NULL;
  *out_blob = NULL;
  *out_size = 0;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return FALSE;
  GVariant *meta = g_variant_get_child_value (v, 0);
  GDBusMessage *msg = g_dbus_message_new_signal ("/", "org.hostctl.Commit", "Metadata");
  g_dbus_message_set_byte_order (msg, G_DBUS_MESSAGE_BYTE_ORDER_LITTLE_ENDIAN);
  g_dbus_message_set_body (msg, g_variant_new_tuple (&meta, 1));
  *out_blob = g_dbus_message_to_blob (msg, out_size, G_DBUS_CAPABILITY_FLAGS_NONE, error);
  g_object_unref (msg);
  g_variant_unref (meta);
  g_variant_unref (v);
  return *out_blob != NULL;
}

gboolean
hc_remote_add (OstreeRepo *repo, const char *name, const char *url,
               gboolean gpg_verify, gboolean replace,
               GCancellable *cancellable, GError **error)
{
  GVariantBuilder b;
  g_variant_builder_init (&b, G_VARIANT_TYPE ("a{sv}"));
  g_variant_builder_add (&b, "{s@v}", "gpg-verify",
                         g_variant_new_variant (g_variant_new_boolean (gpg_verify)));
  GVariant *opts = g_variant_ref_sink (g_variant_builder_end (&b));
  gboolean ok = ostree_repo_remote_change (repo, NULL,
                                           replace ? OSTREE_REPO_REMOTE_CHANGE_REPLACE
                                                   : OSTREE_REPO_REMOTE_CHANGE_ADD,
                                           name, url, opts, cancellable, error);
  g_variant_unref (opts);
  return ok;
}

static GKeyFile *
hc_keyfile_from (const char *data, GError **error)
{
  GKeyFile *kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, data, -1, G_KEY_FILE_KEEP_COMMENTS, error))
    {
      g_key_file_unref (kf);
      return NULL;
    }
  return kf;
}

gboolean
hc_deploy_tree (OstreeSysroot *sysroot, const char *osname, const char *revision,
                const char *origin_data, OstreeDeployment *merge, char **kargs,
                OstreeDeployment **out_deployment, GCancellable *cancellable,
                GError **error)
{
  GKeyFile *origin = hc_keyfile_from (origin_data, error);
  if (origin == NULL)
    return FALSE;
  OstreeSysrootDeployTreeOpts opts = { 0, };
  opts.override_kernel_argv = kargs;
  gboolean ok = ostree_sysroot_deploy_tree_with_options (sysroot, osname, revision, origin, merge,
                                                         &opts, out_deployment, cancellable, error);
  g_key_file_unref (origin);
  return ok;
}

gboolean
hc_stage_tree (OstreeSysroot *sysroot, const char *osname, const char *revision,
               const char *origin_data, OstreeDeployment *merge, char **kargs,
               OstreeDeployment **out_deployment, GCancellable *cancellable,
               GError **error)
{
  GKeyFile *origin = hc_keyfile_from (origin_data, error);
  if (origin == NULL)
    return FALSE;
  OstreeSysrootDeployTreeOpts opts = { 0, };
  opts.override_kernel_argv = kargs;
  gboolean ok = ostree_sysroot_stage_tree_with_options (sysroot, osname, revision, origin, merge,
                                                        &opts, out_deployment, cancellable, error);
  g_key_file_unref (origin);
  return ok;
}

gboolean
hc_write_deployments (OstreeSysroot *sysroot, OstreeDeployment **deployments, int n,
                      GCancellable *cancellable, GError **error)
{
  GPtrArray *arr = g_ptr_array_new ();
  for (int i = 0; i < n; i++)
    g_ptr_array_add (arr, deployments[i]);
  OstreeSysrootWriteDeploymentsOpts opts = { .do_postclean = FALSE };
  gboolean ok = ostree_sysroot_write_deployments_with_options (sysroot, arr, &opts, cancellable, error);
  g_ptr_array_unref (arr);
  return ok;
}

OstreeDeployment *
hc_deployment_at (GPtrArray *arr, guint i)
{
  return g_ptr_array_index (arr, i);
}

char *
hc_deployment_origin (OstreeDeployment *d)
{
  GKeyFile *origin = ostree_deployment_get_origin (d);
  if (origin == NULL)
    return NULL;
  return g_key_file_to_data (origin, NULL, NULL);
}

char *
hc_deployment_options (OstreeDeployment *d)
{
  OstreeBootconfigParser *bc = ostree_deployment_get_bootconfig (d);
  if (bc == NULL)
    return NULL;
  const char *o = ostree_bootconfig_parser_get (bc, "options");
  return o ? g_strdup (o) : NULL;
}

gboolean
hc_set_origin (OstreeSysroot *sysroot, OstreeDeployment *d, const char *origin_data,
               GCancellable *cancellable, GError **error)
{
  GKeyFile *origin = hc_keyfile_from (origin_data, error);
  if (origin == NULL)
    return FALSE;
  gboolean ok = ostree_sysroot_write_origin_file (sysroot, d, origin, cancellable, error);
  g_key_file_unref (origin);
  return ok;
}

gboolean
hc_io_error_is (GError *err, int code)
{
  return g_error_matches (err, G_IO_ERROR, code);
}

/* Writes DIR and a commit of it in the transaction REPO has open. */
gboolean
hc_commit_dir_in_txn (OstreeRepo *repo, const char *dir, const char *parent,
                      const char *subject, char **keys, char **values, int n,
                      guint64 timestamp, const char *ref, OstreeRepoDevInoCache *devino,
                      char **out_commit, GCancellable *cancellable, GError **error)
{
  gboolean ok = FALSE;
  OstreeMutableTree *mtree = NULL;
  OstreeRepoCommitModifier *modifier = NULL;
  GFile *root = NULL;
  GVariant *meta = NULL;

  modifier = ostree_repo_commit_modifier_new (OSTREE_REPO_COMMIT_MODIFIER_FLAGS_NONE, NULL, NULL, NULL);
  if (devino != NULL)
    ostree_repo_commit_modifier_set_devino_cache (modifier, devino);
  mtree = ostree_mutable_tree_new ();
  if (!ostree_repo_write_dfd_to_mtree (repo, AT_FDCWD, dir, mtree, modifier, cancellable, error))
    goto out;
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
  if (mtree)
    g_object_unref (mtree);
  if (modifier)
    ostree_repo_commit_modifier_unref (modifier);
  return ok;
}

gboolean
hc_commit_dir (OstreeRepo *repo, const char *dir, const char *parent,
               const char *subject, char **keys, char **values, int n,
               guint64 timestamp, const char *ref, OstreeRepoDevInoCache *devino,
               char **out_commit, GCancellable *cancellable, GError **error)
{
  if (!ostree_repo_prepare_transaction (repo, NULL, cancellable, error))
    return FALSE;
  if (!hc_commit_dir_in_txn (repo, dir, parent, subject, keys, values, n, timestamp, ref, devino,
                             out_commit, cancellable, error)
      || !ostree_repo_commit_transaction (repo, NULL, cancellable, error))
    {
      ostree_repo_abort_transaction (repo, NULL, NULL);
      return FALSE;
    }
  return TRUE;
}

gboolean
hc_checkout (OstreeRepo *repo, const char *commit, const char *dest,
             const char *subpath, int overwrite, gboolean whiteouts,
             gboolean force_copy, OstreeRepoDevInoCache *devino,
             GCancellable *cancellable, GError **error)
{
  OstreeRepoCheckoutAtOptions opts = { 0, };
  opts.mode = OSTREE_REPO_CHECKOUT_MODE_NONE;
  opts.overwrite_mode = (OstreeRepoCheckoutOverwriteMode) overwrite;
  opts.process_whiteouts = whiteouts;
  opts.force_copy = force_copy;
  opts.subpath = subpath;
  if (devino != NULL)
    ostree_repo_checkout_at_options_set_devino (&opts, devino);
  /* Telling identical files apart needs hardlinks to the objects. */
  if (opts.overwrite_mode == OSTREE_REPO_CHECKOUT_OVERWRITE_UNION_IDENTICAL)
    opts.no_copy_fallback = TRUE;
  return ostree_repo_checkout_at (repo, &opts, AT_FDCWD, dest, commit, cancellable, error);
}

char **
hc_list_refs (OstreeRepo *repo, const char *prefix, GCancellable *cancellable, GError **error)
{
  GHashTable *refs = NULL;
  if (!ostree_repo_list_refs_ext (repo, prefix, &refs, OSTREE_REPO_LIST_REFS_EXT_NONE, cancellable, error))
    return NULL;
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, refs);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_ptr_array_add (out, g_strdup_printf ("%s\t%s", (const char *) k, (const char *) v));
  g_ptr_array_add (out, NULL);
  g_hash_table_unref (refs);
  return (char **) g_ptr_array_free (out, FALSE);
}

char **
hc_commit_metadata (OstreeRepo *repo, const char *commit, char **out_subject, GError **error)
{
  GVariant *v = NULL;
  *out_subject = NULL;
  if (!ostree_repo_load_variant (repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &v, error))
    return NULL;
  GVariant *meta = g_variant_get_child_value (v, 0);
  g_variant_get_child (v, 3, "s", out_subject);
  GPtrArray *out = g_ptr_array_new ();
  GVariantIter it;
  const char *key;
  GVariant *val;
  g_variant_iter_init (&it, meta);
  while (g_variant_iter_next (&it, "{&sv}", &key, &val))
    {
      if (g_variant_is_of_type (val, G_VARIANT_TYPE_STRING))
        g_ptr_array_add (out, g_strdup_printf ("%s\t%s", key, g_variant_get_string (val, NULL)));
      g_variant_unref (val);
    }
  g_ptr_array_add (out, NULL);
  g_variant_unref (meta);
  g_variant_unref (v);
  return (char **) g_ptr_array_free (out, FALSE);
}

OstreeRepo *
hc_open_sysroot_repo (const char *repo_path, const char *sysroot_path,
                      GCancellable *cancellable, GError **error)
{
  GFile *rf = g_file_new_for_path (repo_path);
  GFile *sf = g_file_new_for_path (sysroot_path);
  OstreeRepo *repo = ostree_repo_new_for_sysroot_path (rf, sf);
  g_object_unref (rf);
  g_object_unref (sf);
  if (!ostree_repo_open (repo, cancellable, error))
    {
      g_object_unref (repo);
      return NULL;
    }
  return repo;
}

gboolean
hc_sysroot_prune (OstreeSysroot *sysroot, GCancellable *cancellable, GError **error)
{
  g_autoptr (GHashTable) reachable = ostree_repo_traverse_new_reachable ();
  OstreeRepoPruneOptions opts = { OSTREE_REPO_PRUNE_FLAGS_REFS_ONLY, reachable };
  gint total = 0, pruned = 0;
  guint64 freed = 0;
  return ostree_sysroot_cleanup_prune_repo (sysroot, &opts, &total, &pruned, &freed,
                                            cancellable, error);
}
