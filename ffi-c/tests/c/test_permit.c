/* A permit counts once through the C ABI: a second record of one permit returns
 * FB_ERR_PERMIT_USED and changes nothing; a permit that is never recorded (dropped) leaves no
 * trace in the closed state and never wedges a half-open breaker. */
#include <stdint.h>

#include "check.h"

static fb_breaker_stats stats_at(const fb_breaker *b, uint64_t now) {
    fb_breaker_stats m;
    memset(&m, 0xAB, sizeof m);
    CHECK_RC(fb_breaker_metrics_at(b, &m, now), FB_OK);
    return m;
}

/* Three failures recorded with one permit would trip a breaker whose threshold is 3. */
static void test_second_record_changes_nothing(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 3;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK(!p.used && p.kind == FB_PERMIT_NORMAL);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 1), FB_OK);
    CHECK(p.used);
    fb_breaker_stats before = stats_at(b, 1);
    for (int i = 0; i < 2; i++) {
        CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 2),
                 FB_ERR_PERMIT_USED);
        CHECK_ERROR_HAS("fb_breaker_record_at: the permit was already recorded");
        CHECK_RC(fb_breaker_record(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO),
                 FB_ERR_PERMIT_USED);
    }
    fb_breaker_stats after = stats_at(b, 1);
    CHECK(after.state == FB_STATE_CLOSED && after.consecutive_failures == 1);
    CHECK(after.permitted == before.permitted && after.failed == before.failed);
    CHECK(after.succeeded == before.succeeded && after.window_samples == before.window_samples);
    CHECK(after.window_failures == before.window_failures && after.generation == before.generation);
    /* A new acquire gives a fresh permit. */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 3), FB_OK);
    CHECK(!p.used);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 3), FB_OK);
    CHECK(stats_at(b, 3).consecutive_failures == 2);
    fb_breaker_free(b);
}

/* success_threshold = 2: one probe recorded twice must not close the breaker. */
static void test_probe_counts_once(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 1;
    c.wait_duration_ns = 100;
    c.success_threshold = 2;
    c.half_open_max_calls = 2;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 0), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 100), FB_OK);
    CHECK(p.kind == FB_PERMIT_PROBE);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 101), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 102),
             FB_ERR_PERMIT_USED);
    fb_breaker_stats m = stats_at(b, 102);
    CHECK(m.state == FB_STATE_HALF_OPEN && m.succeeded == 1);
    fb_breaker_free(b);
}

/* A rejected permit, and a forged one, are refused without marking them used. */
static void test_errors_leave_the_permit_unused(void) {
    fb_breaker_config c = fb_breaker_config_default();
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, 42, 0, 0), FB_ERR_INVALID_ARGUMENT);
    CHECK(!p.used);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 0, 0), FB_OK);
    CHECK_RC(fb_breaker_force_open_at(b, 1), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 1), FB_REJECTED);
    CHECK(!p.used && p.reason == FB_REJECT_FORCED_OPEN);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 0, 1), FB_ERR_INVALID_ARGUMENT);
    CHECK(!p.used);
    fb_breaker_free(b);
}

/* Dropped permits: a closed-state permit never recorded counts nowhere; a dropped probe
 * holds its slot until the wait has passed since it was admitted, then a new probe goes. */
static void test_dropped_permits(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 1;
    c.wait_duration_ns = 100;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit dropped, p;
    CHECK_RC(fb_breaker_acquire_at(b, &dropped, 0), FB_OK); /* never recorded */
    fb_breaker_stats m = stats_at(b, 0);
    CHECK(m.permitted == 0 && m.window_samples == 0);

    CHECK_RC(fb_breaker_trip_at(b, 10), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(b, &dropped, 110), FB_OK); /* the probe, then lost */
    CHECK(dropped.kind == FB_PERMIT_PROBE);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 150), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_HALF_OPEN_FULL);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 209), FB_REJECTED);
    /* 100 ns after the lost probe's admission, it is presumed hung. */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 210), FB_OK);
    CHECK(p.kind == FB_PERMIT_PROBE);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 211), FB_OK);
    CHECK(stats_at(b, 211).state == FB_STATE_CLOSED);
    /* The lost probe, recorded late after all, is stale and moves nothing. */
    CHECK_RC(fb_breaker_record_at(b, &dropped, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 212), FB_OK);
    CHECK(stats_at(b, 212).state == FB_STATE_CLOSED);
    fb_breaker_free(b);
}

int main(void) {
    test_second_record_changes_nothing();
    test_probe_counts_once();
    test_errors_leave_the_permit_unused();
    test_dropped_permits();
    return check_report("test_permit");
}
