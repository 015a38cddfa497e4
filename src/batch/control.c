/*
 * The Batch API's use cases (see control.h), over the store's batches and files; the runner
 * (batch.c) does the work once woken.
 */
#include "batch/control.h"
#include "batch/batch.h"
#include "batch/file.h"
#include "core/err.h"
#include "core/util.h"
#include "store/inference.h"

#include <stdio.h>

/* The row with its request counts. */
static json_t *with_counts(json_t *row)
{
    int64_t done = 0, failed = 0;

    if (!row)
        return NULL;
    batch_counts(json_string_value(json_object_get(row, "id")), &done, &failed);
    json_object_set_new(row, "completed_count", json_integer(done));
    json_object_set_new(row, "failed_count", json_integer(failed));
    return row;
}

int batch_create(const char *org_id, const char *endpoint, const char *file_id, const char *model,
                 const char *window, json_t *metadata, int64_t expires_at, char *id)
{
    int err = 0;
    json_t *file = batch_file_get(org_id, file_id, &err);
    char u[40];

    if (!file)
        return err ? err : LY_ENOTFOUND;
    json_decref(file);
    uuid_v4(u);
    snprintf(id, 40, "batch_%.8s%.4s%.4s%.4s%.12s", u, u + 9, u + 14, u + 19, u + 24);
    err = batch_insert(id, org_id, endpoint, file_id, model, window, metadata, expires_at);
    if (!err)
        batch_kick();
    return err;
}

json_t *batch_read(const char *org_id, const char *id, int *err)
{
    return with_counts(batch_get(org_id, id, err));
}

int batch_read_page(const char *org_id, const char *after, int64_t limit, json_t *out)
{
    size_t first = json_array_size(out), i;
    int err = batch_list(org_id, after, limit, out);

    for (i = first; !err && i < json_array_size(out); i++)
        with_counts(json_array_get(out, i));
    return err;
}

int batch_cancel(const char *org_id, const char *id, json_t **row)
{
    int err = 0, moved;
    json_t *b = batch_get(org_id, id, &err);

    *row = NULL;
    if (!b)
        return err ? err : LY_ENOTFOUND;
    json_decref(b);
    moved = batch_move(id, "validating,in_progress", "cancelling");
    if (moved < 0)
        return LY_EDB;
    if (moved)
        batch_kick();
    /* Read after the move, so that a batch that ended meanwhile is seen as it is now. */
    *row = batch_read(org_id, id, &err);
    if (!*row)
        return err ? err : LY_EDB;
    return moved;
}
