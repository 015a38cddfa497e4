/*
 * See db.h. The migrations are the numbered files in src/store/migrations/, embedded into the
 * binary at build time (build/gen/migrations.c, store/migrations.h). The database records
 * each one applied by its number (schema_migrations; a database from before that table
 * recorded a count in PRAGMA user_version, read once as "the first N"); each is applied in its
 * own transaction with its record, and a database that records a number this binary does not
 * carry is refused, unchanged.
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
#include "store/migrations.h"
#include "core/arena.h"
#include "core/buf.h"
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

/* Runs sql in its own transaction; 0 or LY_EDB (logged with what). */
static int exec_tx(sqlite3 *db, const char *sql, const char *what)
{
    char *err = NULL;

    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        log_error("%s failed: %s", what, err ? err : "?");
        sqlite3_free(err);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return LY_EDB;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st;

    *out = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return LY_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static const struct store_migration *known(int number)
{
    for (const struct store_migration *m = store_migrations; m->sql; m++)
        if (m->number == number)
            return m;
    return NULL;
}

/* Makes schema_migrations, in one transaction with the record of what a database from before
 * it had applied: its first user_version migrations by position, in the order the binary
 * carries them (numbers and positions agreed while positions were what counted). */
static int make_record(sqlite3 *db, int version)
{
    int n = 0, err;
    struct buf sql = BUF_INIT(1 << 20);

    for (; store_migrations[n].sql; n++)
        ;
    if (version > n) {
        log_error("the database is at migration %d but this lyceumd knows only %d: it was "
                  "written by a newer version (run that version, or restore a backup)",
                  version, n);
        return LY_EDB;
    }
    buf_adds(&sql, "CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at INTEGER NOT NULL);\n");
    for (int i = 0; i < version; i++)
        buf_printf(&sql,
                   "INSERT INTO schema_migrations (number, name, applied_at) "
                   "VALUES (%d, '%s', 0);\n",
                   store_migrations[i].number, store_migrations[i].name);
    err = exec_tx(db, sql.p, "creating schema_migrations");
    buf_free(&sql);
    return err;
}

/* Brings the schema up to date: every migration the binary carries and the database has not
 * recorded is applied, in ascending number, each in its own transaction with its record (and
 * PRAGMA user_version = the highest applied, for tools that read it). A database that records
 * a migration this binary does not carry was written by a newer lyceumd: refused, unchanged. */
static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st;
    int version, had_table, top = 0, err = 0;

    if (pragma_int(db,
                   "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                   "name = 'schema_migrations'",
                   &had_table) < 0 ||
        pragma_int(db, "PRAGMA user_version", &version) < 0)
        return LY_EDB;
    if (!had_table && make_record(db, version) < 0)
        return LY_EDB;
    if (sqlite3_prepare_v2(db, "SELECT number, name FROM schema_migrations ORDER BY number", -1,
                           &st, NULL) != SQLITE_OK)
        return LY_EDB;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int number = sqlite3_column_int(st, 0);
        top = number > top ? number : top;
        if (!known(number)) {
            log_error("the database has migration %03d (%s), which this lyceumd does not know: "
                      "it was written by a newer version (run that version, or restore a "
                      "backup)",
                      number, (const char *)sqlite3_column_text(st, 1));
            err = LY_EDB;
            break;
        }
    }
    sqlite3_finalize(st);
    if (err)
        return err;
    for (const struct store_migration *m = store_migrations; m->sql; m++) {
        int done;
        char sql[64], *script;
        size_t len;

        snprintf(sql, sizeof(sql), "SELECT count(*) FROM schema_migrations WHERE number = %d",
                 m->number);
        if (pragma_int(db, sql, &done) < 0)
            return LY_EDB;
        if (done)
            continue;
        len = strlen(m->sql) + strlen(m->name) + 200;
        script = xmalloc(len);
        snprintf(script, len,
                 "%s;\nINSERT INTO schema_migrations (number, name, applied_at) "
                 "VALUES (%d, '%s', strftime('%%s', 'now'));\nPRAGMA user_version = %d;",
                 m->sql, m->number, m->name, m->number > top ? m->number : top);
        snprintf(sql, sizeof(sql), "migration %03d", m->number);
        err = exec_tx(db, script, sql);
        free(script);
        if (err)
            return err;
        log_info("applied migration %s", m->name);
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

int store_backup(const char *dest, char *why, size_t n)
{
    sqlite3 *src = store_db(), *dst = NULL;
    sqlite3_backup *b;
    int rc;

    if (!src) {
        snprintf(why, n, "the database does not open");
        return LY_EDB;
    }
    if (sqlite3_open_v2(dest, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        snprintf(why, n, "%s: %s", dest, dst ? sqlite3_errmsg(dst) : "cannot open");
        sqlite3_close(dst);
        return LY_EIO;
    }
    b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        snprintf(why, n, "%s", sqlite3_errmsg(dst));
        sqlite3_close(dst);
        return LY_EDB;
    }
    /* Every page in one step: one read transaction, so the copy is the database as one commit
     * left it, while writers go on (WAL readers do not block them). */
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
        sqlite3_sleep(10);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        snprintf(why, n, "copying the database: %s", sqlite3_errstr(rc));
        sqlite3_close(dst);
        return LY_EDB;
    }
    if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(why, n, "the copy: %s", sqlite3_errmsg(dst));
        sqlite3_close(dst);
        return LY_EDB;
    }
    sqlite3_close(dst);
    return 0;
}

int store_check_file(const char *path, int *schema, char *why, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st;
    int ok = 0;

    *schema = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(why, n, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return LY_EDB;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
        ok = sqlite3_step(st) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
        sqlite3_finalize(st);
    }
    if (ok && sqlite3_prepare_v2(db, "SELECT max(number) FROM schema_migrations", -1, &st, NULL) ==
                  SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *schema = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    if (!ok) {
        snprintf(why, n, "%s is not a sound SQLite database (PRAGMA integrity_check)", path);
        return LY_EDB;
    }
    return 0;
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
