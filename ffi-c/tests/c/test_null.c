/* NULL for every pointer argument of every function: FB_ERR_NULL, with fb_last_error() naming
 * the argument; optional out-parameters accept NULL; every _free accepts NULL. Also handles of
 * the wrong kind. */
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

#define CHECK_NULL(expr, arg)                    \
    do {                                         \
        CHECK_RC((expr), FB_ERR_NULL);           \
        CHECK_ERROR_HAS("argument `" arg "` is NULL"); \
    } while (0)

static alignas(8) unsigned char storage[FB_BREAKER_STORAGE_SIZE];

static void test_breaker_functions(void) {
    fb_breaker_config c = fb_breaker_config_default();
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    fb_state s;
    fb_breaker_stats m;
    size_t size;
    fb_breaker *out;

    CHECK_NULL(fb_breaker_storage_size(NULL, &size), "config");
    CHECK_NULL(fb_breaker_storage_size(&c, NULL), "size");
    CHECK_NULL(fb_breaker_new(NULL, &out), "config");
    CHECK_NULL(fb_breaker_new(&c, NULL), "out");
    CHECK_NULL(fb_breaker_init(NULL, sizeof storage, &c, &out), "storage");
    CHECK_NULL(fb_breaker_init(storage, sizeof storage, NULL, &out), "config");
    CHECK_NULL(fb_breaker_init(storage, sizeof storage, &c, NULL), "out");
    fb_breaker_free(NULL);
    CHECK_NULL(fb_breaker_acquire(NULL, &p), "breaker");
    CHECK_NULL(fb_breaker_acquire(b, NULL), "permit");
    CHECK_NULL(fb_breaker_acquire_at(NULL, &p, 0), "breaker");
    CHECK_NULL(fb_breaker_acquire_at(b, NULL, 0), "permit");
    CHECK_NULL(fb_breaker_record(NULL, &p, FB_OUTCOME_SUCCESS, 0), "breaker");
    CHECK_NULL(fb_breaker_record(b, NULL, FB_OUTCOME_SUCCESS, 0), "permit");
    CHECK_NULL(fb_breaker_record_at(NULL, &p, FB_OUTCOME_SUCCESS, 0, 0), "breaker");
    CHECK_NULL(fb_breaker_record_at(b, NULL, FB_OUTCOME_SUCCESS, 0, 0), "permit");
    fb_breaker_config back;
    CHECK_NULL(fb_breaker_get_config(NULL, &back), "breaker");
    CHECK_NULL(fb_breaker_get_config(b, NULL), "config");
    CHECK_NULL(fb_breaker_reconfigure(NULL, &c), "breaker");
    CHECK_NULL(fb_breaker_reconfigure(b, NULL), "config");
    CHECK_NULL(fb_breaker_set_listener(NULL, NULL, NULL), "breaker");
    CHECK_RC(fb_breaker_set_listener(b, NULL, NULL), FB_OK); /* NULL listener: none */
    CHECK_NULL(fb_breaker_state(NULL, &s), "breaker");
    CHECK_NULL(fb_breaker_state(b, NULL), "state");
    CHECK_NULL(fb_breaker_metrics(NULL, &m), "breaker");
    CHECK_NULL(fb_breaker_metrics(b, NULL), "metrics");
    CHECK_NULL(fb_breaker_metrics_at(NULL, &m, 0), "breaker");
    CHECK_NULL(fb_breaker_metrics_at(b, NULL, 0), "metrics");
    CHECK_NULL(fb_breaker_force_open(NULL), "breaker");
    CHECK_NULL(fb_breaker_force_open_at(NULL, 0), "breaker");
    CHECK_NULL(fb_breaker_disable(NULL), "breaker");
    CHECK_NULL(fb_breaker_disable_at(NULL, 0), "breaker");
    CHECK_NULL(fb_breaker_metrics_only(NULL), "breaker");
    CHECK_NULL(fb_breaker_metrics_only_at(NULL, 0), "breaker");
    CHECK_NULL(fb_breaker_reset(NULL), "breaker");
    CHECK_NULL(fb_breaker_reset_at(NULL, 0), "breaker");
    CHECK(strstr(fb_last_error(), "fb_breaker_reset_at: ") == fb_last_error());
    CHECK_NULL(fb_breaker_trip(NULL), "breaker");
    CHECK_NULL(fb_breaker_trip_at(NULL, 0), "breaker");
    CHECK_NULL(fb_breaker_half_open(NULL), "breaker");
    CHECK_NULL(fb_breaker_half_open_at(NULL, 0), "breaker");

    /* Nothing above changed the breaker, nor used the permit. */
    CHECK(!p.used);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 0, 0), FB_OK);
    CHECK_RC(fb_breaker_metrics_at(b, &m, 0), FB_OK);
    CHECK(m.state == FB_STATE_CLOSED && m.permitted == 1 && m.succeeded == 1);
    fb_breaker_free(b);
}

