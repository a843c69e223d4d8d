/* Small accessors the Go side of the binding cannot write itself
 * (struct fields behind pointers, inline functions, macros). */
#ifndef HOSTCTL_SOLV_HELPERS_H
#define HOSTCTL_SOLV_HELPERS_H

#include <stdio.h>
#include <solv/pool.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/repo_rpmdb.h>
#include <solv/repo_rpmmd.h>
#include <solv/repo_solv.h>
#include <solv/repo_write.h>
#include <solv/selection.h>
#include <solv/solver.h>
#include <solv/problems.h>
#include <solv/rules.h>
#include <solv/transaction.h>
#include <solv/queue.h>
#include <solv/chksum.h>

Solvable *hc_solvable(Pool *pool, Id p);
Repo *hc_installed(Pool *pool);
int hc_solvable_installed(Pool *pool, Id p);
const char *hc_solvable_name(Pool *pool, Id p);
const char *hc_solvable_evr(Pool *pool, Id p);
const char *hc_solvable_arch(Pool *pool, Id p);
const char *hc_solvable_repo(Pool *pool, Id p);
const char *hc_solvable_location(Pool *pool, Id p);
Queue *hc_queue_new(void);
void hc_queue_delete(Queue *q);
int hc_queue_count(Queue *q);
Id hc_queue_at(Queue *q, int i);
void hc_queue_push2(Queue *q, Id a, Id b);
Queue *hc_transaction_steps(Transaction *t);
int hc_repo_nsolvables(Repo *r);
const char *hc_pool_errstr(Pool *pool);
const char *hc_solvable_checksum(Pool *pool, Id p, const char **type);
Id hc_add_rpm(Repo *repo, const char *path);
void hc_repo_internalize(Repo *repo);
Id hc_queue_to_whatprovides(Pool *pool, Queue *q);

#endif
