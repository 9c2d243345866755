/* Host-shared regions through the C ABI, in one process: open and attach, configuration and
 * kind mismatches, bad names and options, files that are not regions, a full region, the
 * listing, handles outliving the region handle, unlink. Each region lives in a fresh
 * temporary directory (options.dir), removed at the end. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

static fb_region_options opts(uint32_t capacity) {
    fb_region_options o = fb_region_options_default();
    o.dir = dir;
    o.capacity = capacity;
    return o;
}

static void path_of(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/fastbreaker.%s", dir, name);
}

static void test_defaults(void) {
    fb_region_options o = fb_region_options_default();
    CHECK(o.dir == NULL);
    CHECK(o.capacity == FB_REGION_DEFAULT_CAPACITY && o.capacity == 256);
    CHECK(o.create);
    CHECK(o.init_timeout_ns == 2 * FB_SECOND);
    CHECK(strstr(fb_result_str(FB_ERR_REGION_CONFIG_MISMATCH), "another configuration"));
    CHECK(strstr(fb_result_str(FB_ERR_REGION_NOT_FOUND), "FB_ERR_REGION_NOT_FOUND"));
    for (fb_result rc = FB_ERR_REGION; rc >= FB_ERR_REGION_CONFIG_MISMATCH; rc--) {
        CHECK(strncmp(fb_result_str(rc), "FB_ERR_REGION", 13) == 0);
    }
}

static fb_breaker_config tripping_config(uint32_t threshold) {
    fb_breaker_config c = fb_breaker_config_default();
    c.failure_threshold = threshold;
    c.minimum_calls = 1;
    return c;
}

struct listing {
    int breakers, buckets, bulkheads, other;
    int saw_payments_config;
};

static int32_t on_slot(const fb_region_slot *slot, void *user_data) {
    struct listing *l = user_data;
    switch (slot->kind) {
    case FB_SLOT_BREAKER_COUNT:
        l->breakers++;
        if (strcmp(slot->name, "payments") == 0 && slot->breaker.failure_threshold == 1 &&
            strstr(slot->detail, "breaker-count") != NULL) {
            l->saw_payments_config = 1;
        }
        break;
    case FB_SLOT_BUCKET:
        l->buckets += strcmp(slot->name, "github") == 0 && slot->bucket.burst == 3;
        break;
    case FB_SLOT_BULKHEAD:
        l->bulkheads += strcmp(slot->name, "db") == 0 && slot->bulkhead.max_concurrent == 2;
        break;
    default:
        l->other++;
    }
    return 0;
}

static int32_t stop_at_first(const fb_region_slot *slot, void *user_data) {
    (void)slot;
    (*(int *)user_data)++;
    return 1;
}

static void test_open_attach_share(void) {
    fb_region_options o = opts(8);
    fb_region *r1 = NULL, *r2 = NULL;
    fb_region_stats info;

    /* Not there, and not to be created. */
    o.create = false;
    CHECK_RC(fb_region_open("myapp", &o, &r1), FB_ERR_REGION_NOT_FOUND);
    CHECK_ERROR_HAS("no region at");
    CHECK(r1 == NULL);
    o.create = true;

    CHECK_RC(fb_region_open("myapp", &o, &r1), FB_OK);
    CHECK_RC(fb_region_info(r1, &info), FB_OK);
    CHECK(info.capacity == 8 && info.created);
    char path[512];
    path_of(path, sizeof path, "myapp");
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && S_ISREG(st.st_mode));

    /* A second opening attaches; its capacity option is ignored. */
    o.capacity = 100;
    o.create = false;
    CHECK_RC(fb_region_open("myapp", &o, &r2), FB_OK);
    CHECK_RC(fb_region_info(r2, &info), FB_OK);
    CHECK(info.capacity == 8 && !info.created);

    /* One breaker, seen through both. */
    fb_breaker_config c = tripping_config(1);
    fb_breaker *b1 = NULL, *b2 = NULL;
    CHECK_RC(fb_region_breaker(r1, "payments", &c, &b1), FB_OK);
    CHECK_RC(fb_region_breaker(r2, "payments", &c, &b2), FB_OK);
    fb_permit p;
    CHECK_RC(fb_breaker_acquire(b1, &p), FB_OK);
    CHECK_RC(fb_breaker_record(b1, &p, FB_OUTCOME_FAILURE, FB_DURATION_AUTO), FB_OK);
    fb_state state = FB_STATE_CLOSED;
    CHECK_RC(fb_breaker_state(b2, &state), FB_OK);
    CHECK(state == FB_STATE_OPEN);
    CHECK_RC(fb_breaker_acquire(b2, &p), FB_REJECTED);
    CHECK(p.reason == FB_REJECT_OPEN && p.retry_after_ns > 0);
    fb_breaker_stats m;
    CHECK_RC(fb_breaker_metrics(b2, &m), FB_OK);
    CHECK(m.failed == 1 && m.rejected == 1 && m.trips == 1);
    fb_breaker_config got;
    CHECK_RC(fb_breaker_get_config(b2, &got), FB_OK);
    CHECK(got.failure_threshold == 1 && got.window_kind == FB_WINDOW_COUNT);
    /* A reset through one handle is seen through the other. */
    CHECK_RC(fb_breaker_reset(b2), FB_OK);
    CHECK_RC(fb_breaker_state(b1, &state), FB_OK);
    CHECK(state == FB_STATE_CLOSED);

    /* The same name with another configuration: refused, naming both. */
    fb_breaker_config other = tripping_config(2);
    fb_breaker *b3 = NULL;
    CHECK_RC(fb_region_breaker(r2, "payments", &other, &b3), FB_ERR_REGION_CONFIG_MISMATCH);
    CHECK_ERROR_HAS("fb_region_breaker: slot \"payments\" exists with another configuration");
    CHECK_ERROR_HAS("existing:  breaker-count");
    CHECK_ERROR_HAS("failure_threshold: Some(1)");
    CHECK_ERROR_HAS("requested: breaker-count");
    CHECK_ERROR_HAS("failure_threshold: Some(2)");
    CHECK(b3 == NULL);
    /* Another window kind, or another primitive, under the name. */
    other = tripping_config(1);
    other.window_kind = FB_WINDOW_TIME;
    CHECK_RC(fb_region_breaker(r2, "payments", &other, &b3), FB_ERR_REGION_KIND_MISMATCH);
    CHECK_ERROR_HAS("holds a breaker-count, not a breaker-time");
    fb_bucket_config bc = fb_bucket_config_per_second(10, 3);
    fb_bucket *k1 = NULL, *k2 = NULL;
    CHECK_RC(fb_region_bucket(r1, "payments", &bc, &k1), FB_ERR_REGION_KIND_MISMATCH);
    /* A configuration the core refuses. */
    other = tripping_config(0xFFFFFFF0u);
    CHECK_RC(fb_region_breaker(r1, "new", &other, &b3), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("failure_threshold");
    other = tripping_config(1);
    other.window_kind = 7;
    CHECK_RC(fb_region_breaker(r1, "new", &other, &b3), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("window_kind");

    /* A time-window breaker beside it. */
    other.window_kind = FB_WINDOW_TIME;
    CHECK_RC(fb_region_breaker(r1, "search", &other, &b3), FB_OK);
    fb_breaker *b4 = NULL;
    CHECK_RC(fb_region_breaker(r2, "search", &other, &b4), FB_OK);
    CHECK_RC(fb_breaker_trip(b3), FB_OK);
    CHECK_RC(fb_breaker_state(b4, &state), FB_OK);
    CHECK(state == FB_STATE_OPEN);

    /* One bucket: the burst is shared. */
    CHECK_RC(fb_region_bucket(r1, "github", &bc, &k1), FB_OK);
    CHECK_RC(fb_region_bucket(r2, "github", &bc, &k2), FB_OK);
    uint64_t now = fb_now_ns(), retry = 0;
    CHECK_RC(fb_bucket_try_acquire_at(k1, 2, &retry, now), FB_OK);
    CHECK_RC(fb_bucket_try_acquire_at(k2, 1, &retry, now), FB_OK);
    CHECK_RC(fb_bucket_try_acquire_at(k1, 1, &retry, now), FB_REJECTED);
    CHECK(retry > 0 && retry <= FB_SECOND / 10);
    bc.burst = 4;
    fb_bucket *k3 = NULL;
    CHECK_RC(fb_region_bucket(r1, "github", &bc, &k3), FB_ERR_REGION_CONFIG_MISMATCH);
    CHECK_ERROR_HAS("burst: 3");
    CHECK_ERROR_HAS("burst: 4");
    bc.burst = 0;
    CHECK_RC(fb_region_bucket(r1, "zero", &bc, &k3), FB_ERR_INVALID_CONFIG);
    CHECK_ERROR_HAS("burst");

    /* One bulkhead: the limit is shared; each handle releases what it took. */
    fb_bulkhead_config hc = {2};
    fb_bulkhead *h1 = NULL, *h2 = NULL, *h3 = NULL;
    CHECK_RC(fb_region_bulkhead(r1, "db", &hc, &h1), FB_OK);
    CHECK_RC(fb_region_bulkhead(r2, "db", &hc, &h2), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h1), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h2), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h1), FB_REJECTED);
    fb_bulkhead_stats hs;
    CHECK_RC(fb_bulkhead_metrics(h2, &hs), FB_OK);
    CHECK(hs.max_concurrent == 2 && hs.in_flight == 2 && hs.acquired == 2 && hs.rejected == 1);
    CHECK_RC(fb_bulkhead_release(h2), FB_OK);
    CHECK_RC(fb_bulkhead_release(h2), FB_ERR_NOT_HELD);
    CHECK_ERROR_HAS("fb_bulkhead_release: no slot is out");
    CHECK_RC(fb_bulkhead_metrics(h1, &hs), FB_OK);
    CHECK(hs.in_flight == 1);
    hc.max_concurrent = 3;
    CHECK_RC(fb_region_bulkhead(r1, "db", &hc, &h3), FB_ERR_REGION_CONFIG_MISMATCH);
    CHECK_ERROR_HAS("max_concurrent: 2");
    CHECK_ERROR_HAS("max_concurrent: 3");
    hc.max_concurrent = 0;
    CHECK_RC(fb_region_bulkhead(r1, "db0", &hc, &h3), FB_ERR_INVALID_CONFIG);
    /* Freeing a handle gives back the permits it still holds. */
    hc.max_concurrent = 2;
    CHECK_RC(fb_region_bulkhead(r1, "db", &hc, &h3), FB_OK);
    CHECK_RC(fb_bulkhead_try_acquire(h3), FB_OK);
    CHECK_RC(fb_bulkhead_metrics(h1, &hs), FB_OK);
    CHECK(hs.in_flight == 2);
    fb_bulkhead_free(h3);
    CHECK_RC(fb_bulkhead_metrics(h1, &hs), FB_OK);
    CHECK(hs.in_flight == 1);

    /* The listing. */
    struct listing l = {0, 0, 0, 0, 0};
    CHECK_RC(fb_region_list(r2, on_slot, &l), FB_OK);
    CHECK(l.breakers == 1 && l.saw_payments_config && l.buckets == 1 && l.bulkheads == 1);
    CHECK(l.other == 1); /* "search", a time-window breaker */
    int calls = 0;
    CHECK_RC(fb_region_list(r2, stop_at_first, &calls), FB_OK);
    CHECK(calls == 1);
    CHECK_RC(fb_region_list(r2, NULL, NULL), FB_ERR_NULL);
    CHECK_RC(fb_region_list(NULL, on_slot, &l), FB_ERR_NULL);

    /* Handles outlive the region handles (each keeps the mapping). */
    fb_region_free(r1);
    fb_region_free(r2);
    fb_region_free(NULL);
    CHECK_RC(fb_breaker_acquire(b1, &p), FB_OK);
    CHECK_RC(fb_breaker_record(b1, &p, FB_OUTCOME_SUCCESS, FB_DURATION_AUTO), FB_OK);
    CHECK_RC(fb_breaker_metrics(b2, &m), FB_OK);
    CHECK(m.succeeded == 1);
    CHECK_RC(fb_bucket_try_acquire_at(k2, 1, &retry, now), FB_REJECTED);
    CHECK_RC(fb_bulkhead_release(h1), FB_OK);
    CHECK_RC(fb_bulkhead_metrics(h2, &hs), FB_OK);
    CHECK(hs.in_flight == 0);

    /* Unlink: the open handles keep the old region; a new opening makes a new one. */
    CHECK_RC(fb_region_unlink("myapp", dir), FB_OK);
    CHECK(access(path, F_OK) != 0);
    CHECK_RC(fb_region_unlink("myapp", dir), FB_ERR_REGION_NOT_FOUND);
    CHECK_RC(fb_breaker_metrics(b1, &m), FB_OK);
    CHECK(m.succeeded == 1);
    o = opts(8);
    CHECK_RC(fb_region_open("myapp", &o, &r1), FB_OK);
    CHECK_RC(fb_region_info(r1, &info), FB_OK);
    CHECK(info.created);
    /* The new region is empty: "payments" takes any configuration there. */
    fb_breaker *b5 = NULL;
    fb_breaker_config fresh = tripping_config(2);
    CHECK_RC(fb_region_breaker(r1, "payments", &fresh, &b5), FB_OK);
    CHECK_RC(fb_breaker_metrics(b5, &m), FB_OK);
    CHECK(m.succeeded == 0 && m.failed == 0);
    fb_breaker_free(b5);
    fb_breaker_free(b3);
    fb_region_free(r1);
    CHECK_RC(fb_region_unlink("myapp", dir), FB_OK);

    fb_breaker_free(b1);
    fb_breaker_free(b2);
    fb_breaker_free(b4);
    fb_bucket_free(k1);
    fb_bucket_free(k2);
    fb_bulkhead_free(h1);
    fb_bulkhead_free(h2);
}

