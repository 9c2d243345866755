/* Keyed rate limits (fb_keyed_*): one GCRA bucket per key, exact values on the caller's clock
 * (_at), independent keys, keys too long, a full table that rejects or admits new keys,
 * reset, metrics, and threads hammering one table with shared keys (the per-key bound holds;
 * this program also runs under ThreadSanitizer). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

#define KEY(s) (const uint8_t *)(s), strlen(s)

static fb_keyed *table_of(uint64_t rate, uint64_t burst, size_t capacity, fb_when_full when) {
    fb_bucket_config c = fb_bucket_config_per_second(rate, burst);
    fb_keyed *k = NULL;
    CHECK_RC(fb_keyed_new(&c, capacity, when, &k), FB_OK);
    CHECK(k != NULL);
    return k;
}

static void test_per_key_gcra(void) {
    fb_keyed *k = table_of(1, 2, 64, FB_WHEN_FULL_REJECT);
    uint64_t wait = 7;
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, 0), FB_OK);
    CHECK(wait == 0);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, 0), FB_REJECTED);
    CHECK(wait == FB_SECOND);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, FB_SECOND / 4), FB_REJECTED);
    CHECK(wait == 3 * FB_SECOND / 4);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, NULL, 0), FB_REJECTED);
    /* Another key has its own bucket; keys are bytes, not strings. */
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.2"), 2, &wait, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, (const uint8_t *)"a\0b", 3, 2, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, (const uint8_t *)"a\0c", 3, 2, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, (const uint8_t *)"", 0, 2, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, (const uint8_t *)"", 0, 1, NULL, 0), FB_REJECTED);
    /* n = 0 always succeeds; n above the burst never can. */
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 0, &wait, 0), FB_OK);
    CHECK(wait == 0);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 3, &wait, 0), FB_ERR_EXCEEDS_CAPACITY);
    CHECK_ERROR_HAS("fb_keyed_try_acquire_at: 3 tokens requested");
    /* One token back each second. */
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, FB_SECOND), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("10.0.0.1"), 1, &wait, FB_SECOND), FB_REJECTED);
    CHECK(wait == FB_SECOND);

    /* retry_after and state take nothing. */
    CHECK_RC(fb_keyed_retry_after_at(k, KEY("10.0.0.1"), 1, &wait, FB_SECOND), FB_OK);
    CHECK(wait == FB_SECOND);
    CHECK_RC(fb_keyed_retry_after_at(k, KEY("10.0.0.1"), 2, &wait, FB_SECOND), FB_OK);
    CHECK(wait == 2 * FB_SECOND);
    CHECK_RC(fb_keyed_retry_after_at(k, KEY("absent"), 2, &wait, FB_SECOND), FB_OK);
    CHECK(wait == 0);
    wait = 99;
    CHECK_RC(fb_keyed_retry_after_at(k, KEY("absent"), 3, &wait, 0), FB_ERR_EXCEEDS_CAPACITY);
    CHECK(wait == 99);
    fb_bucket_stats s;
    CHECK_RC(fb_keyed_state_at(k, KEY("10.0.0.1"), &s, FB_SECOND), FB_OK);
    CHECK(s.limit == 2 && s.remaining == 0);
    CHECK(s.reset_after_ns == 2 * FB_SECOND && s.retry_after_ns == FB_SECOND);
    CHECK_RC(fb_keyed_state_at(k, KEY("10.0.0.1"), &s, 2 * FB_SECOND), FB_OK);
    CHECK(s.remaining == 1 && s.reset_after_ns == FB_SECOND && s.retry_after_ns == 0);
    CHECK_RC(fb_keyed_state_at(k, KEY("absent"), &s, 0), FB_OK);
    CHECK(s.limit == 2 && s.remaining == 2 && s.reset_after_ns == 0 && s.retry_after_ns == 0);
    fb_keyed_free(k);
}

