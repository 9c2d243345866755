// fastbreaker.h compiled as C++17 (-Wall -Wextra -Werror -pedantic) and used from C++: RAII
// handles, storage without the heap, std::thread workers on one breaker.
#include "fastbreaker.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

static_assert(std::is_trivially_copyable<fb_permit>::value, "permits are plain data");
static_assert(std::is_standard_layout<fb_breaker_config>::value, "configs are plain data");
static_assert(sizeof(fb_permit) == 32, "fb_permit layout");
static_assert(FB_BREAKER_STORAGE_SIZE > 0 && FB_BREAKER_STORAGE_ALIGN >= alignof(std::uint64_t),
              "storage constants are integer constant expressions");

namespace {

struct BreakerDeleter {
    void operator()(fb_breaker *b) const noexcept { fb_breaker_free(b); }
};
using Breaker = std::unique_ptr<fb_breaker, BreakerDeleter>;

std::atomic<int> passed{0};  // CHECK runs on the worker threads too
std::atomic<int> failed{0};

void check(bool ok, const char *what, int line) {
    if (ok) {
        ++passed;
    } else {
        ++failed;
        std::fprintf(stderr, "header_test.cpp:%d: CHECK failed: %s (last error: %s)\n", line,
                     what, fb_last_error());
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

Breaker make_breaker(const fb_breaker_config &config) {
    fb_breaker *raw = nullptr;
    CHECK(fb_breaker_new(&config, &raw) == FB_OK);
    return Breaker(raw);
}

// Runs `f` through the breaker at `now`; false if the breaker refused it.
template <typename F>
bool protect(const Breaker &b, std::uint64_t now, F &&f) {
    fb_permit permit{};
    if (fb_breaker_acquire_at(b.get(), &permit, now) != FB_OK) {
        return false;
    }
    const bool ok = f();
    CHECK(fb_breaker_record_at(b.get(), &permit, ok ? FB_OUTCOME_SUCCESS : FB_OUTCOME_FAILURE,
                               FB_DURATION_AUTO, now) == FB_OK);
    return true;
}

fb_state state_of(const fb_breaker *b) {
    fb_state s = 0;
    CHECK(fb_breaker_state(b, &s) == FB_OK);
    return s;
}

}  // namespace

int main() {
    CHECK(std::string(FB_VERSION_STRING) == fb_version());

    fb_breaker_config config = fb_breaker_config_default();
    config.failure_threshold = 2;
    config.wait_duration_ns = 5 * FB_SECOND;
    Breaker breaker = make_breaker(config);
    CHECK(breaker != nullptr);
    CHECK(protect(breaker, 0, [] { return false; }));
    CHECK(protect(breaker, 0, [] { return false; }));
    CHECK(state_of(breaker.get()) == FB_STATE_OPEN);
    CHECK(!protect(breaker, FB_SECOND, [] { return true; }));
    CHECK(protect(breaker, 5 * FB_SECOND, [] { return true; }));
    CHECK(std::strcmp(fb_state_str(state_of(breaker.get())), "closed") == 0);

    // Storage without the heap.
    alignas(FB_BREAKER_STORAGE_ALIGN) unsigned char storage[FB_BREAKER_STORAGE_SIZE];
    fb_breaker *in_place = nullptr;
    CHECK(fb_breaker_init(storage, sizeof storage, &config, &in_place) == FB_OK);
    CHECK(protect(Breaker(nullptr), 0, [] { return true; }) == false);  // NULL handle refused
    CHECK(fb_breaker_reset_at(in_place, 0) == FB_OK);

    // Threads on one breaker.
    fb_breaker_config busy = fb_breaker_config_default();
    busy.failure_threshold = FB_OFF;
    Breaker shared = make_breaker(busy);
    std::atomic<std::uint64_t> calls{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
        workers.emplace_back([&shared, &calls, t] {
            for (int i = 0; i < 10000; ++i) {
                if (protect(shared, 0, [i, t] { return (i + t) % 10 != 0; })) {
                    calls.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    for (auto &w : workers) {
        w.join();
    }
    fb_breaker_stats stats{};
    CHECK(fb_breaker_metrics_at(shared.get(), &stats, 0) == FB_OK);
    CHECK(stats.permitted == calls.load() && calls.load() == 40000);
    CHECK(stats.failed == 4000 && stats.succeeded == 36000);

    // Buckets and bulkheads.
    fb_bucket_config bc = fb_bucket_config_per_second(10, 2);
    fb_bucket *bucket = nullptr;
    CHECK(fb_bucket_new(&bc, &bucket) == FB_OK);
    std::uint64_t wait = 0;
    CHECK(fb_bucket_try_acquire_at(bucket, 2, &wait, 0) == FB_OK);
    CHECK(fb_bucket_try_acquire_at(bucket, 1, &wait, 0) == FB_REJECTED && wait == 100 * FB_MILLISECOND);
    fb_bucket_free(bucket);
    fb_bulkhead_config hc = fb_bulkhead_config_default();
    fb_bulkhead *bulkhead = nullptr;
    CHECK(fb_bulkhead_new(&hc, &bulkhead) == FB_OK);
    CHECK(fb_bulkhead_try_acquire(bulkhead) == FB_OK);
    CHECK(fb_bulkhead_release(bulkhead) == FB_OK);
    fb_bulkhead_free(bulkhead);

    std::printf("cpp_header: %d passed, %d failed\n", passed.load(), failed.load());
    return failed == 0 ? 0 : 1;
}
