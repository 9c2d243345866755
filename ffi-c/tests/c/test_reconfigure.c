/* Runtime reconfiguration through the C ABI: fb_breaker_reconfigure (count and time windows,
 * and a breaker of a shared region, seen through a second mapping), fb_bucket_reconfigure(_at)
 * and fb_bucket_get_config, fb_bulkhead_reconfigure. The state is kept; an invalid
 * configuration, or a change of what is fixed (the window), is FB_ERR_INVALID_CONFIG naming
 * the field and the value, and changes nothing. */
#define _POSIX_C_SOURCE 200809L
#include <stdalign.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

static void fail_at(fb_breaker *b, uint64_t now) {
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, now), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, now), FB_OK);
}

static fb_state state_of(const fb_breaker *b) {
    fb_state s = 99;
    CHECK_RC(fb_breaker_state(b, &s), FB_OK);
    return s;
}

/* Field by field: the struct has padding, which memcmp would compare. */
static int same_config(const fb_breaker_config *a, const fb_breaker_config *b) {
    return a->failure_threshold == b->failure_threshold &&
           a->failure_rate_threshold == b->failure_rate_threshold &&
           a->slow_call_rate_threshold == b->slow_call_rate_threshold &&
           a->minimum_calls == b->minimum_calls &&
           a->slow_call_duration_ns == b->slow_call_duration_ns &&
           a->window_kind == b->window_kind && a->window_size == b->window_size &&
           a->window_buckets == b->window_buckets &&
           a->bucket_duration_ns == b->bucket_duration_ns &&
           a->wait_duration_ns == b->wait_duration_ns &&
           a->backoff_factor_milli == b->backoff_factor_milli &&
           a->jitter_permille == b->jitter_permille &&
           a->max_wait_duration_ns == b->max_wait_duration_ns &&
           a->jitter_seed == b->jitter_seed &&
           a->half_open_max_calls == b->half_open_max_calls &&
           a->success_threshold == b->success_threshold;
}

/* An invalid `c` is refused with `part` in the message, and the configuration stays. */
static void check_refused(fb_breaker *b, const fb_breaker_config *c, const char *part) {
    fb_breaker_config before, after;
    CHECK_RC(fb_breaker_get_config(b, &before), FB_OK);
    CHECK_RC(fb_breaker_reconfigure(b, c), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("fb_breaker_reconfigure: invalid ");
    CHECK_ERROR_HAS(part);
    CHECK_RC(fb_breaker_get_config(b, &after), FB_OK);
    CHECK(same_config(&before, &after));
}

static void test_count_breaker(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 5;
    c.wait_duration_ns = 1000;
    c.jitter_permille = 0;
    c.jitter_seed = 7;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    for (uint64_t t = 0; t < 3; t++) {
        fail_at(b, t);
    }
    fb_breaker_config n;
    CHECK_RC(fb_breaker_get_config(b, &n), FB_OK);
    n.failure_threshold = 4;
    CHECK_RC(fb_breaker_reconfigure(b, &n), FB_OK);
    fb_breaker_config back;
    CHECK_RC(fb_breaker_get_config(b, &back), FB_OK);
    CHECK(back.failure_threshold == 4 && back.wait_duration_ns == 1000 && back.jitter_seed == 7);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics_at(b, &m, 3), FB_OK);
    CHECK(m.state == FB_STATE_CLOSED && m.consecutive_failures == 3 && m.window_failures == 3);
    fail_at(b, 3); /* the 4th failure in a row: open under the new threshold */
    CHECK(state_of(b) == FB_STATE_OPEN);

    /* Invalid values, each named with the value given (even one too wide for the core). */
    fb_breaker_config bad = back;
    bad.failure_threshold = 0;
    check_refused(b, &bad, "failure_threshold = 0");
    bad = back;
    bad.failure_rate_threshold = 300;
    check_refused(b, &bad, "failure_rate_threshold = 300");
    bad = back;
    bad.wait_duration_ns = 0;
    check_refused(b, &bad, "wait_duration_ns = 0");
    /* The window is fixed: its size, its kind. */
    bad = back;
    bad.window_size = 50;
    check_refused(b, &bad, "window_size = 50");
    CHECK_ERROR_HAS("cannot change at run time");
    bad = back;
    bad.window_kind = FB_WINDOW_TIME;
    check_refused(b, &bad, "window_kind = 1");
    bad = back;
    bad.window_kind = 7;
    check_refused(b, &bad, "window_kind = 7");
    /* The other kind's window fields are ignored. */
    bad = back;
    bad.window_buckets = 5;
    CHECK_RC(fb_breaker_reconfigure(b, &bad), FB_OK);
    CHECK(state_of(b) == FB_STATE_OPEN); /* the state is kept */
    /* The new wait applies to the open period under way (opened at 3). */
    bad.wait_duration_ns = 10;
    CHECK_RC(fb_breaker_reconfigure(b, &bad), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 13), FB_OK);
    CHECK(p.kind == FB_PERMIT_PROBE);
    fb_breaker_free(b);

    /* Heap-free storage works the same. */
    static alignas(FB_BREAKER_STORAGE_ALIGN) unsigned char storage[FB_BREAKER_STORAGE_SIZE];
    CHECK_RC(fb_breaker_init(storage, sizeof storage, &c, &b), FB_OK);
    n = c;
    n.failure_threshold = 1;
    CHECK_RC(fb_breaker_reconfigure(b, &n), FB_OK);
    fail_at(b, 0);
    CHECK(state_of(b) == FB_STATE_OPEN);
}

