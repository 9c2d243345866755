/* Breaker lifecycle through the C ABI, on the caller's clock (_at): trip, reject, half-open,
 * close; backoff; ignored and stale outcomes; manual states; time windows; slow calls;
 * storage without the heap; the clock-reading variants; version and names. */
#include <stdalign.h>
#include <stdint.h>

#include "check.h"

#define S FB_SECOND

static fb_state state_of(const fb_breaker *b) {
    fb_state s = 99;
    CHECK_RC(fb_breaker_state(b, &s), FB_OK);
    return s;
}

static fb_breaker_stats stats_at(const fb_breaker *b, uint64_t now) {
    fb_breaker_stats m;
    memset(&m, 0xAB, sizeof m);
    CHECK_RC(fb_breaker_metrics_at(b, &m, now), FB_OK);
    return m;
}

/* Acquires at `now`, expecting a permit, and records `outcome` at `now`. */
static void call(const fb_breaker *b, fb_outcome outcome, uint64_t now) {
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, now), FB_OK);
    CHECK(p.reason == FB_REJECT_NONE);
    CHECK_RC(fb_breaker_record_at(b, &p, outcome, FB_DURATION_AUTO, now), FB_OK);
}

static void test_defaults(void) {
    fb_breaker_config c = fb_breaker_config_default();
    CHECK(c.failure_threshold == 5);
    CHECK(c.failure_rate_threshold == FB_OFF && c.slow_call_rate_threshold == FB_OFF);
    CHECK(c.minimum_calls == 10);
    CHECK(c.slow_call_duration_ns == 60 * S);
    CHECK(c.window_kind == FB_WINDOW_COUNT && c.window_size == 100 && c.window_buckets == 10);
    CHECK(c.bucket_duration_ns == S && c.wait_duration_ns == 60 * S);
    CHECK(c.backoff_factor_milli == 1000 && c.jitter_permille == 0);
    /* No cap of its own; a random jitter seed per breaker. */
    CHECK(c.max_wait_duration_ns == FB_MAX_WAIT_DURATION_NS && c.jitter_seed == FB_RANDOM_SEED);
    CHECK(c.half_open_max_calls == 1 && c.success_threshold == 1);
}

static void test_lifecycle(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 3;
    c.wait_duration_ns = 10 * S;
    c.half_open_max_calls = 2;
    c.success_threshold = 2;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    CHECK(b != NULL);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    fb_breaker_stats m = stats_at(b, 0);
    CHECK(m.state == FB_STATE_CLOSED && m.generation == 0 && m.permitted == 0);
    CHECK(!m.has_last_transition);

    /* Trip: three failures in a row (a success in between resets the run). */
    call(b, FB_OUTCOME_FAILURE, 1 * S);
    call(b, FB_OUTCOME_FAILURE, 1 * S);
    call(b, FB_OUTCOME_SUCCESS, 1 * S);
    CHECK(stats_at(b, 1 * S).consecutive_failures == 0);
    call(b, FB_OUTCOME_FAILURE, 1 * S);
    call(b, FB_OUTCOME_FAILURE, 1 * S);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    call(b, FB_OUTCOME_FAILURE, 2 * S);
    CHECK(state_of(b) == FB_STATE_OPEN);

    /* Open: rejected with the time left. */
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 2 * S), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_OPEN && p.retry_after_ns == 10 * S);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 6 * S), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_OPEN && p.retry_after_ns == 6 * S);
    m = stats_at(b, 7 * S);
    CHECK(m.state == FB_STATE_OPEN && m.trips == 1 && m.rejected == 2);
    CHECK(m.has_last_transition && m.last_transition_at_ns == 2 * S);
    CHECK(m.retry_after_ns == 5 * S);
    CHECK(m.permitted == 6 && m.succeeded == 1 && m.failed == 5);

    /* Half-open after the wait: two probes, the third is refused. */
    fb_permit probe1, probe2;
    CHECK_RC(fb_breaker_acquire_at(b, &probe1, 12 * S), FB_OK);
    CHECK(state_of(b) == FB_STATE_HALF_OPEN);
    CHECK_RC(fb_breaker_acquire_at(b, &probe2, 12 * S), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 12 * S), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_HALF_OPEN_FULL && p.retry_after_ns == 0);
    CHECK(stats_at(b, 12 * S).half_open_in_flight == 2);

    /* An ignored probe hands its slot back. */
    CHECK_RC(fb_breaker_record_at(b, &probe2, FB_OUTCOME_IGNORED, 0, 12 * S), FB_OK);
    CHECK(stats_at(b, 12 * S).half_open_in_flight == 1);
    CHECK_RC(fb_breaker_acquire_at(b, &probe2, 12 * S), FB_OK);

    /* Two successes close it. */
    CHECK_RC(fb_breaker_record_at(b, &probe1, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 13 * S), FB_OK);
    CHECK(state_of(b) == FB_STATE_HALF_OPEN);
    CHECK_RC(fb_breaker_record_at(b, &probe2, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 13 * S), FB_OK);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    m = stats_at(b, 14 * S);
    CHECK(m.state == FB_STATE_CLOSED && m.trips == 1 && m.ignored == 1);
    CHECK(m.last_transition_at_ns == 13 * S && m.retry_after_ns == 0);
    CHECK(m.permitted == m.succeeded + m.failed + m.ignored);
    fb_breaker_free(b);
}