static void test_names_and_options(void) {
    fb_region_options o = opts(4);
    fb_region *r = NULL;
    CHECK_RC(fb_region_open(NULL, &o, &r), FB_ERR_NULL);
    CHECK_RC(fb_region_open("x", &o, NULL), FB_ERR_NULL);
    CHECK_RC(fb_region_open("a/b", &o, &r), FB_ERR_REGION_NAME);
    CHECK_ERROR_HAS("invalid region name \"a/b\": must not contain '/'");
    CHECK_RC(fb_region_open("", &o, &r), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_open("..", &o, &r), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_open("a\tb", &o, &r), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_open("\xff\xfe", &o, &r), FB_ERR_REGION_NAME);
    CHECK_ERROR_HAS("must be UTF-8");
    char long_name[FB_REGION_MAX_NAME_LEN + 2];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_RC(fb_region_open(long_name, &o, &r), FB_ERR_REGION_NAME);
    long_name[FB_REGION_MAX_NAME_LEN] = '\0'; /* exactly the longest */
    CHECK_RC(fb_region_open(long_name, &o, &r), FB_OK);
    fb_region_free(r);
    CHECK_RC(fb_region_unlink(long_name, dir), FB_OK);
    CHECK_RC(fb_region_unlink("a/b", dir), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_unlink(NULL, dir), FB_ERR_NULL);
    CHECK(r != NULL);
    r = NULL;

    o.capacity = 0;
    CHECK_RC(fb_region_open("caps", &o, &r), FB_ERR_INVALID_ARGUMENT);
    CHECK_ERROR_HAS("capacity");
    o.capacity = FB_REGION_MAX_CAPACITY + 1;
    CHECK_RC(fb_region_open("caps", &o, &r), FB_ERR_INVALID_ARGUMENT);
    o.capacity = 4;
    o.dir = "/nonexistent-fastbreaker-dir/x";
    CHECK_RC(fb_region_open("caps", &o, &r), FB_ERR_REGION_IO);
    CHECK_ERROR_HAS("/nonexistent-fastbreaker-dir/x");
    o.dir = dir;

    /* Slot names; a full region. */
    CHECK_RC(fb_region_open("small", &o, &r), FB_OK);
    fb_bulkhead_config hc = {1};
    fb_bulkhead *h[5] = {NULL, NULL, NULL, NULL, NULL};
    CHECK_RC(fb_region_bulkhead(r, "", &hc, &h[0]), FB_ERR_REGION_NAME);
    CHECK_ERROR_HAS("invalid slot name");
    char slot_name[FB_REGION_MAX_SLOT_NAME_LEN + 2];
    memset(slot_name, 's', sizeof slot_name - 1);
    slot_name[sizeof slot_name - 1] = '\0';
    CHECK_RC(fb_region_bulkhead(r, slot_name, &hc, &h[0]), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_bulkhead(r, "\xc3", &hc, &h[0]), FB_ERR_REGION_NAME);
    CHECK_RC(fb_region_bulkhead(r, NULL, &hc, &h[0]), FB_ERR_NULL);
    CHECK_RC(fb_region_bulkhead(NULL, "a", &hc, &h[0]), FB_ERR_NULL);
    CHECK_RC(fb_region_bulkhead(r, "a", NULL, &h[0]), FB_ERR_NULL);
    CHECK_RC(fb_region_bulkhead(r, "a", &hc, NULL), FB_ERR_NULL);
    slot_name[FB_REGION_MAX_SLOT_NAME_LEN] = '\0';
    CHECK_RC(fb_region_bulkhead(r, slot_name, &hc, &h[0]), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "b", &hc, &h[1]), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "c", &hc, &h[2]), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "d", &hc, &h[3]), FB_OK);
    CHECK_RC(fb_region_bulkhead(r, "e", &hc, &h[4]), FB_ERR_REGION_FULL);
    CHECK_ERROR_HAS("all 4 slots are taken");
    /* Existing names still attach in a full region. */
    fb_bulkhead *again = NULL;
    CHECK_RC(fb_region_bulkhead(r, "c", &hc, &again), FB_OK);
    fb_bulkhead_free(again);
    /* A region handle is not another handle, and the other way round. */
    fb_region_stats st;
    CHECK_RC(fb_region_info((const fb_region *)h[0], &st), FB_ERR_INVALID_ARGUMENT);
    CHECK_RC(fb_bulkhead_try_acquire((const fb_bulkhead *)r), FB_ERR_INVALID_ARGUMENT);
    CHECK_RC(fb_region_info(r, NULL), FB_ERR_NULL);
    for (int i = 0; i < 4; i++) {
        fb_bulkhead_free(h[i]);
    }
    fb_region_free(r);
    CHECK_RC(fb_region_unlink("small", dir), FB_OK);
}

