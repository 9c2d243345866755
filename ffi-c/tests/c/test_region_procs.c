/* Host-shared regions across real processes (fork):
 *   - stress: N children hammer one region breaker, bucket and bulkhead (half of them through
 *     the handles inherited from the parent, half through a region they open by name, as a
 *     spawned worker would); at the end the shared counters equal the sums of the children's
 *     tallies, the bucket granted at most burst + rate * span (CLOCK_MONOTONIC), and a shared
 *     atomic counter in a separate mapping never saw more calls in flight than the limit;
 *   - creation race: 8 children open one new region and slot at once, many times: one slot;
 *   - SIGKILL: a child killed while holding bulkhead permits, which come back (bounded wait).
 * Regions live in a fresh temporary directory (options.dir), unlinked at the end. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define CHILDREN 4
#define RACERS 8
#define RACE_ROUNDS 10
#define LIMIT 3
#define RATE 2000 /* tokens per second */
#define BURST 50
#define SPAN_NS (300 * FB_MILLISECOND)

static char dir[256];

struct tally {
    uint64_t permitted, rejected, succeeded, failed;
    uint64_t tokens, bulk_granted, bulk_rejected;
    int ok; /* the child finished its loop without an unexpected result */
};

struct shared {
    atomic_int in_flight;
    atomic_int peak;
    atomic_int over_limit;
    atomic_int go;
    struct tally tally[CHILDREN];
};

static fb_region_options opts(void) {
    fb_region_options o = fb_region_options_default();
    o.dir = dir;
    o.capacity = 16;
    return o;
}

static fb_breaker_config breaker_config(void) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = 5;
    c.minimum_calls = 1;
    c.wait_duration_ns = FB_MILLISECOND;
    c.max_wait_duration_ns = 2 * FB_MILLISECOND;
    return c;
}

static fb_bucket_config bucket_config(void) {
    return fb_bucket_config_per_second(RATE, BURST);
}

static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One child's work: SPAN_NS of mixed calls on the three primitives. Exits with the tally in
 * shared memory; never returns. */
static void hammer(int id, struct shared *sh, fb_breaker *b, fb_bucket *k, fb_bulkhead *h) {
    struct tally *t = &sh->tally[id];
    fb_region *own = NULL;
    int ok = 1;
    if (id % 2 == 1) {
        /* A worker that finds the region by name rather than by inheritance. */
        fb_region_options o = opts();
        o.create = false;
        fb_breaker_config bc = breaker_config();
        fb_bucket_config kc = bucket_config();
        fb_bulkhead_config hc = {LIMIT};
        ok = fb_region_open("stress", &o, &own) == FB_OK &&
             fb_region_breaker(own, "payments", &bc, &b) == FB_OK &&
             fb_region_bucket(own, "github", &kc, &k) == FB_OK &&
             fb_region_bulkhead(own, "db", &hc, &h) == FB_OK;
        fb_region_free(own);
    }
    while (ok && !atomic_load(&sh->go)) {
        sched_yield();
    }
    uint64_t seed = 0x9E3779B97F4A7C15u * (uint64_t)(id + 1);
    uint64_t end = fb_now_ns() + SPAN_NS;
    while (ok && fb_now_ns() < end) {
        fb_permit p;
        fb_result rc = fb_breaker_acquire(b, &p);
        if (rc == FB_OK) {
            t->permitted++;
            int fail = next_random(&seed) % 4 == 0;
            ok &= fb_breaker_record(b, &p, fail ? FB_OUTCOME_FAILURE : FB_OUTCOME_SUCCESS,
                                    FB_DURATION_AUTO) == FB_OK;
            if (fail) {
                t->failed++;
            } else {
                t->succeeded++;
            }
        } else if (rc == FB_REJECTED) {
            t->rejected++;
        } else {
            ok = 0;
        }

        rc = fb_bucket_try_acquire(k, 1, NULL);
        if (rc == FB_OK) {
            t->tokens++;
        } else if (rc != FB_REJECTED) {
            ok = 0;
        }

        rc = fb_bulkhead_try_acquire(h);
        if (rc == FB_OK) {
            t->bulk_granted++;
            int now_in = atomic_fetch_add(&sh->in_flight, 1) + 1;
            if (now_in > LIMIT) {
                atomic_fetch_add(&sh->over_limit, 1);
            }
            int peak = atomic_load(&sh->peak);
            while (now_in > peak && !atomic_compare_exchange_weak(&sh->peak, &peak, now_in)) {
            }
            for (int i = 0; i < 50; i++) {
                next_random(&seed);
            }
            if (next_random(&seed) % 8 == 0) {
                sched_yield(); /* sometimes hold the slot across a reschedule */
            }
            atomic_fetch_sub(&sh->in_flight, 1);
            ok &= fb_bulkhead_release(h) == FB_OK;
        } else if (rc == FB_REJECTED) {
            t->bulk_rejected++;
        } else {
            ok = 0;
        }
    }
    t->ok = ok;
    if (id % 2 == 1) {
        fb_breaker_free(b);
        fb_bucket_free(k);
        fb_bulkhead_free(h);
    }
    _exit(ok ? 0 : 1);
}

