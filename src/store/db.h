/*
 * The store's connection layer: SQLite in WAL mode, one connection per thread (opened on a
 * thread's first use, closed when it exits), numbered migrations applied at start-up, and a
 * per-connection cache of prepared statements keyed by the SQL string's address, so a query
 * written as a string literal is prepared once per thread.
 *
 * A statement from q_prepare() belongs to the calling thread: step it, then give it back
 * with q_done() (which resets it into the cache, or finalizes it). Until then it is the
 * caller's alone: the cache neither evicts it nor hands it out again, however many other
 * statements are prepared meanwhile, the same SQL included.
 */
#ifndef LYCEUMD_STORE_DB_H
#define LYCEUMD_STORE_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Opens (creating if needed) the database at path and migrates it. Call once, before threads. */
int store_open(const char *path);
/* Writes a consistent copy of the whole database to the new file dest (SQLite's online backup:
 * the database as of one commit, while others keep writing), in rollback-journal mode (check
 * it with store_check_file). 0, or LY_E* with why set. */
int store_backup(const char *dest, char *why, size_t n);
/* Checks the database file at path (not the store's own) with PRAGMA integrity_check, and
 * reads the highest migration it records into *schema (0: none). 0, or LY_EDB with why set. */
int store_check_file(const char *path, int *schema, char *why, size_t n);
/* Closes the calling thread's connection (other threads close theirs when they exit). */
void store_close(void);

/* The calling thread's connection, opened on first use; NULL when it cannot be opened now
 * (out of descriptors: see store_take_unavailable()), and tried again at the next call. */
sqlite3 *store_db(void);
/* 1 when the calling thread failed for want of a descriptor (its connection could not be
 * opened, or SQLite could not open a file it needed) since the last call; clears the mark.
 * The mark is core/err.h's (err_take_unavailable(), which the dispatcher asks after each
 * request, to answer 503 rather than 500); this is the same call. */
int store_take_unavailable(void);

/* Prepares (or takes from the cache) sql and binds args by types: 's' string (NULL binds
 * null), 'i' int64_t, 'n' null. Returns NULL on error (logged). */
sqlite3_stmt *q_prepare(const char *sql, const char *types, ...);
void q_done(sqlite3_stmt *st);
/* Runs a statement that returns no rows. Returns the number of changed rows, or LY_EDB. A
 * constraint failure returns LY_ECONFLICT. */
int q_exec(const char *sql, const char *types, ...);
/* Runs a query for a single integer (0 when there is no row); returns 0 or LY_EDB. */
int q_int(int64_t *out, const char *sql, const char *types, ...);

/* Column helpers: a text column, or NULL. */
const char *q_text(sqlite3_stmt *st, int col);

/* A write transaction: BEGIN IMMEDIATE, so writers queue on the lock instead of failing. */
int store_begin(void);
int store_commit(void);
void store_rollback(void);
/* Ends the transaction store_begin() opened: commits when err is 0, else rolls back. Returns
 * err, or LY_EDB when the commit fails (after rolling back). */
int store_end(int err);

/*
 * The generations: counters that change after every committed write transaction, by any
 * lyceumd process on this database (the server and the operator's CLI share them through a
 * small file mapped beside the database, "<db>-gen"). The identity generation changes only
 * with a row of users, orgs, memberships or api_keys; the data generation with any row.
 * A cache reads one before its query, stamps the entry with it, and trusts the entry only
 * while it is unchanged. 0 means "do not cache" (the database is not in WAL mode, where the
 * hook that bumps them never runs, or the file could not be mapped). Writes made by other
 * programs (the sqlite3 shell) are not counted. Thread-safe.
 */
uint64_t store_identity_gen(void);
uint64_t store_data_gen(void);

#endif
