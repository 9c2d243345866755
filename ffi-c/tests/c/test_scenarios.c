/* The shared scenarios (the .scn files of tests/scenarios, format in FORMAT.md there) run
 * through the public header only: every step must give the result the file expects, as it
 * does in the Rust and Python runners. A failing step is printed as file:line (with the loop
 * iteration inside `repeat`), and a line the runner does not understand fails its scenario.
 *
 * Usage: test_scenarios [FILE.scn | DIR]...   (default: tests/scenarios, from the repo root)
 *
 * How C expresses what the format says: the manual clock is the `now_ns` of the _at
 * functions; a record's transition is what the breaker's listener (fb_breaker_set_listener)
 * saw during the call; `permit_used` is FB_ERR_PERMIT_USED; `drop` forgets the permit struct;
 * `exceeds` is FB_ERR_EXCEEDS_CAPACITY; `not_held` is FB_ERR_NOT_HELD; `none` (the core's
 * None) is FB_OFF for a rule, FB_RANDOM_SEED for jitter_seed, and the value None stands for
 * otherwise (FB_MAX_WAIT_DURATION_NS, the default window size or bucket count); `reconfigure`
 * is fb_breaker_reconfigure, fb_bucket_reconfigure_at or fb_bulkhead_reconfigure with the
 * configuration in force (kept by the runner) changed by the keys given, and `config_error`
 * (there and after a header) is FB_ERR_INVALID_CONFIG with `<field> = <value>` in
 * fb_last_error(). An adaptive limiter's refusal (FB_REJECTED) is told apart by the counters
 * and the wait: a paused one counts in paused_rejections, else a wait of 0 is the limit
 * reached and a wait above 0 the rate's pacing (see adaptive_step); its `record` is
 * fb_adaptive_record (a retry_after of 0: none). A throttle is built with the file's seed. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fastbreaker.h"

#define MAX_TOKENS 32
#define MAX_PERMITS 256
#define MAX_EVENTS 16

enum kind { BREAKER, BUCKET, BULKHEAD, ADAPTIVE, THROTTLE };

struct transition {
    fb_state from, to;
};

struct permit_slot {
    char id[32];
    fb_permit permit;
    int live;
};

struct scenario {
    const char *file;
    enum kind kind;
    fb_breaker *breaker;
    fb_bucket *bucket;
    fb_bulkhead *bulkhead;
    fb_adaptive *adaptive;
    fb_throttle *throttle;
    /* The configuration in force: the header's, then each accepted `reconfigure`'s. */
    fb_breaker_config breaker_config;
    fb_bucket_config bucket_config;
    fb_adaptive_config adaptive_config;
    fb_throttle_config throttle_config;
    uint32_t max_concurrent;
    uint64_t burst;
    uint64_t now;
    int line;      /* of the statement being run */
    int iteration; /* 1-based inside `repeat`, else 0 */
    int failed;    /* failing steps */
    int broken;    /* a line not understood: the scenario stops */
    int steps;
    struct permit_slot permits[MAX_PERMITS];
    struct transition events[MAX_EVENTS];
    int event_count;
};

/* ---------- reporting ---------- */