static void test_time_breaker(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.window_kind = FB_WINDOW_TIME;
    c.window_buckets = 4;
    c.bucket_duration_ns = 1000;
    c.failure_threshold = FB_OFF;
    c.failure_rate_threshold = 50;
    c.minimum_calls = 4;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fail_at(b, 0);
    fail_at(b, 1);
    fb_breaker_config n = c;
    n.minimum_calls = 2; /* the window's 2 failures now reach the rule at the next failure */
    CHECK_RC(fb_breaker_reconfigure(b, &n), FB_OK);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics_at(b, &m, 2), FB_OK);
    CHECK(m.window_samples == 2 && m.window_failures == 2 && m.state == FB_STATE_CLOSED);
    fail_at(b, 2);
    CHECK(state_of(b) == FB_STATE_OPEN);

    fb_breaker_config bad = n;
    bad.window_buckets = 8;
    check_refused(b, &bad, "window_buckets = 8");
    bad = n;
    bad.bucket_duration_ns = 2000;
    check_refused(b, &bad, "bucket_duration_ns = 2000");
    bad = n;
    bad.window_kind = FB_WINDOW_COUNT;
    check_refused(b, &bad, "window_kind = 0");
    bad = n;
    bad.window_size = 7; /* a count window's field: ignored */
    CHECK_RC(fb_breaker_reconfigure(b, &bad), FB_OK);
    fb_breaker_free(b);
}

/* A breaker built without slow-call detection that gets it by reconfiguration: a duration
 * given to fb_breaker_record (on the library's clock) counts. */
static void test_slow_calls_turned_on(void) {
    fb_breaker_config c = fb_breaker_config_default();
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    c.slow_call_rate_threshold = 100;
    c.slow_call_duration_ns = 1000;
    c.minimum_calls = 1;
    CHECK_RC(fb_breaker_reconfigure(b, &c), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire(b, &p), FB_OK);
    CHECK_RC(fb_breaker_record(b, &p, FB_OUTCOME_SUCCESS, 5000), FB_OK);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics(b, &m), FB_OK);
    CHECK(m.slow == 1 && m.state == FB_STATE_OPEN);
    fb_breaker_free(b);
}

/* A region breaker reconfigured through one mapping is reconfigured in the other, and later
 * attaches must ask for the configuration in force. */
