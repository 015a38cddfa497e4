/*
 * Unit tests for src/http/req.c: FastAPI-compatible body validation (req_parse_body), query
 * integers, the error body (req_set_error) and the small request helpers. Each validation
 * case compares the whole list of errors with the JSON a FastAPI service would send, so a
 * changed message, type or location fails here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/err.h"
#include "http/req.h"
#include "http/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct field fields[] = {
    {"name", FT_STRING, FF_REQUIRED, 1, 10, NULL},
    {"count", FT_INTEGER, 0, 1, 100, NULL},
    {"ratio", FT_NUMBER, 0, 0, 0, NULL},
    {"flag", FT_BOOLEAN, 0, 0, 0, NULL},
    {"meta", FT_OBJECT, FF_NULLABLE, 0, 0, NULL},
    {"tags", FT_ARRAY, 0, 0, 0, NULL},
    {"when", FT_DATETIME, FF_NULLABLE, 0, 0, NULL},
    {0},
};

static const struct field optional_fields[] = {
    {"note", FT_STRING, 0, 0, 0, NULL},
    {0},
};

static int setup(void **state)
{
    struct req *req = malloc(sizeof(*req));

    req_init(req);
    *state = req;
    return 0;
}

static int teardown(void **state)
{
    struct req *req = *state;

    req_release(req);
    free(req);
    return 0;
}

static int parse_n(struct req *req, const struct field *f, const char *body, size_t n)
{
    req->body = body;
    req->body_len = n;
    return req_parse_body(req, f);
}

static int parse(struct req *req, const char *body)
{
    return parse_n(req, fields, body, strlen(body));
}

/* Checks the recorded validation errors against want, a JSON array. */
static void expect_errors(struct req *req, const char *want)
{
    json_error_t jerr;
    json_t *w = json_loads(want, 0, &jerr);

    if (!w)
        fail_msg("bad expectation %s: %s", want, jerr.text);
    assert_non_null(req->verrs);
    if (!json_equal(req->verrs, w)) {
        char *got = json_dumps(req->verrs, JSON_COMPACT);

        print_error("got  %s\nwant %s\n", got, want);
        free(got);
        json_decref(w);
        fail();
    }
    json_decref(w);
}

/* One error of the body, for a field. */
static void expect_one(struct req *req, const char *body, const char *field, const char *msg,
                       const char *type)
{
    char want[512];

    assert_int_equal(parse(req, body), LY_EINVAL);
    snprintf(want, sizeof(want), "[{\"loc\":[\"body\",\"%s\"],\"msg\":\"%s\",\"type\":\"%s\"}]",
             field, msg, type);
    expect_errors(req, want);
}

static void test_valid_body(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse(req, "{\"name\":\"abc\",\"count\":5,\"ratio\":0.5,\"flag\":true,"
                                "\"meta\":{\"k\":1},\"tags\":[1,\"x\"],"
                                "\"when\":\"2030-01-01T00:00:00Z\",\"extra\":\"ignored\"}"),
                     0);
    assert_null(req->verrs);
    assert_string_equal(body_str(req, "name"), "abc");
    assert_int_equal(body_int(req, "count", -1), 5);
    assert_true(body_bool(req, "flag", 0));
    assert_true(body_has(req, "meta"));
    assert_false(body_has(req, "missing"));
    assert_int_equal(body_int(req, "missing", 77), 77);
    assert_int_equal(body_bool(req, "missing", -3), -3);
    assert_null(body_str(req, "missing"));
}

static void test_bounds_accepted(void **state)
{
    struct req *req = *state;

    /* Exactly at the bounds, and an integral float for an integer (as pydantic's lax mode). */
    assert_int_equal(parse(req, "{\"name\":\"a\",\"count\":1}"), 0);
    req_release(req);
    req_init(req);
    assert_int_equal(parse(req, "{\"name\":\"abcdefghij\",\"count\":100.0}"), 0);
    assert_int_equal(body_int(req, "count", -1), 100);
}

static void test_missing_body(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse(req, ""), LY_EINVAL);
    expect_errors(req, "[{\"loc\":[\"body\"],\"msg\":\"Field required\",\"type\":\"missing\"}]");
}

static void test_missing_body_optional(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse_n(req, optional_fields, "", 0), 0);
    assert_true(json_is_object(req->json));
    assert_int_equal(json_object_size(req->json), 0);
    assert_null(req->verrs);
}

