/*
 * libFuzzer target for the API: each input becomes one struct req, built in memory the way
 * src/http/server.c fills one, and goes through the real dispatcher api_dispatch() (router,
 * authentication, org resolution, body validation, handler) against a real store. After each
 * request it checks what a client would see (see check_response) and that the store is left
 * clean (no open transaction, no statement left running).
 *
 * Input format (`sh tests/fuzz/run.sh` explains how to reproduce a crash):
 *
 *   byte 0   request selector
 *              bits 0-2  method: GET POST PATCH DELETE PUT HEAD OPTIONS "get" (wrong case)
 *              bits 3-4  path prefix: 0 none, 1 and 2 "/api/v2/external", 3 "/api/v1"
 *   path     up to the first '\n' (or the end of the input), appended to the prefix. A '?'
 *            splits off a query string "a=1&b=2", answered by the query callback as MHD would.
 *   byte     credentials selector
 *              bits 0-2  Authorization: 0 none, 1 and 7 "Bearer <the user's API key>",
 *                        2 "Bearer <a JWT of the user>", 3 "Bearer <an org API key>",
 *                        4 "Bearer <a garbage token>", 5 "Bearer " + the next line,
 *                        6 the next line as the whole header
 *              bits 3-4  X-Org-Slug: 0 none, 1 the user's own org, 2 an unknown org,
 *                        3 the next line (after the Authorization line, if any)
 *   lines    the lines that the selector asked for, each ended by '\n'
 *   body     the rest of the input, as the request body (not NUL-terminated, as in server.c)
 *
 * Every input starts from the same database: the initial state (one user with a default org,
 * a user key, an org key and a JWT session) is kept in an in-memory copy and written back
 * with SQLite's backup API whenever a request changed anything. So a crash reproduces from
 * its one input, and a request that deletes the account or revokes the key does not starve
 * every later input of authenticated routes.
 *
 * POST /auth/login with a body that passes validation is skipped (the input is rejected):
 * it runs argon2id, about 20 ms a try, which would make the run a password-hashing benchmark.
 * Its router, validation and 422 paths are still fuzzed; set LYCEUMD_FUZZ_LOGIN=1 to run the
 * handler too. A 500 is treated as a crash (a client input must never make the server fail);
 * set LYCEUMD_FUZZ_ALLOW_500=1 to let it pass. LYCEUMD_FUZZ_VERBOSE=1 prints each request
 * and its response (e.g. `LYCEUMD_FUZZ_VERBOSE=1 build/fuzz/fuzz_api FILE...`).
 */
#include "api/api.h"
#include "auth/accounts.h"
#include "auth/identity.h"
#include "auth/mfa.h"
#include "auth/token.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/req.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "store/db.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_LINE 4096

static char data_dir[512];
static sqlite3 *snapshot; /* the initial database, in memory */
static int64_t clean_changes;
static char user_key[API_KEY_LEN + 1], org_key[API_KEY_LEN + 1];
static char *user_jwt, *org_slug;
static int allow_500, run_login, verbose;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_api: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

static void cleanup(void)
{
    static const char *files[] = {"lyceumd.db", "lyceumd.db-wal", "lyceumd.db-shm", "jwt.key"};
    char path[600];

    if (!data_dir[0])
        return;
    store_close();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", data_dir, files[i]);
        unlink(path);
    }
    rmdir(data_dir);
}

