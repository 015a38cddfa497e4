/*
 * Unit tests for src/billing: the charge arithmetic and the meter, against a real store in a
 * temporary directory (nothing of ours is mocked).
 *
 * The rule: a run (or replica) that has run dt µs at P micro-credits per hour has cost
 * P * dt / 3.6e9 micro-credits rounded to the nearest, halves up, always computed on the whole
 * interval from its start; a window's charge is the difference of that figure at its two
 * edges, so the windows of a run add up to exactly the cost of its whole time. Here at awkward
 * prices (0.10, 0.07, 1.99, 5.49 per hour, where a window is not a whole number of
 * micro-credits), window lengths and last partial windows, through billing_charge() and
 * through the meter's passes and the final charge; the instant at which the meter plans its
 * next pass (an org's balance reaching zero); and monthly free credits across month ends
 * through billing_touch_at(), the clock being its argument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "billing/billing.h"
#include "runs/profiles.h"
#include "store/db.h"
#include "store/ledger.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOUR_US 3600000000LL

static const int64_t prices[] = {100000, 70000, 1990000, 5490000, 10000, 1, 36000000};

/* The rule, computed here on its own: P * dt / 3.6e9, nearest, halves up. */
static int64_t expected(int64_t price, int64_t dt)
{
    __int128 x = (__int128)price * dt;
    int64_t q = (int64_t)(x / HOUR_US), r = (int64_t)(x % HOUR_US);

    return q + (2 * r >= HOUR_US);
}

static void test_known_values(void **state)
{
    (void)state;
    /* 0.10/h: 1 s is 27.78 -> 28; 10 s 277.78 -> 278; 30 s 833.33 -> 833; an hour 100000. */
    assert_int_equal(billing_charge(100000, 0, 0, 1000000), 28);
    assert_int_equal(billing_charge(100000, 0, 0, 10000000), 278);
    assert_int_equal(billing_charge(100000, 0, 0, 30000000), 833);
    assert_int_equal(billing_charge(100000, 0, 0, HOUR_US), 100000);
    /* Windows of 10 s at 0.10/h: 278, 278, 277 (cumulative 278, 556, 833). */
    assert_int_equal(billing_charge(100000, 0, 10000000, 20000000), 278);
    assert_int_equal(billing_charge(100000, 0, 20000000, 30000000), 277);
    /* 0.07/h: 1 s is 19.44 -> 19; 1.99/h: 10 s is 5527.78 -> 5528; 5.49/h: 1 s is 1525. */
    assert_int_equal(billing_charge(70000, 0, 0, 1000000), 19);
    assert_int_equal(billing_charge(1990000, 0, 0, 10000000), 5528);
    assert_int_equal(billing_charge(5490000, 0, 0, 1000000), 1525);
    /* A half rounds up: 1.80/h for 1 ms is 0.5 -> 1; 1.79/h, 0.497 -> 0. */
    assert_int_equal(billing_charge(1800000, 0, 0, 1000), 1);
    assert_int_equal(billing_charge(1790000, 0, 0, 1000), 0);
    /* An empty or inverted interval is free. */
    assert_int_equal(billing_charge(100000, 0, 5, 5), 0);
    assert_int_equal(billing_charge(100000, 0, 9, 5), 0);
}

/* The windows of [t0, t0 + dt), cut as the meter cuts them (edges at t0 + k * w, the last one
 * partial), add up to the whole interval's cost; a whole window is within one micro-credit
 * of its exact share, and never negative. */
