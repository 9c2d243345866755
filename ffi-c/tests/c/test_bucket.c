/* The GCRA token bucket through the C ABI: burst, rate, retry-after, capacity, reservations,
 * refunds, header values, storage without the heap, the clock-reading variants. */
#include <stdalign.h>
#include <stdint.h>

#include "check.h"

#define MS FB_MILLISECOND

static void test_burst_then_rate(void) {
    fb_bucket_config c = fb_bucket_config_per_second(10, 5);
    CHECK(c.rate == 10 && c.period_ns == FB_SECOND && c.burst == 5);
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    uint64_t tokens = 99, wait = 99;
    CHECK_RC(fb_bucket_available_at(b, &tokens, 0), FB_OK);
    CHECK(tokens == 5);
    for (int i = 0; i < 5; i++) {
        CHECK_RC(fb_bucket_try_acquire_at(b, 1, &wait, 0), FB_OK);
        CHECK(wait == 0);
    }
    CHECK_RC(fb_bucket_try_acquire_at(b, 1, &wait, 0), FB_REJECTED);
    CHECK(wait == 100 * MS);
    CHECK_RC(fb_bucket_try_acquire_at(b, 1, NULL, 0), FB_REJECTED); /* retry_after optional */
    CHECK_RC(fb_bucket_try_acquire_at(b, 0, &wait, 0), FB_OK);      /* zero tokens: always */
    CHECK_RC(fb_bucket_try_acquire_at(b, 1, &wait, 100 * MS), FB_OK);
    CHECK_RC(fb_bucket_try_acquire_at(b, 2, &wait, 150 * MS), FB_REJECTED);
    CHECK(wait == 150 * MS);
    CHECK_RC(fb_bucket_try_acquire_at(b, 2, NULL, 300 * MS), FB_OK);

    /* More than the burst can never succeed. */
    wait = 12345;
    CHECK_RC(fb_bucket_try_acquire_at(b, 6, &wait, 10 * FB_SECOND), FB_ERR_EXCEEDS_CAPACITY);
    CHECK_ERROR_HAS("6 tokens requested");
    CHECK_ERROR_HAS("capacity of 5");
    CHECK(wait == 12345);
    CHECK_RC(fb_bucket_reserve_at(b, 6, &wait, 10 * FB_SECOND), FB_ERR_EXCEEDS_CAPACITY);
    fb_bucket_free(b);
}

static void test_reserve_refund_state(void) {
    fb_bucket_config c = fb_bucket_config_default();
    CHECK(c.rate == 1 && c.period_ns == FB_SECOND && c.burst == 1);
    c.rate = 10;
    c.burst = 5;
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_new(&c, &b), FB_OK);
    CHECK_RC(fb_bucket_try_acquire_at(b, 5, NULL, 0), FB_OK);

    fb_bucket_stats st;
    CHECK_RC(fb_bucket_state_at(b, &st, 0), FB_OK);
    CHECK(st.limit == 5 && st.remaining == 0);
    CHECK(st.reset_after_ns == 500 * MS && st.retry_after_ns == 100 * MS);

    uint64_t wait = 0;
    CHECK_RC(fb_bucket_reserve_at(b, 1, &wait, 0), FB_OK);
    CHECK(wait == 100 * MS);
    CHECK_RC(fb_bucket_reserve_within_at(b, 1, 50 * MS, &wait, 0), FB_REJECTED);
    CHECK(wait == 200 * MS);
    CHECK_RC(fb_bucket_reserve_within_at(b, 1, 200 * MS, &wait, 0), FB_OK);
    CHECK(wait == 200 * MS);
    CHECK_RC(fb_bucket_refund_at(b, 2, 0), FB_OK); /* both reservations abandoned */
    CHECK_RC(fb_bucket_state_at(b, &st, 0), FB_OK);
    CHECK(st.reset_after_ns == 500 * MS && st.retry_after_ns == 100 * MS);

    CHECK_RC(fb_bucket_reset(b), FB_OK);
    uint64_t tokens = 0;
    CHECK_RC(fb_bucket_available_at(b, &tokens, 0), FB_OK);
    CHECK(tokens == 5);
    fb_bucket_free(b);
}

static void test_no_heap_and_clock(void) {
    static alignas(FB_BUCKET_STORAGE_ALIGN) unsigned char storage[FB_BUCKET_STORAGE_SIZE];
    fb_bucket_config c = fb_bucket_config_per_second(1000, 3);
    fb_bucket *b = NULL;
    CHECK_RC(fb_bucket_init(storage, sizeof storage, &c, &b), FB_OK);
    CHECK((void *)b == (void *)storage);
    uint64_t wait = 0, tokens = 0;
    CHECK_RC(fb_bucket_available(b, &tokens), FB_OK);
    CHECK(tokens == 3);
    CHECK_RC(fb_bucket_try_acquire(b, 3, &wait), FB_OK);
    CHECK_RC(fb_bucket_try_acquire(b, 3, &wait), FB_REJECTED);
    CHECK(wait > 0 && wait <= 3 * MS);
    CHECK_RC(fb_bucket_reserve(b, 1, &wait), FB_OK);
    CHECK_RC(fb_bucket_reserve_within(b, 3, 0, &wait), FB_REJECTED);
    CHECK_RC(fb_bucket_refund(b, 1), FB_OK);
    fb_bucket_stats st;
    CHECK_RC(fb_bucket_state(b, &st), FB_OK);
    CHECK(st.limit == 3 && st.remaining <= 3);
    fb_bucket_free(b); /* ignored: the storage is ours */
    CHECK_RC(fb_bucket_reset(b), FB_OK);

    CHECK_RC(fb_bucket_init(storage, sizeof storage - 1, &c, &b), FB_ERR_BUFFER);
    CHECK_RC(fb_bucket_init(storage + 4, sizeof storage - 4, &c, &b), FB_ERR_BUFFER);
}

int main(void) {
    test_burst_then_rate();
    test_reserve_refund_state();
    test_no_heap_and_clock();
    return check_report("test_bucket");
}