static void copy_db(sqlite3 *to, sqlite3 *from)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");

    if (!b)
        die("cannot start a database backup", sqlite3_errmsg(to));
    if (sqlite3_backup_step(b, -1) != SQLITE_DONE)
        die("database backup failed", sqlite3_errmsg(to));
    sqlite3_backup_finish(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    struct new_account acct;
    struct new_key k;
    struct arena a;
    const char *why = NULL;
    json_t *login = NULL;
    char path[600];

    (void)argc;
    (void)argv;
    allow_500 = getenv("LYCEUMD_FUZZ_ALLOW_500") != NULL;
    run_login = getenv("LYCEUMD_FUZZ_LOGIN") != NULL;
    verbose = getenv("LYCEUMD_FUZZ_VERBOSE") != NULL;
    log_set_level(LOG_WARN);
    snprintf(data_dir, sizeof(data_dir), "%s/lyceumd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(data_dir))
        die("cannot create a data directory", data_dir);
    atexit(cleanup);
    snprintf(path, sizeof(path), "%s/lyceumd.db", data_dir);
    if (store_open(path) || token_init(data_dir) || mfa_init() || secrets_init(data_dir) ||
        bucket_init(data_dir, 1 << 20))
        die("cannot open the store", path);
    api_settings.data_dir = data_dir;

    arena_init(&a);
    if (accounts_create(&a, "fuzz@example.com", "fuzz-password-1", "Fuzz User", 0, 5 * MICRO, 0,
                        &acct, &why))
        die("cannot create the user", why);
    org_slug = xstrdup(acct.org_slug);
    if (accounts_key_create(acct.user_id, NULL, "fuzz", 0, &k))
        die("cannot create the user key", NULL);
    memcpy(user_key, k.key, sizeof(user_key));
    if (accounts_key_create(acct.user_id, acct.org_id, "fuzz-org", 0, &k))
        die("cannot create the org key", NULL);
    memcpy(org_key, k.key, sizeof(org_key));
    if (identity_issue(acct.user_id, &login))
        die("cannot issue a JWT", NULL);
    user_jwt = xstrdup(json_string_value(json_object_get(login, "access_token")));
    json_decref(login);
    arena_release(&a);

    if (sqlite3_open(":memory:", &snapshot) != SQLITE_OK)
        die("cannot open the snapshot", NULL);
    copy_db(snapshot, store_db());
    clean_changes = sqlite3_total_changes64(store_db());
    return 0;
}

/* What the server's MHD callbacks would answer, from the fuzz input. */
struct fuzz_conn {
    const char *authorization;
    const char *org_slug;
    char *query; /* "a=1&b=2", or NULL */
    struct arena *arena;
};

static const char *fuzz_header(void *c, const char *name)
{
    struct fuzz_conn *fc = c;

    if (strcasecmp(name, "Authorization") == 0)
        return fc->authorization;
    if (strcasecmp(name, "X-Org-Slug") == 0)
        return fc->org_slug;
    return NULL;
}

static const char *fuzz_query(void *c, const char *name)
{
    struct fuzz_conn *fc = c;
    size_t n = strlen(name);

    for (const char *p = fc->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len >= n && strncmp(p, name, n) == 0 && (len == n || p[n] == '=')) {
            if (len == n)
                return "";
            return arena_strndup(fc->arena, p + n + 1, len - n - 1);
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Takes bytes up to the next '\n' (consumed) as a string from the arena. */
static char *next_line(struct arena *a, const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = arena_strndup(a, (const char *)*p, n > MAX_LINE ? MAX_LINE : n);

    *p = nl ? nl + 1 : end;
    return s;
}

static void fail(const struct req *req, const char *why)
{
    char *body = req->resp ? json_dumps(req->resp, JSON_COMPACT) : NULL;

    fprintf(stderr, "fuzz_api: invariant broken: %s\n  request: %s %s\n  response: %d %s\n", why,
            req->method, req->path, req->status,
            body ? body : (req->raw ? "(raw body)" : "(no body)"));
    free(body);
    abort();
}

static int valid_loc(json_t *loc)
{
    const char *where = json_string_value(json_array_get(loc, 0));

    if (!json_is_array(loc) || !where)
        return 0;
    return strcmp(where, "body") == 0 || strcmp(where, "query") == 0 ||
           strcmp(where, "path") == 0 || strcmp(where, "header") == 0;
}

/* Checks the response the way a client would see it. */
static void check_response(const struct req *req)
{
    json_t *detail;
    const char *path;
    char *body;
    int allow = 0;

    if (req->status < 200 || req->status > 599)
        fail(req, "status outside 200..599");
    if (req->status == 500 && !allow_500)
        fail(req, "a client request made the server fail (500)");
    if (req->nheaders < 0 || req->nheaders > REQ_MAX_HEADERS)
        fail(req, "header count out of range");
    for (int i = 0; i < req->nheaders; i++) {
        if (!req->hname[i] || !req->hvalue[i])
            fail(req, "a response header without a name or value");
        if (strpbrk(req->hvalue[i], "\r\n"))
            fail(req, "a response header value holds CR or LF (header injection)");
        if (strcasecmp(req->hname[i], "Allow") == 0 && req->hvalue[i][0])
            allow = 1;
    }
    if (req->content_type && strcmp(req->content_type, "application/xml") == 0) {
        /* The S3 endpoint speaks S3: its errors are XML, <Error><Code>...</Code>...</Error>. */
        if (req->status >= 400 && (!req->raw || !strstr(req->raw, "<Error><Code>")))
            fail(req, "an S3 error without S3's XML body");
        return;
    }
    if (req->status == 405 && !allow)
        fail(req, "405 without an Allow header");
    if (req->raw || req->file_set) {
        if (req->status >= 400)
            fail(req, "an error with a raw body instead of {\"detail\"}");
        return;
    }
    if (!json_is_object(req->resp) && !json_is_array(req->resp))
        fail(req, "the response is not a JSON object or array");
    body = json_dumps(req->resp, JSON_COMPACT);
    if (!body)
        fail(req, "the response cannot be serialised");
    free(body);
    if (req->status < 400)
        return;
    path = req->path;
    while (path[0] == '/' && path[1] == '/')
        path++; /* routed as one slash, as api/dispatch.c does */
    if (api_openai_path(path)) {
        /* The OpenAI-compatible paths answer errors in OpenAI's shape. */
        json_t *e = json_object_get(req->resp, "error");

        if (!json_is_string(json_object_get(e, "message")) ||
            !json_string_length(json_object_get(e, "message")) ||
            !json_is_string(json_object_get(e, "type")))
            fail(req, "an OpenAI-path error without {\"error\": {message, type}}");
        return;
    }
    detail = json_object_get(req->resp, "detail");
    if (json_is_string(detail)) {
        if (!json_string_length(detail))
            fail(req, "an empty detail");
        return;
    }
    if (req->status != 422 || !json_is_array(detail) || !json_array_size(detail))
        fail(req, "an error without a detail string (or, for a 422, a list of errors)");
    for (size_t i = 0; i < json_array_size(detail); i++) {
        json_t *e = json_array_get(detail, i);

        if (!valid_loc(json_object_get(e, "loc")) || !json_is_string(json_object_get(e, "msg")) ||
            !json_is_string(json_object_get(e, "type")))
            fail(req, "a validation error without loc, msg and type");
    }
}

/* Checks that the request left the store as it should be for the next one on the thread. */
static void check_store(const struct req *req)
{
    sqlite3 *db = store_db();

    if (!sqlite3_get_autocommit(db))
        fail(req, "a transaction was left open");
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st))
        if (sqlite3_stmt_busy(st)) {
            fprintf(stderr, "fuzz_api: statement still running: %s\n", sqlite3_sql(st));
            fail(req, "a statement was not reset (missing q_done)");
        }
}

/* Runs argon2? POST /auth/login with a body that passes validation. */
static int is_slow_login(struct req *req)
{
    struct route_match m;
    struct req probe;
    int slow = 0;

    if (router_match(api_mounts, req->method, req->path, &req->arena, &m) || !m.route->body ||
        strcmp(m.route->path, "/auth/login") != 0)
        return 0;
    req_init(&probe);
    probe.body = req->body;
    probe.body_len = req->body_len;
    slow = req_parse_body(&probe, m.route->body) == 0;
    req_release(&probe);
    return slow;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "PATCH",   "DELETE",
                                          "PUT", "HEAD", "OPTIONS", "get"};
    static const char *const prefixes[] = {"", API_PREFIX, API_PREFIX, "/api/v1"};
    const uint8_t *p = data, *end = data + size;
    struct fuzz_conn fc = {0};
    struct req req;
    char *path, *q, *body = NULL;
    uint8_t sel, cred = 0;
    int rc = 0;

    if (size < 1)
        return -1;
    sel = *p++;
    req_init(&req);
    fc.arena = &req.arena;
    req.start_us = now_mono_us();
    req.method = arena_strdup(&req.arena, methods[sel & 7]);
    path = next_line(&req.arena, &p, end);
    q = strchr(path, '?');
    if (q) {
        *q = '\0';
        fc.query = q + 1;
    }
    req.path = arena_sprintf(&req.arena, "%s%s", prefixes[(sel >> 3) & 3], path);
    if (p < end)
        cred = *p++;
    switch (cred & 7) {
    case 1:
    case 7:
        fc.authorization = arena_sprintf(&req.arena, "Bearer %s", user_key);
        break;
    case 2:
        fc.authorization = arena_sprintf(&req.arena, "Bearer %s", user_jwt);
        break;
    case 3:
        fc.authorization = arena_sprintf(&req.arena, "Bearer %s", org_key);
        break;
    case 4:
        fc.authorization = "Bearer lk_0000000000000000000000000000000000000000";
        break;
    case 5:
        fc.authorization = arena_sprintf(&req.arena, "Bearer %s", next_line(&req.arena, &p, end));
        break;
    case 6:
        fc.authorization = next_line(&req.arena, &p, end);
        break;
    }
    switch ((cred >> 3) & 3) {
    case 1:
        fc.org_slug = org_slug;
        break;
    case 2:
        fc.org_slug = "no-such-org";
        break;
    case 3:
        fc.org_slug = next_line(&req.arena, &p, end);
        break;
    }
    if (p < end) {
        /* An exact-size copy: reading past body_len is an ASan report. */
        body = xmalloc((size_t)(end - p));
        memcpy(body, p, (size_t)(end - p));
        req.body = body;
        req.body_len = (size_t)(end - p);
    }
    snprintf(req.request_id, sizeof(req.request_id), "fuzz-request");
    req.conn = &fc;
    req.header_fn = fuzz_header;
    req.query_fn = fuzz_query;

    if (!run_login && is_slow_login(&req)) {
        rc = -1;
        goto out;
    }
    api_dispatch(&req);
    if (verbose) {
        char *out = req.resp ? json_dumps(req.resp, JSON_COMPACT) : NULL;

        fprintf(stderr, "fuzz_api: %s %s -> %d %.300s\n", req.method, req.path, req.status,
                out ? out : "(raw)");
        free(out);
    }
    check_response(&req);
    check_store(&req);
out:
    req_release(&req);
    free(body);
    if (sqlite3_total_changes64(store_db()) != clean_changes) {
        copy_db(store_db(), snapshot);
        clean_changes = sqlite3_total_changes64(store_db());
    }
    return rc;
}