static void test_windows_add_up(void **state)
{
    static const int64_t windows[] = {1000000, 7000000, 10000000, 60000000};
    static const int64_t t0s[] = {0, 1764700000123457LL};

    (void)state;
    for (size_t pi = 0; pi < sizeof(prices) / sizeof(*prices); pi++)
        for (size_t wi = 0; wi < sizeof(windows) / sizeof(*windows); wi++)
            for (size_t ti = 0; ti < 2; ti++)
                for (int k = 0; k < 40; k++) {
                    int64_t p = prices[pi], w = windows[wi], t0 = t0s[ti];
                    /* k whole windows and a last partial one of 0, 1 µs, a third, w - 1 µs. */
                    int64_t tails[] = {0, 1, w / 3, w - 1};

                    for (int e = 0; e < 4; e++) {
                        int64_t end = t0 + k * w + tails[e], sum = 0, n = 0;

                        for (int64_t from = t0; from < end; n++) {
                            int64_t to = t0 + ((from - t0) / w + 1) * w;
                            int64_t c;

                            if (to > end)
                                to = end;
                            c = billing_charge(p, t0, from, to);
                            assert_true(c >= 0);
                            if (to - from == w) {
                                __int128 exact = (__int128)p * w;
                                int64_t lo = (int64_t)(exact / HOUR_US);

                                assert_true(c == lo || c == lo + 1);
                            }
                            sum += c;
                            from = to;
                        }
                        assert_int_equal(n, k + (tails[e] > 0));
                        assert_int_equal(sum, expected(p, end - t0));
                    }
                }
}

/* ---- the meter, against a store ---- */

static char dir[] = "/tmp/lyceumd-unit-billing-XXXXXX";
static int64_t base; /* a fixed instant: 2026-03-14 15:09:26.535897 UTC */

static int setup(void **state)
{
    char path[128], why[200];
    json_t *mt = json_loads("[{\"hardware_profile\": \"cpu\", \"price_per_hour\": \"0.10\"},"
                            " {\"hardware_profile\": \"cpu.b\", \"price_per_hour\": \"0.07\"},"
                            " {\"hardware_profile\": \"cpu.c\", \"price_per_hour\": \"1.99\"},"
                            " {\"hardware_profile\": \"cpu.d\", \"price_per_hour\": \"5.49\"},"
                            " {\"hardware_profile\": \"cpu.e\", \"price_per_hour\": \"36\"}]",
                            0, NULL);

    (void)state;
    base = 1773500966535897LL;
    if (!mkdtemp(dir) || !mt || profiles_init(mt, why, sizeof(why)))
        return -1;
    json_decref(mt);
    snprintf(path, sizeof(path), "%s/lyceumd.db", dir);
    /* A window of 7 s, so that window edges and seconds disagree; 0.5 free credits a month. */
    return store_open(path) || billing_init(dir, 500000, 7) ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[200];

    (void)state;
    store_close();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void add_org(const char *org, int64_t credits, int64_t at)
{
    assert_int_equal(q_exec("INSERT INTO orgs (id, slug, name, created_at) VALUES (?, ?, ?, ?)",
                            "sssi", org, org, org, at),
                     1);
    if (credits)
        assert_int_equal(q_exec("INSERT INTO ledger (org_id, kind, amount, created_at) VALUES "
                                "(?, 'grant', ?, ?)",
                                "sii", org, credits, at),
                         1);
}

static void add_run(const char *id, const char *org, const char *profile, int64_t running_at)
{
    assert_int_equal(q_exec("INSERT INTO runs (id, org_id, user_id, kind, profile, status, spec, "
                            "timeout_s, graceful_s, stream_token, created_at, running_at) VALUES "
                            "(?, ?, 'u', 1, ?, 'running', '{}', 600, 10, 'x', ?, ?)",
                            "sssii", id, org, profile, running_at, running_at),
                     1);
}

static int64_t sum_of(const char *sql, const char *arg)
{
    int64_t v = -1;

    assert_int_equal(q_int(&v, sql, "s", arg), 0);
    return v;
}

static int64_t balance(const char *org)
{
    int64_t v = -1;

    assert_int_equal(ledger_balance(org, &v), 0);
    return v;
}

static int in_list(json_t *list, const char *id)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
    return 0;
}

/* Runs metered by irregular passes, then ended: each run's windows, every one written once,
 * cover [running_at, end) without a gap and add up to the cost of its whole time. */
