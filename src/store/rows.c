/* See rows.h. */
#include "store/rows.h"
#include "core/err.h"
#include "store/db.h"

json_t *q_row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(st);

    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);

        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            json_object_set_new(o, name, json_integer(sqlite3_column_int64(st, i)));
            break;
        case SQLITE_NULL:
            json_object_set_new(o, name, json_null());
            break;
        default:
            json_object_set_new(o, name, json_string(q_text(st, i)));
        }
    }
    return o;
}

int q_rows_json(sqlite3_stmt *st, json_t *out, int scalar)
{
    int rc;

    if (!st)
        return LY_EDB;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(out, scalar ? json_string(q_text(st, 0)) : q_row_json(st));
    q_done(st);
    return rc == SQLITE_DONE ? 0 : LY_EDB;
}

json_t *q_one_json(sqlite3_stmt *st, int *err)
{
    json_t *o = NULL;
    int rc;

    *err = 0;
    if (!st) {
        *err = LY_EDB;
        return NULL;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        o = q_row_json(st);
    else if (rc != SQLITE_DONE)
        *err = LY_EDB;
    q_done(st);
    return o;
}
