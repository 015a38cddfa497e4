/*
 * See db.h. The migrations are the numbered files in src/store/migrations/, embedded into the
 * binary at build time (build/gen/migrations.c); PRAGMA user_version records how many have
 * been applied, and each is applied in its own transaction.
 *
 * The generations: each connection's update hook notes a row change in one of the tables that
 * say who a caller is (users, orgs, memberships, api_keys), and its WAL hook, which SQLite
 * calls once a write transaction has committed and released the write lock, bumps the data
 * generation, and the identity generation too when such a row changed. Bumping only after
 * the commit is what lets a cache trust an entry stamped with the generation read before its
 * query: a commit either preceded the query's snapshot, or its bump makes the stamp stale.
 * The counters live in a file mapped shared ("<db>-gen"), so that a commit by the operator's
 * CLI in another process reaches the server's caches as well.
 *
 * Out of descriptors: a thread's connection is opened on its first use, and that open (or a
 * temporary file SQLite needs later) can fail with EMFILE when the process has no descriptor
 * left. That is never fatal: the thread gets no connection (store_db() is NULL, every query
 * fails as LY_EDB), tries again at its next use, and notes the shortage, which the request
 * dispatcher turns into 503 with Retry-After (store_take_unavailable()).
 */
#include "store/db.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char *const store_migrations[];

/* Statements kept per thread: more than the SQL sites there are (about 190), so that a busy
 * thread does not prepare the same ones again and again. */
#define STMT_CACHE 256

/* SQLite's own auto-checkpoint threshold, which our WAL hook replaces (pages). */
#define WAL_CHECKPOINT_PAGES 1000

/* A thread's connection and its statements. An entry is in use from q_prepare() to q_done():
 * such an entry is never handed out again nor evicted (a caller may still be stepping it);
 * the least recently used idle one makes room. A statement that finds no room, or whose SQL
 * is in use already (a query run inside the loop over its own rows), is prepared uncached
 * and finalized by q_done(). */
struct conn {
    sqlite3 *db;
    int identity_dirty; /* the open write transaction changed an identity table */
    int n;
    uint64_t clock; /* counts uses, for least recently used */
    const char *sql[STMT_CACHE];
    sqlite3_stmt *st[STMT_CACHE];
    uint64_t used_at[STMT_CACHE];
    unsigned char busy[STMT_CACHE];
};

static char *db_path;
/* The shared counters; NULL when the file could not be mapped. */
struct gens {
    uint64_t identity;
    uint64_t data;
};
static struct gens *gens;
static int wal_mode; /* the WAL hook runs only in WAL mode: without it, no generation */
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Thread_local int64_t open_logged; /* when this thread last logged a failed open */

static void conn_free(void *p)
{
    struct conn *c = p;

    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, conn_free);
}

static void on_update(void *arg, int op, const char *dbname, const char *table, sqlite3_int64 rowid)
{
    struct conn *c = arg;

    (void)op;
    (void)dbname;
    (void)rowid;
    if (!c->identity_dirty && (strcmp(table, "api_keys") == 0 || strcmp(table, "users") == 0 ||
                               strcmp(table, "memberships") == 0 || strcmp(table, "orgs") == 0))
        c->identity_dirty = 1;
}

static void on_rollback(void *arg)
{
    ((struct conn *)arg)->identity_dirty = 0;
}

