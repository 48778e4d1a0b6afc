/* Activation memory planner. Each planned tensor gets an offset such that no two tensors whose
 * lifetimes [first, last] intersect overlap in memory. First-fit placement (lowest offset that
 * is free) is run in two orders, largest tensor first (as TFLite Micro's greedy planner) and
 * earliest first use first (better for chains such as MobileNet), and the smaller plan kept.
 * O(n^3) in the number of activation tensors, which is small (tens) for MCU models. */
#include "khil_internal.h"

#define UNPLACED UINT64_MAX

/* Sizes and offsets are 64-bit here so that sums over huge (corrupt) models cannot wrap. */
static uint64_t aligned_size(const khil_tensor *t, size_t alignment)
{
    return ((uint64_t)t->bytes + alignment - 1) & ~(uint64_t)(alignment - 1);
}

static int lives_overlap(const khil_tensor_load *a, const khil_tensor_load *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Whether [offset, offset+size) is free of every placed tensor alive together with tensor i. */
static int fits(const khil_tensor *ts, const khil_tensor_load *ld, int32_t n, int32_t i,
                uint64_t offset, uint64_t size, size_t alignment)
{
    for (int32_t j = 0; j < n; j++) {
        const khil_tensor_load *o = &ld[j];
        if (j == i || !o->planned || o->offset == UNPLACED || !lives_overlap(o, &ld[i])) {
            continue;
        }
        const uint64_t osize = aligned_size(&ts[j], alignment);
        if (osize != 0 && offset < o->offset + osize && o->offset < offset + size) {
            return 0;
        }
    }
    return 1;
}

/* Whether tensor a goes before tensor b in the given order. */
static int before(const khil_tensor *ts, const khil_tensor_load *ld, int32_t a, int32_t b,
                  int by_size)
{
    if (by_size && ts[a].bytes != ts[b].bytes) {
        return ts[a].bytes > ts[b].bytes;
    }
    if (ld[a].first != ld[b].first) {
        return ld[a].first < ld[b].first;
    }
    if (!by_size && ts[a].bytes != ts[b].bytes) {
        return ts[a].bytes > ts[b].bytes;
    }
    return a < b;
}

static uint64_t plan_in_order(const khil_tensor *ts, khil_tensor_load *ld, int32_t n,
                              size_t alignment, int by_size)
{
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        ld[i].offset = UNPLACED;
    }
    for (;;) {
        int32_t next = -1;
        for (int32_t i = 0; i < n; i++) {
            if (ld[i].planned && ld[i].offset == UNPLACED &&
                (next < 0 || before(ts, ld, i, next, by_size))) {
                next = i;
            }
        }
        if (next < 0) {
            return total;
        }
        const uint64_t size = aligned_size(&ts[next], alignment);
        uint64_t chosen = 0;
        if (size > 0 && !fits(ts, ld, n, next, 0, size, alignment)) {
            /* Candidates: right after each placed tensor that is alive at the same time. */
            chosen = UNPLACED;
            for (int32_t j = 0; j < n; j++) {
                const khil_tensor_load *o = &ld[j];
                if (!o->planned || o->offset == UNPLACED || !lives_overlap(o, &ld[next])) {
                    continue;
                }
                const uint64_t cand = o->offset + aligned_size(&ts[j], alignment);
                if (cand < chosen && fits(ts, ld, n, next, cand, size, alignment)) {
                    chosen = cand;
                }
            }
        }
        ld[next].offset = chosen;
        if (chosen + size > total) {
            total = chosen + size;
        }
    }
}

uint64_t khil_plan_memory(const khil_tensor *ts, khil_tensor_load *ld, int32_t n,
                          size_t alignment)
{
    const uint64_t by_first_use = plan_in_order(ts, ld, n, alignment, 0);
    const uint64_t by_size = plan_in_order(ts, ld, n, alignment, 1);
    if (by_first_use < by_size) {
        return plan_in_order(ts, ld, n, alignment, 0);
    }
    return by_size;
}
