/* Four threads hammer one breaker, one bulkhead and one bucket; at the end the counters the
 * library kept equal the counts the threads kept. The breaker uses the real clock with a short
 * wait, so it cycles through closed, open and half-open while the threads run. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "check.h"

#define THREADS 4
#define ITERATIONS 200000
#define BULKHEAD_MAX 3
#define BUCKET_BURST 100

static fb_breaker *breaker;
static fb_bulkhead *bulkhead;
static fb_bucket *bucket;
static pthread_barrier_t start;

static atomic_int bulkhead_in_flight;
static atomic_int bulkhead_violations;
static atomic_int snapshot_violations;
static atomic_int bad_results;
static atomic_ullong opened; /* listener: transitions into open */
static atomic_ullong notified;

/* Runs on whichever thread made the change, concurrently with the others. */
static void on_change(const fb_breaker *b, fb_state from, fb_state to, void *user_data) {
    if (b != breaker || user_data != &notified || from == to) {
        atomic_fetch_add(&bad_results, 1);
    }
    atomic_fetch_add(&notified, 1);
    if (to == FB_STATE_OPEN) {
        atomic_fetch_add(&opened, 1);
    }
}

struct counts {
    uint64_t permitted, rejected, succeeded, failed, ignored;
    uint64_t bulk_ok, bulk_rejected, tokens;
    unsigned id;
};

