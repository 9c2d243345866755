/* The adaptive limiter and throttle through the C ABI: admission, one decrease per RTT
 * window, a Retry-After pause, reconfiguration, the throttle's probability, bad input. */
#include <inttypes.h>

#include "check.h"

static void test_limiter(void) {
    fb_adaptive_config c = fb_adaptive_config_default(FB_ADAPTIVE_CONCURRENCY, 4000);
    CHECK(c.min_limit_milli == 1000 && c.max_limit_milli == 1000000);
    CHECK(c.decrease_permille == 500 && c.rtt_ns == FB_SECOND && c.rule == FB_ADAPTIVE_AIMD);
    c.rtt_ns = 100 * FB_MILLISECOND;
    fb_adaptive *a = NULL;
    CHECK_RC(fb_adaptive_new(&c, &a), FB_OK);
    CHECK(fb_adaptive_limit(a) == 4000);

    uint64_t wait = 99;
    for (int i = 0; i < 4; i++) CHECK_RC(fb_adaptive_try_acquire(a, 0, &wait), FB_OK);
    CHECK_RC(fb_adaptive_try_acquire(a, 0, &wait), FB_REJECTED);
    CHECK(wait == 0); /* a full concurrency limit waits for a record, not for time */
    /* Two successes with the limit in use: +1/limit each (4 -> 4.25 -> 4.486). */
    for (int i = 0; i < 2; i++)
        CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_SUCCESS, FB_MILLISECOND, 0, 0), FB_OK);
    CHECK(fb_adaptive_limit(a) == 4486);
    for (int i = 0; i < 2; i++) CHECK_RC(fb_adaptive_try_acquire(a, 0, NULL), FB_OK);
    /* Three 429s in one RTT window: one halving; the last carries a Retry-After of 2 s. */
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_OVERLOAD, 0, 0, 0), FB_OK);
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_OVERLOAD, 0, 0, FB_MILLISECOND), FB_OK);
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_OVERLOAD, 0, 2 * FB_SECOND, FB_MILLISECOND), FB_OK);
    CHECK(fb_adaptive_limit(a) == 2243);
    CHECK_RC(fb_adaptive_try_acquire(a, FB_SECOND, &wait), FB_REJECTED);
    CHECK(wait == FB_SECOND + FB_MILLISECOND);
    CHECK_RC(fb_adaptive_try_acquire(a, 2 * FB_SECOND + FB_MILLISECOND, &wait), FB_OK);
    CHECK(wait == 0);

    fb_adaptive_stats st;
    CHECK_RC(fb_adaptive_metrics(a, 0, &st), FB_OK);
    CHECK(st.in_flight == 2 && st.admitted == 7 && st.rejected == 2);
    CHECK(st.decreases == 1 && st.overloads == 3 && st.paused_rejections == 1);

    /* Reconfigure: the ceiling drops below the limit; the call in flight stays. */
    fb_adaptive_config r = c;
    r.max_limit_milli = 1500;
    CHECK_RC(fb_adaptive_reconfigure(a, &r), FB_OK);
    CHECK(fb_adaptive_limit(a) == 1500);
    CHECK_RC(fb_adaptive_metrics(a, 0, &st), FB_OK);
    CHECK(st.in_flight == 2);
    r.decrease_permille = 1000;
    CHECK_RC(fb_adaptive_reconfigure(a, &r), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("decrease_permille = 1000");
    CHECK_ERROR_HAS("1..=999");
    r.decrease_permille = 500;
    r.mode = FB_ADAPTIVE_RATE;
    CHECK_RC(fb_adaptive_reconfigure(a, &r), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("mode");

    /* Records beyond the calls in flight never drive the count negative. */
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_IGNORE, 0, 0, 0), FB_OK);
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_IGNORE, 0, 0, 0), FB_OK);
    CHECK_RC(fb_adaptive_record(a, FB_ADAPTIVE_IGNORE, 0, 0, 0), FB_OK);
    CHECK_RC(fb_adaptive_metrics(a, 0, &st), FB_OK);
    CHECK(st.in_flight == 0 && st.unmatched_records == 1);
    CHECK_RC(fb_adaptive_record(a, 7, 0, 0, 0), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("outcome");
    fb_adaptive_free(a);

    /* Rate mode, gradient rule: 10 per second, paced. */
    c = fb_adaptive_config_default(FB_ADAPTIVE_RATE, 10000);
    c.rule = FB_ADAPTIVE_GRADIENT;
    CHECK_RC(fb_adaptive_new(&c, &a), FB_OK);
    CHECK_RC(fb_adaptive_try_acquire(a, 0, &wait), FB_OK);
    CHECK_RC(fb_adaptive_try_acquire(a, 0, &wait), FB_REJECTED);
    CHECK(wait == 100 * FB_MILLISECOND);
    CHECK_RC(fb_adaptive_try_acquire(a, 100 * FB_MILLISECOND, &wait), FB_OK);
    fb_adaptive_free(a);

    /* Bad configurations name the field, the value and the range. */
    c = fb_adaptive_config_default(FB_ADAPTIVE_CONCURRENCY, 5000);
    c.min_limit_milli = 10;
    a = NULL;
    CHECK_RC(fb_adaptive_new(&c, &a), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("min_limit_milli = 10");
    CHECK(a == NULL);
    c = fb_adaptive_config_default(FB_ADAPTIVE_CONCURRENCY, 5000);
    c.rule = 9;
    CHECK_RC(fb_adaptive_new(&c, &a), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("rule");
    CHECK_RC(fb_adaptive_new(NULL, &a), FB_ERR_NULL);
    CHECK_RC(fb_adaptive_try_acquire(NULL, 0, NULL), FB_ERR_NULL);
    CHECK(fb_adaptive_limit(NULL) == 0);
    fb_adaptive_free(NULL);
}

static void test_throttle(void) {
    fb_throttle_config c = fb_throttle_config_default();
    CHECK(c.k_milli == 2000 && c.window_ns == 60 * FB_SECOND && c.buckets == 10);
    uint64_t seed = 7;
    fb_throttle *t = NULL;
    CHECK_RC(fb_throttle_new(&c, &seed, &t), FB_OK);
    CHECK(fb_throttle_reject_probability_ppm(t, 0) == 0);
    /* The first call is admitted; ten refused by the backend raise the probability. */
    CHECK_RC(fb_throttle_try_acquire(t, 0), FB_OK);
    for (int i = 0; i < 9; i++) (void)fb_throttle_try_acquire(t, 0);
    CHECK(fb_throttle_reject_probability_ppm(t, 0) == 909090); /* 10/11 */
    for (int i = 0; i < 5; i++) CHECK_RC(fb_throttle_record(t, true, 0), FB_OK);
    CHECK(fb_throttle_reject_probability_ppm(t, 0) == 0); /* (10 - 2*5) / 11 */
    c.k_milli = 1000;
    CHECK_RC(fb_throttle_reconfigure(t, &c, 0), FB_OK);
    CHECK(fb_throttle_reject_probability_ppm(t, 0) == 454545); /* (10 - 5) / 11 */
    /* The window slides: a minute later nothing is counted. */
    CHECK(fb_throttle_reject_probability_ppm(t, 60 * FB_SECOND) == 0);
    c.buckets = 65;
    CHECK_RC(fb_throttle_reconfigure(t, &c, 0), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("buckets = 65");
    fb_throttle_free(t);

    /* The OS seed. */
    c = fb_throttle_config_default();
    CHECK_RC(fb_throttle_new(&c, NULL, &t), FB_OK);
    CHECK_RC(fb_throttle_try_acquire(t, 0), FB_OK);
    fb_throttle_free(t);
    c.k_milli = 10;
    CHECK_RC(fb_throttle_new(&c, NULL, &t), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("k_milli = 10");
    CHECK_RC(fb_throttle_try_acquire(NULL, 0), FB_ERR_NULL);
    fb_throttle_free(NULL);
}

int main(void) {
    test_limiter();
    test_throttle();
    return check_report("test_adaptive");
}