static void test_null_body(void **state)
{
    struct req *req = *state;

    /* A JSON null body is a missing body, as in FastAPI. */
    assert_int_equal(parse(req, "null"), LY_EINVAL);
    expect_errors(req, "[{\"loc\":[\"body\"],\"msg\":\"Field required\",\"type\":\"missing\"}]");
}

static void test_missing_field(void **state)
{
    expect_one(*state, "{}", "name", "Field required", "missing");
}

static void test_required_not_nullable(void **state)
{
    /* null for a required field that is not nullable is a type error, not "missing". */
    expect_one(*state, "{\"name\":null}", "name", "Input should be a valid string", "string_type");
}

static void test_nullable_null(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse(req, "{\"name\":\"x\",\"meta\":null,\"when\":null}"), 0);
    assert_false(body_has(req, "meta"));
    assert_null(body_str(req, "when"));
}

static void test_wrong_types(void **state)
{
    struct req *req = *state;

    expect_one(req, "{\"name\":5}", "name", "Input should be a valid string", "string_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"count\":\"5\"}", "count", "Input should be a valid integer",
               "int_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"count\":1.5}", "count", "Input should be a valid integer",
               "int_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"ratio\":\"1\"}", "ratio", "Input should be a valid number",
               "float_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"flag\":1}", "flag", "Input should be a valid boolean",
               "bool_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"meta\":[]}", "meta", "Input should be a valid dictionary",
               "dict_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"tags\":{}}", "tags", "Input should be a valid list",
               "list_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"tags\":null}", "tags", "Input should be a valid list",
               "list_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"when\":5}", "when", "Input should be a valid string",
               "string_type");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"when\":\"2024-02-30T00:00:00Z\"}", "when",
               "Input should be a valid datetime", "datetime_from_date_parsing");
}

static void test_all_errors_in_order(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse(req, "{\"flag\":\"yes\",\"count\":0,\"tags\":1}"), LY_EINVAL);
    expect_errors(req,
                  "["
                  "{\"loc\":[\"body\",\"name\"],\"msg\":\"Field required\",\"type\":\"missing\"},"
                  "{\"loc\":[\"body\",\"count\"],"
                  "\"msg\":\"Input should be greater than or equal to 1\","
                  "\"type\":\"greater_than_equal\"},"
                  "{\"loc\":[\"body\",\"flag\"],\"msg\":\"Input should be a valid boolean\","
                  "\"type\":\"bool_type\"},"
                  "{\"loc\":[\"body\",\"tags\"],\"msg\":\"Input should be a valid list\","
                  "\"type\":\"list_type\"}]");
}

static void test_string_bounds(void **state)
{
    struct req *req = *state;

    expect_one(req, "{\"name\":\"\"}", "name", "String should have at least 1 character",
               "string_too_short");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"abcdefghijk\"}", "name",
               "String should have at most 10 characters", "string_too_long");
}

static void test_string_bounds_count_characters(void **state)
{
    struct req *req = *state;

    /* Ten characters of two bytes each: within max 10, as pydantic counts characters. */
    assert_int_equal(parse(req,
                           "{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                           "\xc3\xa9\xc3\xa9\xc3\xa9\"}"),
                     0);
    req_release(req);
    req_init(req);
    /* A four-byte character (U+1F600), written as a surrogate pair, is one character. */
    assert_int_equal(parse(req, "{\"name\":\"\\ud83d\\ude00\"}"), 0);
    req_release(req);
    req_init(req);
    expect_one(
        req,
        "{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\"}",
        "name", "String should have at most 10 characters", "string_too_long");
}

static void test_integer_bounds(void **state)
{
    struct req *req = *state;

    expect_one(req, "{\"name\":\"x\",\"count\":101}", "count",
               "Input should be less than or equal to 100", "less_than_equal");
    req_release(req);
    req_init(req);
    expect_one(req, "{\"name\":\"x\",\"count\":-9223372036854775808}", "count",
               "Input should be greater than or equal to 1", "greater_than_equal");
    req_release(req);
    req_init(req);
    /* Larger than any int64: jansson refuses it as malformed. */
    assert_int_equal(parse(req, "{\"name\":\"x\",\"count\":99999999999999999999}"), LY_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(req->verrs, 0), "type")),
                        "json_invalid");
}