static void test_bucket_functions(void) {
    fb_bucket_config c = fb_bucket_config_per_second(10, 5);
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    uint64_t w;
    fb_bucket_stats st;
    fb_bucket *out;

    CHECK_NULL(fb_bucket_new(NULL, &out), "config");
    CHECK_NULL(fb_bucket_new(&c, NULL), "out");
    CHECK_NULL(fb_bucket_init(NULL, sizeof storage, &c, &out), "storage");
    CHECK_NULL(fb_bucket_init(storage, sizeof storage, NULL, &out), "config");
    CHECK_NULL(fb_bucket_init(storage, sizeof storage, &c, NULL), "out");
    fb_bucket_free(NULL);
    CHECK_NULL(fb_bucket_try_acquire(NULL, 1, &w), "bucket");
    CHECK_NULL(fb_bucket_try_acquire_at(NULL, 1, &w, 0), "bucket");
    CHECK_RC(fb_bucket_try_acquire_at(b, 1, NULL, 0), FB_OK); /* optional */
    CHECK_RC(fb_bucket_try_acquire(b, 1, NULL), FB_OK);
    CHECK_NULL(fb_bucket_reserve(NULL, 1, &w), "bucket");
    CHECK_NULL(fb_bucket_reserve(b, 1, NULL), "wait_ns");
    CHECK_NULL(fb_bucket_reserve_at(NULL, 1, &w, 0), "bucket");
    CHECK_NULL(fb_bucket_reserve_at(b, 1, NULL, 0), "wait_ns");
    CHECK_NULL(fb_bucket_reserve_within(NULL, 1, 0, &w), "bucket");
    CHECK_NULL(fb_bucket_reserve_within(b, 1, 0, NULL), "wait_ns");
    CHECK_NULL(fb_bucket_reserve_within_at(NULL, 1, 0, &w, 0), "bucket");
    CHECK_NULL(fb_bucket_reserve_within_at(b, 1, 0, NULL, 0), "wait_ns");
    CHECK_NULL(fb_bucket_refund(NULL, 1), "bucket");
    CHECK_NULL(fb_bucket_refund_at(NULL, 1, 0), "bucket");
    CHECK_NULL(fb_bucket_available(NULL, &w), "bucket");
    CHECK_NULL(fb_bucket_available(b, NULL), "tokens");
    CHECK_NULL(fb_bucket_available_at(NULL, &w, 0), "bucket");
    CHECK_NULL(fb_bucket_available_at(b, NULL, 0), "tokens");
    CHECK_NULL(fb_bucket_state(NULL, &st), "bucket");
    CHECK_NULL(fb_bucket_state(b, NULL), "stats");
    CHECK_NULL(fb_bucket_state_at(NULL, &st, 0), "bucket");
    CHECK_NULL(fb_bucket_state_at(b, NULL, 0), "stats");
    CHECK_NULL(fb_bucket_reset(NULL), "bucket");
    CHECK_NULL(fb_bucket_reset_at(NULL, 0), "bucket");
    CHECK_NULL(fb_bucket_retry_after(NULL, 1, &w), "bucket");
    CHECK_NULL(fb_bucket_retry_after(b, 1, NULL), "wait_ns");
    CHECK_NULL(fb_bucket_retry_after_at(NULL, 1, &w, 0), "bucket");
    CHECK_NULL(fb_bucket_retry_after_at(b, 1, NULL, 0), "wait_ns");
    fb_bucket_config back;
    CHECK_NULL(fb_bucket_get_config(NULL, &back), "bucket");
    CHECK_NULL(fb_bucket_get_config(b, NULL), "config");
    CHECK_NULL(fb_bucket_reconfigure(NULL, &c), "bucket");
    CHECK_NULL(fb_bucket_reconfigure(b, NULL), "config");
    CHECK_NULL(fb_bucket_reconfigure_at(NULL, &c, 0), "bucket");
    CHECK_NULL(fb_bucket_reconfigure_at(b, NULL, 0), "config");
    fb_bucket_free(b);
}