static void test_backoff_and_reopen(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 1;
    c.wait_duration_ns = 10 * S;
    c.backoff_factor_milli = 2000;
    c.max_wait_duration_ns = 30 * S;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    call(b, FB_OUTCOME_FAILURE, 0);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_REJECTED);
    CHECK(p.retry_after_ns == 10 * S);
    /* A failed probe reopens with the wait doubled, then capped. */
    call(b, FB_OUTCOME_FAILURE, 10 * S);
    CHECK(state_of(b) == FB_STATE_OPEN);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 10 * S), FB_REJECTED);
    CHECK(p.retry_after_ns == 20 * S);
    call(b, FB_OUTCOME_FAILURE, 30 * S);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 30 * S), FB_REJECTED);
    CHECK(p.retry_after_ns == 30 * S);
    CHECK(stats_at(b, 30 * S).trips == 3);
    /* A successful probe closes, and the next trip waits the base time again. */
    call(b, FB_OUTCOME_SUCCESS, 60 * S);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    call(b, FB_OUTCOME_FAILURE, 61 * S);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 61 * S), FB_REJECTED);
    CHECK(p.retry_after_ns == 10 * S);
    fb_breaker_free(b);
}

static void test_manual_states_and_stale_permits(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 2;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p, stale;

    CHECK_RC(fb_breaker_force_open_at(b, 1), FB_OK);
    CHECK(state_of(b) == FB_STATE_FORCED_OPEN);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 2), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_FORCED_OPEN && p.retry_after_ns == 0);
    /* A rejection is not a permit: recording it is an error. */
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 0, 2), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("permit.reason");

    CHECK_RC(fb_breaker_disable_at(b, 3), FB_OK);
    CHECK(state_of(b) == FB_STATE_DISABLED);
    fb_breaker_stats before = stats_at(b, 3);
    call(b, FB_OUTCOME_FAILURE, 3);
    call(b, FB_OUTCOME_FAILURE, 3);
    call(b, FB_OUTCOME_FAILURE, 3);
    fb_breaker_stats after = stats_at(b, 3);
    CHECK(after.state == FB_STATE_DISABLED);
    CHECK(after.permitted == before.permitted && after.failed == before.failed);

    CHECK_RC(fb_breaker_metrics_only_at(b, 4), FB_OK);
    call(b, FB_OUTCOME_FAILURE, 4);
    call(b, FB_OUTCOME_FAILURE, 4);
    call(b, FB_OUTCOME_FAILURE, 4);
    after = stats_at(b, 4);
    CHECK(after.state == FB_STATE_METRICS_ONLY && after.failed == before.failed + 3);
    CHECK(after.trips == 0 && after.window_failures == 3);

    CHECK_RC(fb_breaker_reset_at(b, 5), FB_OK);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    after = stats_at(b, 5);
    CHECK(after.window_samples == 0 && after.consecutive_failures == 0);

    /* An outcome from before a state change moves nothing (but is counted). */
    CHECK_RC(fb_breaker_acquire_at(b, &stale, 6), FB_OK);
    call(b, FB_OUTCOME_FAILURE, 6);
    CHECK_RC(fb_breaker_reset_at(b, 7), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &stale, FB_OUTCOME_FAILURE, 0, 7), FB_OK);
    after = stats_at(b, 7);
    CHECK(after.consecutive_failures == 0 && after.state == FB_STATE_CLOSED);
    CHECK(after.failed == before.failed + 5);

    /* Arguments out of range. */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 8), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, 7, 0, 8), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("outcome = 7");
    fb_permit forged = p;
    forged.kind = 77;
    CHECK_RC(fb_breaker_record_at(b, &forged, FB_OUTCOME_SUCCESS, 0, 8), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("permit.kind = 77");
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 0, 8), FB_OK);
    fb_breaker_free(b);
}

