/* STATS records over UART: 48 bytes each - char name[32] (NUL-padded), u64 type, u64 value,
 * little-endian - the layout of Kenning's Zephyr runtime. */
#ifndef KHIL_STATS_H
#define KHIL_STATS_H

#include <stddef.h>
#include <stdint.h>

#define KHIL_STATS_RECORD_SIZE 48u
#define KHIL_STATS_NAME_LEN 32u

enum {
    KHIL_STAT_DEFAULT = 0,    /* a count or any other unitless value */
    KHIL_STAT_ALLOCATION = 1, /* bytes */
    KHIL_STAT_TIME = 2        /* nanoseconds */
};

/* Appends one record at out + *len if it fits in cap; names longer than 31 bytes are cut. */
int khil_stats_append(uint8_t *out, size_t cap, size_t *len, const char *name, uint64_t type,
                      uint64_t value);

#endif /* KHIL_STATS_H */