static void test_meter_passes_and_final_charge(void **state)
{
    static const char *profiles[] = {"cpu", "cpu.b", "cpu.c", "cpu.d"};
    static const int64_t price[] = {100000, 70000, 1990000, 5490000};
    static const int64_t passes[] = {3200000,  6999999,  7000000,  7000001, 15900000,
                                     16000000, 30100000, 30100000, 34900000};
    int64_t t0 = base + 1000000000;

    (void)state;
    add_org("org-meter", 1000000000, t0);
    for (int i = 0; i < 4; i++) {
        char id[32];

        snprintf(id, sizeof(id), "run-meter-%d", i);
        add_run(id, "org-meter", profiles[i], t0 + i * 123457);
    }
    for (size_t k = 0; k < sizeof(passes) / sizeof(*passes); k++) {
        json_t *broke = json_array();

        assert_int_equal(billing_meter_pass(t0 + passes[k], broke, NULL), 0);
        assert_int_equal(json_array_size(broke), 0);
        json_decref(broke);
    }
    for (int i = 0; i < 4; i++) {
        char id[32];
        int64_t start = t0 + i * 123457, end = t0 + 37123456 + i * 1000, n = 0, prev = start;
        sqlite3_stmt *st;

        snprintf(id, sizeof(id), "run-meter-%d", i);
        /* Whole windows only so far: [start, start + 28 s) in four windows of 7 s. */
        assert_int_equal(sum_of("SELECT count(*) FROM ledger WHERE ref = ?", id), 4);
        assert_int_equal(billing_charge_final(id, end, 0), 0);
        assert_int_equal(billing_charge_final(id, end, 0), 0); /* a second end adds nothing */
        assert_int_equal(sum_of("SELECT -sum(amount) FROM ledger WHERE ref = ?", id),
                         expected(price[i], end - start));
        assert_int_equal(billing_run_billed(id), expected(price[i], end - start));
        st = q_prepare("SELECT window_start, window_end FROM ledger WHERE ref = ? "
                       "ORDER BY window_start",
                       "s", id);
        assert_non_null(st);
        while (sqlite3_step(st) == SQLITE_ROW) {
            assert_int_equal(sqlite3_column_int64(st, 0), prev);
            prev = sqlite3_column_int64(st, 1);
            n++;
        }
        q_done(st);
        assert_int_equal(prev, end);
        assert_int_equal(n, 5); /* 4 whole windows of 7 s, and the final [28 s, 37.12 s) */
    }
    assert_int_equal(q_exec("UPDATE runs SET status = 'completed' WHERE org_id = 'org-meter'", ""),
                     4);
}

/* The meter plans its next pass for the instant the org's balance reaches zero at the rate its
 * runs use it, and stops them at that pass: not earlier, and not a pass later. */
static void test_broke_at_the_instant_of_zero(void **state)
{
    int64_t t0 = base + 2000000000, zero_at = 0, at;
    json_t *broke = json_array();

    (void)state;
    /* 0.03 credits; runs at 36/h and 1.99/h: 10000 + 552.78 per second. */
    add_org("org-zero", 30000, t0);
    add_run("run-zero-a", "org-zero", "cpu.e", t0);
    add_run("run-zero-b", "org-zero", "cpu.c", t0);
    assert_int_equal(billing_meter_pass(t0 + 500000, broke, &zero_at), 0);
    assert_int_equal(json_array_size(broke), 0);
    /* 30000 / (10552.78 per s) = 2.842855 s from the start. */
    at = zero_at - t0;
    assert_true(at >= 2842800 && at <= 2842900);
    /* Just before, the org still has credits (more passes in between change nothing). */
    assert_int_equal(billing_meter_pass(t0 + 1400000, broke, &zero_at), 0);
    assert_int_equal(billing_meter_pass(zero_at - 1000, broke, NULL), 0);
    assert_int_equal(json_array_size(broke), 0);
    /* At that instant both of its runs are stopped, and nothing else is. */
    assert_int_equal(billing_meter_pass(t0 + at, broke, &zero_at), 0);
    assert_true(in_list(broke, "run-zero-a") && in_list(broke, "run-zero-b"));
    assert_int_equal(json_array_size(broke), 2);
    assert_int_equal(zero_at, INT64_MAX);
    json_decref(broke);
    assert_int_equal(billing_charge_final("run-zero-a", t0 + at, 0), 0);
    assert_int_equal(billing_charge_final("run-zero-b", t0 + at, 0), 0);
    assert_true(balance("org-zero") <= 0 && balance("org-zero") > -2);
    assert_int_equal(q_exec("UPDATE runs SET status = 'aborted' WHERE org_id = 'org-zero'", ""), 2);
}

