#include "khil_stats.h"

#include <string.h>

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

int khil_stats_append(uint8_t *out, size_t cap, size_t *len, const char *name, uint64_t type,
                      uint64_t value)
{
    if (*len + KHIL_STATS_RECORD_SIZE > cap) {
        return -1;
    }
    uint8_t *rec = out + *len;
    memset(rec, 0, KHIL_STATS_NAME_LEN);
    size_t n = strlen(name);
    memcpy(rec, name, n < KHIL_STATS_NAME_LEN - 1u ? n : KHIL_STATS_NAME_LEN - 1u);
    wr64(rec + KHIL_STATS_NAME_LEN, type);
    wr64(rec + KHIL_STATS_NAME_LEN + 8u, value);
    *len += KHIL_STATS_RECORD_SIZE;
    return 0;
}
