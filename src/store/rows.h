/*
 * Query results as JSON: a row as an object of its columns (integer, text or null). Used by
 * the stores whose callers want rows whole (runs, billing); the caller owns what they return.
 */
#ifndef LYCEUMD_STORE_ROWS_H
#define LYCEUMD_STORE_ROWS_H

#include <jansson.h>
#include <sqlite3.h>

/* The current row of st. */
json_t *q_row_json(sqlite3_stmt *st);
/* Steps st to its end (then q_done): every row appended to out, as an object, or as the first
 * column's text alone when scalar. 0 or LY_EDB (also when st is NULL). */
int q_rows_json(sqlite3_stmt *st, json_t *out, int scalar);
/* Steps st once (then q_done): its first row, or NULL with *err 0 when there is none. */
json_t *q_one_json(sqlite3_stmt *st, int *err);

#endif