static void test_bulkhead_functions(void) {
    fb_bulkhead_config c = fb_bulkhead_config_default();
    fb_bulkhead *b = NULL;
    CHECK_RC(fb_bulkhead_new(&c, &b), FB_OK);
    fb_bulkhead_stats st;
    fb_bulkhead *out;

    CHECK_NULL(fb_bulkhead_new(NULL, &out), "config");
    CHECK_NULL(fb_bulkhead_new(&c, NULL), "out");
    CHECK_NULL(fb_bulkhead_init(NULL, sizeof storage, &c, &out), "storage");
    CHECK_NULL(fb_bulkhead_init(storage, sizeof storage, NULL, &out), "config");
    CHECK_NULL(fb_bulkhead_init(storage, sizeof storage, &c, NULL), "out");
    fb_bulkhead_free(NULL);
    CHECK_NULL(fb_bulkhead_try_acquire(NULL), "bulkhead");
    CHECK_NULL(fb_bulkhead_release(NULL), "bulkhead");
    CHECK_NULL(fb_bulkhead_metrics(NULL, &st), "bulkhead");
    CHECK_NULL(fb_bulkhead_metrics(b, NULL), "stats");
    CHECK_NULL(fb_bulkhead_reconfigure(NULL, 1), "bulkhead");
    fb_bulkhead_free(b);
}

