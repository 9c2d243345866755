/* Host-shared state: one breaker, one rate limit and one bulkhead for every worker process.
 * Each worker (here: forked; a separately started process opening the same name works the
 * same) opens region "myapp" and asks for its primitives by name. A failure seen by any
 * worker trips the breaker for all of them.
 *
 *   cc -std=c11 region.c -lfastbreaker && ./a.out [region-name] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fastbreaker.h"

static const char *name = "myapp";

static int worker(int id) {
    fb_region *region = NULL;
    fb_breaker_config bc = fb_breaker_config_default();
    bc.failure_threshold = 3;
    fb_bucket_config kc = fb_bucket_config_per_second(100, 20); /* 100/s across all workers */
    fb_bulkhead_config hc = {4};                                /* 4 calls in flight, in all */
    fb_breaker *payments = NULL;
    fb_bucket *github = NULL;
    fb_bulkhead *db = NULL;
    if (fb_region_open(name, NULL, &region) != FB_OK ||
        fb_region_breaker(region, "payments", &bc, &payments) != FB_OK ||
        fb_region_bucket(region, "github", &kc, &github) != FB_OK ||
        fb_region_bulkhead(region, "db", &hc, &db) != FB_OK) {
        fprintf(stderr, "worker %d: %s\n", id, fb_last_error());
        return 1;
    }
    fb_region_free(region); /* the handles keep the region mapped */

    /* Worker 0 sees the payment service fail three times. */
    for (int i = 0; id == 0 && i < 3; i++) {
        fb_permit p;
        if (fb_breaker_acquire(payments, &p) == FB_OK) {
            fb_breaker_record(payments, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO);
        }
    }
    if (fb_bulkhead_try_acquire(db) == FB_OK) {
        /* ... a database call ... */
        fb_bulkhead_release(db);
    }
    fb_result limited = fb_bucket_try_acquire(github, 1, NULL);
    printf("worker %d: github call %s\n", id, limited == FB_OK ? "allowed" : "rate-limited");
    fb_breaker_free(payments);
    fb_bucket_free(github);
    fb_bulkhead_free(db);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) {
        name = argv[1];
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* the workers end with _exit: print whole lines */
    fb_region_unlink(name, NULL); /* start from a fresh region (FB_ERR_REGION_NOT_FOUND ok) */
    pid_t first = fork();
    if (first == 0) {
        _exit(worker(0));
    }
    int status = 0;
    waitpid(first, &status, 0); /* worker 0 trips the breaker before worker 1 starts */
    pid_t second = fork();
    if (second == 0) {
        /* Another worker: sees the breaker open without having seen a failure. */
        fb_region *region = NULL;
        fb_breaker_config bc = fb_breaker_config_default();
        bc.failure_threshold = 3;
        fb_breaker *payments = NULL;
        fb_permit p;
        if (fb_region_open(name, NULL, &region) != FB_OK ||
            fb_region_breaker(region, "payments", &bc, &payments) != FB_OK) {
            fprintf(stderr, "worker 1: %s\n", fb_last_error());
            _exit(1);
        }
        if (fb_breaker_acquire(payments, &p) == FB_REJECTED) {
            printf("worker 1: payments rejected, breaker open (retry in %.1f s)\n",
                   (double)p.retry_after_ns / (double)FB_SECOND);
        }
        fb_breaker_free(payments);
        fb_region_free(region);
        _exit(worker(1));
    }
    waitpid(second, &status, 0);
    fb_region_unlink(name, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