static void test_key_length(void) {
    fb_keyed *k = table_of(1, 1, 16, FB_WHEN_FULL_REJECT);
    uint8_t key[FB_MAX_KEY_LEN + 1];
    memset(key, 'x', sizeof key);
    uint64_t wait = 5;
    CHECK_RC(fb_keyed_try_acquire_at(k, key, FB_MAX_KEY_LEN, 1, &wait, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, key, FB_MAX_KEY_LEN, 1, &wait, 0), FB_REJECTED);
    wait = 5;
    CHECK_RC(fb_keyed_try_acquire_at(k, key, FB_MAX_KEY_LEN + 1, 1, &wait, 0),
             FB_ERR_KEY_TOO_LONG);
    CHECK_ERROR_HAS("fb_keyed_try_acquire_at: key of 65 bytes: at most 64 allowed");
    CHECK(wait == 5);
    CHECK_RC(fb_keyed_try_acquire(k, key, 1000, 1, NULL), FB_ERR_KEY_TOO_LONG);
    CHECK_ERROR_HAS("key of 1000 bytes");
    fb_bucket_stats s;
    CHECK_RC(fb_keyed_state(k, key, 65, &s), FB_ERR_KEY_TOO_LONG);
    CHECK_RC(fb_keyed_retry_after(k, key, 65, 1, &wait), FB_ERR_KEY_TOO_LONG);
    CHECK_RC(fb_keyed_reset(k, key, 65, NULL), FB_ERR_KEY_TOO_LONG);
    CHECK_ERROR_HAS("fb_keyed_reset: key of 65 bytes");
    fb_keyed_free(k);
}

static void test_table_full(void) {
    const fb_when_full policies[] = {FB_WHEN_FULL_REJECT, FB_WHEN_FULL_ADMIT};
    for (int p = 0; p < 2; p++) {
        fb_keyed *k = table_of(1, 2, 4, policies[p]);
        for (uint8_t i = 0; i < 4; i++) {
            CHECK_RC(fb_keyed_try_acquire_at(k, &i, 1, 2, NULL, 0), FB_OK);
        }
        uint64_t wait = 5;
        if (policies[p] == FB_WHEN_FULL_REJECT) {
            CHECK_RC(fb_keyed_try_acquire_at(k, KEY("new"), 1, &wait, 0), FB_ERR_TABLE_FULL);
            CHECK_ERROR_HAS("fb_keyed_try_acquire_at: the keyed table has no room");
            CHECK(wait == 5);
        } else {
            CHECK_RC(fb_keyed_try_acquire_at(k, KEY("new"), 1, &wait, 0), FB_OK);
            CHECK(wait == 0);
        }
        /* A live key is never evicted. */
        for (uint8_t i = 0; i < 4; i++) {
            CHECK_RC(fb_keyed_try_acquire_at(k, &i, 1, 1, NULL, 0), FB_REJECTED);
        }
        fb_keyed_stats m;
        CHECK_RC(fb_keyed_metrics_at(k, &m, 0), FB_OK);
        CHECK(m.capacity == 4 && m.allowed == 4 && m.limited == 4 && m.live_keys == 4);
        CHECK(m.full_rejected == (policies[p] == FB_WHEN_FULL_REJECT ? 1u : 0u));
        CHECK(m.full_admitted == (policies[p] == FB_WHEN_FULL_ADMIT ? 1u : 0u));
        /* Once a key's tokens are back (2 s) and its slot's grace (1 s) has passed, a new key
         * takes the slot. */
        CHECK_RC(fb_keyed_try_acquire_at(k, KEY("new"), 1, NULL, 3 * FB_SECOND), FB_OK);
        CHECK_RC(fb_keyed_metrics_at(k, &m, 3 * FB_SECOND), FB_OK);
        CHECK(m.live_keys == 1 && m.allowed == 5);
        fb_keyed_free(k);
    }
    /* A table that holds one key. */
    fb_keyed *k = table_of(1, 1, 1, FB_WHEN_FULL_REJECT);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("a"), 1, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("b"), 1, NULL, 0), FB_ERR_TABLE_FULL);
    fb_keyed_free(k);
}

