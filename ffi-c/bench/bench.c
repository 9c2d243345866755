/* Cost of the C ABI's hot paths, in ns per operation (median of 7 runs): `make ffi-bench`.
 * Compare "acquire_at+record_at" with the direct Rust acquire(now)+record(..., now) of the
 * criterion benches (benches/), and the "region" rows (the same primitives in a host-shared
 * region under /dev/shm, removed at the end) with the in-process ones. Arguments: [iterations
 * [name filter]]. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fastbreaker.h"

#define RUNS 7

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static fb_breaker *new_breaker(uint32_t window_kind) {
    fb_breaker_config c = fb_breaker_config_default();
    c.window_kind = window_kind;
    c.failure_threshold = 1000000;
    fb_breaker *b = NULL;
    if (fb_breaker_new(&c, &b) != FB_OK) {
        fprintf(stderr, "fb_breaker_new: %s\n", fb_last_error());
        exit(1);
    }
    return b;
}

static volatile uint64_t sink;

/* Each benchmark runs `iters` operations and returns the elapsed nanoseconds. */
static uint64_t bench_acquire_record_at(fb_breaker *b, uint64_t iters) {
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        fb_permit p;
        acc += (uint64_t)fb_breaker_acquire_at(b, &p, i);
        acc += (uint64_t)fb_breaker_record_at(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO, i);
    }
    sink = acc;
    return now_ns() - t0;
}

static uint64_t bench_acquire_record_clock(fb_breaker *b, uint64_t iters) {
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        fb_permit p;
        acc += (uint64_t)fb_breaker_acquire(b, &p);
        acc += (uint64_t)fb_breaker_record(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO);
    }
    sink = acc;
    return now_ns() - t0;
}

static uint64_t bench_rejection_at(fb_breaker *b, uint64_t iters) {
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        fb_permit p;
        acc += (uint64_t)fb_breaker_acquire_at(b, &p, 1000);
    }
    sink = acc;
    return now_ns() - t0;
}

static uint64_t bench_bucket_at(fb_bucket *k, uint64_t iters) {
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        acc += (uint64_t)fb_bucket_try_acquire_at(k, 1, NULL, i * 1000);
    }
    sink = acc;
    return now_ns() - t0;
}

static uint64_t bench_bulkhead(fb_bulkhead *h, uint64_t iters) {
    uint64_t t0 = now_ns(), acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        acc += (uint64_t)fb_bulkhead_try_acquire(h);
        acc += (uint64_t)fb_bulkhead_release(h);
    }
    sink = acc;
    return now_ns() - t0;
}

#define REPORT(name, call)                                                     \
    do {                                                                       \
        if (filter != NULL && strstr(name, filter) == NULL) {                  \
            break;                                                             \
        }                                                                      \
        double r[RUNS];                                                        \
        for (int i = 0; i < RUNS; i++) {                                       \
            r[i] = (double)(call) / (double)iters;                             \
        }                                                                      \
        qsort(r, RUNS, sizeof r[0], cmp_double);                               \
        printf("%-56s %7.2f ns  (min %.2f)\n", name, r[RUNS / 2], r[0]);       \
    } while (0)

int main(int argc, char **argv) {
    uint64_t iters = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    const char *filter = argc > 2 ? argv[2] : NULL; /* run only the benchmarks named so */
    fb_breaker *count = new_breaker(FB_WINDOW_COUNT);
    fb_breaker *time = new_breaker(FB_WINDOW_TIME);
    fb_breaker *open = new_breaker(FB_WINDOW_COUNT);
    fb_breaker_force_open_at(open, 0);
    fb_bucket_config kc = fb_bucket_config_per_second(1000000000, 1000);
    fb_bucket *bucket = NULL;
    fb_bulkhead_config hc = fb_bulkhead_config_default();
    fb_bulkhead *bulkhead = NULL;
    if (fb_bucket_new(&kc, &bucket) != FB_OK || fb_bulkhead_new(&hc, &bulkhead) != FB_OK) {
        fprintf(stderr, "setup: %s\n", fb_last_error());
        return 1;
    }
    /* The same primitives in a region (default directory: /dev/shm). */
    char region_name[64];
    snprintf(region_name, sizeof region_name, "bench.%ld", (long)getpid());
    fb_region *region = NULL;
    fb_breaker *shared_count = NULL;
    fb_bucket *shared_bucket = NULL;
    fb_bulkhead *shared_bulkhead = NULL;
    fb_breaker_config bc = fb_breaker_config_default();
    bc.window_kind = FB_WINDOW_COUNT;
    if (fb_region_open(region_name, NULL, &region) != FB_OK ||
        fb_region_breaker(region, "count", &bc, &shared_count) != FB_OK ||
        fb_region_bucket(region, "bucket", &kc, &shared_bucket) != FB_OK ||
        fb_region_bulkhead(region, "bulkhead", &hc, &shared_bulkhead) != FB_OK) {
        fprintf(stderr, "region setup: %s\n", fb_last_error());
        return 1;
    }
    printf("fastbreaker %s C ABI: ns per iteration, %llu iterations, median of %d runs\n",
           fb_version(),
           (unsigned long long)iters, RUNS);
    REPORT("breaker acquire_at+record_at, count window (closed)",
           bench_acquire_record_at(count, iters));
    REPORT("breaker acquire+record, count window (no clock read)",
           bench_acquire_record_clock(count, iters));
    REPORT("breaker acquire_at+record_at, time window 10x1s", bench_acquire_record_at(time, iters));
    REPORT("breaker acquire+record, time window (clock read)",
           bench_acquire_record_clock(time, iters));
    REPORT("breaker acquire_at rejected (forced open)", bench_rejection_at(open, iters));
    REPORT("bucket try_acquire_at", bench_bucket_at(bucket, iters));
    REPORT("bulkhead try_acquire+release", bench_bulkhead(bulkhead, iters));
    REPORT("region breaker acquire_at+record_at, count window (closed)",
           bench_acquire_record_at(shared_count, iters));
    REPORT("region bucket try_acquire_at", bench_bucket_at(shared_bucket, iters));
    REPORT("region bulkhead try_acquire+release (owner-tracked)",
           bench_bulkhead(shared_bulkhead, iters));
    fb_breaker_free(shared_count);
    fb_bucket_free(shared_bucket);
    fb_bulkhead_free(shared_bulkhead);
    fb_region_free(region);
    fb_region_unlink(region_name, NULL);
    fb_breaker_free(count);
    fb_breaker_free(time);
    fb_breaker_free(open);
    fb_bucket_free(bucket);
    fb_bulkhead_free(bulkhead);
    return 0;
}
