/* Minimal checks for the C tests of fastbreaker's C ABI. Each program ends with
 * "NAME: N passed, M failed" and exits non-zero if any check failed. */
#ifndef FB_TEST_CHECK_H
#define FB_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "fastbreaker.h"

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (cond) {                                                                     \
            checks_passed++;                                                            \
        } else {                                                                        \
            checks_failed++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

/* Checks that `expr` returns the result code `want`; prints the last error otherwise. */
#define CHECK_RC(expr, want)                                                            \
    do {                                                                                \
        fb_result rc_ = (expr);                                                         \
        if (rc_ == (want)) {                                                            \
            checks_passed++;                                                            \
        } else {                                                                        \
            checks_failed++;                                                            \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s; last error: %s\n", \
                    __FILE__, __LINE__, #expr, (int)rc_, fb_result_str(rc_), #want,     \
                    fb_last_error());                                                   \
        }                                                                               \
    } while (0)

/* Checks that the last error on this thread contains `part`. */
#define CHECK_ERROR_HAS(part)                                                           \
    do {                                                                                \
        const char *e_ = fb_last_error();                                               \
        if (e_ != NULL && strstr(e_, (part)) != NULL) {                                 \
            checks_passed++;                                                            \
        } else {                                                                        \
            checks_failed++;                                                            \
            fprintf(stderr, "%s:%d: last error \"%s\" lacks \"%s\"\n", __FILE__,         \
                    __LINE__, e_ ? e_ : "(null)", (part));                              \
        }                                                                               \
    } while (0)

static int check_report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

#endif