static void test_reset_and_metrics(void) {
    fb_keyed *k = table_of(1, 2, 64, FB_WHEN_FULL_REJECT);
    fb_keyed_stats m;
    CHECK_RC(fb_keyed_metrics_at(k, &m, 0), FB_OK);
    CHECK(m.capacity == 64 && m.allowed == 0 && m.limited == 0 && m.full_rejected == 0 &&
          m.full_admitted == 0 && m.live_keys == 0);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("a"), 2, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("b"), 1, NULL, 0), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("a"), 1, NULL, 0), FB_REJECTED);
    CHECK_RC(fb_keyed_metrics_at(k, &m, 0), FB_OK);
    CHECK(m.allowed == 2 && m.limited == 1 && m.live_keys == 2);
    /* "b" is full again at 1 s, "a" at 2 s. */
    CHECK_RC(fb_keyed_metrics_at(k, &m, FB_SECOND), FB_OK);
    CHECK(m.live_keys == 1);
    CHECK_RC(fb_keyed_metrics_at(k, &m, 2 * FB_SECOND), FB_OK);
    CHECK(m.live_keys == 0);

    bool found = false;
    CHECK_RC(fb_keyed_reset(k, KEY("a"), &found), FB_OK);
    CHECK(found);
    CHECK_RC(fb_keyed_reset(k, KEY("nope"), &found), FB_OK);
    CHECK(!found);
    CHECK_RC(fb_keyed_reset(k, KEY("b"), NULL), FB_OK);
    CHECK_RC(fb_keyed_metrics_at(k, &m, 0), FB_OK);
    CHECK(m.live_keys == 0 && m.allowed == 2);
    CHECK_RC(fb_keyed_try_acquire_at(k, KEY("a"), 2, NULL, 0), FB_OK);
    /* The real clock: a fresh key is full, the functions without _at work. */
    uint64_t wait = 1;
    CHECK_RC(fb_keyed_try_acquire(k, KEY("clock"), 1, &wait), FB_OK);
    CHECK(wait == 0);
    CHECK_RC(fb_keyed_retry_after(k, KEY("clock"), 1, &wait), FB_OK);
    CHECK(wait == 0);
    fb_bucket_stats s;
    CHECK_RC(fb_keyed_state(k, KEY("clock"), &s), FB_OK);
    CHECK(s.limit == 2 && s.remaining == 1);
    CHECK_RC(fb_keyed_metrics(k, &m), FB_OK);
    CHECK(m.allowed == 4 && m.live_keys >= 1);
    fb_keyed_free(k);
    fb_keyed_free(NULL);
}