static void test_region_breaker(void) {
    fb_region_options o = fb_region_options_default();
    o.dir = dir;
    o.capacity = 4;
    fb_region *r1 = NULL, *r2 = NULL;
    CHECK_RC(fb_region_open("reconf", &o, &r1), FB_OK);
    CHECK_RC(fb_region_open("reconf", &o, &r2), FB_OK);
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 5;
    c.jitter_seed = 1;
    fb_breaker *a = NULL, *b = NULL, *x = NULL;
    CHECK_RC(fb_region_breaker(r1, "payments", &c, &a), FB_OK);
    CHECK_RC(fb_region_breaker(r2, "payments", &c, &b), FB_OK);
    for (uint64_t t = 0; t < 3; t++) {
        fail_at(a, t);
    }
    fb_breaker_config n = c;
    n.failure_threshold = 4;
    CHECK_RC(fb_breaker_reconfigure(b, &n), FB_OK);
    fb_breaker_config back;
    CHECK_RC(fb_breaker_get_config(a, &back), FB_OK);
    CHECK(back.failure_threshold == 4);
    fb_breaker_config bad = n;
    bad.window_size = 10;
    CHECK_RC(fb_breaker_reconfigure(a, &bad), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("window_size = 10");
    fail_at(a, 3);
    CHECK(state_of(b) == FB_STATE_OPEN);
    CHECK_RC(fb_region_breaker(r1, "payments", &c, &x), FB_ERR_REGION_CONFIG_MISMATCH);
    CHECK_RC(fb_region_breaker(r1, "payments", &n, &x), FB_OK);
    fb_breaker_free(x);

    /* Bucket and bulkhead slots too. */
    fb_bucket_config bc = fb_bucket_config_per_second(10, 10);
    fb_bucket *k1 = NULL, *k2 = NULL;
    CHECK_RC(fb_region_bucket(r1, "api", &bc, &k1), FB_OK);
    CHECK_RC(fb_region_bucket(r2, "api", &bc, &k2), FB_OK);
    fb_bucket_config nb = fb_bucket_config_per_second(1, 10);
    CHECK_RC(fb_bucket_reconfigure(k1, &nb), FB_OK);
    fb_bucket_config got;
    CHECK_RC(fb_bucket_get_config(k2, &got), FB_OK);
    CHECK(got.rate == 1 && got.period_ns == FB_SECOND && got.burst == 10);
    fb_bulkhead_config hc = {.max_concurrent = 2};
    fb_bulkhead *h1 = NULL, *h2 = NULL;
    CHECK_RC(fb_region_bulkhead(r1, "db", &hc, &h1), FB_OK);
    CHECK_RC(fb_region_bulkhead(r2, "db", &hc, &h2), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h2), FB_OK);
    CHECK_RC(fb_bulkhead_reconfigure(h1, 1), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h1), FB_REJECTED);
    CHECK_RC(fb_bulkhead_release(h2), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h1), FB_OK);
    CHECK_RC(fb_bulkhead_release(h1), FB_OK);

    fb_bulkhead_free(h1);
    fb_bulkhead_free(h2);
    fb_bucket_free(k1);
    fb_bucket_free(k2);
    fb_breaker_free(a);
    fb_breaker_free(b);
    fb_region_free(r1);
    fb_region_free(r2);
    CHECK_RC(fb_region_unlink("reconf", dir), FB_OK);
}