static void failf(struct scenario *s, const char *fmt, ...) {
    va_list ap;
    if (s->iteration > 0) {
        fprintf(stderr, "%s:%d (iteration %d): ", s->file, s->line, s->iteration);
    } else {
        fprintf(stderr, "%s:%d: ", s->file, s->line);
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    s->failed++;
}

/* A line the runner cannot run: fails the scenario and stops it. */
static void brokenf(struct scenario *s, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s:%d: not understood: ", s->file, s->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    s->failed++;
    s->broken = 1;
}

/* ---------- tokens and values ---------- */

/* Splits `text` (modified in place) at spaces and tabs; drops a `#` comment. */
static int tokenize(char *text, char **tokens) {
    char *hash = strchr(text, '#');
    if (hash != NULL) {
        *hash = '\0';
    }
    int n = 0;
    for (char *t = strtok(text, " \t\r\n"); t != NULL; t = strtok(NULL, " \t\r\n")) {
        if (n == MAX_TOKENS) {
            return -1;
        }
        tokens[n++] = t;
    }
    return n;
}

/* An unsigned decimal number, `_` allowed between digits. */
static int parse_u64(const char *text, uint64_t *out) {
    uint64_t v = 0;
    int digits = 0;
    if (text == NULL || *text == '\0' || *text == '_') {
        return 0;
    }
    for (const char *c = text; *c != '\0'; c++) {
        if (*c == '_') {
            continue;
        }
        if (*c < '0' || *c > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(*c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
        digits++;
    }
    *out = v;
    return digits > 0;
}

static int parse_state(const char *name, fb_state *out) {
    for (fb_state st = 0; st < 16; st++) {
        if (strcmp(fb_state_str(st), "unknown") != 0 && strcmp(fb_state_str(st), name) == 0) {
            *out = st;
            return 1;
        }
    }
    return 0;
}

/* `from->to` */
static int parse_transition(const char *text, struct transition *out) {
    char buf[64];
    const char *arrow = strstr(text, "->");
    if (arrow == NULL || (size_t)(arrow - text) >= sizeof buf) {
        return 0;
    }
    memcpy(buf, text, (size_t)(arrow - text));
    buf[arrow - text] = '\0';
    return parse_state(buf, &out->from) && parse_state(arrow + 2, &out->to);
}

/* ---------- construction (the header line) ---------- */

static void on_transition(const fb_breaker *b, fb_state from, fb_state to, void *user_data) {
    struct scenario *s = user_data;
    (void)b;
    if (s->event_count < MAX_EVENTS) {
        s->events[s->event_count].from = from;
        s->events[s->event_count].to = to;
    }
    s->event_count++;
}

/* Sets one `key=value` of a breaker configuration; 0 if the key or value is not understood. */
static int set_breaker_key(fb_breaker_config *c, const char *key, const char *value) {
    if (strcmp(key, "window") == 0) {
        if (strcmp(value, "count") == 0) {
            c->window_kind = FB_WINDOW_COUNT;
        } else if (strcmp(value, "time") == 0) {
            c->window_kind = FB_WINDOW_TIME;
        } else {
            return 0;
        }
        return 1;
    }
    int none = strcmp(value, "none") == 0;
    uint64_t v = 0;
    if (!none && !parse_u64(value, &v)) {
        return 0;
    }
    struct {
        const char *name;
        uint32_t *field;
        int none_ok; /* `none` is FB_OFF, the C spelling of the core's None */
    } u32s[] = {
        {"failure_threshold", &c->failure_threshold, 1},
        {"failure_rate_threshold", &c->failure_rate_threshold, 1},
        {"slow_call_rate_threshold", &c->slow_call_rate_threshold, 1},
        {"minimum_calls", &c->minimum_calls, 0},
        {"window_size", &c->window_size, 0},
        {"window_buckets", &c->window_buckets, 0},
        {"backoff_factor_milli", &c->backoff_factor_milli, 0},
        {"jitter_permille", &c->jitter_permille, 0},
        {"half_open_max_calls", &c->half_open_max_calls, 0},
        {"success_threshold", &c->success_threshold, 0},
    };
    struct {
        const char *name;
        uint64_t *field;
        int none_ok;
    } u64s[] = {
        {"slow_call_duration_ns", &c->slow_call_duration_ns, 0},
        {"bucket_duration_ns", &c->bucket_duration_ns, 0},
        {"wait_duration_ns", &c->wait_duration_ns, 0},
        {"max_wait_duration_ns", &c->max_wait_duration_ns, 1},
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        if (strcmp(key, u32s[i].name) == 0) {
            if (none) {
                if (!u32s[i].none_ok) {
                    /* window_size/window_buckets: None is the core's default */
                    fb_breaker_config d = fb_breaker_config_default();
                    if (strcmp(key, "window_size") == 0) {
                        *u32s[i].field = d.window_size;
                        return 1;
                    }
                    if (strcmp(key, "window_buckets") == 0) {
                        *u32s[i].field = d.window_buckets;
                        return 1;
                    }
                    return 0;
                }
                *u32s[i].field = FB_OFF;
                return 1;
            }
            if (v > UINT32_MAX) {
                return 0;
            }
            *u32s[i].field = (uint32_t)v;
            return 1;
        }
    }
    for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++) {
        if (strcmp(key, u64s[i].name) == 0) {
            if (none && !u64s[i].none_ok) {
                return 0;
            }
            *u64s[i].field = none ? FB_MAX_WAIT_DURATION_NS : v; /* None: no cap of its own */
            return 1;
        }
    }
    if (strcmp(key, "jitter_seed") == 0) {
        c->jitter_seed = none ? FB_RANDOM_SEED : v;
        return 1;
    }
    return 0;
}

/* Sets an adaptive limiter's key (those `reconfigure` takes too); 0 if not understood. */
static int set_adaptive_key(fb_adaptive_config *c, const char *key, const char *value) {
    uint64_t v = 0;
    if (!parse_u64(value, &v)) {
        return 0;
    }
    if (strcmp(key, "min_limit_milli") == 0) {
        c->min_limit_milli = v;
    } else if (strcmp(key, "max_limit_milli") == 0) {
        c->max_limit_milli = v;
    } else if (strcmp(key, "increase_milli") == 0) {
        c->increase_milli = v;
    } else if (strcmp(key, "decrease_permille") == 0 && v <= UINT32_MAX) {
        c->decrease_permille = (uint32_t)v;
    } else if (strcmp(key, "rtt_ns") == 0) {
        c->rtt_ns = v;
    } else if (strcmp(key, "latency_target_ns") == 0) {
        c->latency_target_ns = v;
    } else {
        return 0;
    }
    return 1;
}

/* Sets a throttle's key (those `reconfigure` takes too); 0 if not understood. */
static int set_throttle_key(fb_throttle_config *c, const char *key, const char *value) {
    uint64_t v = 0;
    if (!parse_u64(value, &v)) {
        return 0;
    }
    if (strcmp(key, "k_milli") == 0) {
        c->k_milli = v;
    } else if (strcmp(key, "window_ns") == 0) {
        c->window_ns = v;
    } else if (strcmp(key, "buckets") == 0 && v <= UINT32_MAX) {
        c->buckets = (uint32_t)v;
    } else {
        return 0;
    }
    return 1;
}

/* Builds the primitive of the header line. Returns FB_OK, FB_ERR_INVALID_CONFIG (the config
 * is refused: the caller checks the expected config_error) or -100 (not understood). */
static fb_result construct(struct scenario *s, char **tok, int n) {
    if (strcmp(tok[0], "breaker") == 0) {
        s->kind = BREAKER;
        fb_breaker_config c = fb_breaker_config_default();
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            if (eq == NULL) {
                brokenf(s, "`%s` is not key=value", tok[i]);
                return -100;
            }
            *eq = '\0';
            const char *key = tok[i], *value = eq + 1;
            if (!set_breaker_key(&c, key, value)) {
                brokenf(s, "breaker key %s=%s", key, value);
                return -100;
            }
        }
        s->breaker_config = c;
        fb_result rc = fb_breaker_new(&c, &s->breaker);
        if (rc == FB_OK) {
            rc = fb_breaker_set_listener(s->breaker, on_transition, s);
        }
        return rc;
    }
    if (strcmp(tok[0], "bucket") == 0) {
        s->kind = BUCKET;
        fb_bucket_config c = fb_bucket_config_per_second(1, 1);
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            uint64_t v = 0;
            if (eq == NULL || !parse_u64(eq + 1, &v)) {
                brokenf(s, "bucket key `%s`", tok[i]);
                return -100;
            }
            *eq = '\0';
            if (strcmp(tok[i], "rate") == 0) {
                c.rate = v;
            } else if (strcmp(tok[i], "period_ns") == 0) {
                c.period_ns = v;
            } else if (strcmp(tok[i], "burst") == 0) {
                c.burst = v;
            } else {
                brokenf(s, "bucket key `%s`", tok[i]);
                return -100;
            }
        }
        s->burst = c.burst;
        s->bucket_config = c;
        return fb_bucket_new(&c, &s->bucket);
    }
    if (strcmp(tok[0], "bulkhead") == 0) {
        s->kind = BULKHEAD;
        fb_bulkhead_config c = fb_bulkhead_config_default();
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            uint64_t v = 0;
            if (eq == NULL || !parse_u64(eq + 1, &v) || v > UINT32_MAX) {
                brokenf(s, "bulkhead key `%s`", tok[i]);
                return -100;
            }
            *eq = '\0';
            if (strcmp(tok[i], "max_concurrent") != 0) {
                brokenf(s, "bulkhead key `%s`", tok[i]);
                return -100;
            }
            c.max_concurrent = (uint32_t)v;
        }
        s->max_concurrent = c.max_concurrent;
        return fb_bulkhead_new(&c, &s->bulkhead);
    }
    if (strcmp(tok[0], "adaptive") == 0) {
        s->kind = ADAPTIVE;
        uint32_t mode = FB_ADAPTIVE_CONCURRENCY, rule = FB_ADAPTIVE_AIMD;
        uint64_t initial = 0;
        int have_initial = 0;
        /* mode and initial_limit_milli first: the defaults depend on them */
        for (int i = 1; i < n; i++) {
            if (strcmp(tok[i], "mode=rate") == 0) {
                mode = FB_ADAPTIVE_RATE;
            } else if (strncmp(tok[i], "initial_limit_milli=", 20) == 0) {
                if (!parse_u64(tok[i] + 20, &initial)) {
                    brokenf(s, "adaptive key `%s`", tok[i]);
                    return -100;
                }
                have_initial = 1;
            }
        }
        if (!have_initial) {
            brokenf(s, "adaptive needs initial_limit_milli=");
            return -100;
        }
        fb_adaptive_config c = fb_adaptive_config_default(mode, initial);
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            if (eq == NULL) {
                brokenf(s, "`%s` is not key=value", tok[i]);
                return -100;
            }
            *eq = '\0';
            const char *key = tok[i], *value = eq + 1;
            int ok = 1;
            if (strcmp(key, "mode") == 0) {
                ok = strcmp(value, "concurrency") == 0 || strcmp(value, "rate") == 0;
            } else if (strcmp(key, "rule") == 0) {
                ok = strcmp(value, "aimd") == 0 || strcmp(value, "gradient") == 0;
                rule = strcmp(value, "gradient") == 0 ? FB_ADAPTIVE_GRADIENT : FB_ADAPTIVE_AIMD;
            } else if (strcmp(key, "initial_limit_milli") != 0) {
                ok = set_adaptive_key(&c, key, value);
            }
            if (!ok) {
                brokenf(s, "adaptive key %s=%s", key, value);
                return -100;
            }
        }
        c.rule = rule;
        s->adaptive_config = c;
        return fb_adaptive_new(&c, &s->adaptive);
    }
    if (strcmp(tok[0], "throttle") == 0) {
        s->kind = THROTTLE;
        fb_throttle_config c = fb_throttle_config_default();
        uint64_t seed = 0;
        int have_seed = 0;
        for (int i = 1; i < n; i++) {
            char *eq = strchr(tok[i], '=');
            if (eq == NULL) {
                brokenf(s, "`%s` is not key=value", tok[i]);
                return -100;
            }
            *eq = '\0';
            const char *key = tok[i], *value = eq + 1;
            int ok;
            if (strcmp(key, "seed") == 0) {
                ok = have_seed = parse_u64(value, &seed);
            } else {
                ok = set_throttle_key(&c, key, value);
            }
            if (!ok) {
                brokenf(s, "throttle key %s=%s", key, value);
                return -100;
            }
        }
        if (!have_seed) {
            brokenf(s, "throttle needs seed=");
            return -100;
        }
        s->throttle_config = c;
        return fb_throttle_new(&c, &seed, &s->throttle);
    }
    brokenf(s, "`%s` is not breaker, bucket, bulkhead, adaptive or throttle", tok[0]);
    return -100;
}

