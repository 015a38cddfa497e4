/*
 * Unit tests for src/http/router.c: path parameters, trailing slashes (and R_SLASH_ONLY routes,
 * the one exception), 404 against 405 (with the Allow list), mount prefixes, and the
 * order-dependent traps of a linear route scan. A
 * table written for the tests pins the rules; the real api_mounts pins the routes that
 * clients of API.md depend on (/auth/api-keys/validate against /auth/api-keys/{id}).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/api.h"
#include "core/arena.h"
#include "core/err.h"
#include "http/router.h"

#include <stdlib.h>
#include <string.h>

static int h_list(struct req *r)
{
    (void)r;
    return 0;
}
static int h_create(struct req *r)
{
    (void)r;
    return 0;
}
static int h_get(struct req *r)
{
    (void)r;
    return 0;
}
static int h_delete(struct req *r)
{
    (void)r;
    return 0;
}
static int h_part(struct req *r)
{
    (void)r;
    return 0;
}
static int h_search(struct req *r)
{
    (void)r;
    return 0;
}
static int h_plain(struct req *r)
{
    (void)r;
    return 0;
}
static int h_health(struct req *r)
{
    (void)r;
    return 0;
}

static const struct route item_routes[] = {
    {"GET", "/items/", h_list, 0, NULL, NULL, NULL},
    {"POST", "/items/", h_create, 0, NULL, NULL, NULL},
    {"GET", "/items/{item_id}", h_get, 0, NULL, NULL, NULL},
    {"DELETE", "/items/{item_id}", h_delete, 0, NULL, NULL, NULL},
    {"GET", "/items/{item_id}/parts/{part_id}", h_part, 0, NULL, NULL, NULL},
    /* Declared after GET /items/{item_id}: a GET of /items/search is that route's. */
    {"POST", "/items/search", h_search, 0, NULL, NULL, NULL},
    {0},
};
static const struct route other_routes[] = {
    {"GET", "/plain", h_plain, 0, NULL, NULL, NULL},
    {0},
};
static const struct route root_routes[] = {
    {"GET", "/health", h_health, R_PUBLIC, NULL, NULL, NULL},
    {0},
};
static const struct mount mounts[] = {
    {"", root_routes},
    {"/api/v2", root_routes},
    {"/api/v2", item_routes},
    {"/api/v2", other_routes},
    {NULL, NULL},
};

struct fixture {
    struct arena arena;
    struct route_match m;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    arena_init(&f->arena);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    arena_release(&f->arena);
    free(f);
    return 0;
}

/* Matches and checks the handler; returns the match for further checks. */
static struct route_match *expect_route(void **state, const struct mount *mt, const char *method,
                                        const char *path, handler_fn want)
{
    struct fixture *f = *state;
    int err = router_match(mt, method, path, &f->arena, &f->m);

    if (err)
        fail_msg("%s %s: error %d, want a match", method, path, err);
    assert_non_null(f->m.route);
    assert_non_null(f->m.mount);
    if (f->m.route->handler != want)
        fail_msg("%s %s matched %s %s", method, path, f->m.route->method, f->m.route->path);
    return &f->m;
}

static void expect_405(void **state, const struct mount *mt, const char *method, const char *path,
                       const char *allow)
{
    struct fixture *f = *state;
    int err = router_match(mt, method, path, &f->arena, &f->m);

    if (err != LY_EMETHOD)
        fail_msg("%s %s: got %d, want 405", method, path, err);
    assert_null(f->m.route);
    assert_true(f->m.path_matched);
    assert_string_equal(f->m.allow, allow);
}

static void expect_404(void **state, const struct mount *mt, const char *method, const char *path)
{
    struct fixture *f = *state;
    int err = router_match(mt, method, path, &f->arena, &f->m);

    if (err != LY_ENOTFOUND)
        fail_msg("%s %s: got %d, want 404", method, path, err);
    assert_null(f->m.route);
    assert_false(f->m.path_matched);
    assert_string_equal(f->m.allow, "");
}

static void test_static_paths(void **state)
{
    struct route_match *m = expect_route(state, mounts, "GET", "/health", h_health);

    assert_string_equal(m->mount->prefix, "");
    assert_int_equal(m->nparams, 0);
    m = expect_route(state, mounts, "GET", "/api/v2/health", h_health);
    assert_string_equal(m->mount->prefix, "/api/v2");
    expect_route(state, mounts, "GET", "/api/v2/plain", h_plain);
    expect_route(state, mounts, "POST", "/api/v2/items/search", h_search);
}