static int wait_all(pid_t *pids, int n) {
    int all_ok = 1;
    for (int i = 0; i < n; i++) {
        int status = 0;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            all_ok = 0;
        }
    }
    return all_ok;
}

static void test_stress(void) {
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    if (sh == MAP_FAILED) {
        return;
    }
    memset(sh, 0, sizeof *sh);
    fb_region_options o = opts();
    fb_region *r = NULL;
    fb_breaker_config bc = breaker_config();
    fb_bucket_config kc = bucket_config();
    fb_bulkhead_config hc = {LIMIT};
    fb_breaker *b = NULL;
    fb_bucket *k = NULL;
    fb_bulkhead *h = NULL;
    CHECK_RC(fb_region_open("stress", &o, &r), FB_OK);
    CHECK_RC(fb_region_breaker(r, "payments", &bc, &b), FB_OK);
    uint64_t t0 = fb_now_ns(); /* before the bucket exists: its first token can't be older */
    CHECK_RC(fb_region_bucket(r, "github", &kc, &k), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "db", &hc, &h), FB_OK);

    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            hammer(i, sh, b, k, h);
        }
        CHECK(pids[i] > 0);
    }
    atomic_store(&sh->go, 1);
    CHECK(wait_all(pids, CHILDREN));
    uint64_t t1 = fb_now_ns();

    struct tally sum = {0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < CHILDREN; i++) {
        struct tally *t = &sh->tally[i];
        CHECK(t->ok);
        sum.permitted += t->permitted;
        sum.rejected += t->rejected;
        sum.succeeded += t->succeeded;
        sum.failed += t->failed;
        sum.tokens += t->tokens;
        sum.bulk_granted += t->bulk_granted;
        sum.bulk_rejected += t->bulk_rejected;
    }

    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics(b, &m), FB_OK);
    CHECK(m.permitted == sum.permitted);
    CHECK(m.rejected == sum.rejected);
    CHECK(m.succeeded == sum.succeeded);
    CHECK(m.failed == sum.failed);
    CHECK(m.ignored == 0);
    CHECK(sum.permitted > 0 && sum.failed > 0);
    printf("breaker: %llu permitted, %llu rejected, %llu trips\n",
           (unsigned long long)m.permitted, (unsigned long long)m.rejected,
           (unsigned long long)m.trips);

    /* At most burst + rate * span over [t0, t1] (+1 for the rounding of the span). */
    double span_s = (double)(t1 - t0) / 1e9;
    double bound = BURST + RATE * span_s + 1;
    printf("bucket: %llu granted in %.3f s, bound %.1f\n", (unsigned long long)sum.tokens,
           span_s, bound);
    CHECK((double)sum.tokens <= bound);
    CHECK(sum.tokens >= BURST); /* generous: the burst alone is there at once */
    fb_bucket_stats ks;
    CHECK_RC(fb_bucket_state(k, &ks), FB_OK);
    CHECK(ks.limit == BURST);

    fb_bulkhead_stats hs;
    CHECK_RC(fb_bulkhead_metrics(h, &hs), FB_OK);
    printf("bulkhead: %llu granted, %llu rejected, peak %u (limit %d), observed peak %d\n",
           (unsigned long long)hs.acquired, (unsigned long long)hs.rejected, hs.peak, LIMIT,
           atomic_load(&sh->peak));
    CHECK(atomic_load(&sh->over_limit) == 0);
    CHECK(atomic_load(&sh->peak) <= LIMIT);
    CHECK(hs.peak <= LIMIT);
    CHECK(hs.in_flight == 0);
    CHECK(atomic_load(&sh->in_flight) == 0);
    CHECK(hs.acquired == sum.bulk_granted);
    CHECK(hs.rejected == sum.bulk_rejected);

    fb_breaker_free(b);
    fb_bucket_free(k);
    fb_bulkhead_free(h);
    fb_region_free(r);
    CHECK_RC(fb_region_unlink("stress", dir), FB_OK);
    munmap(sh, sizeof *sh);
}

static void racer(atomic_int *go) {
    while (!atomic_load(go)) {
        sched_yield();
    }
    fb_region_options o = opts();
    fb_region *r = NULL;
    fb_breaker_config bc = breaker_config();
    fb_breaker *b = NULL;
    fb_permit p;
    int ok = fb_region_open("race", &o, &r) == FB_OK &&
             fb_region_breaker(r, "x", &bc, &b) == FB_OK && fb_breaker_acquire(b, &p) == FB_OK &&
             fb_breaker_record(b, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO) == FB_OK;
    if (!ok) {
        fprintf(stderr, "racer %d: %s\n", (int)getpid(), fb_last_error());
    }
    fb_breaker_free(b);
    fb_region_free(r);
    _exit(ok ? 0 : 1);
}

static int32_t count_slots(const fb_region_slot *slot, void *user_data) {
    int *n = user_data;
    if (slot->kind == FB_SLOT_BREAKER_COUNT && strcmp(slot->name, "x") == 0) {
        n[0]++;
    } else {
        n[1]++;
    }
    return 0;
}

