#include "khil_text.h"

static void put(khil_text *t, char c)
{
    if (t->len + 1 < t->cap) {
        t->buf[t->len++] = c;
        t->buf[t->len] = '\0';
    }
}

void khil_text_init(khil_text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    if (cap) {
        buf[0] = '\0';
    }
}

khil_text *khil_text_str(khil_text *t, const char *s)
{
    while (*s) {
        put(t, *s++);
    }
    return t;
}

khil_text *khil_text_u64(khil_text *t, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (n) {
        put(t, digits[--n]);
    }
    return t;
}

khil_text *khil_text_hex(khil_text *t, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    put(t, '0');
    put(t, 'x');
    int shift = 28;
    while (shift > 0 && ((v >> shift) & 0xFu) == 0) {
        shift -= 4;
    }
    for (; shift >= 0; shift -= 4) {
        put(t, hex[(v >> shift) & 0xFu]);
    }
    return t;
}
