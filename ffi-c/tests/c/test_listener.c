/* State-change listeners, manual trips and half-opens, and the configuration read back,
 * through the C ABI. The listener runs after the change is committed, with no lock held: it
 * may re-enter the same breaker (read it, change it, replace the listener). */
#include <stdint.h>

#include "check.h"

#define MAX_EVENTS 64

struct event {
    const fb_breaker *breaker;
    fb_state from, to, seen; /* seen: the state the listener read from the breaker */
    int depth;
};

struct log {
    struct event events[MAX_EVENTS];
    int count;
    int depth;
    int reenter; /* on the next entry to open: reset the breaker from inside the listener */
    int replace; /* on the next event: install `other` with `other_data` */
    fb_breaker_listener other;
    void *other_data;
};

static void on_change(const fb_breaker *b, fb_state from, fb_state to, void *user_data) {
    struct log *log = user_data;
    fb_state seen = 99;
    CHECK_RC(fb_breaker_state(b, &seen), FB_OK);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics_at(b, &m, 0), FB_OK);
    if (log->count < MAX_EVENTS) {
        log->events[log->count++] = (struct event){b, from, to, seen, log->depth};
    }
    if (log->reenter && to == FB_STATE_OPEN) {
        log->reenter = 0;
        log->depth++;
        CHECK_RC(fb_breaker_reset_at(b, 0), FB_OK); /* notifies again, nested */
        log->depth--;
    }
    if (log->replace) {
        log->replace = 0;
        CHECK_RC(fb_breaker_set_listener(b, log->other, log->other_data), FB_OK);
    }
}

static void on_change_count(const fb_breaker *b, fb_state from, fb_state to, void *user_data) {
    (void)b;
    (void)from;
    (void)to;
    ++*(int *)user_data;
}

#define CHECK_EVENT(log, i, f, t)                                                           \
    do {                                                                                    \
        CHECK((log).count > (i));                                                           \
        CHECK((log).events[i].from == (f) && (log).events[i].to == (t));                    \
        CHECK((log).events[i].seen == (t)); /* committed before the listener ran */         \
    } while (0)

static void test_every_transition_is_notified(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 2;
    c.wait_duration_ns = 100;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    static struct log log;
    memset(&log, 0, sizeof log);
    CHECK_RC(fb_breaker_set_listener(b, on_change, &log), FB_OK);

    fb_permit p;
    for (int i = 0; i < 2; i++) {
        CHECK_RC(fb_breaker_acquire_at(b, &p, 10), FB_OK);
        CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 10), FB_OK);
    }
    CHECK(log.count == 1);
    CHECK_EVENT(log, 0, FB_STATE_CLOSED, FB_STATE_OPEN); /* a trip by a record */
    CHECK(log.events[0].breaker == b);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 50), FB_REJECTED); /* no change, no event */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 110), FB_OK);     /* the first probe */
    CHECK_EVENT(log, 1, FB_STATE_OPEN, FB_STATE_HALF_OPEN);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 111), FB_OK);
    CHECK_EVENT(log, 2, FB_STATE_HALF_OPEN, FB_STATE_CLOSED);

    CHECK_RC(fb_breaker_reset_at(b, 120), FB_OK); /* closed -> closed: not a change */
    CHECK(log.count == 3);
    CHECK_RC(fb_breaker_trip_at(b, 130), FB_OK);
    CHECK_EVENT(log, 3, FB_STATE_CLOSED, FB_STATE_OPEN);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 130), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_OPEN && p.retry_after_ns == 100); /* the first wait */
    CHECK_RC(fb_breaker_half_open_at(b, 140), FB_OK);
    CHECK_EVENT(log, 4, FB_STATE_OPEN, FB_STATE_HALF_OPEN);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 140), FB_OK);
    CHECK(p.kind == FB_PERMIT_PROBE);
    CHECK_RC(fb_breaker_force_open_at(b, 150), FB_OK);
    CHECK_EVENT(log, 5, FB_STATE_HALF_OPEN, FB_STATE_FORCED_OPEN);
    CHECK_RC(fb_breaker_disable_at(b, 160), FB_OK);
    CHECK_EVENT(log, 6, FB_STATE_FORCED_OPEN, FB_STATE_DISABLED);
    CHECK_RC(fb_breaker_metrics_only_at(b, 170), FB_OK);
    CHECK_EVENT(log, 7, FB_STATE_DISABLED, FB_STATE_METRICS_ONLY);
    CHECK_RC(fb_breaker_reset_at(b, 180), FB_OK);
    CHECK_EVENT(log, 8, FB_STATE_METRICS_ONLY, FB_STATE_CLOSED);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics_at(b, &m, 180), FB_OK);
    CHECK(m.trips == 2); /* the rule's trip and fb_breaker_trip */

    /* Removed: no more events. */
    CHECK_RC(fb_breaker_set_listener(b, NULL, NULL), FB_OK);
    CHECK_RC(fb_breaker_trip_at(b, 190), FB_OK);
    CHECK(log.count == 9);
    fb_breaker_free(b);
}