static void test_creation_race(void) {
    atomic_int *go = mmap(NULL, sizeof *go, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                          -1, 0);
    CHECK(go != MAP_FAILED);
    if (go == MAP_FAILED) {
        return;
    }
    for (int round = 0; round < RACE_ROUNDS; round++) {
        atomic_store(go, 0);
        pid_t pids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                racer(go);
            }
        }
        atomic_store(go, 1);
        CHECK(wait_all(pids, RACERS));
        fb_region_options o = opts();
        o.create = false;
        fb_region *r = NULL;
        fb_breaker_config bc = breaker_config();
        fb_breaker *b = NULL;
        CHECK_RC(fb_region_open("race", &o, &r), FB_OK);
        int n[2] = {0, 0};
        CHECK_RC(fb_region_list(r, count_slots, n), FB_OK);
        CHECK(n[0] == 1 && n[1] == 0);
        CHECK_RC(fb_region_breaker(r, "x", &bc, &b), FB_OK);
        fb_breaker_stats m;
        CHECK_RC(fb_breaker_metrics(b, &m), FB_OK);
        CHECK(m.succeeded == RACERS);
        fb_breaker_free(b);
        fb_region_free(r);
        CHECK_RC(fb_region_unlink("race", dir), FB_OK);
    }
    munmap(go, sizeof *go);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void test_sigkill_returns_permits(void) {
    fb_region_options o = opts();
    fb_region *r = NULL;
    fb_bulkhead_config hc = {2};
    fb_bulkhead *h = NULL;
    CHECK_RC(fb_region_open("kill", &o, &r), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "db", &hc, &h), FB_OK);

    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        /* Takes both permits through its own handle, says so, and waits to be killed. */
        close(fds[0]);
        fb_bulkhead *mine = NULL;
        char ok = fb_region_bulkhead(r, "db", &hc, &mine) == FB_OK &&
                          fb_bulkhead_try_acquire(mine) == FB_OK &&
                          fb_bulkhead_try_acquire(mine) == FB_OK
                      ? 'y'
                      : 'n';
        if (write(fds[1], &ok, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    CHECK(child > 0);
    close(fds[1]);
    char ok = 0;
    CHECK(read(fds[0], &ok, 1) == 1 && ok == 'y');
    close(fds[0]);

    /* The holder is alive: full, and nothing is reclaimed however long we wait. */
    CHECK_RC(fb_bulkhead_try_acquire(h), FB_REJECTED);
    sleep_ms(150); /* past FB_REGION_REAP_INTERVAL_NS: a reclaim runs, finds it alive */
    CHECK_RC(fb_bulkhead_try_acquire(h), FB_REJECTED);

    CHECK(kill(child, SIGKILL) == 0);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFSIGNALED(status) &&
          WTERMSIG(status) == SIGKILL);

    /* Its permits come back at the first rejection a reap interval after the last reclaim:
     * poll for up to 10 s (generous; it takes about FB_REGION_REAP_INTERVAL_NS). */
    uint64_t start = fb_now_ns();
    fb_result rc = FB_REJECTED;
    while (rc == FB_REJECTED && fb_now_ns() - start < 10 * FB_SECOND) {
        rc = fb_bulkhead_try_acquire(h);
        if (rc == FB_REJECTED) {
            sleep_ms(10);
        }
    }
    CHECK_RC(rc, FB_OK);
    printf("sigkill: permits back after %.0f ms\n", (double)(fb_now_ns() - start) / 1e6);
    CHECK_RC(fb_bulkhead_try_acquire(h), FB_OK); /* both came back */
    CHECK_RC(fb_bulkhead_try_acquire(h), FB_REJECTED);
    fb_bulkhead_stats hs;
    CHECK_RC(fb_bulkhead_metrics(h, &hs), FB_OK);
    CHECK(hs.in_flight == 2);
    CHECK_RC(fb_bulkhead_release(h), FB_OK);
    CHECK_RC(fb_bulkhead_release(h), FB_OK);
    CHECK_RC(fb_bulkhead_release(h), FB_ERR_NOT_HELD);
    CHECK_RC(fb_bulkhead_metrics(h, &hs), FB_OK);
    CHECK(hs.in_flight == 0);

    /* A child's release cannot give back the parent's permits (it holds none). */
    CHECK_RC(fb_bulkhead_try_acquire(h), FB_OK);
    child = fork();
    if (child == 0) {
        _exit(fb_bulkhead_release(h) == FB_ERR_NOT_HELD ? 0 : 1);
    }
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
          WEXITSTATUS(status) == 0);
    CHECK_RC(fb_bulkhead_metrics(h, &hs), FB_OK);
    CHECK(hs.in_flight == 1);
    CHECK_RC(fb_bulkhead_release(h), FB_OK);

    fb_bulkhead_free(h);
    fb_region_free(r);
    CHECK_RC(fb_region_unlink("kill", dir), FB_OK);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fb-region-procs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    fflush(stdout);
    test_stress();
    test_creation_race();
    test_sigkill_returns_permits();
    CHECK(rmdir(dir) == 0); /* nothing left behind */
    return check_report("test_region_procs");
}
