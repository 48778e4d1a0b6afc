/* Frame codec and resynchronising stream decoder (see khil_frame.h). */
#include "khil_frame.h"

#include <string.h>

void khil_header_pack(const khil_header *h, uint8_t out[KHIL_HEADER_SIZE])
{
    /* 40-bit field: type in bits 0..37, flow control in bits 38..39 (= bits 6..7 of byte 4). */
    out[0] = h->type;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    out[4] = (uint8_t)((h->flow & 3u) << 6);
    out[5] = h->checksum;
    out[6] = (uint8_t)(h->flags & 0xFFu);
    out[7] = (uint8_t)(h->flags >> 8);
    out[8] = (uint8_t)(h->payload_size & 0xFFu);
    out[9] = (uint8_t)((h->payload_size >> 8) & 0xFFu);
    out[10] = (uint8_t)((h->payload_size >> 16) & 0xFFu);
    out[11] = (uint8_t)(h->payload_size >> 24);
}

int khil_header_unpack(const uint8_t in[KHIL_HEADER_SIZE], khil_header *h)
{
    if (in[1] || in[2] || in[3] || (in[4] & 0x3Fu)) {
        return -1;
    }
    h->type = in[0];
    h->flow = (uint8_t)(in[4] >> 6);
    h->checksum = in[5];
    h->flags = (uint16_t)(in[6] | (in[7] << 8));
    h->payload_size = (uint32_t)in[8] | ((uint32_t)in[9] << 8) | ((uint32_t)in[10] << 16) |
                      ((uint32_t)in[11] << 24);
    return 0;
}

uint32_t khil_header_payload_len(const khil_header *h)
{
    return (h->flags & KHIL_FLAG_HAS_PAYLOAD) ? h->payload_size : 0u;
}

uint8_t khil_checksum(const uint8_t header[KHIL_HEADER_SIZE], const uint8_t *payload,
                      size_t payload_len)
{
    uint8_t sum = KHIL_CHECKSUM_SEED;
    for (size_t i = 0; i < KHIL_HEADER_SIZE; i++) {
        if (i != 5) {
            sum ^= header[i];
        }
    }
    for (size_t i = 0; i < payload_len; i++) {
        sum ^= payload[i];
    }
    return sum;
}

size_t khil_frame_encode(uint8_t type, uint8_t flow, uint16_t flags, const uint8_t *payload,
                         size_t payload_len, uint8_t *out, size_t out_cap)
{
    size_t total = KHIL_HEADER_SIZE + payload_len;
    if (out_cap < total || payload_len > 0xFFFFFFFFu) {
        return 0;
    }
    khil_header h = {
        .type = type,
        .flow = flow,
        .checksum = 0,
        .flags = (uint16_t)(payload_len ? (flags | KHIL_FLAG_HAS_PAYLOAD) : flags),
        .payload_size = (uint32_t)payload_len,
    };
    khil_header_pack(&h, out);
    if (payload_len) {
        memcpy(out + KHIL_HEADER_SIZE, payload, payload_len);
    }
    out[5] = khil_checksum(out, payload, payload_len);
    return total;
}

/* ---- decoder ---------------------------------------------------------------------------- */

void khil_decoder_init(khil_decoder *d, uint32_t max_payload, int verify_checksum)
{
    memset(d, 0, sizeof(*d));
    d->max_payload = max_payload > KHIL_UART_MAX_PAYLOAD ? KHIL_UART_MAX_PAYLOAD : max_payload;
    d->verify_checksum = verify_checksum;
}

size_t khil_decoder_push(khil_decoder *d, const uint8_t *bytes, size_t len)
{
    if (d->end + len > sizeof(d->buf) && d->start > 0) {
        memmove(d->buf, d->buf + d->start, d->end - d->start);
        d->end -= d->start;
        d->start = 0;
    }
    size_t room = sizeof(d->buf) - d->end;
    size_t taken = len < room ? len : room;
    memcpy(d->buf + d->end, bytes, taken);
    d->end += taken;
    return taken;
}

/* Can the first n bytes (n <= 12) at p begin a header? Checked byte by byte so garbage is
 * skipped as soon as it arrives, without waiting for 12 bytes. Besides the message id, two
 * fields no sender sets: the reserved flag bits 8..11, and a size on a payload-less
 * REQUEST. They matter because the XOR checksum cannot tell a frame shifted by stray zero
 * bytes: a stale 0x00 before a connect PING read as a valid disconnect PING (the PING's
 * checksum byte lands in the flags), 3 or 4 zeros as a valid liveness PING, and each left
 * zeros behind for the next PING. */
