/* Greedy activation memory planner: tensors, largest first, each go to the lowest offset where
 * they overlap no already-placed tensor whose lifetime [first, last] intersects theirs.
 * O(n^3) in the number of activation tensors, which is small (tens) for MCU models. */
#include "khil_internal.h"

#define UNPLACED UINT64_MAX

/* Sizes and offsets are 64-bit here so that sums over huge (corrupt) models cannot wrap. */
static uint64_t aligned_size(const khil_tensor *t, size_t alignment)
{
    return ((uint64_t)t->bytes + alignment - 1) & ~(uint64_t)(alignment - 1);
}

static int lives_overlap(const khil_tensor *a, const khil_tensor *b)
{
    return a->first <= b->last && b->first <= a->last;
}

/* Whether [offset, offset+size) is free of every placed tensor that is alive with t. */
static int fits(const khil_tensor *ts, int32_t n, const khil_tensor *t, uint64_t offset,
                uint64_t size, size_t alignment)
{
    for (int32_t j = 0; j < n; j++) {
        const khil_tensor *o = &ts[j];
        if (!o->planned || o->offset == UNPLACED || o == t || !lives_overlap(o, t)) {
            continue;
        }
        uint64_t osize = aligned_size(o, alignment);
        if (osize == 0) {
            continue;
        }
        if (offset < o->offset + osize && o->offset < offset + size) {
            return 0;
        }
    }
    return 1;
}

uint64_t khil_plan_memory(khil_tensor *ts, int32_t n, size_t alignment)
{
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ts[i].planned) {
            ts[i].offset = UNPLACED;
        }
    }
    for (;;) {
        int32_t best = -1;
        for (int32_t i = 0; i < n; i++) {
            if (!ts[i].planned || ts[i].offset != UNPLACED) {
                continue;
            }
            if (best < 0 || ts[i].bytes > ts[best].bytes ||
                (ts[i].bytes == ts[best].bytes && ts[i].first < ts[best].first)) {
                best = i;
            }
        }
        if (best < 0) {
            break;
        }
        khil_tensor *t = &ts[best];
        uint64_t size = aligned_size(t, alignment);
        uint64_t chosen = 0;
        if (size > 0 && !fits(ts, n, t, 0, size, alignment)) {
            /* Candidates: right after each placed, simultaneously alive tensor. */
            chosen = UNPLACED;
            for (int32_t j = 0; j < n; j++) {
                const khil_tensor *o = &ts[j];
                if (!o->planned || o->offset == UNPLACED || !lives_overlap(o, t)) {
                    continue;
                }
                uint64_t cand = o->offset + aligned_size(o, alignment);
                if (cand < chosen && fits(ts, n, t, cand, size, alignment)) {
                    chosen = cand;
                }
            }
        }
        t->offset = chosen;
        if (chosen + size > total) {
            total = chosen + size;
        }
    }
    return total;
}
