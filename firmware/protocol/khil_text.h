/* Bounded string building for error messages (the firmware has no printf). Always
 * NUL-terminated; output past the capacity is cut off. */
#ifndef KHIL_TEXT_H
#define KHIL_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;
    size_t cap; /* including the terminating NUL */
    size_t len;
} khil_text;

void khil_text_init(khil_text *t, char *buf, size_t cap);
khil_text *khil_text_str(khil_text *t, const char *s);
khil_text *khil_text_u64(khil_text *t, uint64_t v);
khil_text *khil_text_hex(khil_text *t, uint32_t v); /* 0x-prefixed, no leading zeros */

#endif /* KHIL_TEXT_H */