static void write_file(const char *name, mode_t mode, const void *bytes, size_t len) {
    char path[512];
    path_of(path, sizeof path, name);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(fchmod(fd, mode) == 0);
        CHECK(write(fd, bytes, len) == (ssize_t)len);
        close(fd);
    }
}

static void remove_file(const char *name) {
    char path[512];
    path_of(path, sizeof path, name);
    CHECK(unlink(path) == 0);
}

static void test_files_that_are_not_regions(void) {
    fb_region_options o = opts(4);
    o.create = false;
    fb_region *r = NULL;
    static unsigned char junk[8192];
    memset(junk, 0x5a, sizeof junk);

    write_file("junk", 0600, junk, sizeof junk);
    CHECK_RC(fb_region_open("junk", &o, &r), FB_ERR_REGION_BAD_MAGIC);
    CHECK_ERROR_HAS("not a fastbreaker region");
    remove_file("junk");

    write_file("short", 0600, junk, 10);
    CHECK_RC(fb_region_open("short", &o, &r), FB_ERR_REGION_TRUNCATED);
    remove_file("short");

    write_file("open", 0644, junk, sizeof junk);
    CHECK_RC(fb_region_open("open", &o, &r), FB_ERR_REGION_UNTRUSTED);
    CHECK_ERROR_HAS("0600 expected");
    remove_file("open");

    /* A real region, then damaged: its header checksum, then its length. */
    o.create = true;
    CHECK_RC(fb_region_open("damaged", &o, &r), FB_OK);
    fb_region_free(r);
    char path[512];
    path_of(path, sizeof path, "damaged");
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    unsigned char byte = 0;
    CHECK(pread(fd, &byte, 1, 40) == 1);
    byte ^= 0x80;
    CHECK(pwrite(fd, &byte, 1, 40) == 1);
    fb_result rc = fb_region_open("damaged", &o, &r);
    CHECK(rc == FB_ERR_REGION_CHECKSUM || rc == FB_ERR_REGION_VERSION ||
          rc == FB_ERR_REGION_LAYOUT || rc == FB_ERR_REGION_CORRUPT_HEADER);
    byte ^= 0x80;
    CHECK(pwrite(fd, &byte, 1, 40) == 1);
    CHECK_RC(fb_region_open("damaged", &o, &r), FB_OK);
    fb_region_free(r);
    CHECK(ftruncate(fd, 4096) == 0);
    rc = fb_region_open("damaged", &o, &r);
    CHECK(rc == FB_ERR_REGION_TRUNCATED || rc == FB_ERR_REGION_LAYOUT);
    close(fd);
    CHECK_RC(fb_region_unlink("damaged", dir), FB_OK);

    /* A symlink in place of the file is not followed. */
    char target[512];
    path_of(target, sizeof target, "target");
    path_of(path, sizeof path, "link");
    write_file("target", 0600, junk, sizeof junk);
    CHECK(symlink(target, path) == 0);
    rc = fb_region_open("link", &o, &r);
    CHECK(rc == FB_ERR_REGION_IO || rc == FB_ERR_REGION_UNTRUSTED);
    CHECK(unlink(path) == 0);
    remove_file("target");
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fb-region-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_defaults();
    test_open_attach_share();
    test_names_and_options();
    test_files_that_are_not_regions();
    CHECK(rmdir(dir) == 0); /* nothing left behind */
    return check_report("test_region");
}
