/* Activation memory planner. Each planned entry (a tensor or an op's scratch buffer) gets an
 * offset such that no two entries whose lifetimes [first, last] intersect overlap in memory.
 * First-fit placement (lowest free offset) runs in two orders, largest first (as TFLite
 * Micro's greedy planner) and earliest first use first (better for chains like MobileNet), and
 * the smaller plan is kept. O(n^3) in the number of entries: tens for MCU models. */
#include "khil_internal.h"

#define PLAN_LIMIT 0xfffffff0u /* plans beyond 4 GiB fail (no MCU arena is that large) */

static uint64_t aligned_size(const khil_plan_entry *e, uint32_t alignment)
{
    return ((uint64_t)e->bytes + alignment - 1) & ~(uint64_t)(alignment - 1);
}

static int lives_overlap(const khil_plan_entry *a, const khil_plan_entry *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Whether [offset, offset+size) is free of every placed entry alive together with entry i.
 * `reserved` marks placed entries while planning. */
static int fits(const khil_plan_entry *e, int32_t n, int32_t i, uint64_t offset, uint64_t size,
                uint32_t alignment)
{
    for (int32_t j = 0; j < n; j++) {
        if (j == i || !e[j].reserved || !lives_overlap(&e[j], &e[i])) {
            continue;
        }
        const uint64_t other = aligned_size(&e[j], alignment);
        if (other != 0 && offset < e[j].offset + other && e[j].offset < offset + size) {
            return 0;
        }
    }
    return 1;
}

/* Whether entry a is placed before entry b in the given order. */
static int before(const khil_plan_entry *e, int32_t a, int32_t b, int by_size)
{
    if (by_size && e[a].bytes != e[b].bytes) {
        return e[a].bytes > e[b].bytes;
    }
    if (e[a].first != e[b].first) {
        return e[a].first < e[b].first;
    }
    if (!by_size && e[a].bytes != e[b].bytes) {
        return e[a].bytes > e[b].bytes;
    }
    return a < b;
}

static uint64_t plan_in_order(khil_plan_entry *e, int32_t n, uint32_t alignment, int by_size)
{
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        e[i].reserved = 0;
    }
    for (;;) {
        int32_t next = -1;
        for (int32_t i = 0; i < n; i++) {
            if (e[i].planned && !e[i].reserved && (next < 0 || before(e, i, next, by_size))) {
                next = i;
            }
        }
        if (next < 0) {
            return total;
        }
        const uint64_t size = aligned_size(&e[next], alignment);
        uint64_t chosen = 0;
        if (size > 0 && !fits(e, n, next, 0, size, alignment)) {
            /* Candidates: right after each placed entry that is alive at the same time. */
            chosen = UINT64_MAX;
            for (int32_t j = 0; j < n; j++) {
                if (!e[j].reserved || !lives_overlap(&e[j], &e[next])) {
                    continue;
                }
                const uint64_t cand = e[j].offset + aligned_size(&e[j], alignment);
                if (cand < chosen && fits(e, n, next, cand, size, alignment)) {
                    chosen = cand;
                }
            }
        }
        if (chosen + size > PLAN_LIMIT) {
            return UINT64_MAX;
        }
        e[next].offset = (uint32_t)chosen;
        e[next].reserved = 1;
        if (chosen + size > total) {
            total = chosen + size;
        }
    }
}

uint64_t khil_plan_memory(khil_plan_entry *e, int32_t n, uint32_t alignment)
{
    const uint64_t by_first_use = plan_in_order(e, n, alignment, 0);
    const uint64_t by_size = plan_in_order(e, n, alignment, 1);
    if (by_first_use < by_size) {
        return plan_in_order(e, n, alignment, 0);
    }
    return by_size;
}