/* ---------- steps ---------- */

static struct permit_slot *find_permit(struct scenario *s, const char *id, int create) {
    struct permit_slot *free_slot = NULL;
    for (int i = 0; i < MAX_PERMITS; i++) {
        if (s->permits[i].live && strcmp(s->permits[i].id, id) == 0) {
            return &s->permits[i];
        }
        if (!s->permits[i].live && free_slot == NULL) {
            free_slot = &s->permits[i];
        }
    }
    if (!create || free_slot == NULL || strlen(id) >= sizeof free_slot->id) {
        return NULL;
    }
    snprintf(free_slot->id, sizeof free_slot->id, "%s", id);
    free_slot->live = 1;
    return free_slot;
}

/* Checks the transitions the listener saw against `none` or `from->to`. */
static void check_transition(struct scenario *s, const char *what, char **expect, int n) {
    if (n != 1) {
        brokenf(s, "%s: expected `none` or `from->to`", what);
        return;
    }
    if (strcmp(expect[0], "none") == 0) {
        if (s->event_count != 0) {
            failf(s, "%s: expected no state change, got %s->%s", what,
                  fb_state_str(s->events[0].from), fb_state_str(s->events[0].to));
        }
        return;
    }
    struct transition t;
    if (!parse_transition(expect[0], &t)) {
        brokenf(s, "%s: `%s` is not `none` or `from->to`", what, expect[0]);
        return;
    }
    if (s->event_count != 1 || s->events[0].from != t.from || s->events[0].to != t.to) {
        if (s->event_count == 0) {
            failf(s, "%s: expected %s, got no state change", what, expect[0]);
        } else {
            failf(s, "%s: expected %s, got %s->%s (%d change(s))", what, expect[0],
                  fb_state_str(s->events[0].from), fb_state_str(s->events[0].to),
                  s->event_count);
        }
    }
}

static int check_rc(struct scenario *s, const char *what, fb_result rc, fb_result want) {
    if (rc != want) {
        failf(s, "%s: returned %d (%s), expected %s; last error: %s", what, (int)rc,
              fb_result_str(rc), fb_result_str(want), fb_last_error());
        return 0;
    }
    return 1;
}

static const char *reason_str(fb_reject_reason r) {
    switch (r) {
    case FB_REJECT_NONE:
        return "(not rejected)";
    case FB_REJECT_OPEN:
        return "open";
    case FB_REJECT_HALF_OPEN_FULL:
        return "half_open_full";
    case FB_REJECT_FORCED_OPEN:
        return "forced_open";
    default:
        return "(unknown reason)";
    }
}

static void breaker_acquire(struct scenario *s, char **ex, int n) {
    fb_permit p;
    memset(&p, 0, sizeof p);
    fb_result rc = fb_breaker_acquire_at(s->breaker, &p, s->now);
    if (n == 0) {
        if (rc != FB_OK && rc != FB_REJECTED) {
            check_rc(s, "acquire", rc, FB_OK);
        }
        return;
    }
    if (strcmp(ex[0], "permit") == 0 && (n == 2 || (n == 3 && strcmp(ex[2], "probe") == 0))) {
        if (!check_rc(s, "acquire", rc, FB_OK)) {
            if (rc == FB_REJECTED) {
                fprintf(stderr, "      rejected %s %" PRIu64 "\n", reason_str(p.reason),
                        p.retry_after_ns);
            }
            return;
        }
        if (n == 3 && p.kind != FB_PERMIT_PROBE) {
            failf(s, "acquire: expected a probe, got permit kind %u", (unsigned)p.kind);
        }
        struct permit_slot *slot = find_permit(s, ex[1], 1);
        if (slot == NULL) {
            brokenf(s, "too many permits or bad id `%s`", ex[1]);
            return;
        }
        slot->permit = p; /* the one copy that gets recorded */
        return;
    }
    if (strcmp(ex[0], "rejected") == 0 && n >= 2) {
        fb_reject_reason want;
        uint64_t retry = 0;
        if (strcmp(ex[1], "open") == 0 && n == 3 && parse_u64(ex[2], &retry)) {
            want = FB_REJECT_OPEN;
        } else if (strcmp(ex[1], "half_open_full") == 0 && n == 2) {
            want = FB_REJECT_HALF_OPEN_FULL;
        } else if (strcmp(ex[1], "forced_open") == 0 && n == 2) {
            want = FB_REJECT_FORCED_OPEN;
        } else {
            brokenf(s, "acquire: expectation `rejected %s`", ex[1]);
            return;
        }
        if (!check_rc(s, "acquire", rc, FB_REJECTED)) {
            return;
        }
        if (p.reason != want || p.retry_after_ns != retry) {
            failf(s, "acquire: expected rejected %s %" PRIu64 ", got rejected %s %" PRIu64,
                  reason_str(want), retry, reason_str(p.reason), p.retry_after_ns);
        }
        return;
    }
    brokenf(s, "acquire: expectation `%s`", ex[0]);
}

static void breaker_record(struct scenario *s, char **args, int nargs, char **ex, int n) {
    if (nargs < 2 || nargs > 3) {
        brokenf(s, "record <id> success|failure|ignored [duration=<ns>]");
        return;
    }
    struct permit_slot *slot = find_permit(s, args[0], 0);
    if (slot == NULL) {
        brokenf(s, "record: no permit `%s`", args[0]);
        return;
    }
    fb_outcome o;
    if (strcmp(args[1], "success") == 0) {
        o = FB_OUTCOME_SUCCESS;
    } else if (strcmp(args[1], "failure") == 0) {
        o = FB_OUTCOME_FAILURE;
    } else if (strcmp(args[1], "ignored") == 0) {
        o = FB_OUTCOME_IGNORED;
    } else {
        brokenf(s, "record: outcome `%s`", args[1]);
        return;
    }
    uint64_t duration = FB_DURATION_AUTO;
    if (nargs == 3 && (strncmp(args[2], "duration=", 9) != 0 || !parse_u64(args[2] + 9, &duration))) {
        brokenf(s, "record: `%s`", args[2]);
        return;
    }
    fb_result rc = fb_breaker_record_at(s->breaker, &slot->permit, o, duration, s->now);
    if (n == 1 && strcmp(ex[0], "permit_used") == 0) {
        check_rc(s, "record", rc, FB_ERR_PERMIT_USED);
        if (s->event_count != 0) {
            failf(s, "record: a used permit changed the state");
        }
        return;
    }
    if (!check_rc(s, "record", rc, FB_OK)) {
        return;
    }
    if (n > 0) {
        check_transition(s, "record", ex, n);
    }
}