/* Called after each commit of a write transaction, the write lock released. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *dbname, int pages)
{
    struct conn *c = arg;

    if (gens) {
        if (c->identity_dirty)
            __atomic_add_fetch(&gens->identity, 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&gens->data, 1, __ATOMIC_RELEASE);
    }
    c->identity_dirty = 0;
    /* What sqlite3_wal_autocheckpoint() would have done, had we not taken its hook. */
    if (pages >= WAL_CHECKPOINT_PAGES)
        sqlite3_wal_checkpoint_v2(db, dbname, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* The counters start at 0 in a new file; 0 means "do not cache", hence the 1 added. */
uint64_t store_identity_gen(void)
{
    return wal_mode && gens ? __atomic_load_n(&gens->identity, __ATOMIC_ACQUIRE) + 1 : 0;
}

uint64_t store_data_gen(void)
{
    return wal_mode && gens ? __atomic_load_n(&gens->data, __ATOMIC_ACQUIRE) + 1 : 0;
}

static void gens_map(const char *path)
{
    size_t n = strlen(path) + sizeof("-gen");
    char *name = xcalloc(1, n);
    int fd;
    struct stat st;
    void *p = MAP_FAILED;

    snprintf(name, n, "%s-gen", path);
    fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && fstat(fd, &st) == 0 &&
        (st.st_size >= (off_t)sizeof(struct gens) || ftruncate(fd, sizeof(struct gens)) == 0))
        p = mmap(NULL, sizeof(struct gens), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        log_warn("cannot map %s (%s): look-ups are not cached", name, strerror(errno));
    else
        gens = p;
    if (fd >= 0)
        close(fd);
    free(name);
}

/* Notes a failure for want of a descriptor (EMFILE, ENFILE) on db, if it was one. */
static void note_failure(sqlite3 *db)
{
    int e = db ? sqlite3_system_errno(db) : 0;

    if (e == EMFILE || e == ENFILE)
        err_mark_unavailable();
}

/* A connection, or NULL (logged at most once a minute per thread) when it cannot be opened:
 * the journal mode's read opens the WAL and its index too, so a connection returned has
 * every descriptor it needs. */
static struct conn *conn_open(void)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int rc = sqlite3_open_v2(
        db_path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(c->db, 10000);
        rc = sqlite3_exec(
            c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int64_t now = now_mono_us();
        int e = c->db ? sqlite3_system_errno(c->db) : 0;

        if (e == EMFILE || e == ENFILE || !c->db)
            err_mark_unavailable();
        if (!open_logged || now - open_logged > 60 * 1000000LL) {
            log_error("cannot open database %s: %s%s%s", db_path,
                      c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), e ? ": " : "",
                      e ? strerror(e) : "");
            open_logged = now;
        }
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    /* Set after the PRAGMAs: the WAL hook would be dropped by a later autocheckpoint call. */
    sqlite3_update_hook(c->db, on_update, c);
    sqlite3_rollback_hook(c->db, on_rollback, c);
    sqlite3_wal_hook(c->db, on_wal_commit, c);
    return c;
}

static struct conn *conn_get(void)
{
    struct conn *c;

    pthread_once(&key_once, make_key);
    c = pthread_getspecific(conn_key);
    if (!c) {
        c = conn_open();
        if (c)
            pthread_setspecific(conn_key, c);
    }
    return c;
}

sqlite3 *store_db(void)
{
    struct conn *c = conn_get();

    return c ? c->db : NULL;
}

int store_take_unavailable(void)
{
    return err_take_unavailable();
}

static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st;
    int version = 0, n;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return LY_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    for (n = 0; store_migrations[n]; n++)
        ;
    if (version > n) {
        log_error("the database is at migration %d but this lyceumd knows only %d: "
                  "it was written by a newer version",
                  version, n);
        return LY_EDB;
    }
    for (int i = version; i < n; i++) {
        char *err = NULL;
        char pragma[64];

        snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", i + 1);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(db, store_migrations[i], NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(db, pragma, NULL, NULL, &err) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
            log_error("migration %03d failed: %s", i + 1, err ? err : "?");
            sqlite3_free(err);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return LY_EDB;
        }
        log_info("applied migration %03d", i + 1);
    }
    return 0;
}