static void test_trailing_slash_both_ways(void **state)
{
    /* Pattern with a slash, path without and with. */
    expect_route(state, mounts, "GET", "/api/v2/items", h_list);
    expect_route(state, mounts, "GET", "/api/v2/items/", h_list);
    expect_route(state, mounts, "POST", "/api/v2/items", h_create);
    /* Pattern without a slash, path with. */
    expect_route(state, mounts, "GET", "/api/v2/plain/", h_plain);
    expect_route(state, mounts, "GET", "/health/", h_health);
    /* Only one slash is forgiven. */
    expect_404(state, mounts, "GET", "/api/v2/plain//");
}

static void test_params(void **state)
{
    struct route_match *m = expect_route(state, mounts, "GET", "/api/v2/items/42", h_get);

    assert_int_equal(m->nparams, 1);
    assert_string_equal(m->names[0], "item_id");
    assert_string_equal(m->values[0], "42");
    m = expect_route(state, mounts, "GET", "/api/v2/items/42/", h_get);
    assert_string_equal(m->values[0], "42"); /* the trailing slash is not part of the value */
    m = expect_route(state, mounts, "GET", "/api/v2/items/a.b-c_d%20~/parts/x", h_part);
    assert_int_equal(m->nparams, 2);
    assert_string_equal(m->names[0], "item_id");
    assert_string_equal(m->values[0], "a.b-c_d%20~");
    assert_string_equal(m->names[1], "part_id");
    assert_string_equal(m->values[1], "x");
    /* An empty segment does not fill a parameter; a parameter never spans a slash. */
    expect_404(state, mounts, "GET", "/api/v2/items//parts/x");
    expect_404(state, mounts, "GET", "/api/v2/items/a/b/parts/x");
    expect_404(state, mounts, "GET", "/api/v2/items/42/parts");
    expect_404(state, mounts, "GET", "/api/v2/items/42/parts/");
    expect_404(state, mounts, "GET", "/api/v2/items/42/parts/x/y");
}

static void test_params_are_copies(void **state)
{
    char path[] = "/api/v2/items/abc";
    struct route_match *m = expect_route(state, mounts, "GET", path, h_get);

    /* The server may reuse the path's buffer: values live in the arena. */
    memset(path, 'Z', sizeof(path) - 1);
    assert_string_equal(m->values[0], "abc");
}

static void test_405_allow(void **state)
{
    expect_405(state, mounts, "PUT", "/api/v2/items/42", "GET, DELETE");
    expect_405(state, mounts, "PATCH", "/api/v2/items", "GET, POST");
    expect_405(state, mounts, "PATCH", "/api/v2/items/", "GET, POST");
    expect_405(state, mounts, "POST", "/api/v2/plain", "GET");
    expect_405(state, mounts, "POST", "/health", "GET");
    /* Methods are case-sensitive, as in HTTP. */
    expect_405(state, mounts, "get", "/api/v2/plain", "GET");
    expect_405(state, mounts, "DELETE", "/api/v2/items/search/parts/1", "GET");
}

static void test_405_allow_once(void **state)
{
    static const struct route dup[] = {
        {"GET", "/x/{a}", h_get, 0, NULL, NULL, NULL},
        {"GET", "/x/y", h_plain, 0, NULL, NULL, NULL},
        {"POST", "/x/y", h_create, 0, NULL, NULL, NULL},
        {0},
    };
    static const struct mount dup_mounts[] = {{"", dup}, {"", dup}, {NULL, NULL}};

    /* Two routes (and two mounts) answering GET on one path list GET once. */
    expect_405(state, dup_mounts, "PUT", "/x/y", "GET, POST");
}

static void test_order_traps(void **state)
{
    struct route_match *m;

    /* GET /items/search is GET /items/{item_id} with item_id "search": first match wins. */
    m = expect_route(state, mounts, "GET", "/api/v2/items/search", h_get);
    assert_string_equal(m->values[0], "search");
    /* DELETE likewise; but POST finds the literal route further down. */
    expect_route(state, mounts, "DELETE", "/api/v2/items/search", h_delete);
    expect_route(state, mounts, "POST", "/api/v2/items/search", h_search);
    /* A method only the literal route has is not a 405 of the parameter routes. */
    expect_405(state, mounts, "PUT", "/api/v2/items/search", "GET, DELETE, POST");
}

