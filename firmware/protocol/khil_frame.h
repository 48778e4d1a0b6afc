/* Frames of the kenning-hil / Kenning v3 wire protocol (docs: shared PROTOCOL.md).
 *
 * A frame is a 12-byte little-endian header - 40-bit field (low 38 bits message type, top 2
 * bits flow control), checksum byte, u16 flags, u32 payload size - then the payload.
 * Checksum = 0x4B XOR every byte of the frame with the checksum byte taken as 0. The decoder
 * verifies it strictly: 0x00 is not taken as "not computed" (PROTOCOL.md allows that for
 * TCP hosts; every UART host, Kenning's included, computes it), because the zero bytes of a
 * message id shifted into the checksum position are the commonest false header.
 *
 * No board code and no allocation: builds for the MCU and as a host shared library.
 */
#ifndef KHIL_FRAME_H
#define KHIL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define KHIL_HEADER_SIZE 12u
/* Over UART a frame is at most 136 bytes, header included. */
#define KHIL_UART_MAX_FRAME 136u
#define KHIL_UART_MAX_PAYLOAD (KHIL_UART_MAX_FRAME - KHIL_HEADER_SIZE)
#define KHIL_CHECKSUM_SEED 0x4Bu

typedef enum {
    KHIL_MSG_PING = 0,
    KHIL_MSG_STATUS = 1,
    KHIL_MSG_DATA = 2,
    KHIL_MSG_MODEL = 3,
    KHIL_MSG_PROCESS = 4,
    KHIL_MSG_OUTPUT = 5,
    KHIL_MSG_STATS = 6,
    KHIL_MSG_IO_SPEC = 7,
    KHIL_MSG_TRACE_DATA = 8,
    KHIL_MSG_OPTIMIZERS = 9,
    KHIL_MSG_OPTIMIZE_MODEL = 10,
    KHIL_MSG_RUNTIME = 11,
    KHIL_MSG_UNOPTIMIZED_MODEL = 12,
    KHIL_MSG_LOGS = 13,
    KHIL_MSG_TYPE_COUNT = 14
} khil_msg_type;

typedef enum {
    KHIL_FLOW_REQUEST = 0,
    KHIL_FLOW_REQUEST_RETRANSMIT = 1,
    KHIL_FLOW_ACKNOWLEDGE = 2,
    KHIL_FLOW_TRANSMISSION = 3
} khil_flow;

#define KHIL_FLAG_SUCCESS (1u << 0)
#define KHIL_FLAG_FAIL (1u << 1)
#define KHIL_FLAG_IS_HOST_MESSAGE (1u << 2)
#define KHIL_FLAG_HAS_PAYLOAD (1u << 3)
#define KHIL_FLAG_FIRST (1u << 4)
#define KHIL_FLAG_LAST (1u << 5)
#define KHIL_FLAG_IS_KENNING (1u << 6)
#define KHIL_FLAG_IS_ZEPHYR (1u << 7)
#define KHIL_FLAG_SERIALIZED (1u << 12) /* IO_SPEC only: payload is the packed C struct */

typedef struct {
    uint8_t type; /* khil_msg_type; unknown types up to 255 parse (and get FAIL answers) */
    uint8_t flow; /* khil_flow */
    uint8_t checksum;
    uint16_t flags;
    uint32_t payload_size;
} khil_header;

/* Writes the 12 header bytes (checksum byte as given in h->checksum). */
void khil_header_pack(const khil_header *h, uint8_t out[KHIL_HEADER_SIZE]);
/* Reads 12 header bytes; returns 0, or -1 if the message id exceeds 255 (not a header). */
int khil_header_unpack(const uint8_t in[KHIL_HEADER_SIZE], khil_header *h);
/* Checksum of a frame whose header bytes are `header` (its checksum byte is ignored). */
uint8_t khil_checksum(const uint8_t header[KHIL_HEADER_SIZE], const uint8_t *payload,
                      size_t payload_len);
/* Encodes one frame with its checksum into out; returns its size, or 0 if out_cap is too
 * small. HAS_PAYLOAD is set when payload_len > 0. */
size_t khil_frame_encode(uint8_t type, uint8_t flow, uint16_t flags, const uint8_t *payload,
                         size_t payload_len, uint8_t *out, size_t out_cap);

