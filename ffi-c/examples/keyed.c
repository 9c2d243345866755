/* fastbreaker keyed rate limits: 2 requests at once per client, then 1 per second. */
#include <stdio.h>
#include <string.h>

#include <fastbreaker.h>

int main(void) {
    fb_bucket_config per_client = fb_bucket_config_per_second(1, 2);
    fb_keyed *limits = NULL; /* room for 10000 clients; refuse new ones when full */
    if (fb_keyed_new(&per_client, 10000, FB_WHEN_FULL_REJECT, &limits) != FB_OK) {
        fprintf(stderr, "fb_keyed_new: %s\n", fb_last_error());
        return 1;
    }
    const char *requests[] = {"10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"};
    for (int i = 0; i < 4; i++) {
        const char *client = requests[i]; /* any bytes, at most FB_MAX_KEY_LEN */
        uint64_t retry_after_ns = 0;
        fb_result rc = fb_keyed_try_acquire(limits, (const uint8_t *)client, strlen(client), 1,
                                            &retry_after_ns);
        if (rc == FB_OK) {
            printf("%s: allowed\n", client);
        } else if (rc == FB_REJECTED) {
            printf("%s: 429, retry in %.1f s\n", client, retry_after_ns / 1e9);
        } else {
            printf("%s: %s\n", client, fb_last_error()); /* table full, key too long */
        }
    }
    fb_keyed_stats stats;
    fb_keyed_metrics(limits, &stats);
    printf("%zu clients tracked now\n", stats.live_keys);
    fb_keyed_free(limits);
    return 0;
}