/* ---- monthly free credits ---- */

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};

    return (int64_t)timegm(&tm) * 1000000;
}

static int64_t free_entry(const char *org, const char *kind, const char *month)
{
    int64_t v = -1;

    assert_int_equal(q_int(&v,
                           "SELECT coalesce(sum(amount), 0) + 1000000000000 * (count(*) - 1) "
                           "FROM ledger WHERE org_id = ? AND kind = ? AND ref = ?",
                           "sss", org, kind, month),
                     0);
    return v; /* the entry's amount; far off when there is none or more than one */
}

static void spend(const char *org, int64_t amount, int64_t at)
{
    assert_int_equal(q_exec("INSERT INTO ledger (org_id, kind, amount, ref, created_at, "
                            "window_start, window_end) VALUES (?, 'run', ?, ?, ?, ?, ?)",
                            "siiiii", org, -amount, at, at, at - 1, at),
                     1);
}

static void test_free_credits_month_by_month(void **state)
{
    const char *org = "org-free";

    (void)state;
    add_org(org, 2000000, utc(2027, 1, 3, 0, 0, 0)); /* 2 paid credits */
    /* The month's grant at the first touch, once however often it is touched. */
    billing_touch_at(org, utc(2027, 1, 10, 12, 0, 0));
    billing_touch_at(org, utc(2027, 1, 10, 12, 0, 1));
    billing_touch_at(org, utc(2027, 1, 31, 23, 59, 59));
    assert_int_equal(free_entry(org, "free", "2027-01"), 500000);
    assert_int_equal(balance(org), 2500000);
    /* 0.2 spent in January: 0.3 of the free credits are left, then expire at its end. */
    spend(org, 150000, utc(2027, 1, 11, 0, 0, 0));
    spend(org, 50000, utc(2027, 1, 31, 23, 59, 59));
    billing_touch_at(org, utc(2027, 2, 1, 0, 0, 0));
    assert_int_equal(free_entry(org, "free_expiry", "2027-01"), -300000);
    assert_int_equal(free_entry(org, "free", "2027-02"), 500000);
    assert_int_equal(balance(org), 2500000); /* the paid credits untouched */
    billing_touch_at(org, utc(2027, 2, 20, 0, 0, 0));
    assert_int_equal(free_entry(org, "free_expiry", "2027-01"), -300000);
    assert_int_equal(free_entry(org, "free", "2027-02"), 500000);
    /* More spent in February than granted: nothing of it expires, the rest came off the paid. */
    spend(org, 700000, utc(2027, 2, 21, 0, 0, 0));
    /* No request in March; in April, February's grant expires all the same (it was used up),
     * and so would an unused one: see below. */
    billing_touch_at(org, utc(2027, 4, 2, 0, 0, 0));
    assert_int_equal(free_entry(org, "free_expiry", "2027-02"), 0);
    assert_int_equal(free_entry(org, "free", "2027-04"), 500000);
    assert_int_equal(balance(org), 2500000 - 700000 + 500000);
}

/* An org seen in May and then not before August loses May's unused grant (not only the last
 * month's is expired). */
static void test_free_credits_expire_after_a_quiet_month(void **state)
{
    const char *org = "org-quiet";

    (void)state;
    add_org(org, 1000000, utc(2027, 5, 1, 0, 0, 0));
    billing_touch_at(org, utc(2027, 5, 15, 0, 0, 0));
    spend(org, 100000, utc(2027, 5, 16, 0, 0, 0));
    billing_touch_at(org, utc(2027, 8, 1, 0, 0, 0));
    assert_int_equal(free_entry(org, "free_expiry", "2027-05"), -400000);
    assert_int_equal(free_entry(org, "free", "2027-08"), 500000);
    assert_int_equal(balance(org), 1000000 + 500000); /* the paid credit and August's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_windows_add_up),
        cmocka_unit_test(test_meter_passes_and_final_charge),
        cmocka_unit_test(test_broke_at_the_instant_of_zero),
        cmocka_unit_test(test_free_credits_month_by_month),
        cmocka_unit_test(test_free_credits_expire_after_a_quiet_month),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
