/* See orgs.h. */
#include "store/orgs.h"
#include "core/err.h"
#include "core/json.h"
#include "core/util.h"
#include "store/db.h"

#include <stdio.h>

int orgs_id_by_slug(const char *slug, char id_out[40])
{
    sqlite3_stmt *st = q_prepare("SELECT id FROM orgs WHERE slug = ? AND deleted_at IS NULL", "s",
                                 slug);
    int rc;

    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(id_out, 40, "%s", q_text(st, 0));
    q_done(st);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? LY_ENOTFOUND : LY_EDB;
}