int store_open(const char *path)
{
    sqlite3_stmt *st;
    sqlite3 *db;

    /* SQLite's memory statistics take one process-wide mutex on every allocation, which the
     * request threads then queue on; nothing here reads the statistics. This must come before
     * SQLite initialises (it answers SQLITE_MISUSE afterwards, harmlessly). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    free(db_path);
    db_path = xstrdup(path);
    wal_mode = 0;
    if (gens) {
        munmap(gens, sizeof(*gens));
        gens = NULL;
    }
    gens_map(path);
    db = store_db();
    if (!db)
        return LY_EDB;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            wal_mode = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
    }
    if (!wal_mode)
        log_warn("the database at %s is not in WAL mode: look-ups are not cached", path);
    return migrate(db);
}

void store_close(void)
{
    struct conn *c;

    pthread_once(&key_once, make_key);
    c = pthread_getspecific(conn_key);
    conn_free(c);
    pthread_setspecific(conn_key, NULL);
}

static int bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
    for (int i = 0; types && types[i]; i++) {
        int rc = SQLITE_OK;

        switch (types[i]) {
        case 's': {
            const char *s = va_arg(ap, const char *);

            rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(st, i + 1);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            break;
        case 'n':
            rc = sqlite3_bind_null(st, i + 1);
            break;
        default:
            abort();
        }
        if (rc != SQLITE_OK)
            return LY_EDB;
    }
    return 0;
}

/* The slot a new statement may take: a free one, else the least recently used idle one
 * (finalized here), else -1 (every entry is in use). */
static int cache_room(struct conn *c)
{
    int best = -1;

    if (c->n < STMT_CACHE)
        return c->n++;
    for (int i = 0; i < c->n; i++)
        if (!c->busy[i] && (best < 0 || c->used_at[i] < c->used_at[best]))
            best = i;
    if (best >= 0)
        sqlite3_finalize(c->st[best]);
    return best;
}

static sqlite3_stmt *prepare_cached(const char *sql)
{
    struct conn *c = conn_get();
    sqlite3_stmt *st;
    int nested = 0, slot;

    if (!c)
        return NULL; /* no connection now (logged when the open failed) */
    for (int i = 0; i < c->n; i++)
        if (c->sql[i] == sql) {
            if (c->busy[i]) {
                nested = 1;
                break;
            }
            c->busy[i] = 1;
            c->used_at[i] = ++c->clock;
            return c->st[i];
        }
    if (sqlite3_prepare_v3(c->db, sql, -1, nested ? 0 : SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
        SQLITE_OK) {
        note_failure(c->db);
        log_error("SQL prepare failed: %s", sqlite3_errmsg(c->db));
        return NULL;
    }
    slot = nested ? -1 : cache_room(c);
    if (slot >= 0) {
        c->sql[slot] = sql;
        c->st[slot] = st;
        c->busy[slot] = 1;
        c->used_at[slot] = ++c->clock;
    }
    return st;
}

static sqlite3_stmt *vprepare(const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = prepare_cached(sql);

    if (!st)
        return NULL;
    if (bind_args(st, types, ap)) {
        log_error("SQL bind failed: %s", sqlite3_errmsg(store_db()));
        q_done(st);
        return NULL;
    }
    return st;
}

sqlite3_stmt *q_prepare(const char *sql, const char *types, ...)
{
    va_list ap;
    sqlite3_stmt *st;

    va_start(ap, types);
    st = vprepare(sql, types, ap);
    va_end(ap);
    return st;
}

void q_done(sqlite3_stmt *st)
{
    struct conn *c = pthread_getspecific(conn_key);

    if (!st)
        return;
    for (int i = 0; c && i < c->n; i++)
        if (c->st[i] == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->busy[i] = 0;
            return;
        }
    sqlite3_finalize(st); /* one prepared uncached */
}

int q_exec(const char *sql, const char *types, ...)
{
    va_list ap;
    sqlite3_stmt *st;
    int rc;

    va_start(ap, types);
    st = vprepare(sql, types, ap);
    va_end(ap);
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    q_done(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return sqlite3_changes(store_db());
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return LY_ECONFLICT;
    note_failure(store_db());
    log_error("SQL failed: %s", sqlite3_errmsg(store_db()));
    return LY_EDB;
}

int q_int(int64_t *out, const char *sql, const char *types, ...)
{
    va_list ap;
    sqlite3_stmt *st;
    int rc;

    va_start(ap, types);
    st = vprepare(sql, types, ap);
    va_end(ap);
    *out = 0;
    if (!st)
        return LY_EDB;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    q_done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        note_failure(store_db());
        log_error("SQL failed: %s", sqlite3_errmsg(store_db()));
        return LY_EDB;
    }
    return 0;
}

const char *q_text(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

/* One statement on this thread's connection, for the transaction verbs: 0 or LY_EDB. */
static int exec_simple(const char *sql)
{
    sqlite3 *db = store_db();

    if (!db)
        return LY_EDB;
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        note_failure(db);
        return LY_EDB;
    }
    return 0;
}

int store_begin(void)
{
    return exec_simple("BEGIN IMMEDIATE");
}

int store_commit(void)
{
    return exec_simple("COMMIT");
}

void store_rollback(void)
{
    exec_simple("ROLLBACK");
}

int store_end(int err)
{
    if (!err)
        err = store_commit();
    if (err)
        store_rollback();
    return err;
}