static void test_listener_reenters_the_breaker(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 1;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    static struct log log;
    memset(&log, 0, sizeof log);
    int counted = 0;
    log.reenter = 1;
    CHECK_RC(fb_breaker_set_listener(b, on_change, &log), FB_OK);

    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO, 0), FB_OK);
    /* The trip, then the reset the listener made from inside, nested. */
    CHECK(log.count == 2);
    CHECK(log.events[0].from == FB_STATE_CLOSED && log.events[0].to == FB_STATE_OPEN);
    CHECK(log.events[0].depth == 0);
    CHECK(log.events[1].from == FB_STATE_OPEN && log.events[1].to == FB_STATE_CLOSED);
    CHECK(log.events[1].depth == 1);
    fb_state s;
    CHECK_RC(fb_breaker_state(b, &s), FB_OK);
    CHECK(s == FB_STATE_CLOSED);

    /* A listener may replace itself; the next change goes to the new one. */
    log.replace = 1;
    log.other = on_change_count;
    log.other_data = &counted;
    CHECK_RC(fb_breaker_trip_at(b, 1), FB_OK);
    CHECK(log.count == 3 && counted == 0);
    CHECK_RC(fb_breaker_reset_at(b, 2), FB_OK);
    CHECK(log.count == 3 && counted == 1);
    fb_breaker_free(b);
}

static void test_config_read_back(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.window_kind = FB_WINDOW_TIME;
    c.window_buckets = 7;
    c.bucket_duration_ns = 3 * FB_SECOND;
    c.failure_threshold = FB_OFF;
    c.failure_rate_threshold = 40;
    c.slow_call_rate_threshold = 60;
    c.minimum_calls = 3;
    c.wait_duration_ns = 2 * FB_SECOND;
    c.backoff_factor_milli = 1500;
    c.max_wait_duration_ns = 20 * FB_SECOND;
    c.jitter_permille = 250;
    c.jitter_seed = 42;
    c.half_open_max_calls = 3;
    c.success_threshold = 2;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_breaker_config back;
    memset(&back, 0xAB, sizeof back);
    CHECK_RC(fb_breaker_get_config(b, &back), FB_OK);
    CHECK(back.window_kind == FB_WINDOW_TIME && back.window_buckets == 7);
    CHECK(back.bucket_duration_ns == 3 * FB_SECOND && back.window_size == 100);
    CHECK(back.failure_threshold == FB_OFF && back.failure_rate_threshold == 40);
    CHECK(back.slow_call_rate_threshold == 60 && back.minimum_calls == 3);
    CHECK(back.slow_call_duration_ns == c.slow_call_duration_ns);
    CHECK(back.wait_duration_ns == 2 * FB_SECOND && back.backoff_factor_milli == 1500);
    CHECK(back.max_wait_duration_ns == 20 * FB_SECOND && back.jitter_permille == 250);
    CHECK(back.jitter_seed == 42);
    CHECK(back.half_open_max_calls == 3 && back.success_threshold == 2);
    fb_breaker_free(b);

    /* Random seeds: none until the first jitter, then one of each breaker's own. */
    c = fb_breaker_config_default();
    c.failure_threshold = 1;
    c.jitter_permille = 500;
    fb_breaker *x = NULL, *y = NULL;
    CHECK_RC(fb_breaker_new(&c, &x), FB_OK);
    CHECK_RC(fb_breaker_new(&c, &y), FB_OK);
    CHECK_RC(fb_breaker_get_config(x, &back), FB_OK);
    CHECK(back.jitter_seed == FB_RANDOM_SEED && back.window_kind == FB_WINDOW_COUNT);
    fb_permit p;
    CHECK_RC(fb_breaker_trip_at(x, 0), FB_OK);
    CHECK_RC(fb_breaker_trip_at(y, 0), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(x, &p, 1), FB_REJECTED);
    CHECK_RC(fb_breaker_acquire_at(y, &p, 1), FB_REJECTED);
    fb_breaker_config bx, by;
    CHECK_RC(fb_breaker_get_config(x, &bx), FB_OK);
    CHECK_RC(fb_breaker_get_config(y, &by), FB_OK);
    CHECK(bx.jitter_seed != FB_RANDOM_SEED && by.jitter_seed != FB_RANDOM_SEED);
    CHECK(bx.jitter_seed != by.jitter_seed);
    fb_breaker_free(x);
    fb_breaker_free(y);
}

int main(void) {
    test_every_transition_is_notified();
    test_listener_reenters_the_breaker();
    test_config_read_back();
    return check_report("test_listener");
}
