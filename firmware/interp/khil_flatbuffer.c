/* Bounds-checked FlatBuffers reading (format facts: flatbuffers.dev "internals"). */
#include "khil_flatbuffer.h"

#include <string.h>

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint16_t rd_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

float khil_fb_read_f32(const uint8_t *p)
{
    uint32_t bits = rd_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Whether [pos, pos + size) lies inside the buffer (no overflow). */
static int in_bounds(const khil_fb *fb, uint64_t pos, uint64_t size)
{
    return pos <= fb->len && size <= fb->len - pos;
}

static khil_fb_table table_at(khil_fb *fb, uint64_t pos)
{
    khil_fb_table t = {0, 0, 0, 0};
    if (fb->bad) {
        return t;
    }
    if (pos == 0 || !in_bounds(fb, pos, 4)) {
        fb->bad = 1;
        return t;
    }
    int32_t soff = (int32_t)rd_u32(fb->buf + pos);
    int64_t vt = (int64_t)pos - (int64_t)soff;
    if (vt < 0 || !in_bounds(fb, (uint64_t)vt, 4)) {
        fb->bad = 1;
        return t;
    }
    uint16_t vsize = rd_u16(fb->buf + vt);
    uint16_t tsize = rd_u16(fb->buf + vt + 2);
    if (vsize < 4 || (vsize & 1) || !in_bounds(fb, (uint64_t)vt, vsize) || tsize < 4 ||
        !in_bounds(fb, pos, tsize)) {
        fb->bad = 1;
        return t;
    }
    t.pos = (uint32_t)pos;
    t.vtable = (uint32_t)vt;
    t.vtable_size = vsize;
    t.table_size = tsize;
    return t;
}

khil_fb_table khil_fb_root(khil_fb *fb)
{
    if (fb->len < 8 || fb->len > 0x7fffffffu) {
        fb->bad = 1;
        khil_fb_table t = {0, 0, 0, 0};
        return t;
    }
    return table_at(fb, rd_u32(fb->buf));
}

/* Position of a field's value with `size` bytes, or 0 when absent or malformed. */
static uint32_t field_pos(khil_fb *fb, const khil_fb_table *t, int field, uint32_t size)
{
    if (fb->bad || t->pos == 0) {
        return 0;
    }
    uint32_t slot = 4u + 2u * (uint32_t)field;
    if (slot + 2u > t->vtable_size) {
        return 0; /* older writer: field not in vtable means default */
    }
    uint16_t off = rd_u16(fb->buf + t->vtable + slot);
    if (off == 0) {
        return 0;
    }
    if ((uint32_t)off + size > t->table_size) {
        fb->bad = 1;
        return 0;
    }
    return t->pos + off;
}

int khil_fb_has(khil_fb *fb, const khil_fb_table *t, int field)
{
    return field_pos(fb, t, field, 1) != 0;
}

uint8_t khil_fb_u8(khil_fb *fb, const khil_fb_table *t, int field, uint8_t dflt)
{
    uint32_t p = field_pos(fb, t, field, 1);
    return p ? fb->buf[p] : dflt;
}

int32_t khil_fb_i32(khil_fb *fb, const khil_fb_table *t, int field, int32_t dflt)
{
    uint32_t p = field_pos(fb, t, field, 4);
    return p ? (int32_t)rd_u32(fb->buf + p) : dflt;
}

uint32_t khil_fb_u32(khil_fb *fb, const khil_fb_table *t, int field, uint32_t dflt)
{
    uint32_t p = field_pos(fb, t, field, 4);
    return p ? rd_u32(fb->buf + p) : dflt;
}

uint64_t khil_fb_u64(khil_fb *fb, const khil_fb_table *t, int field, uint64_t dflt)
{
    uint32_t p = field_pos(fb, t, field, 8);
    return p ? ((uint64_t)rd_u32(fb->buf + p) | ((uint64_t)rd_u32(fb->buf + p + 4) << 32)) : dflt;
}

float khil_fb_f32(khil_fb *fb, const khil_fb_table *t, int field, float dflt)
{
    uint32_t p = field_pos(fb, t, field, 4);
    return p ? khil_fb_read_f32(fb->buf + p) : dflt;
}

/* Follows the uoffset stored at position p. */
static uint64_t follow(khil_fb *fb, uint32_t p)
{
    if (!in_bounds(fb, p, 4)) {
        fb->bad = 1;
        return 0;
    }
    uint64_t target = (uint64_t)p + rd_u32(fb->buf + p);
    if (target >= fb->len) {
        fb->bad = 1;
        return 0;
    }
    return target;
}

khil_fb_table khil_fb_subtable(khil_fb *fb, const khil_fb_table *t, int field)
{
    khil_fb_table none = {0, 0, 0, 0};
    uint32_t p = field_pos(fb, t, field, 4);
    if (!p) {
        return none;
    }
    uint64_t target = follow(fb, p);
    return fb->bad ? none : table_at(fb, target);
}

khil_fb_vector khil_fb_vec(khil_fb *fb, const khil_fb_table *t, int field, uint32_t elem_size)
{
    khil_fb_vector v = {0, 0};
    uint32_t p = field_pos(fb, t, field, 4);
    if (!p) {
        return v;
    }
    uint64_t vp = follow(fb, p);
    if (fb->bad || !in_bounds(fb, vp, 4)) {
        fb->bad = 1;
        return v;
    }
    uint32_t count = rd_u32(fb->buf + vp);
    if (!in_bounds(fb, vp + 4, (uint64_t)count * elem_size)) {
        fb->bad = 1;
        return v;
    }
    v.pos = (uint32_t)(vp + 4);
    v.count = count;
    return v;
}

int32_t khil_fb_vec_i32(const khil_fb *fb, khil_fb_vector v, uint32_t i)
{
    return (int32_t)rd_u32(fb->buf + v.pos + 4u * i);
}

int64_t khil_fb_vec_i64(const khil_fb *fb, khil_fb_vector v, uint32_t i)
{
    const uint8_t *p = fb->buf + v.pos + 8u * i;
    return (int64_t)((uint64_t)rd_u32(p) | ((uint64_t)rd_u32(p + 4) << 32));
}

float khil_fb_vec_f32(const khil_fb *fb, khil_fb_vector v, uint32_t i)
{
    return khil_fb_read_f32(fb->buf + v.pos + 4u * i);
}

khil_fb_table khil_fb_vec_table(khil_fb *fb, khil_fb_vector v, uint32_t i)
{
    khil_fb_table none = {0, 0, 0, 0};
    uint64_t target = follow(fb, v.pos + 4u * i);
    return fb->bad ? none : table_at(fb, target);
}
