/* fastbreaker quick start: protect calls to a service that goes down. */
#include <stdio.h>

#include <fastbreaker.h>

/* Stands in for a real call (HTTP, database, ...): up for two calls, then down. */
static int call_service(int i) { return i < 2; }

int main(void) {
    fb_breaker_config config = fb_breaker_config_default();
    config.failure_threshold = 2;            /* open after 2 failures in a row */
    config.wait_duration_ns = 5 * FB_SECOND; /* then refuse calls for 5 s */

    fb_breaker *breaker = NULL;
    if (fb_breaker_new(&config, &breaker) != FB_OK) {
        fprintf(stderr, "fb_breaker_new: %s\n", fb_last_error());
        return 1;
    }
    for (int i = 0; i < 6; i++) {
        fb_permit permit;
        if (fb_breaker_acquire(breaker, &permit) == FB_REJECTED) {
            printf("call %d: rejected, retry in %.1f s\n", i, permit.retry_after_ns / 1e9);
            continue;
        }
        int ok = call_service(i);
        fb_breaker_record(breaker, &permit, ok ? FB_OUTCOME_SUCCESS : FB_OUTCOME_FAILURE,
                          FB_DURATION_AUTO);
        fb_state state;
        fb_breaker_state(breaker, &state);
        printf("call %d: %s, breaker %s\n", i, ok ? "ok" : "failed", fb_state_str(state));
    }
    fb_breaker_free(breaker);
    return 0;
}