static void test_time_window(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.window_kind = FB_WINDOW_TIME;
    c.window_buckets = 10;
    c.bucket_duration_ns = S;
    c.failure_threshold = FB_OFF; /* only the rate rule */
    c.failure_rate_threshold = 50;
    c.minimum_calls = 4;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    call(b, FB_OUTCOME_FAILURE, 0);
    call(b, FB_OUTCOME_FAILURE, 1 * S);
    call(b, FB_OUTCOME_FAILURE, 2 * S);
    CHECK(stats_at(b, 2 * S).window_samples == 3);
    /* Ten seconds later those have left the window: one more failure is 1 of 1 < minimum. */
    call(b, FB_OUTCOME_FAILURE, 15 * S);
    fb_breaker_stats m = stats_at(b, 15 * S);
    CHECK(m.window_samples == 1 && m.window_failures == 1 && m.state == FB_STATE_CLOSED);
    call(b, FB_OUTCOME_SUCCESS, 15 * S);
    call(b, FB_OUTCOME_SUCCESS, 16 * S);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    call(b, FB_OUTCOME_FAILURE, 16 * S); /* 2 of 4 = 50% */
    CHECK(state_of(b) == FB_STATE_OPEN);
    fb_breaker_free(b);

    /* Every bucket count builds, in one window type: a count window takes less storage. */
    size_t small = 0, large = 0;
    c.window_buckets = FB_MAX_WINDOW_BUCKETS;
    CHECK_RC(fb_breaker_storage_size(&c, &large), FB_OK);
    c.window_kind = FB_WINDOW_COUNT;
    c.window_size = FB_MAX_WINDOW_SIZE;
    CHECK_RC(fb_breaker_storage_size(&c, &small), FB_OK);
    CHECK(small < large && large == FB_BREAKER_STORAGE_SIZE);
    c.window_kind = FB_WINDOW_TIME;
    for (uint32_t n = 1; n <= FB_MAX_WINDOW_BUCKETS; n++) {
        c.window_buckets = n;
        CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
        call(b, FB_OUTCOME_FAILURE, 100 * S);
        CHECK(stats_at(b, 100 * S).window_samples == 1);
        fb_breaker_free(b);
    }
}

static void test_slow_calls(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = FB_OFF;
    c.slow_call_rate_threshold = 50;
    c.slow_call_duration_ns = S;
    c.minimum_calls = 2;
    c.window_size = 10;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    /* Given by the caller: 0.5 s is not slow, whatever the clock says. */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, S / 2, 10 * S), FB_OK);
    CHECK(stats_at(b, 10 * S).slow == 0);
    /* Measured from the acquire: 2 s is slow. The rule is checked on slow outcomes. */
    CHECK_RC(fb_breaker_acquire_at(b, &p, 10 * S), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, 12 * S), FB_OK);
    fb_breaker_stats m = stats_at(b, 12 * S);
    CHECK(m.slow == 1 && m.succeeded == 2);
    CHECK(m.state == FB_STATE_OPEN && m.trips == 1); /* 1 of 2 = 50% */
    CHECK(m.window_samples == 0);                    /* a trip empties the window */
    fb_breaker_free(b);

    /* Without slow-call detection, durations are ignored. */
    c.slow_call_rate_threshold = FB_OFF;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    CHECK_RC(fb_breaker_acquire_at(b, &p, 0), FB_OK);
    CHECK_RC(fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, 100 * S, 100 * S), FB_OK);
    CHECK(stats_at(b, 100 * S).slow == 0);
    fb_breaker_free(b);
}

static void test_no_heap(void) {
    static alignas(FB_BREAKER_STORAGE_ALIGN) unsigned char storage[FB_BREAKER_STORAGE_SIZE + 8];
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 1;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_init(storage, FB_BREAKER_STORAGE_SIZE, &c, &b), FB_OK);
    CHECK((void *)b == (void *)storage);
    call(b, FB_OUTCOME_FAILURE, 0);
    CHECK(state_of(b) == FB_STATE_OPEN);
    fb_breaker_free(b); /* ignored: the storage is ours */
    CHECK(state_of(b) == FB_STATE_OPEN);

    /* The exact size of a count window, and one byte less. */
    c.window_size = 64;
    size_t need = 0;
    CHECK_RC(fb_breaker_storage_size(&c, &need), FB_OK);
    CHECK(need > 0 && need < FB_BREAKER_STORAGE_SIZE / 3);
    CHECK_RC(fb_breaker_init(storage, need, &c, &b), FB_OK);
    fb_breaker *unchanged = b;
    CHECK_RC(fb_breaker_init(storage, need - 1, &c, &b), FB_ERR_BUFFER);
    CHECK_ERROR_HAS("too small");
    CHECK(b == unchanged);
    /* Misaligned storage. */
    CHECK_RC(fb_breaker_init(storage + 1, FB_BREAKER_STORAGE_SIZE, &c, &b), FB_ERR_BUFFER);
    CHECK_ERROR_HAS("aligned");

    /* On the stack. */
    alignas(FB_BREAKER_STORAGE_ALIGN) unsigned char local[FB_BREAKER_STORAGE_SIZE];
    c = fb_breaker_config_default();
    c.window_kind = FB_WINDOW_TIME;
    c.window_buckets = FB_MAX_WINDOW_BUCKETS;
    CHECK_RC(fb_breaker_init(local, sizeof local, &c, &b), FB_OK);
    call(b, FB_OUTCOME_SUCCESS, 0);
    CHECK(stats_at(b, 0).succeeded == 1);
}

