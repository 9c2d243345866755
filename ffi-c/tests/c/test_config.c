/* Invalid configurations: each is refused with FB_ERR_INVALID_CONFIG by _new, _init and
 * fb_breaker_storage_size, leaves *out alone, and fb_last_error() names the field and value. */
#include <stdalign.h>
#include <stdint.h>

#include "check.h"

static alignas(FB_BREAKER_STORAGE_ALIGN) unsigned char storage[FB_BREAKER_STORAGE_SIZE];

static void check_bad_breaker(const fb_breaker_config *c, const char *expect) {
    fb_breaker *b = (fb_breaker *)(void *)&storage[8]; /* a marker that must stay */
    fb_breaker *const marker = b;
    CHECK_RC(fb_breaker_new(c, &b), FB_ERR_INVALID_CONFIG);
    CHECK(b == marker);
    CHECK_ERROR_HAS("fb_breaker_new: invalid ");
    CHECK_ERROR_HAS(expect);
    CHECK_RC(fb_breaker_init(storage, sizeof storage, c, &b), FB_ERR_INVALID_CONFIG);
    CHECK(b == marker);
    CHECK_ERROR_HAS("fb_breaker_init: invalid ");
    CHECK_ERROR_HAS(expect);
    size_t size = 7;
    CHECK_RC(fb_breaker_storage_size(c, &size), FB_ERR_INVALID_CONFIG);
    CHECK(size == 7);
    CHECK_ERROR_HAS(expect);
}

#define BAD_BREAKER(assignments, expect)                         \
    do {                                                         \
        fb_breaker_config c = fb_breaker_config_default();       \
        assignments;                                             \
        check_bad_breaker(&c, expect);                           \
    } while (0)

static void check_bad_bucket(fb_bucket_config c, const char *expect) {
    static alignas(FB_BUCKET_STORAGE_ALIGN) unsigned char bucket_storage[FB_BUCKET_STORAGE_SIZE];
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_ERR_INVALID_CONFIG);
    CHECK(b == NULL);
    CHECK_ERROR_HAS("fb_bucket_new: invalid ");
    CHECK_ERROR_HAS(expect);
    CHECK_RC(fb_bucket_init(bucket_storage, sizeof bucket_storage, &c, &b), FB_ERR_INVALID_CONFIG);
    CHECK(b == NULL);
    CHECK_ERROR_HAS(expect);
}

int main(void) {
    BAD_BREAKER(c.failure_rate_threshold = 120,
                "invalid failure_rate_threshold = 120: must be a percentage in 1..=100");
    BAD_BREAKER(c.failure_rate_threshold = 1000, "failure_rate_threshold = 1000");
    BAD_BREAKER(c.slow_call_rate_threshold = 101, "slow_call_rate_threshold = 101");
    BAD_BREAKER(c.slow_call_duration_ns = 0, "slow_call_duration_ns = 0");
    BAD_BREAKER(c.minimum_calls = 0, "minimum_calls = 0");
    BAD_BREAKER(c.window_kind = 7, "window_kind = 7");
    BAD_BREAKER(c.window_size = FB_MAX_WINDOW_SIZE + 1, "window_size = 1025");
    BAD_BREAKER((c.window_kind = FB_WINDOW_TIME, c.window_buckets = 0), "window_buckets = 0");
    BAD_BREAKER((c.window_kind = FB_WINDOW_TIME, c.window_buckets = 65), "window_buckets = 65");
    BAD_BREAKER((c.window_kind = FB_WINDOW_TIME, c.bucket_duration_ns = 0),
                "bucket_duration_ns = 0");
    BAD_BREAKER(c.wait_duration_ns = 0, "wait_duration_ns = 0");
    BAD_BREAKER(c.backoff_factor_milli = 999, "backoff_factor_milli = 999");
    BAD_BREAKER(c.max_wait_duration_ns = 1, "max_wait_duration_ns = 1");
    BAD_BREAKER(c.jitter_permille = 1001, "jitter_permille = 1001");
    BAD_BREAKER(c.jitter_permille = 70000, "jitter_permille = 70000");
    BAD_BREAKER(c.half_open_max_calls = 0, "half_open_max_calls = 0");
    BAD_BREAKER(c.half_open_max_calls = 1024, "half_open_max_calls = 1024");
    BAD_BREAKER(c.success_threshold = 0, "success_threshold = 0");
    BAD_BREAKER(c.success_threshold = 100000, "success_threshold = 100000");

    /* 0 is refused where Rust refuses Some(0); FB_OFF turns a rule off. */
    BAD_BREAKER(c.failure_threshold = 0, "failure_threshold = 0: must be at least 1");
    BAD_BREAKER(c.failure_rate_threshold = 0, "failure_rate_threshold = 0");
    BAD_BREAKER(c.slow_call_rate_threshold = 0, "slow_call_rate_threshold = 0");
    BAD_BREAKER(c.max_wait_duration_ns = 0, "max_wait_duration_ns = 0");
    BAD_BREAKER(c.window_size = 0, "window_size = 0");

    /* Fields that do not apply are not checked. */
    fb_breaker_config ok = fb_breaker_config_default();
    ok.bucket_duration_ns = 0; /* count window */
    ok.window_buckets = 0;
    ok.failure_threshold = FB_OFF;
    ok.max_wait_duration_ns = FB_MAX_WAIT_DURATION_NS;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&ok, &b), FB_OK);
    fb_breaker_free(b);

    fb_bucket_config bc = fb_bucket_config_per_second(10, 5);
    bc.rate = 0;
    check_bad_bucket(bc, "rate = 0");
    bc = fb_bucket_config_per_second(10, 5);
    bc.period_ns = 0;
    check_bad_bucket(bc, "period_ns = 0");
    bc = fb_bucket_config_per_second(10, 0);
    check_bad_bucket(bc, "burst = 0");
    bc = fb_bucket_config_per_second(10, (UINT64_C(1) << 32) + 1);
    check_bad_bucket(bc, "burst = 4294967297");
    bc = fb_bucket_config_per_second(10, 5);
    bc.period_ns = 5;
    check_bad_bucket(bc, "rate = 10");

    fb_bulkhead_config hc = {0};
    fb_bulkhead *h = NULL;
    CHECK_RC(fb_bulkhead_new(&hc, &h), FB_ERR_INVALID_CONFIG);
    CHECK(h == NULL);
    CHECK_ERROR_HAS("fb_bulkhead_new: invalid max_concurrent = 0");
    static alignas(FB_BULKHEAD_STORAGE_ALIGN) unsigned char hs[FB_BULKHEAD_STORAGE_SIZE];
    CHECK_RC(fb_bulkhead_init(hs, sizeof hs, &hc, &h), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("fb_bulkhead_init: invalid max_concurrent = 0");

    /* The message stays until the next failing call on this thread. */
    CHECK_RC(fb_bulkhead_new(&hc, &h), FB_ERR_INVALID_CONFIG);
    CHECK_RC(fb_breaker_new(&ok, &b), FB_OK);
    CHECK_ERROR_HAS("max_concurrent");
    fb_breaker_free(b);
    return check_report("test_config");
}
