#include <stdlib.h>
#include <solv/repodata.h>
#include <solv/knownid.h>
#include "helpers.h"

Solvable *hc_solvable(Pool *pool, Id p) { return pool->solvables + p; }

Repo *hc_installed(Pool *pool) { return pool->installed; }

int hc_solvable_installed(Pool *pool, Id p)
{
  return pool->installed && pool->solvables[p].repo == pool->installed;
}

const char *hc_solvable_name(Pool *pool, Id p) { return pool_id2str(pool, pool->solvables[p].name); }
const char *hc_solvable_evr(Pool *pool, Id p) { return pool_id2str(pool, pool->solvables[p].evr); }
const char *hc_solvable_arch(Pool *pool, Id p) { return pool_id2str(pool, pool->solvables[p].arch); }
const char *hc_solvable_repo(Pool *pool, Id p) { return pool->solvables[p].repo->name; }

const char *hc_solvable_location(Pool *pool, Id p)
{
  const char *loc = solvable_get_location(pool->solvables + p, NULL);
  return loc ? loc : "";
}

Queue *hc_queue_new(void)
{
  Queue *q = malloc(sizeof(Queue));
  if (q)
    queue_init(q);
  return q;
}

void hc_queue_delete(Queue *q)
{
  if (!q)
    return;
  queue_free(q);
  free(q);
}

int hc_queue_count(Queue *q) { return q->count; }
Id hc_queue_at(Queue *q, int i) { return q->elements[i]; }
void hc_queue_push2(Queue *q, Id a, Id b) { queue_push2(q, a, b); }
Queue *hc_transaction_steps(Transaction *t) { return &t->steps; }
int hc_repo_nsolvables(Repo *r) { return r->nsolvables; }
const char *hc_pool_errstr(Pool *pool) { return pool_errstr(pool); }

const char *hc_solvable_checksum(Pool *pool, Id p, const char **type)
{
  Id t = 0;
  const char *sum = solvable_lookup_checksum(pool->solvables + p, SOLVABLE_CHECKSUM, &t);
  *type = t ? solv_chksum_type2str(t) : "";
  return sum ? sum : "";
}

Id hc_add_rpm(Repo *repo, const char *path)
{
  return repo_add_rpm(repo, path, RPM_ADD_WITH_SHA256SUM | REPO_NO_INTERNALIZE);
}

void hc_repo_internalize(Repo *repo) { repo_internalize(repo); }

Id hc_queue_to_whatprovides(Pool *pool, Queue *q) { return pool_queuetowhatprovides(pool, q); }
