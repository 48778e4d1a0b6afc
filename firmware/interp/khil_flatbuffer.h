/* A minimal, bounds-checked FlatBuffers reader: just enough to walk a TFLite model in place.
 * Every read is checked against the buffer length; a bad offset sets `bad` and yields a
 * neutral value (0 / absent), so callers check `bad` once per section instead of per read. */
#ifndef KHIL_FLATBUFFER_H
#define KHIL_FLATBUFFER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *buf;
    size_t len;
    int bad; /* set on the first out-of-bounds or malformed structure */
} khil_fb;

/* A table: absolute position of its start and of its vtable; pos == 0 means absent. */
typedef struct {
    uint32_t pos;
    uint32_t vtable;
    uint16_t vtable_size;
    uint16_t table_size;
} khil_fb_table;

/* A vector: absolute position of its first element and its element count. */
typedef struct {
    uint32_t pos;
    uint32_t count;
} khil_fb_vector;

/* The root table (the file identifier is the caller's to check). */
khil_fb_table khil_fb_root(khil_fb *fb);
/* Whether field is present in the table. */
int khil_fb_has(khil_fb *fb, const khil_fb_table *t, int field);
uint8_t khil_fb_u8(khil_fb *fb, const khil_fb_table *t, int field, uint8_t dflt);
int32_t khil_fb_i32(khil_fb *fb, const khil_fb_table *t, int field, int32_t dflt);
uint32_t khil_fb_u32(khil_fb *fb, const khil_fb_table *t, int field, uint32_t dflt);
uint64_t khil_fb_u64(khil_fb *fb, const khil_fb_table *t, int field, uint64_t dflt);
float khil_fb_f32(khil_fb *fb, const khil_fb_table *t, int field, float dflt);
/* Sub-table referenced by an offset field (pos == 0 when absent). */
khil_fb_table khil_fb_subtable(khil_fb *fb, const khil_fb_table *t, int field);
/* Vector field whose elements are elem_size bytes (count == 0, pos == 0 when absent). */
khil_fb_vector khil_fb_vec(khil_fb *fb, const khil_fb_table *t, int field, uint32_t elem_size);
/* Elements of vectors checked by khil_fb_vec. */
int32_t khil_fb_vec_i32(const khil_fb *fb, khil_fb_vector v, uint32_t i);
int64_t khil_fb_vec_i64(const khil_fb *fb, khil_fb_vector v, uint32_t i);
float khil_fb_vec_f32(const khil_fb *fb, khil_fb_vector v, uint32_t i);
/* Table element i of a vector of tables. */
khil_fb_table khil_fb_vec_table(khil_fb *fb, khil_fb_vector v, uint32_t i);
/* Reads a little-endian float32 at a checked position. */
float khil_fb_read_f32(const uint8_t *p);

#endif /* KHIL_FLATBUFFER_H */
