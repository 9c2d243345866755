/* The header's limits are the core's: each FB_ limit is accepted at its edge and refused one
 * past it, with the core's message. The time constants are uint64_t (UINT64_C), so they print
 * with PRIu64: run.sh also builds this file with -Wformat=2 -Werror. */
#include <inttypes.h>
#include <stdint.h>

#include "check.h"

static int accepted(const fb_breaker_config *c) {
    fb_breaker *b = NULL;
    fb_result rc = fb_breaker_new(c, &b);
    fb_breaker_free(b);
    return rc == FB_OK;
}

#define EDGE(field, max, message)                                \
    do {                                                         \
        fb_breaker_config c = fb_breaker_config_default();       \
        c.field = (max);                                         \
        CHECK(accepted(&c));                                     \
        c.field = (max) + 1;                                     \
        CHECK_RC(fb_breaker_new(&c, &(fb_breaker *){NULL}), FB_ERR_INVALID_CONFIG); \
        CHECK_ERROR_HAS(message);                                \
    } while (0)

static void test_breaker_limits(void) {
    EDGE(failure_threshold, FB_MAX_FAILURE_THRESHOLD,
         "failure_threshold = 16777216: must be at most 16777215");
    EDGE(failure_rate_threshold, FB_MAX_RATE_THRESHOLD, "failure_rate_threshold = 101");
    EDGE(slow_call_rate_threshold, FB_MAX_RATE_THRESHOLD, "slow_call_rate_threshold = 101");
    EDGE(window_size, FB_MAX_WINDOW_SIZE, "window_size = 1025");
    EDGE(jitter_permille, FB_MAX_JITTER_PERMILLE, "jitter_permille = 1001");
    EDGE(half_open_max_calls, FB_MAX_HALF_OPEN_MAX_CALLS, "half_open_max_calls = 1024");
    EDGE(success_threshold, FB_MAX_SUCCESS_THRESHOLD, "success_threshold = 1024");
    EDGE(wait_duration_ns, FB_MAX_WAIT_DURATION_NS, "wait_duration_ns = 18014398509481985");
    EDGE(max_wait_duration_ns, FB_MAX_WAIT_DURATION_NS, "max_wait_duration_ns = 18014398509481985");

    fb_breaker_config c = fb_breaker_config_default();
    c.window_kind = FB_WINDOW_TIME;
    c.window_buckets = FB_MAX_WINDOW_BUCKETS;
    CHECK(accepted(&c));
    c.window_buckets = FB_MAX_WINDOW_BUCKETS + 1;
    CHECK(!accepted(&c));
    CHECK_ERROR_HAS("window_buckets = 65");

    /* minimum_calls: at most the count window's size when a rate rule is on. */
    c = fb_breaker_config_default();
    c.window_size = 20;
    c.minimum_calls = 21;
    CHECK(accepted(&c)); /* no rate rule */
    c.failure_rate_threshold = 50;
    CHECK(!accepted(&c));
    CHECK_ERROR_HAS("minimum_calls = 21: must be at most the window size");
    c.minimum_calls = 20;
    CHECK(accepted(&c));

    /* Backoff: a factor below FB_MIN_BACKOFF_FACTOR_MILLI, or one too small to reach the cap
     * within FB_MAX_BACKOFF_STEPS reopenings. */
    c = fb_breaker_config_default();
    c.backoff_factor_milli = FB_MIN_BACKOFF_FACTOR_MILLI - 1;
    CHECK(!accepted(&c));
    CHECK_ERROR_HAS("backoff_factor_milli = 999");
    c.backoff_factor_milli = 1001;
    c.wait_duration_ns = 1;
    c.max_wait_duration_ns = FB_MAX_WAIT_DURATION_NS;
    CHECK(!accepted(&c));
    CHECK_ERROR_HAS("within 1023 reopenings");
    c.backoff_factor_milli = 2000;
    CHECK(accepted(&c));
}

static void test_bucket_and_bulkhead_limits(void) {
    fb_bucket_config c = fb_bucket_config_per_second(1, FB_MAX_BURST);
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    fb_bucket_free(b);
    c.burst = FB_MAX_BURST + 1;
    CHECK_RC(fb_bucket_new(&c, &b), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("burst = 4294967297");

    fb_bulkhead_config h = {FB_MIN_MAX_CONCURRENT};
    fb_bulkhead *k = NULL;
    CHECK_RC(fb_bulkhead_new(&h, &k), FB_OK);
    fb_bulkhead_free(k);
    h.max_concurrent = FB_MIN_MAX_CONCURRENT - 1;
    CHECK_RC(fb_bulkhead_new(&h, &k), FB_ERR_INVALID_CONFIG);
}

static void test_time_constants_print_with_priu64(void) {
    char text[128];
    uint64_t wait = 90 * FB_SECOND + 250 * FB_MILLISECOND;
    snprintf(text, sizeof text, "%" PRIu64 " s %" PRIu64 " ms %" PRIu64 " us", wait / FB_SECOND,
             wait % FB_SECOND / FB_MILLISECOND, FB_MILLISECOND / FB_MICROSECOND);
    CHECK(strcmp(text, "90 s 250 ms 1000 us") == 0);
    snprintf(text, sizeof text, "%" PRIu64 " %" PRIu64, FB_MAX_WAIT_DURATION_NS, FB_MAX_BURST);
    CHECK(strcmp(text, "18014398509481984 4294967296") == 0);
    /* Usable in the preprocessor too. */
#if FB_SECOND != 1000000000
    CHECK(0);
#endif
}

int main(void) {
    test_breaker_limits();
    test_bucket_and_bulkhead_limits();
    test_time_constants_print_with_priu64();
    return check_report("test_limits");
}