static void test_bad_config(void) {
    fb_bucket_config c = fb_bucket_config_per_second(1, 1);
    fb_keyed *k = NULL;
    CHECK_RC(fb_keyed_new(&c, 0, FB_WHEN_FULL_REJECT, &k), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("capacity");
    CHECK_RC(fb_keyed_new(&c, FB_MAX_KEYED_CAPACITY + 1, FB_WHEN_FULL_REJECT, &k),
             FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("16777217");
    c.burst = 0;
    CHECK_RC(fb_keyed_new(&c, 8, FB_WHEN_FULL_REJECT, &k), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("burst");
    c.burst = 1;
    CHECK_RC(fb_keyed_new(&c, 8, 2, &k), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("fb_keyed_new: invalid when_full = 2");
    CHECK(k == NULL);
    /* Another kind of handle is refused. */
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    CHECK_RC(fb_keyed_try_acquire_at((const fb_keyed *)(const void *)b, KEY("a"), 1, NULL, 0),
             FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("invalid keyed");
    fb_bucket_free(b);
}

static void test_codes(void) {
    CHECK(FB_ERR_TABLE_FULL == -26 && FB_ERR_KEY_TOO_LONG == -27);
    CHECK(strncmp(fb_result_str(FB_ERR_TABLE_FULL), "FB_ERR_TABLE_FULL: ", 19) == 0);
    CHECK(strncmp(fb_result_str(FB_ERR_KEY_TOO_LONG), "FB_ERR_KEY_TOO_LONG: ", 21) == 0);
    CHECK(FB_MAX_KEY_LEN == 64);
}

/* ----- threads ----- */

#define THREADS 4
#define KEYS 8
#define ITERATIONS 50000
#define RATE 1000 /* per second */
#define BURST 10

static fb_keyed *shared;
static pthread_barrier_t start;

struct worker {
    unsigned id;
    uint64_t granted[KEYS];
    uint64_t limited;
    uint64_t busy;
    uint64_t other;
};

static void *hammer(void *arg) {
    struct worker *w = arg;
    char key[16];
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < ITERATIONS; i++) {
        unsigned k = (i * 7 + w->id) % KEYS;
        int len = snprintf(key, sizeof key, "client-%u", k);
        uint64_t wait = 0;
        fb_result rc = fb_keyed_try_acquire(shared, (const uint8_t *)key, (size_t)len, 1, &wait);
        if (rc == FB_OK) {
            w->granted[k]++;
        } else if (rc == FB_REJECTED && wait > 0) {
            /* At most one interval, plus how far this thread's clock reading lags the
             * latest grant's (other threads may have read a later time). */
            w->limited++;
        } else if (rc == FB_ERR_BUSY) {
            w->busy++;
        } else {
            w->other++;
        }
    }
    return NULL;
}

static void test_threads(void) {
    fb_bucket_config c = fb_bucket_config_per_second(RATE, BURST);
    CHECK_RC(fb_keyed_new(&c, 1024, FB_WHEN_FULL_REJECT, &shared), FB_OK);
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    memset(workers, 0, sizeof workers);
    CHECK(pthread_barrier_init(&start, NULL, THREADS + 1) == 0);
    for (unsigned t = 0; t < THREADS; t++) {
        workers[t].id = t;
        CHECK(pthread_create(&threads[t], NULL, hammer, &workers[t]) == 0);
    }
    uint64_t t0 = fb_now_ns();
    pthread_barrier_wait(&start);
    for (unsigned t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
    }
    uint64_t t1 = fb_now_ns();
    pthread_barrier_destroy(&start);

    /* Every grant of a key happened between t0 and t1: at most the burst plus one token per
     * interval elapsed (+1 for the interval under way). */
    uint64_t bound = BURST + (t1 - t0) / (FB_SECOND / RATE) + 1;
    uint64_t total = 0, limited = 0, busy = 0, other = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        uint64_t granted = 0;
        for (unsigned t = 0; t < THREADS; t++) {
            granted += workers[t].granted[k];
        }
        if (granted > bound || granted < BURST) {
            fprintf(stderr, "key %u: %llu granted, bound %llu\n", k,
                    (unsigned long long)granted, (unsigned long long)bound);
        }
        CHECK(granted <= bound);
        CHECK(granted >= BURST);
        total += granted;
    }
    for (unsigned t = 0; t < THREADS; t++) {
        limited += workers[t].limited;
        busy += workers[t].busy;
        other += workers[t].other;
    }
    CHECK(other == 0);
    CHECK(total + limited + busy == (uint64_t)THREADS * ITERATIONS);
    fb_keyed_stats m;
    CHECK_RC(fb_keyed_metrics(shared, &m), FB_OK);
    CHECK(m.allowed == total && m.limited == limited);
    CHECK(m.full_rejected == 0 && m.full_admitted == 0 && m.live_keys <= KEYS);
    fb_keyed_free(shared);
}

int main(void) {
    test_per_key_gcra();
    test_key_length();
    test_table_full();
    test_reset_and_metrics();
    test_bad_config();
    test_codes();
    test_threads();
    return check_report("test_keyed");
}