static uint64_t next_random(uint64_t *s) { /* xorshift64 */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *hammer(void *arg) {
    struct counts *c = arg;
    uint64_t rng = 0x9E3779B97F4A7C15u * (c->id + 1);
    pthread_barrier_wait(&start);
    for (int i = 0; i < ITERATIONS; i++) {
        fb_permit p;
        fb_result rc = fb_breaker_acquire(breaker, &p);
        if (rc == FB_OK) {
            c->permitted++;
            uint64_t r = next_random(&rng) % 100;
            fb_outcome o = r < 8 ? FB_OUTCOME_FAILURE : r < 12 ? FB_OUTCOME_IGNORED
                                                                : FB_OUTCOME_SUCCESS;
            if (fb_breaker_record(breaker, &p, o, FB_DURATION_AUTO) != FB_OK) {
                atomic_fetch_add(&bad_results, 1);
            }
            if (o == FB_OUTCOME_FAILURE) {
                c->failed++;
            } else if (o == FB_OUTCOME_IGNORED) {
                c->ignored++;
            } else {
                c->succeeded++;
            }
        } else if (rc == FB_REJECTED) {
            c->rejected++;
            if (p.reason < FB_REJECT_OPEN || p.reason > FB_REJECT_FORCED_OPEN) {
                atomic_fetch_add(&bad_results, 1);
            }
        } else {
            atomic_fetch_add(&bad_results, 1);
        }
        if (i % 1024 == 0) {
            fb_breaker_stats m;
            if (fb_breaker_metrics(breaker, &m) != FB_OK || m.state > FB_STATE_HALF_OPEN ||
                m.half_open_in_flight > 2 || m.succeeded + m.failed + m.ignored > m.permitted) {
                atomic_fetch_add(&snapshot_violations, 1);
            }
        }
        if (c->id == 0 && i % 50000 == 49999) {
            fb_breaker_reset(breaker); /* outstanding permits become stale */
        }

        rc = fb_bulkhead_try_acquire(bulkhead);
        if (rc == FB_OK) {
            c->bulk_ok++;
            if (atomic_fetch_add(&bulkhead_in_flight, 1) + 1 > BULKHEAD_MAX) {
                atomic_fetch_add(&bulkhead_violations, 1);
            }
            atomic_fetch_sub(&bulkhead_in_flight, 1);
            fb_bulkhead_release(bulkhead);
        } else {
            c->bulk_rejected++;
        }

        /* The bucket's time stands still in two phases: each grants exactly its burst. */
        uint64_t now = i < ITERATIONS / 2 ? 0 : FB_SECOND;
        if (fb_bucket_try_acquire_at(bucket, 1, NULL, now) == FB_OK) {
            c->tokens++;
        }
    }
    return NULL;
}

int main(void) {
    fb_breaker_config bc = fb_breaker_config_default();
    bc.failure_threshold = 4;
    bc.failure_rate_threshold = 50;
    bc.minimum_calls = 20;
    bc.window_size = 100;
    bc.wait_duration_ns = 200 * FB_MICROSECOND;
    bc.half_open_max_calls = 2;
    bc.success_threshold = 2;
    CHECK_RC(fb_breaker_new(&bc, &breaker), FB_OK);
    CHECK_RC(fb_breaker_set_listener(breaker, on_change, &notified), FB_OK);
    fb_bulkhead_config hc = {BULKHEAD_MAX};
    CHECK_RC(fb_bulkhead_new(&hc, &bulkhead), FB_OK);
    fb_bucket_config kc = fb_bucket_config_per_second(1000, BUCKET_BURST);
    CHECK_RC(fb_bucket_new(&kc, &bucket), FB_OK);

    pthread_t threads[THREADS];
    struct counts counts[THREADS];
    memset(counts, 0, sizeof counts);
    CHECK(pthread_barrier_init(&start, NULL, THREADS) == 0);
    for (unsigned t = 0; t < THREADS; t++) {
        counts[t].id = t;
        CHECK(pthread_create(&threads[t], NULL, hammer, &counts[t]) == 0);
    }
    struct counts sum;
    memset(&sum, 0, sizeof sum);
    for (unsigned t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        sum.permitted += counts[t].permitted;
        sum.rejected += counts[t].rejected;
        sum.succeeded += counts[t].succeeded;
        sum.failed += counts[t].failed;
        sum.ignored += counts[t].ignored;
        sum.bulk_ok += counts[t].bulk_ok;
        sum.bulk_rejected += counts[t].bulk_rejected;
        sum.tokens += counts[t].tokens;
    }
    pthread_barrier_destroy(&start);

    CHECK(atomic_load(&bad_results) == 0);
    CHECK(atomic_load(&snapshot_violations) == 0);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics(breaker, &m), FB_OK);
    CHECK(sum.permitted + sum.rejected == (uint64_t)THREADS * ITERATIONS);
    CHECK(m.permitted == sum.permitted);
    CHECK(m.rejected == sum.rejected);
    CHECK(m.succeeded == sum.succeeded);
    CHECK(m.failed == sum.failed);
    CHECK(m.ignored == sum.ignored);
    CHECK(m.permitted == m.succeeded + m.failed + m.ignored);
    CHECK(m.trips > 0 && m.rejected > 0);
    CHECK(m.state <= FB_STATE_HALF_OPEN && m.half_open_in_flight <= 2);
    /* Every trip was notified once, on the thread that made it. */
    CHECK(atomic_load(&opened) == m.trips && atomic_load(&notified) >= m.trips);
    printf("breaker: %llu permitted, %llu rejected, %llu trips, state %s\n",
           (unsigned long long)m.permitted, (unsigned long long)m.rejected,
           (unsigned long long)m.trips, fb_state_str(m.state));

    fb_bulkhead_stats hs;
    CHECK_RC(fb_bulkhead_metrics(bulkhead, &hs), FB_OK);
    CHECK(atomic_load(&bulkhead_violations) == 0);
    CHECK(hs.in_flight == 0 && hs.peak >= 1 && hs.peak <= BULKHEAD_MAX);
    CHECK(hs.acquired == sum.bulk_ok && hs.rejected == sum.bulk_rejected);

    CHECK(sum.tokens == 2 * BUCKET_BURST);

    fb_breaker_free(breaker);
    fb_bulkhead_free(bulkhead);
    fb_bucket_free(bucket);
    return check_report("test_threads");
}