/* The one error of a body that is not JSON: type json_invalid, loc ["body", offset]. */
static void expect_json_invalid(struct req *req, const char *body, size_t n)
{
    json_t *e, *loc;

    assert_int_equal(parse_n(req, fields, body, n), LY_EINVAL);
    assert_int_equal(json_array_size(req->verrs), 1);
    e = json_array_get(req->verrs, 0);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "json_invalid");
    assert_true(strncmp(json_string_value(json_object_get(e, "msg")), "JSON decode error: ", 19) ==
                0);
    loc = json_object_get(e, "loc");
    assert_int_equal(json_array_size(loc), 2);
    assert_string_equal(json_string_value(json_array_get(loc, 0)), "body");
    assert_true(json_is_integer(json_array_get(loc, 1)));
    assert_true(json_integer_value(json_array_get(loc, 1)) >= 0);
    assert_true(json_integer_value(json_array_get(loc, 1)) <= (json_int_t)n);
    assert_int_equal(json_object_size(e), 3);
    assert_null(req->json);
}

static void test_malformed_json(void **state)
{
    static const char *bad[] = {
        "{",
        "{\"name\":",
        "{\"name\":\"x\"",
        "{name:1}",
        "{\"name\":'x'}",
        "{\"name\":\"x\",}",
        "[1,",
        "}",
        "nul",
        "{\"name\":\"x\"} trailing",
        "{\"a\":1,\"a\":2}",
        "\xff",
        "{\"name\":\"\xc3\"}",
    };
    struct req *req = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_json_invalid(req, bad[i], strlen(bad[i]));
        req_release(req);
        req_init(req);
    }
}

static void test_nul_inside_strings(void **state)
{
    static const char raw[] = "{\"name\":\"a\0b\"}";
    struct req *req = *state;

    /* An escaped NUL would cut the C string the handlers see: refused. */
    expect_json_invalid(req, "{\"name\":\"a\\u0000b\"}", 19);
    req_release(req);
    req_init(req);
    /* So is a raw NUL byte (a control character inside a string). */
    expect_json_invalid(req, raw, sizeof(raw) - 1);
    req_release(req);
    req_init(req);
    /* A NUL after a complete object is trailing garbage. */
    expect_json_invalid(req, "{\"name\":\"x\"}\0", 13);
}

static void test_non_object_body(void **state)
{
    static const char *bodies[] = {"[]", "[{\"name\":\"x\"}]", "\"name\"", "42", "true"};
    struct req *req = *state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(parse(req, bodies[i]), LY_EINVAL);
        expect_errors(req, "[{\"loc\":[\"body\"],\"msg\":\"Input should be a valid dictionary or "
                           "object to extract fields from\",\"type\":\"model_attributes_type\"}]");
        req_release(req);
        req_init(req);
    }
}