static void test_keyed_functions(void) {
    fb_bucket_config c = fb_bucket_config_per_second(10, 5);
    fb_keyed *k = NULL;
    CHECK_RC(fb_keyed_new(&c, 16, FB_WHEN_FULL_REJECT, &k), FB_OK);
    const uint8_t *key = (const uint8_t *)"client";
    uint64_t w;
    bool found;
    fb_bucket_stats st;
    fb_keyed_stats m;
    fb_keyed *out;

    CHECK_NULL(fb_keyed_new(NULL, 16, FB_WHEN_FULL_REJECT, &out), "config");
    CHECK_NULL(fb_keyed_new(&c, 16, FB_WHEN_FULL_REJECT, NULL), "out");
    fb_keyed_free(NULL);
    CHECK_NULL(fb_keyed_try_acquire(NULL, key, 6, 1, &w), "keyed");
    CHECK_NULL(fb_keyed_try_acquire(k, NULL, 6, 1, &w), "key");
    CHECK_NULL(fb_keyed_try_acquire(k, NULL, 0, 1, &w), "key"); /* even when empty */
    CHECK_NULL(fb_keyed_try_acquire_at(NULL, key, 6, 1, &w, 0), "keyed");
    CHECK_NULL(fb_keyed_try_acquire_at(k, NULL, 6, 1, &w, 0), "key");
    CHECK_RC(fb_keyed_try_acquire_at(k, key, 6, 1, NULL, 0), FB_OK); /* optional */
    CHECK_RC(fb_keyed_try_acquire(k, key, 6, 1, NULL), FB_OK);
    CHECK_NULL(fb_keyed_retry_after(NULL, key, 6, 1, &w), "keyed");
    CHECK_NULL(fb_keyed_retry_after(k, NULL, 6, 1, &w), "key");
    CHECK_NULL(fb_keyed_retry_after(k, key, 6, 1, NULL), "wait_ns");
    CHECK_NULL(fb_keyed_retry_after_at(NULL, key, 6, 1, &w, 0), "keyed");
    CHECK_NULL(fb_keyed_retry_after_at(k, NULL, 6, 1, &w, 0), "key");
    CHECK_NULL(fb_keyed_retry_after_at(k, key, 6, 1, NULL, 0), "wait_ns");
    CHECK_NULL(fb_keyed_state(NULL, key, 6, &st), "keyed");
    CHECK_NULL(fb_keyed_state(k, NULL, 6, &st), "key");
    CHECK_NULL(fb_keyed_state(k, key, 6, NULL), "stats");
    CHECK_NULL(fb_keyed_state_at(NULL, key, 6, &st, 0), "keyed");
    CHECK_NULL(fb_keyed_state_at(k, NULL, 6, &st, 0), "key");
    CHECK_NULL(fb_keyed_state_at(k, key, 6, NULL, 0), "stats");
    CHECK_NULL(fb_keyed_reset(NULL, key, 6, &found), "keyed");
    CHECK_NULL(fb_keyed_reset(k, NULL, 6, &found), "key");
    CHECK_NULL(fb_keyed_metrics(NULL, &m), "keyed");
    CHECK_NULL(fb_keyed_metrics(k, NULL), "stats");
    CHECK_NULL(fb_keyed_metrics_at(NULL, &m, 0), "keyed");
    CHECK_NULL(fb_keyed_metrics_at(k, NULL, 0), "stats");
    CHECK(strstr(fb_last_error(), "fb_keyed_metrics_at: ") == fb_last_error());

    /* Nothing above changed the table but the two grants; reset's `found` is optional. */
    CHECK_RC(fb_keyed_metrics_at(k, &m, 0), FB_OK);
    CHECK(m.allowed == 2 && m.limited == 0);
    CHECK_RC(fb_keyed_reset(k, key, 6, NULL), FB_OK);
    fb_keyed_free(k);
}

/* A handle of one kind passed as another is caught by its tag. */
static void test_wrong_handles(void) {
    fb_bucket_config bc = fb_bucket_config_per_second(10, 5);
    fb_bulkhead_config hc = fb_bulkhead_config_default();
    fb_bucket *bucket = NULL;
    fb_bulkhead *bulkhead = NULL;
    CHECK_RC(fb_bucket_new(&bc, &bucket), FB_OK);
    CHECK_RC(fb_bulkhead_new(&hc, &bulkhead), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at((const fb_breaker *)(const void *)bucket, &p, 0),
             FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("not a live handle");
    CHECK_RC(fb_bulkhead_try_acquire((const fb_bulkhead *)(const void *)bucket),
             FB_ERR_INVALID_ARGUMENT);
    CHECK_RC(fb_bucket_reset((const fb_bucket *)(const void *)bulkhead), FB_ERR_INVALID_ARGUMENT);
    /* _free of the wrong kind is ignored rather than freeing with the wrong type. */
    fb_bucket_free((fb_bucket *)(void *)bulkhead);
    CHECK_RC(fb_bulkhead_try_acquire(bulkhead), FB_OK);
    fb_keyed_stats ks;
    CHECK_RC(fb_keyed_metrics((const fb_keyed *)(const void *)bucket, &ks),
             FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("not a live handle");
    fb_keyed_free((fb_keyed *)(void *)bulkhead);
    CHECK_RC(fb_bulkhead_release(bulkhead), FB_OK);
    fb_bucket_free(bucket);
    fb_bulkhead_free(bulkhead);
}

int main(void) {
    CHECK(fb_last_error() != NULL && fb_last_error()[0] == '\0'); /* nothing failed yet */
    test_breaker_functions();
    test_bucket_functions();
    test_bulkhead_functions();
    test_keyed_functions();
    test_wrong_handles();
    CHECK(fb_version() != NULL && fb_result_str(-100) != NULL && fb_state_str(100) != NULL);
    return check_report("test_null");
}
