/*
 * The Batch API's use cases (see control.h), over the store's batches and files; the runner
 * (batch.c) does the work once woken.
 */
#include "batch/control.h"
#include "batch/batch.h"
#include "batch/file.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void batch_info_release(struct batch_info *b)
{
    batch_row_release(&b->row);
}

void batch_infos_release(struct batch_infos *list)
{
    for (size_t i = 0; i < list->n; i++)
        batch_info_release(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

static void counts(struct batch_info *b)
{
    b->completed = b->failed = 0;
    db_batch_counts(b->row.id, &b->completed, &b->failed);
}

int batch_create(const char *org_id, const char *endpoint, const char *file_id, const char *model,
                 const char *window, json_t *metadata, int64_t expires_at, char *id)
{
    struct file_row f;
    int err = batch_file_get(org_id, file_id, &f);
    char u[40], *md;

    if (err)
        return err;
    file_row_release(&f);
    uuid_v4(u);
    snprintf(id, 40, "batch_%.8s%.4s%.4s%.4s%.12s", u, u + 9, u + 14, u + 19, u + 24);
    md = metadata ? json_dumps(metadata, JSON_COMPACT) : NULL;
    err = db_batch_insert(id, org_id, endpoint, file_id, model, window, md, expires_at);
    free(md);
    if (!err)
        batch_kick();
    return err;
}

int batch_read(const char *org_id, const char *id, struct batch_info *out)
{
    int err = db_batch_get(org_id, id, &out->row);

    if (!err)
        counts(out);
    return err;
}

int batch_read_page(const char *org_id, const char *after, int64_t limit, struct batch_infos *out)
{
    struct batch_rows rows;
    int err = db_batch_list(org_id, after, limit, &rows);

    memset(out, 0, sizeof(*out));
    if (err)
        return err;
    out->v = xcalloc(rows.n ? rows.n : 1, sizeof(*out->v));
    out->n = rows.n;
    for (size_t i = 0; i < rows.n; i++) {
        out->v[i].row = rows.v[i]; /* the strings move over */
        counts(&out->v[i]);
    }
    free(rows.v);
    return 0;
}

int batch_cancel(const char *org_id, const char *id, struct batch_info *out)
{
    struct batch_row b;
    int err = db_batch_get(org_id, id, &b), moved;

    memset(out, 0, sizeof(*out));
    if (err)
        return err;
    batch_row_release(&b);
    moved = db_batch_move(id, "validating,in_progress", "cancelling");
    if (moved < 0)
        return LY_EDB;
    if (moved)
        batch_kick();
    /* Read after the move, so that a batch that ended meanwhile is seen as it is now. */
    err = batch_read(org_id, id, out);
    if (err)
        return err == LY_ENOTFOUND ? LY_EDB : err;
    return moved;
}