static const char *query_table(void *conn, const char *name)
{
    const char *const *kv = conn;

    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static void test_query_int(void **state)
{
    static const char *const q[] = {
        "limit", "25",  "zero",  "0",   "big",  "101",
        "word",  "abc", "empty", "",    "huge", "99999999999999999999",
        "neg",   "-3",  "mixed", "12x", NULL,   NULL,
    };
    struct req *req = *state;
    long long v;

    req->conn = (void *)q;
    req->query_fn = query_table;
    assert_int_equal(req_query_int(req, "absent", 10, 1, 100, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(req_query_int(req, "limit", 10, 1, 100, &v), 0);
    assert_int_equal(v, 25);
    assert_int_equal(req_query_int(req, "neg", 0, -5, 5, &v), 0);
    assert_int_equal(v, -3);
    assert_null(req->verrs);

    assert_int_equal(req_query_int(req, "zero", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(v, 10); /* the default stays on error */
    assert_int_equal(req_query_int(req, "big", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(req_query_int(req, "word", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(req_query_int(req, "empty", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(req_query_int(req, "huge", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(req_query_int(req, "mixed", 10, 1, 100, &v), LY_EINVAL);
    assert_int_equal(req_check_valid(req), LY_EINVAL);
    expect_errors(
        req,
        "["
        "{\"loc\":[\"query\",\"zero\"],\"msg\":\"Input should be greater than or equal to 1\","
        "\"type\":\"greater_than_equal\"},"
        "{\"loc\":[\"query\",\"big\"],\"msg\":\"Input should be less than or equal to 100\","
        "\"type\":\"less_than_equal\"},"
        "{\"loc\":[\"query\",\"word\"],\"msg\":\"Input should be a valid integer, unable to parse "
        "string as an integer\",\"type\":\"int_parsing\"},"
        "{\"loc\":[\"query\",\"empty\"],\"msg\":\"Input should be a valid integer, unable to parse "
        "string as an integer\",\"type\":\"int_parsing\"},"
        "{\"loc\":[\"query\",\"huge\"],\"msg\":\"Input should be a valid integer, unable to parse "
        "string as an integer\",\"type\":\"int_parsing\"},"
        "{\"loc\":[\"query\",\"mixed\"],\"msg\":\"Input should be a valid integer, unable to parse "
        "string as an integer\",\"type\":\"int_parsing\"}]");
}

static void expect_detail(struct req *req, int status, const char *detail)
{
    assert_int_equal(req->status, status);
    assert_true(json_is_object(req->resp));
    assert_int_equal(json_object_size(req->resp), 1);
    assert_string_equal(json_string_value(json_object_get(req->resp, "detail")), detail);
}

static void test_set_error(void **state)
{
    struct req *req = *state;

    req_reply_raw(req, 200, "text/plain", "hello", 5);
    assert_int_equal(req_fail(req, LY_ENOTFOUND, "Run %s not found", "r-1"), LY_ENOTFOUND);
    req_set_error(req, LY_ENOTFOUND);
    expect_detail(req, 404, "Run r-1 not found");
    assert_null(req->raw); /* an error replaces a raw body */
    assert_null(req->content_type);

    req_release(req);
    req_init(req);
    req_set_error(req, LY_EFORBIDDEN); /* no detail recorded: the table's text */
    expect_detail(req, 403, "Forbidden");

    req_release(req);
    req_init(req);
    req_reply(req, json_pack("{s:i}", "replaced", 1));
    req_set_error(req, LY_EDB);
    expect_detail(req, 500, "Internal Server Error (database)");

    req_release(req);
    req_init(req);
    req_set_error(req, -999);
    expect_detail(req, 500, "Unknown error");
}

static void test_set_error_validation(void **state)
{
    struct req *req = *state;

    assert_int_equal(parse(req, "{}"), LY_EINVAL);
    req_set_error(req, LY_EINVAL);
    assert_int_equal(req->status, 422);
    assert_true(json_is_array(json_object_get(req->resp, "detail")));
    assert_true(json_equal(json_object_get(req->resp, "detail"), req->verrs));
}

static void test_set_error_bad_utf8(void **state)
{
    struct req *req = *state;
    char *body;

    /* A detail built from client input that is not UTF-8 (here a header cut at a byte limit
     * in the middle of a character) must still give a JSON body with a detail. */
    req_fail(req, LY_EFORBIDDEN, "You are not a member of organization '%.3s'", "ab\xc3\xa9");
    req_set_error(req, LY_EFORBIDDEN);
    assert_int_equal(req->status, 403);
    assert_non_null(req->resp);
    assert_true(json_is_string(json_object_get(req->resp, "detail")));
    body = json_dumps(req->resp, 0);
    assert_non_null(body);
    free(body);
}

static void test_helpers(void **state)
{
    struct req *req = *state;
    char value[] = "v0";

    assert_int_equal(req->status, 200);
    assert_null(req_header(req, "Authorization")); /* no callback: no headers */
    assert_null(req_query(req, "x"));
    assert_null(req_param(req, "id"));
    req->match.nparams = 1;
    req->match.names[0] = "id";
    req->match.values[0] = "abc";
    assert_string_equal(req_param(req, "id"), "abc");
    assert_null(req_param(req, "other"));

    for (int i = 0; i < REQ_MAX_HEADERS + 3; i++) {
        value[1] = (char)('0' + i);
        req_add_header(req, "X-Test", value);
    }
    assert_int_equal(req->nheaders, REQ_MAX_HEADERS); /* capped, extra ones dropped */
    assert_string_equal(req->hvalue[0], "v0");        /* copied, not aliased */

    assert_int_equal(req_reply_status(req, 201, json_object()), 0);
    assert_int_equal(req->status, 201);
    assert_int_equal(req_reply(req, json_array()), 0);
    assert_int_equal(req->status, 200);
    assert_true(json_is_array(req->resp));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_valid_body),
        T(test_bounds_accepted),
        T(test_missing_body),
        T(test_missing_body_optional),
        T(test_null_body),
        T(test_missing_field),
        T(test_required_not_nullable),
        T(test_nullable_null),
        T(test_wrong_types),
        T(test_all_errors_in_order),
        T(test_string_bounds),
        T(test_string_bounds_count_characters),
        T(test_integer_bounds),
        T(test_malformed_json),
        T(test_nul_inside_strings),
        T(test_non_object_body),
        T(test_query_int),
        T(test_set_error),
        T(test_set_error_validation),
        T(test_set_error_bad_utf8),
        T(test_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