static void test_clock_variants(void) {
    uint64_t t0 = fb_now_ns();
    uint64_t t1 = fb_now_ns();
    CHECK(t0 > 0 && t1 >= t0);

    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 2;
    c.wait_duration_ns = 50 * FB_MILLISECOND;
    fb_breaker *b = NULL;
    CHECK_RC(fb_breaker_new(&c, &b), FB_OK);
    fb_permit p;
    for (int i = 0; i < 2; i++) {
        CHECK_RC(fb_breaker_acquire(b, &p), FB_OK);
        CHECK_RC(fb_breaker_record(b, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO), FB_OK);
    }
    CHECK_RC(fb_breaker_acquire(b, &p), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_OPEN && p.retry_after_ns > 0 &&
          p.retry_after_ns <= 50 * FB_MILLISECOND);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics(b, &m), FB_OK);
    CHECK(m.state == FB_STATE_OPEN && m.last_transition_at_ns >= t1);
    CHECK_RC(fb_breaker_force_open(b), FB_OK);
    CHECK(state_of(b) == FB_STATE_FORCED_OPEN);
    CHECK_RC(fb_breaker_disable(b), FB_OK);
    CHECK(state_of(b) == FB_STATE_DISABLED);
    CHECK_RC(fb_breaker_metrics_only(b), FB_OK);
    CHECK(state_of(b) == FB_STATE_METRICS_ONLY);
    CHECK_RC(fb_breaker_reset(b), FB_OK);
    CHECK(state_of(b) == FB_STATE_CLOSED);
    CHECK_RC(fb_breaker_acquire(b, &p), FB_OK);
    CHECK_RC(fb_breaker_record(b, &p, FB_OUTCOME_SUCCESS, 5), FB_OK);
    fb_breaker_free(b);
}

static void test_names(void) {
    CHECK(strcmp(FB_VERSION_STRING, fb_version()) == 0);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", FB_VERSION_MAJOR, FB_VERSION_MINOR,
             FB_VERSION_PATCH);
    CHECK(strcmp(expect, FB_VERSION_STRING) == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_CLOSED), "closed") == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_OPEN), "open") == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_HALF_OPEN), "half_open") == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_FORCED_OPEN), "forced_open") == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_DISABLED), "disabled") == 0);
    CHECK(strcmp(fb_state_str(FB_STATE_METRICS_ONLY), "metrics_only") == 0);
    CHECK(strcmp(fb_state_str(6), "unknown") == 0);
    const fb_result codes[] = {FB_OK, FB_REJECTED, FB_ERR_NULL, FB_ERR_INVALID_CONFIG,
                               FB_ERR_PANIC, FB_ERR_EXCEEDS_CAPACITY, FB_ERR_BUFFER,
                               FB_ERR_INVALID_ARGUMENT, FB_ERR_PERMIT_USED, FB_ERR_NOT_HELD,
                               FB_ERR_BUSY, FB_ERR_TABLE_FULL, FB_ERR_KEY_TOO_LONG};
    const char *names[] = {"FB_OK", "FB_REJECTED", "FB_ERR_NULL", "FB_ERR_INVALID_CONFIG",
                           "FB_ERR_PANIC", "FB_ERR_EXCEEDS_CAPACITY", "FB_ERR_BUFFER",
                           "FB_ERR_INVALID_ARGUMENT", "FB_ERR_PERMIT_USED",
                           "FB_ERR_NOT_HELD", "FB_ERR_BUSY", "FB_ERR_TABLE_FULL",
                           "FB_ERR_KEY_TOO_LONG"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = fb_result_str(codes[i]);
        CHECK(strncmp(s, names[i], strlen(names[i])) == 0 && s[strlen(names[i])] == ':');
    }
    CHECK(strcmp(fb_result_str(42), "unknown fb_result code") == 0);
}

int main(void) {
    test_defaults();
    test_lifecycle();
    test_backoff_and_reopen();
    test_manual_states_and_stale_permits();
    test_time_window();
    test_slow_calls();
    test_no_heap();
    test_clock_variants();
    test_names();
    return check_report("test_breaker");
}