static void test_bucket(void) {
    fb_bucket_config c = fb_bucket_config_per_second(10, 10);
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    fb_bucket_config got;
    CHECK_RC(fb_bucket_get_config(b, &got), FB_OK);
    CHECK(memcmp(&got, &c, sizeof c) == 0);
    for (int i = 0; i < 5; i++) {
        CHECK_RC(fb_bucket_try_acquire_at(b, 1, NULL, 0), FB_OK);
    }
    fb_bucket_config n = fb_bucket_config_per_second(1, 10);
    CHECK_RC(fb_bucket_reconfigure_at(b, &n, 0), FB_OK);
    uint64_t tokens = 0;
    CHECK_RC(fb_bucket_available_at(b, &tokens, 0), FB_OK);
    CHECK(tokens == 5); /* the 5 tokens in use stay in use */
    CHECK_RC(fb_bucket_available_at(b, &tokens, FB_SECOND), FB_OK);
    CHECK(tokens == 6); /* and drain at the new rate */
    CHECK_RC(fb_bucket_get_config(b, &got), FB_OK);
    CHECK(got.rate == 1 && got.period_ns == FB_SECOND && got.burst == 10);

    /* A burst lowered below the tokens in use: nothing to take until they drain. */
    fb_bucket_config small = fb_bucket_config_per_second(1, 2);
    CHECK_RC(fb_bucket_reconfigure_at(b, &small, FB_SECOND), FB_OK);
    uint64_t wait = 0;
    CHECK_RC(fb_bucket_try_acquire_at(b, 1, &wait, FB_SECOND), FB_REJECTED);
    CHECK(wait > 0);

    /* Invalid: refused, named, nothing changed. */
    fb_bucket_config bad = fb_bucket_config_per_second(0, 5);
    CHECK_RC(fb_bucket_reconfigure_at(b, &bad, FB_SECOND), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("fb_bucket_reconfigure_at: invalid rate = 0");
    bad = small;
    bad.burst = 0;
    CHECK_RC(fb_bucket_reconfigure(b, &bad), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("fb_bucket_reconfigure: invalid burst = 0");
    bad = small;
    bad.period_ns = 0;
    CHECK_RC(fb_bucket_reconfigure_at(b, &bad, FB_SECOND), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("period_ns = 0");
    CHECK_RC(fb_bucket_get_config(b, &got), FB_OK);
    CHECK(memcmp(&got, &small, sizeof small) == 0);
    fb_bucket_free(b);

    /* On the library's clock, from heap-free storage. */
    static alignas(FB_BUCKET_STORAGE_ALIGN) unsigned char storage[FB_BUCKET_STORAGE_SIZE];
    CHECK_RC(fb_bucket_init(storage, sizeof storage, &c, &b), FB_OK);
    CHECK_RC(fb_bucket_try_acquire(b, 10, NULL), FB_OK);
    CHECK_RC(fb_bucket_reconfigure(b, &n), FB_OK);
    CHECK_RC(fb_bucket_try_acquire(b, 1, NULL), FB_REJECTED); /* still all in use */
    CHECK_RC(fb_bucket_get_config(b, &got), FB_OK);
    CHECK(memcmp(&got, &n, sizeof n) == 0);
}

static void test_bulkhead(void) {
    fb_bulkhead_config c = {.max_concurrent = 3};
    fb_bulkhead *b = NULL;
    CHECK_RC(fb_bulkhead_new(&c, &b), FB_OK);
    for (int i = 0; i < 3; i++) {
        CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    }
    CHECK_RC(fb_bulkhead_reconfigure(b, 1), FB_OK);
    fb_bulkhead_stats st;
    CHECK_RC(fb_bulkhead_metrics(b, &st), FB_OK);
    CHECK(st.max_concurrent == 1 && st.in_flight == 3);
    /* Below the slots out: nothing is admitted until they drop below the new limit. */
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED); /* 1 out: at the limit */
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED);
    /* Invalid: refused, named, nothing changed. */
    CHECK_RC(fb_bulkhead_reconfigure(b, 0), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("fb_bulkhead_reconfigure: invalid max_concurrent = 0");
    CHECK_RC(fb_bulkhead_metrics(b, &st), FB_OK);
    CHECK(st.max_concurrent == 1 && st.in_flight == 1);
    CHECK_RC(fb_bulkhead_reconfigure(b, 2), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    fb_bulkhead_free(b);
}

static void test_errors(void) {
    CHECK(FB_ERR_BUSY == -25);
    CHECK(strncmp(fb_result_str(FB_ERR_BUSY), "FB_ERR_BUSY: ", 13) == 0);
    fb_breaker_config c = fb_breaker_config_default();
    fb_bucket_config bc = fb_bucket_config_default();
    CHECK_RC(fb_breaker_reconfigure(NULL, &c), FB_ERR_NULL);
    CHECK_ERROR_HAS("fb_breaker_reconfigure: argument `breaker` is NULL");
    CHECK_RC(fb_bucket_reconfigure_at(NULL, &bc, 0), FB_ERR_NULL);
    CHECK_ERROR_HAS("fb_bucket_reconfigure_at: argument `bucket` is NULL");
    CHECK_RC(fb_bulkhead_reconfigure(NULL, 1), FB_ERR_NULL);
    CHECK_ERROR_HAS("fb_bulkhead_reconfigure: argument `bulkhead` is NULL");
    /* A handle of another kind. */
    fb_bucket *k = NULL;
    CHECK_RC(fb_bucket_new(&bc, &k), FB_OK);
    CHECK_RC(fb_breaker_reconfigure((const fb_breaker *)(const void *)k, &c),
             FB_ERR_INVALID_ARGUMENT);
    CHECK_RC(fb_bulkhead_reconfigure((const fb_bulkhead *)(const void *)k, 1),
             FB_ERR_INVALID_ARGUMENT);
    fb_bucket_free(k);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fb-reconf-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_count_breaker();
    test_time_breaker();
    test_slow_calls_turned_on();
    test_region_breaker();
    test_bucket();
    test_bulkhead();
    test_errors();
    CHECK(rmdir(dir) == 0);
    return check_report("test_reconfigure");
}