static void test_prefixes(void **state)
{
    expect_404(state, mounts, "GET", "/api/v2");
    expect_404(state, mounts, "GET", "/api/v2/");
    expect_404(state, mounts, "GET", "/api/v2x/plain");
    expect_404(state, mounts, "GET", "/api/v2plain");
    expect_404(state, mounts, "GET", "/plain"); /* not mounted at the root */
    expect_404(state, mounts, "GET", "/api/v3/plain");
    expect_404(state, mounts, "GET", "api/v2/plain");
    expect_404(state, mounts, "GET", "");
    expect_404(state, mounts, "GET", "/");
    expect_404(state, mounts, "GET", "/api/v2/nothing");
}

static void test_many_params_refused(void **state)
{
    static const struct route wide[] = {
        {"GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h_get, 0, NULL, NULL, NULL},
        {"GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", h_part, 0, NULL, NULL, NULL},
        {0},
    };
    static const struct mount wide_mounts[] = {{"", wide}, {NULL, NULL}};
    struct route_match *m;

    /* More captures than ROUTER_MAX_PARAMS never match (and never overflow the arrays). */
    expect_404(state, wide_mounts, "GET", "/1/2/3/4/5/6/7/8/9");
    m = expect_route(state, wide_mounts, "GET", "/1/2/3/4/5/6/7/8", h_part);
    assert_int_equal(m->nparams, ROUTER_MAX_PARAMS);
    assert_string_equal(m->names[7], "h");
    assert_string_equal(m->values[7], "8");
}

/* R_SLASH_ONLY: "/models" and "/models/" as two routes (FastAPI's two declared routes). The
 * slash-only table is mounted after the other, so order alone cannot make it win. */
static const struct route openai_like[] = {
    {"GET", "/models", h_plain, 0, NULL, NULL, NULL},
    {"POST", "/models", h_create, 0, NULL, NULL, NULL},
    {0},
};
static const struct route catalogue_like[] = {
    {"GET", "/models/", h_list, R_SLASH_ONLY, NULL, NULL, NULL},
    {"GET", "/models/{model_id}", h_get, 0, NULL, NULL, NULL},
    {0},
};
static const struct mount slash_mounts[] = {
    {"/v", openai_like},
    {"/v", catalogue_like},
    {"/w", openai_like},
    {NULL, NULL},
};

static void test_slash_only_routes(void **state)
{
    struct route_match *m;

    /* Without the slash: the other route; with it: the slash-only one. */
    expect_route(state, slash_mounts, "GET", "/v/models", h_plain);
    expect_route(state, slash_mounts, "GET", "/v/models/", h_list);
    /* Where no slash-only route is mounted, the slash changes nothing. */
    expect_route(state, slash_mounts, "GET", "/w/models/", h_plain);
    /* A method the slash-only route lacks goes on to the route that ignores the slash. */
    expect_route(state, slash_mounts, "POST", "/v/models/", h_create);
    expect_405(state, slash_mounts, "PUT", "/v/models/", "GET, POST");
    expect_405(state, slash_mounts, "PUT", "/v/models", "GET, POST");
    /* The routes below keep ignoring the slash; still only one slash is forgiven. */
    m = expect_route(state, slash_mounts, "GET", "/v/models/x", h_get);
    assert_string_equal(m->values[0], "x");
    m = expect_route(state, slash_mounts, "GET", "/v/models/x/", h_get);
    assert_string_equal(m->values[0], "x");
    expect_404(state, slash_mounts, "GET", "/v/models//");
    expect_404(state, slash_mounts, "GET", "/w/models//");
}

/* The real tables: what API.md's clients call. */
static void test_api_keys_routes(void **state)
{
    struct route_match *m;
    struct fixture *f = *state;

    assert_int_equal(
        router_match(api_mounts, "POST", API_PREFIX "/auth/api-keys/validate", &f->arena, &f->m),
        0);
    assert_string_equal(f->m.route->path, "/auth/api-keys/validate");
    assert_int_equal(f->m.nparams, 0);

    assert_int_equal(
        router_match(api_mounts, "DELETE", API_PREFIX "/auth/api-keys/abc", &f->arena, &f->m), 0);
    m = &f->m;
    assert_string_equal(m->route->path, "/auth/api-keys/{api_key_id}");
    assert_string_equal(m->names[0], "api_key_id");
    assert_string_equal(m->values[0], "abc");

    assert_int_equal(
        router_match(api_mounts, "PATCH", API_PREFIX "/auth/api-keys/abc/toggle", &f->arena, &f->m),
        0);
    assert_string_equal(f->m.route->path, "/auth/api-keys/{api_key_id}/toggle");
    assert_string_equal(f->m.values[0], "abc");

    for (int slash = 0; slash < 2; slash++) {
        const char *p = slash ? API_PREFIX "/auth/api-keys/" : API_PREFIX "/auth/api-keys";

        assert_int_equal(router_match(api_mounts, "GET", p, &f->arena, &f->m), 0);
        assert_string_equal(f->m.route->path, "/auth/api-keys/");
        assert_string_equal(f->m.route->method, "GET");
        assert_int_equal(router_match(api_mounts, "POST", p, &f->arena, &f->m), 0);
        assert_string_equal(f->m.route->method, "POST");
    }
    expect_405(state, api_mounts, "GET", API_PREFIX "/auth/api-keys/validate", "DELETE, POST");
    expect_405(state, api_mounts, "PUT", API_PREFIX "/auth/api-keys", "GET, POST");
    expect_405(state, api_mounts, "GET", API_PREFIX "/auth/login", "POST");
    expect_404(state, api_mounts, "GET", API_PREFIX "/auth/api-keys/abc/toggle/x");
}

static void test_api_models_routes(void **state)
{
    static const char *const openai[] = {API_PREFIX "/models",
                                         API_PREFIX "/serverless/models",
                                         API_PREFIX "/serverless/models/",
                                         "/openai/v1/models",
                                         "/openai/v1/models/",
                                         NULL};
    struct fixture *f = *state;

    /* OpenAI's list at every prefix, but the catalogue array on /api/v2/external/models/. */
    for (int i = 0; openai[i]; i++) {
        assert_int_equal(router_match(api_mounts, "GET", openai[i], &f->arena, &f->m), 0);
        assert_string_equal(f->m.route->path, "/models");
        assert_false(f->m.route->flags & R_SLASH_ONLY);
    }
    assert_int_equal(router_match(api_mounts, "GET", API_PREFIX "/models/", &f->arena, &f->m), 0);
    assert_string_equal(f->m.route->path, "/models/");
    assert_true(f->m.route->flags & R_SLASH_ONLY);
    assert_int_equal(router_match(api_mounts, "GET", API_PREFIX "/models/sync", &f->arena, &f->m),
                     0);
    assert_string_equal(f->m.route->path, "/models/sync");
    assert_int_equal(
        router_match(api_mounts, "GET", API_PREFIX "/models/abc/instances/", &f->arena, &f->m), 0);
    assert_string_equal(f->m.route->path, "/models/{model_id}/instances");
    for (int slash = 0; slash < 2; slash++) {
        assert_int_equal(router_match(api_mounts, "POST",
                                      slash ? API_PREFIX "/sync/" : API_PREFIX "/sync", &f->arena,
                                      &f->m),
                         0);
        assert_string_equal(f->m.route->path, "/sync/");
    }
    expect_405(state, api_mounts, "POST", API_PREFIX "/models/", "GET");
    expect_404(state, api_mounts, "GET", "/openai/v1/models/sync");
}

static void test_api_mounts(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(router_match(api_mounts, "GET", "/health", &f->arena, &f->m), 0);
    assert_int_equal(router_match(api_mounts, "GET", API_PREFIX "/health", &f->arena, &f->m), 0);
    assert_int_equal(router_match(api_mounts, "GET", "/openapi.json", &f->arena, &f->m), 0);
    assert_int_equal(router_match(api_mounts, "GET", "/api/v1/api-keys", &f->arena, &f->m), 0);
    assert_string_equal(f->m.mount->prefix, "/api/v1");
    assert_int_equal(router_match(api_mounts, "GET", API_PREFIX "/user/status/", &f->arena, &f->m),
                     0);
    assert_string_equal(f->m.route->path, "/user/status");
    expect_404(state, api_mounts, "GET", API_PREFIX);
    expect_404(state, api_mounts, "GET", API_PREFIX "/");
    expect_404(state, api_mounts, "GET", API_PREFIX "/user/status/extra");
    expect_404(state, api_mounts, "GET", "/user/status"); /* only under the prefix */
    expect_404(state, api_mounts, "GET", "/api/v1/user/status");
    expect_405(state, api_mounts, "POST", API_PREFIX "/user/status", "GET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_static_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_are_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_405_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_405_allow_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_traps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_params_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_keys_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slash_only_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_models_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_mounts, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
