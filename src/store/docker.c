/* See docker.h. */
#include "store/docker.h"
#include "core/err.h"
#include "core/arena.h"
#include "core/util.h"
#include "store/db.h"

#include <stdlib.h>
#include <string.h>

int docker_store_creds_put(const char *run_id, const char *sealed)
{
    int n = q_exec("INSERT OR REPLACE INTO run_credentials (run_id, sealed) VALUES (?, ?)", "ss",
                   run_id, sealed);

    return n < 0 ? n : 0;
}

char *docker_store_creds_get(const char *run_id, int *err)
{
    sqlite3_stmt *st =
        q_prepare("SELECT sealed FROM run_credentials WHERE run_id = ?", "s", run_id);
    char *out = NULL;
    int rc;

    *err = 0;
    if (!st) {
        *err = LY_EDB;
        return NULL;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && q_text(st, 0))
        out = xstrdup(q_text(st, 0));
    else if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        *err = LY_EDB;
    q_done(st);
    return out;
}

int docker_store_creds_drop(const char *run_id)
{
    int n = q_exec("DELETE FROM run_credentials WHERE run_id = ?", "s", run_id);

    return n < 0 ? n : 0;
}

int docker_store_pull_mark(const char *org_id, const char *repo, const char *image_id, int private_)
{
    int n = q_exec("INSERT INTO docker_pulls (org_id, repo, image_id, private, pulled_at) "
                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET pulled_at = "
                   "excluded.pulled_at",
                   "sssii", org_id, repo, image_id, (int64_t)(private_ != 0), now_unix());

    return n < 0 ? n : 0;
}

int docker_store_pull_unmark(const char *org_id, const char *repo, const char *image_id)
{
    int n = q_exec("DELETE FROM docker_pulls WHERE org_id = ? AND repo = ? AND image_id = ?", "sss",
                   org_id, repo, image_id);

    return n < 0 ? n : 0;
}

int docker_store_repo_private(const char *org_id, const char *repo)
{
    int64_t n = 0;

    if (q_int(&n,
              "SELECT EXISTS (SELECT 1 FROM docker_pulls WHERE repo = ? AND private = 1 AND "
              "org_id <> ?)",
              "ss", repo, org_id))
        return LY_EDB;
    return n != 0;
}

int docker_store_image_usable(const char *org_id, const char *image_id)
{
    int64_t n = 0;

    if (q_int(&n,
              "SELECT EXISTS (SELECT 1 FROM docker_pulls WHERE image_id = ? AND (private = 0 OR "
              "org_id = ?))",
              "ss", image_id, org_id))
        return LY_EDB;
    return n != 0;
}