static void breaker_manual(struct scenario *s, const char *action, char **ex, int n) {
    fb_result rc;
    if (strcmp(action, "trip") == 0) {
        rc = fb_breaker_trip_at(s->breaker, s->now);
    } else if (strcmp(action, "half_open") == 0) {
        rc = fb_breaker_half_open_at(s->breaker, s->now);
    } else if (strcmp(action, "force_open") == 0) {
        rc = fb_breaker_force_open_at(s->breaker, s->now);
    } else if (strcmp(action, "disable") == 0) {
        rc = fb_breaker_disable_at(s->breaker, s->now);
    } else if (strcmp(action, "metrics_only") == 0) {
        rc = fb_breaker_metrics_only_at(s->breaker, s->now);
    } else {
        rc = fb_breaker_reset_at(s->breaker, s->now);
    }
    if (check_rc(s, action, rc, FB_OK) && n > 0) {
        check_transition(s, action, ex, n);
    }
}

static void breaker_expect(struct scenario *s, char **args, int nargs) {
    if (nargs != 2) {
        brokenf(s, "expect <what> <value>");
        return;
    }
    fb_breaker_stats m;
    if (!check_rc(s, "metrics", fb_breaker_metrics_at(s->breaker, &m, s->now), FB_OK)) {
        return;
    }
    if (strcmp(args[0], "state") == 0) {
        fb_state want;
        if (!parse_state(args[1], &want)) {
            brokenf(s, "expect state `%s`", args[1]);
        } else if (m.state != want) {
            failf(s, "expect state %s, got %s", args[1], fb_state_str(m.state));
        }
        return;
    }
    uint64_t want;
    if (!parse_u64(args[1], &want)) {
        brokenf(s, "expect %s `%s`", args[0], args[1]);
        return;
    }
    struct {
        const char *name;
        uint64_t value;
    } readings[] = {
        {"retry_after", m.retry_after_ns},
        {"consecutive_failures", m.consecutive_failures},
        {"trips", m.trips},
        {"rejected", m.rejected},
        {"permitted", m.permitted},
        {"succeeded", m.succeeded},
        {"failed", m.failed},
        {"ignored", m.ignored},
        {"slow", m.slow},
        {"half_open_in_flight", m.half_open_in_flight},
        {"window_samples", m.window_samples},
        {"window_failures", m.window_failures},
        {"window_slow", m.window_slow},
    };
    for (size_t i = 0; i < sizeof readings / sizeof readings[0]; i++) {
        if (strcmp(args[0], readings[i].name) == 0) {
            if (readings[i].value != want) {
                failf(s, "expect %s %" PRIu64 ", got %" PRIu64, args[0], want,
                      readings[i].value);
            }
            return;
        }
    }
    brokenf(s, "expect `%s`", args[0]);
}

static void breaker_step(struct scenario *s, char **act, int na, char **ex, int n) {
    const char *a = act[0];
    if (strcmp(a, "acquire") == 0 && na == 1) {
        breaker_acquire(s, ex, n);
    } else if (strcmp(a, "record") == 0) {
        breaker_record(s, act + 1, na - 1, ex, n);
    } else if (strcmp(a, "drop") == 0 && na == 2 && n == 0) {
        struct permit_slot *slot = find_permit(s, act[1], 0);
        if (slot == NULL) {
            brokenf(s, "drop: no permit `%s`", act[1]);
        } else {
            slot->live = 0; /* forgotten: never recorded */
        }
    } else if (na == 1 && (strcmp(a, "trip") == 0 || strcmp(a, "half_open") == 0 ||
                           strcmp(a, "force_open") == 0 || strcmp(a, "disable") == 0 ||
                           strcmp(a, "metrics_only") == 0 || strcmp(a, "reset") == 0)) {
        breaker_manual(s, a, ex, n);
    } else if (strcmp(a, "expect") == 0 && n == 0) {
        breaker_expect(s, act + 1, na - 1);
    } else {
        brokenf(s, "breaker step `%s`", a);
    }
}

/* `exceeds <n> <burst>`: FB_ERR_EXCEEDS_CAPACITY, the message naming both. */
static void check_exceeds(struct scenario *s, const char *what, fb_result rc, char **ex, int n) {
    uint64_t requested, burst;
    if (n != 3 || !parse_u64(ex[1], &requested) || !parse_u64(ex[2], &burst)) {
        brokenf(s, "%s: exceeds <n> <burst>", what);
        return;
    }
    if (!check_rc(s, what, rc, FB_ERR_EXCEEDS_CAPACITY)) {
        return;
    }
    char part[96];
    snprintf(part, sizeof part, "%" PRIu64 " tokens requested", requested);
    char cap[64];
    snprintf(cap, sizeof cap, "capacity of %" PRIu64, burst);
    if (strstr(fb_last_error(), part) == NULL || strstr(fb_last_error(), cap) == NULL ||
        burst != s->burst) {
        failf(s, "%s: expected exceeds %" PRIu64 " %" PRIu64 ", got \"%s\"", what, requested,
              burst, fb_last_error());
    }
}

/* The tokens available now, read both ways C has (fb_bucket_available_at and the remaining
 * of fb_bucket_state_at), which must agree. */
static void check_available(struct scenario *s, const char *what, uint64_t want) {
    uint64_t got = 0;
    fb_bucket_stats st;
    if (!check_rc(s, what, fb_bucket_available_at(s->bucket, &got, s->now), FB_OK) ||
        !check_rc(s, what, fb_bucket_state_at(s->bucket, &st, s->now), FB_OK)) {
        return;
    }
    if (got != want || st.remaining != want) {
        failf(s, "%s: expected %" PRIu64 ", got %" PRIu64 " (state: remaining %" PRIu64 ")",
              what, want, got, st.remaining);
    }
}

