/* The bulkhead through the C ABI: the limit, release, counters, storage without the heap. */
#include <stdalign.h>

#include "check.h"

static void test_limit(fb_bulkhead *b) {
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    fb_bulkhead_stats st;
    CHECK_RC(fb_bulkhead_metrics(b, &st), FB_OK);
    CHECK(st.max_concurrent == 2 && st.in_flight == 2 && st.peak == 2);
    CHECK(st.acquired == 3 && st.rejected == 1);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    /* Nothing out: an extra release is an error and changes nothing. */
    CHECK_RC(fb_bulkhead_release(b), FB_ERR_NOT_HELD);
    CHECK_ERROR_HAS("fb_bulkhead_release: no slot is out");
    CHECK_RC(fb_bulkhead_metrics(b, &st), FB_OK);
    CHECK(st.in_flight == 0 && st.peak == 2);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_REJECTED); /* the limit still holds */
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
    CHECK_RC(fb_bulkhead_release(b), FB_OK);
}

int main(void) {
    fb_bulkhead_config c = fb_bulkhead_config_default();
    CHECK(c.max_concurrent == 10);
    c.max_concurrent = 2;
    fb_bulkhead *b = NULL;
    CHECK_RC(fb_bulkhead_new(&c, &b), FB_OK);
    test_limit(b);
    fb_bulkhead_free(b);

    static alignas(FB_BULKHEAD_STORAGE_ALIGN) unsigned char storage[FB_BULKHEAD_STORAGE_SIZE];
    CHECK_RC(fb_bulkhead_init(storage, sizeof storage, &c, &b), FB_OK);
    test_limit(b);
    fb_bulkhead_free(b); /* ignored: the storage is ours */
    CHECK_RC(fb_bulkhead_try_acquire(b), FB_OK);
    CHECK_RC(fb_bulkhead_init(storage, sizeof storage - 1, &c, &b), FB_ERR_BUFFER);
    return check_report("test_bulkhead");
}