static int header_prefix_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < 4 && i < n; i++) {
        if (p[i]) {
            return 0;
        }
    }
    if (n >= 5 && (p[4] & 0x3Fu) != 0) {
        return 0;
    }
    if (n >= 8 && (p[7] & 0x0Fu) != 0) {
        return 0;
    }
    if (n >= KHIL_HEADER_SIZE && (p[4] >> 6) == KHIL_FLOW_REQUEST &&
        !(p[6] & KHIL_FLAG_HAS_PAYLOAD) && (p[8] | p[9] | p[10] | p[11])) {
        return 0;
    }
    return 1;
}

/* Drops the candidate's first byte. Returns ev (an error worth reporting) unless the
 * candidate starts inside the extent of an error already reported; `extent` is the number
 * of bytes the candidate claimed. */
static khil_rx_event skip_candidate(khil_decoder *d, khil_rx_event ev, uint32_t extent)
{
    uint32_t at = d->pos;
    d->start++;
    d->pos++;
    if (ev == KHIL_RX_NONE || (int32_t)(at - d->quiet_until) < 0) {
        return KHIL_RX_NONE;
    }
    d->quiet_until = at + extent;
    return ev;
}

khil_rx_event khil_decoder_next(khil_decoder *d, khil_rx_frame *out)
{
    for (;;) {
        size_t avail = d->end - d->start;
        const uint8_t *p = d->buf + d->start;
        if (avail == 0) {
            d->start = d->end = 0;
            if (d->expiring) {
                /* the line went quiet: whatever comes next starts on a frame boundary */
                d->expiring = 0;
            }
            return KHIL_RX_NONE;
        }
        size_t n = avail < KHIL_HEADER_SIZE ? avail : KHIL_HEADER_SIZE;
        if (!header_prefix_ok(p, n)) {
            d->skipped_bytes++;
            (void)skip_candidate(d, KHIL_RX_NONE, 0);
            continue;
        }
        if (avail < KHIL_HEADER_SIZE) {
            if (!d->expiring) {
                return KHIL_RX_NONE;
            }
            /* A partial header on a quiet line: not even its type is known, drop a byte. */
            d->skipped_bytes++;
            (void)skip_candidate(d, KHIL_RX_NONE, 0);
            continue;
        }
        (void)khil_header_unpack(p, &out->header);
        uint32_t len = khil_header_payload_len(&out->header);
        out->payload = p + KHIL_HEADER_SIZE;
        out->payload_len = 0;
        khil_rx_event ev;
        if (len > d->max_payload) {
            /* Its payload is never buffered: skip the header's first byte and scan on. */
            d->oversized++;
            ev = skip_candidate(d, KHIL_RX_OVERSIZED, KHIL_HEADER_SIZE);
        } else if (avail < KHIL_HEADER_SIZE + len) {
            if (!d->expiring) {
                return KHIL_RX_NONE;
            }
            d->truncated++;
            ev = skip_candidate(d, KHIL_RX_TRUNCATED, (uint32_t)avail);
        } else {
            uint8_t expected = khil_checksum(p, out->payload, len);
            out->expected_checksum = expected;
            if (d->verify_checksum && out->header.checksum != expected) {
                d->bad_checksums++;
                ev = skip_candidate(d, KHIL_RX_BAD_CHECKSUM, KHIL_HEADER_SIZE + len);
            } else {
                out->gap = d->pos - d->frame_end;
                d->start += KHIL_HEADER_SIZE + len;
                d->pos += KHIL_HEADER_SIZE + len;
                d->frame_end = d->pos;
                d->frames++;
                out->payload_len = len;
                return KHIL_RX_FRAME;
            }
        }
        if (ev != KHIL_RX_NONE) {
            return ev;
        }
    }
}
void khil_decoder_expire(khil_decoder *d)
{
    if (d->end <= d->start) {
        return;
    }
    if (d->stalled && d->stalled_pos == d->pos) {
        d->stalled = 0;
        d->expiring = 1;
    } else {
        d->stalled = 1;
        d->stalled_pos = d->pos;
    }
}

int khil_decoder_pending(const khil_decoder *d) { return d->end > d->start; }