static void bucket_step(struct scenario *s, char **act, int na, char **ex, int n) {
    const char *a = act[0];
    uint64_t count = 0, got = 0, want = 0;
    if (strcmp(a, "take") == 0 && na == 2 && parse_u64(act[1], &count) && n >= 1) {
        fb_result rc = fb_bucket_try_acquire_at(s->bucket, count, &got, s->now);
        if (strcmp(ex[0], "ok") == 0 && n == 1) {
            check_rc(s, "take", rc, FB_OK);
        } else if (strcmp(ex[0], "limited") == 0 && n == 2 && parse_u64(ex[1], &want)) {
            if (check_rc(s, "take", rc, FB_REJECTED) && got != want) {
                failf(s, "take: expected limited %" PRIu64 ", got limited %" PRIu64, want, got);
            }
        } else if (strcmp(ex[0], "exceeds") == 0) {
            check_exceeds(s, "take", rc, ex, n);
        } else {
            brokenf(s, "take: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "retry_after") == 0 && na == 2 && parse_u64(act[1], &count) &&
               n >= 1) {
        fb_result rc = fb_bucket_retry_after_at(s->bucket, count, &got, s->now);
        if (strcmp(ex[0], "exceeds") == 0) {
            check_exceeds(s, "retry_after", rc, ex, n);
        } else if (n == 1 && parse_u64(ex[0], &want)) {
            if (check_rc(s, "retry_after", rc, FB_OK) && got != want) {
                failf(s, "retry_after: expected %" PRIu64 ", got %" PRIu64, want, got);
            }
        } else {
            brokenf(s, "retry_after: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "available") == 0 && na == 1 && n == 1 && parse_u64(ex[0], &want)) {
        check_available(s, "available", want);
    } else if (strcmp(a, "reserve") == 0 && (na == 2 || na == 3) && parse_u64(act[1], &count) &&
               n >= 1) {
        uint64_t max_wait = UINT64_MAX;
        if (na == 3 &&
            (strncmp(act[2], "max_wait=", 9) != 0 || !parse_u64(act[2] + 9, &max_wait))) {
            brokenf(s, "reserve <n> [max_wait=<ns>]");
            return;
        }
        fb_result rc = fb_bucket_reserve_within_at(s->bucket, count, max_wait, &got, s->now);
        if (strcmp(ex[0], "exceeds") == 0) {
            check_exceeds(s, "reserve", rc, ex, n);
        } else if (strcmp(ex[0], "limited") == 0 && n == 2 && parse_u64(ex[1], &want)) {
            if (check_rc(s, "reserve", rc, FB_REJECTED) && got != want) {
                failf(s, "reserve: expected limited %" PRIu64 ", got limited %" PRIu64, want,
                      got);
            }
        } else if (n == 1 && parse_u64(ex[0], &want)) {
            if (check_rc(s, "reserve", rc, FB_OK) && got != want) {
                failf(s, "reserve: expected wait %" PRIu64 ", got %" PRIu64, want, got);
            }
        } else {
            brokenf(s, "reserve: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "refund") == 0 && na == 2 && parse_u64(act[1], &count) && n == 0) {
        check_rc(s, "refund", fb_bucket_refund_at(s->bucket, count, s->now), FB_OK);
    } else if (strcmp(a, "reset") == 0 && na == 1 && n == 0) {
        check_rc(s, "reset", fb_bucket_reset_at(s->bucket, s->now), FB_OK);
    } else if (strcmp(a, "expect") == 0 && na == 3 && strcmp(act[1], "available") == 0 &&
               n == 0 && parse_u64(act[2], &want)) {
        check_available(s, "expect available", want);
    } else {
        brokenf(s, "bucket step `%s`", a);
    }
}

static void bulkhead_step(struct scenario *s, char **act, int na, char **ex, int n) {
    const char *a = act[0];
    uint64_t want = 0;
    if (strcmp(a, "enter") == 0 && na == 1 && n == 1) {
        fb_result rc = fb_bulkhead_try_acquire(s->bulkhead);
        if (strcmp(ex[0], "ok") == 0) {
            check_rc(s, "enter", rc, FB_OK);
        } else if (strcmp(ex[0], "full") == 0) {
            check_rc(s, "enter", rc, FB_REJECTED);
        } else {
            brokenf(s, "enter: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "release") == 0 && na == 1 && n == 1) {
        fb_result rc = fb_bulkhead_release(s->bulkhead);
        if (strcmp(ex[0], "ok") == 0) {
            check_rc(s, "release", rc, FB_OK);
        } else if (strcmp(ex[0], "not_held") == 0) {
            check_rc(s, "release", rc, FB_ERR_NOT_HELD);
        } else {
            brokenf(s, "release: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "expect") == 0 && na == 3 && strcmp(act[1], "in_flight") == 0 &&
               n == 0 && parse_u64(act[2], &want)) {
        fb_bulkhead_stats st;
        if (check_rc(s, "metrics", fb_bulkhead_metrics(s->bulkhead, &st), FB_OK) &&
            st.in_flight != want) {
            failf(s, "expect in_flight %" PRIu64 ", got %u", want, (unsigned)st.in_flight);
        }
    } else {
        brokenf(s, "bulkhead step `%s`", a);
    }
}

static int adaptive_stats(struct scenario *s, fb_adaptive_stats *st) {
    return check_rc(s, "fb_adaptive_metrics", fb_adaptive_metrics(s->adaptive, s->now, st),
                    FB_OK);
}

/* An adaptive limiter's steps. C's acquire says FB_REJECTED and a wait; the kind of refusal
 * is read from the counters: a paused one counts in paused_rejections (its wait is the
 * pause's rest, which paused_for_ns must also read); otherwise a wait of 0 is the limit
 * reached (concurrency), and a wait above 0 the rate's pacing. */
static void adaptive_step(struct scenario *s, char **act, int na, char **ex, int n) {
    const char *a = act[0];
    uint64_t want = 0, v = 0;
    fb_adaptive_stats before, after;
    if (strcmp(a, "acquire") == 0 && na == 1 && n >= 1) {
        uint64_t wait = UINT64_MAX;
        if (!adaptive_stats(s, &before)) {
            return;
        }
        fb_result rc = fb_adaptive_try_acquire(s->adaptive, s->now, &wait);
        if (!adaptive_stats(s, &after)) {
            return;
        }
        int paused = after.paused_rejections == before.paused_rejections + 1;
        if (strcmp(ex[0], "admitted") == 0 && n == 1) {
            if (check_rc(s, "acquire", rc, FB_OK) && wait != 0) {
                failf(s, "acquire: admitted, but the wait reads %" PRIu64, wait);
            }
            return;
        }
        if (strcmp(ex[0], "rejected") != 0) {
            brokenf(s, "acquire: expectation `%s`", ex[0]);
            return;
        }
        if (n == 2 && strcmp(ex[1], "limit") == 0) {
            if (check_rc(s, "acquire", rc, FB_REJECTED) && (paused || wait != 0)) {
                failf(s, "acquire: expected rejected limit, got a wait of %" PRIu64 "%s", wait,
                      paused ? " (paused)" : "");
            }
        } else if (n == 3 && (strcmp(ex[1], "rate") == 0 || strcmp(ex[1], "paused") == 0) &&
                   parse_u64(ex[2], &want)) {
            int want_paused = strcmp(ex[1], "paused") == 0;
            if (!check_rc(s, "acquire", rc, FB_REJECTED)) {
                return;
            }
            if (paused != want_paused || wait != want || (paused && after.paused_for_ns != want) ||
                (!paused && wait == 0)) {
                failf(s, "acquire: expected rejected %s %" PRIu64 ", got rejected %s %" PRIu64
                         " (paused_for_ns %" PRIu64 ")",
                      ex[1], want, paused ? "paused" : (wait == 0 ? "limit" : "rate"), wait,
                      after.paused_for_ns);
            }
        } else {
            brokenf(s, "acquire: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "record") == 0 && na >= 2 && n == 0) {
        uint32_t outcome;
        uint64_t latency = 0, retry_after = 0;
        if (strcmp(act[1], "success") == 0 && na == 3 && parse_u64(act[2], &latency)) {
            outcome = FB_ADAPTIVE_SUCCESS;
        } else if (strcmp(act[1], "overload") == 0 &&
                   (na == 2 || (na == 3 && parse_u64(act[2], &retry_after)))) {
            outcome = FB_ADAPTIVE_OVERLOAD;
        } else if (strcmp(act[1], "ignore") == 0 && na == 2) {
            outcome = FB_ADAPTIVE_IGNORE;
        } else {
            brokenf(s, "record success <latency_ns> | overload [<retry_after_ns>] | ignore");
            return;
        }
        check_rc(s, "record",
                 fb_adaptive_record(s->adaptive, outcome, latency, retry_after, s->now), FB_OK);
    } else if (strcmp(a, "expect") == 0 && na == 3 && n == 0 && parse_u64(act[2], &want)) {
        if (!adaptive_stats(s, &after)) {
            return;
        }
        const char *w = act[1];
        if (strcmp(w, "limit") == 0) {
            v = after.limit_milli;
            if (fb_adaptive_limit(s->adaptive) != v) {
                failf(s, "fb_adaptive_limit %" PRIu64 " but the metrics' limit_milli %" PRIu64,
                      fb_adaptive_limit(s->adaptive), v);
            }
        } else if (strcmp(w, "in_flight") == 0) {
            v = after.in_flight;
        } else if (strcmp(w, "paused_for") == 0) {
            v = after.paused_for_ns;
        } else if (strcmp(w, "admitted") == 0) {
            v = after.admitted;
        } else if (strcmp(w, "rejected") == 0) {
            v = after.rejected;
        } else if (strcmp(w, "paused_rejections") == 0) {
            v = after.paused_rejections;
        } else if (strcmp(w, "overloads") == 0) {
            v = after.overloads;
        } else if (strcmp(w, "decreases") == 0) {
            v = after.decreases;
        } else if (strcmp(w, "unmatched_records") == 0) {
            v = after.unmatched_records;
        } else {
            brokenf(s, "adaptive check `%s`", w);
            return;
        }
        if (v != want) {
            failf(s, "expect %s %" PRIu64 ", got %" PRIu64, w, want, v);
        }
    } else {
        brokenf(s, "adaptive step `%s`", a);
    }
}

static void throttle_step(struct scenario *s, char **act, int na, char **ex, int n) {
    const char *a = act[0];
    uint64_t want = 0;
    if (strcmp(a, "acquire") == 0 && na == 1 && n == 1) {
        fb_result rc = fb_throttle_try_acquire(s->throttle, s->now);
        if (strcmp(ex[0], "admitted") == 0) {
            check_rc(s, "acquire", rc, FB_OK);
        } else if (strcmp(ex[0], "rejected") == 0) {
            check_rc(s, "acquire", rc, FB_REJECTED);
        } else {
            brokenf(s, "acquire: expectation `%s`", ex[0]);
        }
    } else if (strcmp(a, "record") == 0 && na == 2 && n == 0 &&
               (strcmp(act[1], "accepted") == 0 || strcmp(act[1], "rejected") == 0)) {
        check_rc(s, "record",
                 fb_throttle_record(s->throttle, strcmp(act[1], "accepted") == 0, s->now), FB_OK);
    } else if (strcmp(a, "expect") == 0 && na == 3 && n == 0 &&
               strcmp(act[1], "reject_probability_ppm") == 0 && parse_u64(act[2], &want)) {
        uint32_t got = fb_throttle_reject_probability_ppm(s->throttle, s->now);
        if (got != want) {
            failf(s, "expect reject_probability_ppm %" PRIu64 ", got %u", want, (unsigned)got);
        }
    } else {
        brokenf(s, "throttle step `%s`", a);
    }
}

/* `reconfigure` of an adaptive limiter or a throttle: the configuration in force changed by
 * the keys given; after a refusal, the configuration (as the metrics show it for a limiter:
 * C has no getter for a throttle's) and the limit must be unchanged. */
static void reconfigure_adaptive(struct scenario *s, char **args, int nargs, char **ex, int n) {
    fb_adaptive_config ac = s->adaptive_config;
    fb_throttle_config tc = s->throttle_config;
    int want_ok = n == 1 && strcmp(ex[0], "ok") == 0;
    int want_error = n == 3 && strcmp(ex[0], "config_error") == 0;
    if (nargs == 0 || (!want_ok && !want_error)) {
        brokenf(s, "reconfigure key=value ... => ok | config_error <field> <value>");
        return;
    }
    for (int i = 0; i < nargs; i++) {
        char key[64];
        const char *eq = strchr(args[i], '=');
        if (eq == NULL || (size_t)(eq - args[i]) >= sizeof key) {
            brokenf(s, "reconfigure: `%s` is not key=value", args[i]);
            return;
        }
        memcpy(key, args[i], (size_t)(eq - args[i]));
        key[eq - args[i]] = '\0';
        int understood = s->kind == ADAPTIVE ? set_adaptive_key(&ac, key, eq + 1)
                                             : set_throttle_key(&tc, key, eq + 1);
        if (!understood) {
            brokenf(s, "reconfigure: key %s=%s", key, eq + 1);
            return;
        }
    }
    fb_adaptive_stats st0, st1;
    uint32_t p0 = 0, p1 = 0;
    if (s->kind == ADAPTIVE && !adaptive_stats(s, &st0)) {
        return;
    }
    if (s->kind == THROTTLE) {
        p0 = fb_throttle_reject_probability_ppm(s->throttle, s->now);
    }
    fb_result rc = s->kind == ADAPTIVE ? fb_adaptive_reconfigure(s->adaptive, &ac)
                                       : fb_throttle_reconfigure(s->throttle, &tc, s->now);
    if (want_ok) {
        if (check_rc(s, "reconfigure", rc, FB_OK)) {
            s->adaptive_config = ac;
            s->throttle_config = tc;
        }
        return;
    }
    char want[160];
    snprintf(want, sizeof want, "%s = %s", ex[1], ex[2]);
    uint64_t value;
    if (parse_u64(ex[2], &value)) {
        snprintf(want, sizeof want, "%s = %" PRIu64, ex[1], value);
    }
    if (!check_rc(s, "reconfigure", rc, FB_ERR_INVALID_CONFIG)) {
        return;
    }
    if (strstr(fb_last_error(), want) == NULL) {
        failf(s, "reconfigure: expected config_error naming \"%s\", got \"%s\"", want,
              fb_last_error());
    }
    if (s->kind == ADAPTIVE) {
        if (adaptive_stats(s, &st1) &&
            (st0.limit_milli != st1.limit_milli || st0.in_flight != st1.in_flight)) {
            failf(s, "reconfigure: a refused configuration changed the limiter");
        }
    } else {
        p1 = fb_throttle_reject_probability_ppm(s->throttle, s->now);
        if (p0 != p1) {
            failf(s, "reconfigure: a refused configuration changed the probability");
        }
    }
}

/* ---------- reconfigure ---------- */

/* Field by field: the struct has padding. */
static int same_breaker_config(const fb_breaker_config *a, const fb_breaker_config *b) {
    return a->failure_threshold == b->failure_threshold &&
           a->failure_rate_threshold == b->failure_rate_threshold &&
           a->slow_call_rate_threshold == b->slow_call_rate_threshold &&
           a->minimum_calls == b->minimum_calls &&
           a->slow_call_duration_ns == b->slow_call_duration_ns &&
           a->window_kind == b->window_kind && a->window_size == b->window_size &&
           a->window_buckets == b->window_buckets &&
           a->bucket_duration_ns == b->bucket_duration_ns &&
           a->wait_duration_ns == b->wait_duration_ns &&
           a->backoff_factor_milli == b->backoff_factor_milli &&
           a->jitter_permille == b->jitter_permille &&
           a->max_wait_duration_ns == b->max_wait_duration_ns &&
           a->jitter_seed == b->jitter_seed &&
           a->half_open_max_calls == b->half_open_max_calls &&
           a->success_threshold == b->success_threshold;
}

/* The configuration as the primitive reports it (to check that a refused reconfiguration
 * changed nothing). */
static int config_snapshot(struct scenario *s, fb_breaker_config *bc, fb_bucket_config *kc,
                           uint32_t *max) {
    fb_bulkhead_stats st;
    switch (s->kind) {
    case BREAKER:
        return check_rc(s, "get_config", fb_breaker_get_config(s->breaker, bc), FB_OK);
    case BUCKET:
        return check_rc(s, "get_config", fb_bucket_get_config(s->bucket, kc), FB_OK);
    case BULKHEAD:
        if (!check_rc(s, "metrics", fb_bulkhead_metrics(s->bulkhead, &st), FB_OK)) {
            return 0;
        }
        *max = st.max_concurrent;
        return 1;
    case ADAPTIVE:
    case THROTTLE:
        return 0;
    }
    return 0;
}

/* `reconfigure key=value ... => ok | config_error <field> <value>`: the configuration in
 * force, changed by the keys given, applied at the step's time; kept only if accepted. */
static void reconfigure_step(struct scenario *s, char **args, int nargs, char **ex, int n) {
    fb_breaker_config bc = s->breaker_config;
    fb_bucket_config kc = s->bucket_config;
    uint32_t max = s->max_concurrent;
    int want_ok = n == 1 && strcmp(ex[0], "ok") == 0;
    int want_error = n == 3 && strcmp(ex[0], "config_error") == 0;
    if (nargs == 0 || (!want_ok && !want_error)) {
        brokenf(s, "reconfigure key=value ... => ok | config_error <field> <value>");
        return;
    }
    for (int i = 0; i < nargs; i++) {
        char key[64];
        const char *eq = strchr(args[i], '=');
        uint64_t v = 0;
        if (eq == NULL || (size_t)(eq - args[i]) >= sizeof key) {
            brokenf(s, "reconfigure: `%s` is not key=value", args[i]);
            return;
        }
        memcpy(key, args[i], (size_t)(eq - args[i]));
        key[eq - args[i]] = '\0';
        const char *value = eq + 1;
        int understood = 0;
        switch (s->kind) {
        case BREAKER:
            understood = set_breaker_key(&bc, key, value);
            break;
        case BUCKET:
            understood = parse_u64(value, &v);
            if (strcmp(key, "rate") == 0) {
                kc.rate = v;
            } else if (strcmp(key, "period_ns") == 0) {
                kc.period_ns = v;
            } else if (strcmp(key, "burst") == 0) {
                kc.burst = v;
            } else {
                understood = 0;
            }
            break;
        case BULKHEAD:
            understood = strcmp(key, "max_concurrent") == 0 && parse_u64(value, &v) &&
                         v <= UINT32_MAX;
            max = (uint32_t)v;
            break;
        case ADAPTIVE:
        case THROTTLE:
            break; /* reconfigure_adaptive */
        }
        if (!understood) {
            brokenf(s, "reconfigure: key %s=%s", key, value);
            return;
        }
    }
    fb_breaker_config bc0, bc1;
    fb_bucket_config kc0, kc1;
    uint32_t max0 = 0, max1 = 0;
    if (!config_snapshot(s, &bc0, &kc0, &max0)) {
        return;
    }
    fb_result rc = FB_ERR_PANIC;
    switch (s->kind) {
    case BREAKER:
        rc = fb_breaker_reconfigure(s->breaker, &bc);
        break;
    case BUCKET:
        rc = fb_bucket_reconfigure_at(s->bucket, &kc, s->now);
        break;
    case BULKHEAD:
        rc = fb_bulkhead_reconfigure(s->bulkhead, max);
        break;
    case ADAPTIVE:
    case THROTTLE:
        break;
    }
    if (want_ok) {
        if (check_rc(s, "reconfigure", rc, FB_OK)) {
            s->breaker_config = bc;
            s->bucket_config = kc;
            s->max_concurrent = max;
            if (s->kind == BUCKET) {
                s->burst = kc.burst;
            }
        }
        return;
    }
    char want[160];
    uint64_t value;
    if (parse_u64(ex[2], &value)) {
        snprintf(want, sizeof want, "%s = %" PRIu64, ex[1], value);
    } else {
        snprintf(want, sizeof want, "%s = %s", ex[1], ex[2]);
    }
    if (!check_rc(s, "reconfigure", rc, FB_ERR_INVALID_CONFIG)) {
        return;
    }
    if (strstr(fb_last_error(), want) == NULL) {
        failf(s, "reconfigure: expected config_error naming \"%s\", got \"%s\"", want,
              fb_last_error());
    }
    if (!config_snapshot(s, &bc1, &kc1, &max1)) {
        return;
    }
    int same = 0;
    switch (s->kind) {
    case BREAKER:
        same = same_breaker_config(&bc0, &bc1);
        break;
    case BUCKET:
        same = kc0.rate == kc1.rate && kc0.period_ns == kc1.period_ns && kc0.burst == kc1.burst;
        break;
    case BULKHEAD:
        same = max0 == max1;
        break;
    case ADAPTIVE:
    case THROTTLE:
        break;
    }
    if (!same) {
        failf(s, "reconfigure: a refused configuration changed the configuration in force");
    }
    if (s->event_count != 0) {
        failf(s, "reconfigure: a refused configuration changed the state");
    }
}

/* Runs one statement `@<t> action... [=> expected...]`. */
static void run_step(struct scenario *s, char **tok, int n) {
    uint64_t t;
    if (tok[0][1] == '+') {
        uint64_t d;
        if (!parse_u64(tok[0] + 2, &d)) {
            brokenf(s, "time `%s`", tok[0]);
            return;
        }
        t = s->now + d;
    } else if (!parse_u64(tok[0] + 1, &t)) {
        brokenf(s, "time `%s`", tok[0]);
        return;
    }
    if (t < s->now) {
        brokenf(s, "time goes backwards: %" PRIu64 " after %" PRIu64, t, s->now);
        return;
    }
    s->now = t;
    int arrow = n;
    for (int i = 1; i < n; i++) {
        if (strcmp(tok[i], "=>") == 0) {
            arrow = i;
            break;
        }
    }
    if (arrow == 1) {
        brokenf(s, "no action");
        return;
    }
    char **act = tok + 1, **ex = tok + arrow + 1;
    int na = arrow - 1, ne = arrow < n ? n - arrow - 1 : 0;
    if (arrow < n && ne == 0) {
        brokenf(s, "nothing after =>");
        return;
    }
    s->event_count = 0;
    s->steps++;
    if (strcmp(act[0], "reconfigure") == 0) {
        if (s->kind == ADAPTIVE || s->kind == THROTTLE) {
            reconfigure_adaptive(s, act + 1, na - 1, ex, ne);
        } else {
            reconfigure_step(s, act + 1, na - 1, ex, ne);
        }
        return;
    }
    switch (s->kind) {
    case BREAKER:
        breaker_step(s, act, na, ex, ne);
        break;
    case BUCKET:
        bucket_step(s, act, na, ex, ne);
        break;
    case BULKHEAD:
        bulkhead_step(s, act, na, ex, ne);
        break;
    case ADAPTIVE:
        adaptive_step(s, act, na, ex, ne);
        break;
    case THROTTLE:
        throttle_step(s, act, na, ex, ne);
        break;
    }
}

/* ---------- files ---------- */

struct lines {
    char **text;
    int count;
};

static int read_lines(const char *path, struct lines *out) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t cap = 64;
    out->text = malloc(cap * sizeof *out->text);
    out->count = 0;
    char *line = NULL;
    size_t len = 0;
    while (out->text != NULL && getline(&line, &len, f) != -1) {
        if ((size_t)out->count == cap) {
            cap *= 2;
            char **grown = realloc(out->text, cap * sizeof *out->text);
            if (grown == NULL) {
                break;
            }
            out->text = grown;
        }
        out->text[out->count++] = strdup(line);
    }
    free(line);
    fclose(f);
    return out->text != NULL;
}

static void free_lines(struct lines *l) {
    for (int i = 0; i < l->count; i++) {
        free(l->text[i]);
    }
    free(l->text);
}

/* The tokens of line `i` (0-based) in `buf`; the count, or -1 if too many. */
static int line_tokens(const struct lines *l, int i, char *buf, size_t size, char **tok) {
    snprintf(buf, size, "%s", l->text[i]);
    return tokenize(buf, tok);
}

/* Runs one scenario file; returns 1 if every step passed. */
static int run_file(const char *path) {
    static struct scenario s; /* large (permits): not on the stack */
    memset(&s, 0, sizeof s);
    s.file = path;
    struct lines l;
    if (!read_lines(path, &l)) {
        fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
        return 0;
    }
    char buf[1024];
    char *tok[MAX_TOKENS];
    int i = 0, n = 0;
    for (; i < l.count; i++) { /* the header: the first statement */
        s.line = i + 1;
        n = line_tokens(&l, i, buf, sizeof buf, tok);
        if (n != 0) {
            break;
        }
    }
    if (i == l.count || n < 0) {
        s.line = i;
        brokenf(&s, "no header line");
        free_lines(&l);
        return 0;
    }
    fb_result built = construct(&s, tok, n);
    if (built == -100) {
        free_lines(&l);
        return 0;
    }
    char last_error[512];
    snprintf(last_error, sizeof last_error, "%s", fb_last_error());
    int header_line = s.line;
    int config_error_checked = 0;
    for (i++; i < l.count && !s.broken; i++) {
        s.line = i + 1;
        s.iteration = 0;
        n = line_tokens(&l, i, buf, sizeof buf, tok);
        if (n == 0) {
            continue;
        }
        if (n < 0) {
            brokenf(&s, "too many tokens");
            break;
        }
        if (strcmp(tok[0], "=>") == 0) {
            /* => config_error <field> <value>: the one step after a refused header */
            if (n != 4 || strcmp(tok[1], "config_error") != 0 || config_error_checked) {
                brokenf(&s, "only `=> config_error <field> <value>` may start with =>");
                break;
            }
            config_error_checked = 1;
            s.steps++;
            if (built != FB_ERR_INVALID_CONFIG) {
                failf(&s, "expected config_error %s %s, but the configuration was accepted "
                          "(result %d)",
                      tok[2], tok[3], (int)built);
                continue;
            }
            char want[160];
            snprintf(want, sizeof want, "%s = %s", tok[2], tok[3]);
            if (strstr(last_error, want) == NULL) {
                failf(&s, "expected config_error naming \"%s\", got \"%s\"", want, last_error);
            }
            continue;
        }
        if (built != FB_OK) {
            s.line = header_line;
            failf(&s, "construction failed (%s): %s", fb_result_str(built), last_error);
            break;
        }
        if (strcmp(tok[0], "repeat") == 0) {
            uint64_t times;
            if (n != 2 || !parse_u64(tok[1], &times)) {
                brokenf(&s, "repeat <k>");
                break;
            }
            int start = i + 1, end = start;
            for (; end < l.count; end++) {
                char b2[1024];
                char *t2[MAX_TOKENS];
                int n2 = line_tokens(&l, end, b2, sizeof b2, t2);
                if (n2 > 0 && strcmp(t2[0], "end") == 0) {
                    break;
                }
                if (n2 > 0 && strcmp(t2[0], "repeat") == 0) {
                    s.line = end + 1;
                    brokenf(&s, "nested repeat");
                    break;
                }
            }
            if (s.broken) {
                break;
            }
            if (end == l.count) {
                brokenf(&s, "repeat without end");
                break;
            }
            for (uint64_t k = 0; k < times && !s.broken; k++) {
                for (int j = start; j < end && !s.broken; j++) {
                    s.line = j + 1;
                    s.iteration = (int)k + 1;
                    int n2 = line_tokens(&l, j, buf, sizeof buf, tok);
                    if (n2 == 0) {
                        continue;
                    }
                    if (n2 < 0 || tok[0][0] != '@') {
                        brokenf(&s, "a step `@<t> ...` inside repeat");
                        break;
                    }
                    run_step(&s, tok, n2);
                }
            }
            i = end;
            continue;
        }
        if (tok[0][0] != '@') {
            brokenf(&s, "`%s`", tok[0]);
            break;
        }
        run_step(&s, tok, n);
    }
    if (!s.broken && built == FB_ERR_INVALID_CONFIG && !config_error_checked) {
        s.line = header_line;
        failf(&s, "construction failed (%s): %s", fb_result_str(built), last_error);
    }
    if (!s.broken && built == FB_OK && s.steps == 0) {
        s.line = header_line;
        failf(&s, "no steps");
    }
    fb_breaker_free(s.breaker);
    fb_bucket_free(s.bucket);
    fb_bulkhead_free(s.bulkhead);
    fb_adaptive_free(s.adaptive);
    fb_throttle_free(s.throttle);
    free_lines(&l);
    if (s.failed == 0) {
        printf("ok    %s (%d steps)\n", path, s.steps);
    } else {
        printf("FAIL  %s (%d of %d steps failed)\n", path, s.failed, s.steps);
    }
    return s.failed == 0;
}

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the *.scn files of `dir`, sorted, to `files`. */
static int list_dir(const char *dir, char ***files, int *count) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", dir, strerror(errno));
        return 0;
    }
    int first = *count;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (!has_suffix(e->d_name, ".scn")) {
            continue;
        }
        char **grown = realloc(*files, (size_t)(*count + 1) * sizeof **files);
        if (grown == NULL) {
            break;
        }
        *files = grown;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        (*files)[*count] = malloc(len);
        snprintf((*files)[*count], len, "%s/%s", dir, e->d_name);
        (*count)++;
    }
    closedir(d);
    qsort(*files + first, (size_t)(*count - first), sizeof **files, compare_names);
    return 1;
}

int main(int argc, char **argv) {
    char **files = NULL;
    int count = 0, ok = 1;
    const char *default_dir = "tests/scenarios";
    int nargs = argc > 1 ? argc - 1 : 1;
    for (int a = 0; a < nargs; a++) {
        const char *arg = argc > 1 ? argv[a + 1] : default_dir;
        struct stat st;
        if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
            ok &= list_dir(arg, &files, &count);
        } else {
            char **grown = realloc(files, (size_t)(count + 1) * sizeof *files);
            if (grown == NULL) {
                return 1;
            }
            files = grown;
            files[count++] = strdup(arg);
        }
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < count; i++) {
        if (run_file(files[i])) {
            passed++;
        } else {
            failed++;
        }
        free(files[i]);
    }
    free(files);
    if (count == 0) {
        fprintf(stderr, "no scenario files found: a run of no scenario is a failure\n");
        failed++;
    }
    printf("test_scenarios: %d passed, %d failed\n", passed, failed);
    return ok && failed == 0 ? 0 : 1;
}