/* Bytes of payload that follow the header: the size field when HAS_PAYLOAD is set, else 0
 * (without HAS_PAYLOAD the size field is a count, e.g. on ACKNOWLEDGE/REQUEST_RETRANSMIT). */
uint32_t khil_header_payload_len(const khil_header *h);

/* ---- Streaming decoder with resynchronisation ----------------------------------------- */

typedef enum {
    KHIL_RX_NONE = 0,     /* need more bytes */
    KHIL_RX_FRAME,        /* a valid frame: header + payload pointer */
    KHIL_RX_BAD_CHECKSUM, /* a well-formed header whose checksum does not match */
    KHIL_RX_TRUNCATED,    /* a frame cut short (the line went quiet: khil_decoder_expire) */
    KHIL_RX_OVERSIZED     /* a well-formed header announcing more than max_payload bytes */
} khil_rx_event;

typedef struct {
    khil_header header;
    const uint8_t *payload;    /* valid until the next push/next call on the decoder */
    uint32_t payload_len;      /* 0 for the error events */
    uint8_t expected_checksum; /* for KHIL_RX_BAD_CHECKSUM */
    /* KHIL_RX_FRAME: bytes skipped between the previous frame and this one. Within one
     * chunked request it must be 0: a skipped byte means a chunk was lost (the protocol has
     * no chunk numbers, so nothing else tells). */
    uint32_t gap;
} khil_rx_frame;

typedef struct {
    uint8_t buf[2u * KHIL_UART_MAX_FRAME];
    size_t start; /* first unconsumed byte */
    size_t end;   /* one past the last received byte */
    uint32_t max_payload;
    int verify_checksum; /* 1: verify (0x00 is checked like any value); 0: ignore the byte */
    int expiring;        /* set by khil_decoder_expire: drop incomplete candidates */
    int stalled;          /* a quiet gap found the candidate at stalled_pos incomplete */
    uint32_t stalled_pos; /* stream offset of that candidate */
    uint32_t pos;        /* stream offset of buf[start] */
    uint32_t frame_end;  /* stream offset just past the last frame returned */
    uint32_t quiet_until; /* no error events for candidates starting before this offset */
    /* Counters for diagnostics and tests. */
    uint32_t skipped_bytes;
    uint32_t frames;
    uint32_t bad_checksums;
    uint32_t truncated;
    uint32_t oversized;
} khil_decoder;

/* max_payload: largest payload accepted (at most KHIL_UART_MAX_PAYLOAD). */
void khil_decoder_init(khil_decoder *d, uint32_t max_payload, int verify_checksum);
/* Appends received bytes; returns how many were taken (fewer when the buffer is full: call
 * khil_decoder_next until it returns KHIL_RX_NONE, then push the rest). */
size_t khil_decoder_push(khil_decoder *d, const uint8_t *bytes, size_t len);
/* Returns the next event from the buffered bytes.
 * - Bytes that cannot start a header (non-zero bytes 1..3 or low bits of byte 4 of the
 *   message id) are skipped silently.
 * - After a bad checksum or an oversized header the search resumes one byte after that
 *   header's first byte, so a valid frame swallowed by a corrupt length is still found.
 * - No error event for a candidate that starts inside a frame already reported as bad: the
 *   rescan of its bytes finds spurious headers, which must not produce more answers.
 * - A candidate with reserved flag bits (8..11) set, or a payload-less REQUEST with a
 *   non-zero size, is not a header (skipped like garbage): stray zeros before a frame shift
 *   its checksum byte into the flags and its zeros into the size, and the XOR checksum
 *   still matches. */
khil_rx_event khil_decoder_next(khil_decoder *d, khil_rx_frame *out);
/* The line went quiet. The first quiet gap that finds a frame incomplete only marks it: a
 * sender that stalls mid-frame (a host or simulator starved of CPU) completes it later, and
 * dropping it would rescan its payload for headers, where model bytes form frames with
 * valid checksums (one in 256 well-formed candidates passes an XOR checksum). The second gap
 * that finds the same frame still incomplete expires it: the next khil_decoder_next calls
 * report it as KHIL_RX_TRUNCATED and rescan the bytes after its first byte, until the
 * buffer is empty. */
void khil_decoder_expire(khil_decoder *d);
/* 1 if bytes are buffered that do not yet form a complete frame. */
int khil_decoder_pending(const khil_decoder *d);

#endif /* KHIL_FRAME_H */
