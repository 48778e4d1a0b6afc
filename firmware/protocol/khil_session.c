/* Session state machine of the UART target (see khil_session.h for the behaviour). */
#include "khil_session.h"

#include <string.h>

#include "khil_text.h"

static const char *const type_names[KHIL_MSG_TYPE_COUNT] = {
    "PING",       "STATUS",         "DATA",    "MODEL",             "PROCESS",
    "OUTPUT",     "STATS",          "IO_SPEC", "TRACE_DATA",        "OPTIMIZERS",
    "OPTIMIZE_MODEL", "RUNTIME",    "UNOPTIMIZED_MODEL", "LOGS",
};

const char *khil_msg_type_name(unsigned type)
{
    return type < KHIL_MSG_TYPE_COUNT ? type_names[type] : "UNKNOWN";
}

/* ---- sending ------------------------------------------------------------------------------ */

typedef int (*segment_fn)(void *ctx, unsigned index, const uint8_t **data, size_t *len);

typedef struct {
    const uint8_t *data;
    size_t len;
} one_segment;

static int single_segment(void *ctx, unsigned index, const uint8_t **data, size_t *len)
{
    const one_segment *seg = ctx;
    if (index > 0) {
        return -1;
    }
    *data = seg->data;
    *len = seg->len;
    return 0;
}

/* Sends one answer: TRANSMISSION frames of `type`, the payload gathered from the segments
 * and cut into UART-sized chunks marked FIRST ... LAST. */
static void send_answer_segments(khil_session *s, uint8_t type, uint16_t status,
                                 segment_fn next, void *ctx)
{
    size_t total = 0;
    const uint8_t *data;
    size_t len;
    for (unsigned i = 0; next(ctx, i, &data, &len) == 0; i++) {
        total += len;
    }
    uint8_t payload[KHIL_UART_MAX_PAYLOAD];
    size_t sent = 0;
    unsigned seg = 0;
    size_t seg_off = 0;
    const uint8_t *seg_data = NULL;
    size_t seg_len = 0;
    int have_seg = next(ctx, 0, &seg_data, &seg_len) == 0;
    do {
        size_t n = 0;
        while (n < sizeof(payload) && have_seg) {
            if (seg_off == seg_len) {
                have_seg = next(ctx, ++seg, &seg_data, &seg_len) == 0;
                seg_off = 0;
                continue;
            }
            size_t take = seg_len - seg_off;
            if (take > sizeof(payload) - n) {
                take = sizeof(payload) - n;
            }
            memcpy(payload + n, seg_data + seg_off, take);
            n += take;
            seg_off += take;
        }
        uint16_t flags = (uint16_t)(status | KHIL_FLAG_IS_ZEPHYR);
        if (sent == 0) {
            flags |= KHIL_FLAG_FIRST;
        }
        if (sent + n >= total) {
            flags |= KHIL_FLAG_LAST;
        }
        size_t frame = khil_frame_encode(type, KHIL_FLOW_TRANSMISSION, flags, payload, n, s->tx,
                                         sizeof(s->tx));
        s->write(s->write_ctx, s->tx, frame);
        sent += n;
    } while (sent < total);
    s->answers++;
}

static void remember_answer(khil_session *s, uint8_t type, uint16_t status,
                            const uint8_t *payload, size_t len)
{
    s->last_type = type;
    s->last_status = status;
    if (len > sizeof(s->last_payload)) {
        len = sizeof(s->last_payload);
    }
    memmove(s->last_payload, payload, len);
    s->last_payload_len = (uint8_t)len;
}

static void answer(khil_session *s, uint8_t type, int ok, const uint8_t *payload, size_t len)
{
    uint16_t status = ok ? KHIL_FLAG_SUCCESS : KHIL_FLAG_FAIL;
    one_segment seg = {payload, len};
    send_answer_segments(s, type, status, single_segment, &seg);
    if (type != KHIL_MSG_STATS) {
        remember_answer(s, type, status, payload, len);
    }
}

static void answer_ok(khil_session *s, uint8_t type) { answer(s, type, 1, NULL, 0); }

/* The reason first as LOGS ("<TYPE> refused: ..."), then the FAIL answer carrying it. */
static void answer_fail(khil_session *s, uint8_t type, const char *reason)
{
    size_t len = strlen(reason);
    uint8_t text[KHIL_UART_MAX_PAYLOAD];
    khil_text t;
    khil_text_init(&t, (char *)text, sizeof(text));
    khil_text_str(khil_text_str(khil_text_str(&t, khil_msg_type_name(type)), " refused: "),
                  reason);
    size_t frame = khil_frame_encode(KHIL_MSG_LOGS, KHIL_FLOW_TRANSMISSION,
                                     KHIL_FLAG_IS_ZEPHYR | KHIL_FLAG_FIRST | KHIL_FLAG_LAST,
                                     text, t.len, s->tx, sizeof(s->tx));
    s->write(s->write_ctx, s->tx, frame);
    s->fail_answers++;
    answer(s, type, 0, (const uint8_t *)reason, len);
}

/* Answers the request being reassembled with FAIL now; its later chunks are dropped. */
static void fail_request(khil_session *s, const char *reason)
{
    if (!s->rx_answered) {
        answer_fail(s, s->rx_type, reason);
        s->rx_answered = 1;
    }
}

/* ---- session state ------------------------------------------------------------------------- */

static void end_session(khil_session *s)
{
    s->connected = 0;
    s->have_iospec = 0;
    s->model_loaded = 0;
    s->data_ready = 0;
    s->processed = 0;
    s->rt->reset(s->rt_ctx);
}

void khil_session_init(khil_session *s, const khil_runtime_ops *rt, void *rt_ctx,
                       khil_write_fn write, void *write_ctx, int verify_checksum)
{
    memset(s, 0, sizeof(*s));
    s->rt = rt;
    s->rt_ctx = rt_ctx;
    s->write = write;
    s->write_ctx = write_ctx;
    s->busy_type = -1;
    s->last_type = -1;
    s->resend_type = -1;
    khil_decoder_init(&s->decoder, KHIL_UART_MAX_PAYLOAD, verify_checksum);
}

int khil_session_busy_request(const khil_session *s) { return s->busy_type; }

int khil_session_rx_pending(const khil_session *s)
{
    return khil_decoder_pending(&s->decoder) || s->resend_type >= 0;
}

static khil_text *reason(khil_session *s, khil_text *t)
{
    khil_text_init(t, s->err, sizeof(s->err));
    return t;
}

/* A FIRST frame arrived: start reassembling, and fail at once what cannot succeed. */
static void begin_request(khil_session *s, uint8_t type, uint16_t flags)
{
    khil_text t;
    s->rx_active = 1;
    s->rx_type = type;
    s->rx_flags = flags;
    s->rx_len = 0;
    s->rx_answered = 0;
    s->resend_type = -1; /* the resend, or the host moved on: no FAIL for the damaged one */
    if (type == KHIL_MSG_PING) {
        return;
    }
    if (!s->connected) {
        khil_text_str(khil_text_str(reason(s, &t), khil_msg_type_name(type)),
                      " outside a session: connect with a PING (SUCCESS flag) first");
        fail_request(s, s->err);
        return;
    }
    switch (type) {
    case KHIL_MSG_IO_SPEC:
    case KHIL_MSG_STATS:
        break;
    case KHIL_MSG_MODEL:
        /* The model buffer is about to be overwritten: the old model is gone. */
        s->model_loaded = 0;
        s->data_ready = 0;
        s->processed = 0;
        s->model_buf = s->rt->model_buffer(s->rt_ctx, &s->model_cap);
        break;
    case KHIL_MSG_DATA:
        if (!s->model_loaded) {
            fail_request(s, "DATA before a model was loaded (send MODEL first)");
        }
        s->data_ready = 0;
        s->processed = 0;
        break;
    case KHIL_MSG_PROCESS:
        if (!s->data_ready) {
            fail_request(s, s->model_loaded
                                ? "PROCESS without DATA (the interpreter consumes the inputs: "
                                  "send DATA before each PROCESS)"
                                : "PROCESS before a model was loaded");
        }
        break;
    case KHIL_MSG_OUTPUT:
        if (!s->processed) {
            fail_request(s, "OUTPUT before PROCESS");
        }
        break;
    case KHIL_MSG_RUNTIME:
        fail_request(s, "RUNTIME upload is not supported: this firmware interprets TFLite "
                        "models itself (send MODEL)");
        break;
    default:
        khil_text_str(reason(s, &t), "message type ");
        khil_text_str(&t, khil_msg_type_name(type));
        khil_text_str(&t, " (");
        khil_text_u64(&t, type);
        khil_text_str(&t, ") is not supported by this firmware");
        fail_request(s, s->err);
        break;
    }
}

/* Adds one chunk's payload to the request being reassembled. */
static void append_payload(khil_session *s, const uint8_t *payload, uint32_t n)
{
    khil_text t;
    if (s->rx_answered || n == 0) {
        s->rx_len += n;
        return;
    }
    switch (s->rx_type) {
    case KHIL_MSG_IO_SPEC:
        if (s->rx_len + n > KHIL_IOSPEC_SIZE) {
            khil_text_str(khil_text_u64(khil_text_str(reason(s, &t),
                                                      "IO_SPEC over UART must be the packed "),
                                        KHIL_IOSPEC_SIZE),
                          "-byte struct; got more bytes");
            fail_request(s, s->err);
        } else {
            memcpy(s->small + s->rx_len, payload, n);
        }
        break;
    case KHIL_MSG_MODEL:
        if (s->rx_len + n > s->model_cap) {
            khil_text_str(reason(s, &t), "model too large: more than ");
            khil_text_u64(&t, s->model_cap);
            khil_text_str(&t, " bytes received, which is all the model + tensor arena memory "
                              "of this target");
            fail_request(s, s->err);
        } else {
            memcpy(s->model_buf + s->rx_len, payload, n);
        }
        break;
    case KHIL_MSG_DATA: {
        size_t need = s->rt->input_bytes(s->rt_ctx);
        if (s->rx_len + n > need) {
            khil_text_str(reason(s, &t), "DATA larger than the model's inputs (");
            khil_text_u64(&t, need);
            khil_text_str(&t, " bytes)");
            fail_request(s, s->err);
        } else {
            s->rt->write_input(s->rt_ctx, s->rx_len, payload, n);
        }
        break;
    }
    default:
        khil_text_str(khil_text_str(reason(s, &t), khil_msg_type_name(s->rx_type)),
                      " request carries no payload");
        fail_request(s, s->err);
        break;
    }
    s->rx_len += n;
}


static void handle_ping(khil_session *s)
{
    uint16_t f = s->rx_flags & (KHIL_FLAG_SUCCESS | KHIL_FLAG_FAIL);
    if (f == KHIL_FLAG_FAIL) { /* disconnect */
        end_session(s);
    } else if (f != 0) { /* connect, or SUCCESS + FAIL = restart: a fresh session */
        end_session(s);
        s->connected = 1;
    } /* else: liveness check, the session stays as it is */
    answer_ok(s, KHIL_MSG_PING);
}

static int output_segment(void *ctx, unsigned index, const uint8_t **data, size_t *len)
{
    khil_session *s = ctx;
    return s->rt->output_segment(s->rt_ctx, index, data, len);
}

/* The host could not read our last answer: send it again. */
static void retransmit(khil_session *s, uint8_t type)
{
    if ((int)type != s->last_type) {
        s->dropped_frames++; /* nothing of that type to resend */
        return;
    }
    if (type == KHIL_MSG_OUTPUT && s->last_status == KHIL_FLAG_SUCCESS && s->processed) {
        send_answer_segments(s, type, KHIL_FLAG_SUCCESS, output_segment, s);
    } else if (type == KHIL_MSG_STATS) {
        size_t n = s->rt->stats(s->rt_ctx, s->small, sizeof(s->small));
        one_segment seg = {s->small, n};
        send_answer_segments(s, type, KHIL_FLAG_SUCCESS, single_segment, &seg);
    } else {
        one_segment seg = {s->last_payload, s->last_payload_len};
        send_answer_segments(s, type, s->last_status, single_segment, &seg);
    }
}

/* The LAST chunk of a request arrived and nothing failed so far: execute it. */
static void complete_request(khil_session *s)
{
    khil_text t;
    uint8_t type = s->rx_type;
    s->busy_type = type;
    s->err[0] = '\0';
    switch (type) {
    case KHIL_MSG_PING:
        handle_ping(s);
        break;
    case KHIL_MSG_IO_SPEC:
        if (khil_iospec_parse(s->small, s->rx_len, &s->iospec, s->err, sizeof(s->err)) == 0) {
            s->have_iospec = 1;
            answer_ok(s, type);
        } else {
            s->have_iospec = 0;
            answer_fail(s, type, s->err);
        }
        break;
    case KHIL_MSG_MODEL:
        if (s->rx_len == 0) {
            answer_fail(s, type, "empty MODEL");
        } else if (s->rt->load_model(s->rt_ctx, s->rx_len, s->have_iospec ? &s->iospec : NULL,
                                     s->err, sizeof(s->err)) == 0) {
            s->model_loaded = 1;
            answer_ok(s, type);
        } else {
            answer_fail(s, type, s->err);
        }
        break;
    case KHIL_MSG_DATA: {
        size_t need = s->rt->input_bytes(s->rt_ctx);
        if (s->rx_len != need) {
            khil_text_str(reason(s, &t), "DATA has ");
            khil_text_u64(&t, s->rx_len);
            khil_text_str(&t, " bytes, the model's inputs take ");
            khil_text_u64(&t, need);
            answer_fail(s, type, s->err);
        } else {
            s->data_ready = 1;
            answer_ok(s, type);
        }
        break;
    }
    case KHIL_MSG_PROCESS:
        s->data_ready = 0; /* inference reuses the input tensors' memory */
        if (s->rt->process(s->rt_ctx, s->err, sizeof(s->err)) == 0) {
            s->processed = 1;
            answer_ok(s, type);
        } else {
            s->processed = 0;
            answer_fail(s, type, s->err);
        }
        break;
    case KHIL_MSG_OUTPUT:
        send_answer_segments(s, type, KHIL_FLAG_SUCCESS, output_segment, s);
        remember_answer(s, type, KHIL_FLAG_SUCCESS, NULL, 0);
        break;
    case KHIL_MSG_STATS: {
        size_t n = s->rt->stats(s->rt_ctx, s->small, sizeof(s->small));
        answer(s, type, 1, s->small, n);
        s->last_type = type;
        break;
    }
    default: /* begin_request already failed every other type */
        break;
    }
    s->busy_type = -1;
}

static void ask_retransmission(khil_session *s, uint8_t type);

static void on_frame(khil_session *s, const khil_rx_frame *f)
{
    const khil_header *h = &f->header;
    if (h->flow == KHIL_FLOW_REQUEST_RETRANSMIT) {
        retransmit(s, h->type);
        return;
    }
    if (h->flow != KHIL_FLOW_REQUEST) {
        s->dropped_frames++;
        return;
    }
    if (s->resend_type >= 0 && !(h->flags & KHIL_FLAG_FIRST &&
                                 (h->type == s->resend_type ||
                                  (h->type == KHIL_MSG_PING && h->flags & KHIL_FLAG_LAST)))) {
        /* Waiting for the resend, the host sends nothing else but a PING (a new host, or a
         * restart); other frames were found by rescanning the damaged transmission's
         * payload and are model bytes, not requests. */
        s->dropped_frames++;
        return;
    }
    if (!(h->flags & KHIL_FLAG_FIRST) && f->gap && s->rx_active && !s->rx_answered &&
        s->rx_type == h->type) {
        /* bytes between two chunks were skipped: a chunk was lost or damaged beyond
         * recognition, and appending this one would shift the rest of the request */
        khil_text t;
        khil_text_str(khil_text_str(reason(s, &t), "damaged "), khil_msg_type_name(h->type));
        khil_text_str(&t, " transmission: ");
        khil_text_u64(&t, f->gap);
        khil_text_str(&t, " bytes between two of its chunks were not a frame");
        ask_retransmission(s, h->type);
        s->rx_answered = 1;
        if (h->flags & KHIL_FLAG_LAST) {
            s->rx_active = 0;
        }
        return;
    }
    if (h->flags & KHIL_FLAG_FIRST) {
        if (s->rx_active) {
            s->dropped_frames++; /* the previous request never got its LAST chunk */
        }
        begin_request(s, h->type, h->flags);
    } else if (!s->rx_active || s->rx_type != h->type) {
        if (h->flags & KHIL_FLAG_LAST) {
            khil_text t;
            khil_text_str(khil_text_str(reason(s, &t), "chunk of "), khil_msg_type_name(h->type));
            khil_text_str(&t, " without a FIRST chunk");
            answer_fail(s, h->type, s->err);
        } else {
            s->dropped_frames++;
        }
        return;
    }
    append_payload(s, f->payload, f->payload_len);
    if (h->flags & KHIL_FLAG_LAST) {
        s->rx_active = 0;
        if (!s->rx_answered) {
            complete_request(s);
        }
    }
}

/* A request frame damaged on the line (bad checksum, or cut off by a quiet line): the host
 * still has the request, so ask it to send the whole request again (REQUEST_RETRANSMIT of
 * its type, count = whole transmission) after a LOGS line with the reason. Under QEMU a
 * starved host can make a healthy upload look cut off; a resend recovers it. */
static void ask_retransmission(khil_session *s, uint8_t type)
{
    uint8_t text[KHIL_UART_MAX_PAYLOAD];
    khil_text t;
    khil_text_init(&t, (char *)text, sizeof(text));
    khil_text_str(khil_text_str(&t, s->err), "; asking for retransmission");
    size_t frame = khil_frame_encode(KHIL_MSG_LOGS, KHIL_FLOW_TRANSMISSION,
                                     KHIL_FLAG_IS_ZEPHYR | KHIL_FLAG_FIRST | KHIL_FLAG_LAST,
                                     text, t.len, s->tx, sizeof(s->tx));
    s->write(s->write_ctx, s->tx, frame);
    /* no payload: the size field is the count, 0xFFFFFFFF = the whole transmission */
    khil_header h = {.type = type, .flow = KHIL_FLOW_REQUEST_RETRANSMIT, .checksum = 0,
                     .flags = KHIL_FLAG_IS_ZEPHYR, .payload_size = 0xFFFFFFFFu};
    khil_header_pack(&h, s->tx);
    s->tx[5] = khil_checksum(s->tx, NULL, 0);
    s->write(s->write_ctx, s->tx, KHIL_HEADER_SIZE);
    s->retransmit_requests++;
    s->resend_type = type;
    s->resend_gaps = 0;
    memcpy(s->resend_reason, s->err, sizeof(s->resend_reason));
}

/* A request frame that cannot be used: a damaged one is asked for again (the request it
 * belongs to restarts with the resent FIRST chunk; chunks of the damaged transmission still
 * on the line are dropped); an oversized one is answered FAIL. */
static void on_bad_frame(khil_session *s, khil_rx_event ev, const khil_rx_frame *f)
{
    const khil_header *h = &f->header;
    if (h->flow != KHIL_FLOW_REQUEST) {
        s->dropped_frames++;
        return;
    }
    int first = (h->flags & KHIL_FLAG_FIRST) != 0;
    int last = (h->flags & KHIL_FLAG_LAST) != 0;
    if (s->resend_type >= 0 && !(first && h->type == s->resend_type)) {
        /* the whole transmission is asked for already: this is what is left of it on the
         * line, or a header made of its payload bytes */
        s->dropped_frames++;
        return;
    }
    /* A damaged chunk while a request is reassembled belongs to it, whatever its damaged
     * type byte says (requests do not interleave). */
    int ours = s->rx_active && !first;
    uint8_t type = ours ? s->rx_type : h->type;
    if (!ours && !first && !last) {
        s->dropped_frames++; /* a stray middle chunk: nobody waits for its answer */
        return;
    }
    khil_text t;
    reason(s, &t);
    if (ev == KHIL_RX_BAD_CHECKSUM) {
        khil_text_str(&t, "corrupt ");
        khil_text_str(&t, khil_msg_type_name(type));
        khil_text_str(&t, " frame: checksum ");
        khil_text_hex(&t, h->checksum);
        khil_text_str(&t, ", computed ");
        khil_text_hex(&t, f->expected_checksum);
    } else if (ev == KHIL_RX_TRUNCATED) {
        khil_text_str(&t, "truncated ");
        khil_text_str(&t, khil_msg_type_name(type));
        khil_text_str(&t, " frame: the line went quiet before its ");
        khil_text_u64(&t, khil_header_payload_len(h));
        khil_text_str(&t, "-byte payload arrived");
    } else {
        khil_text_str(&t, khil_msg_type_name(type));
        khil_text_str(&t, " frame announces a ");
        khil_text_u64(&t, khil_header_payload_len(h));
        khil_text_str(&t, "-byte payload; UART frames carry at most ");
        khil_text_u64(&t, KHIL_UART_MAX_PAYLOAD);
    }
    if (ev == KHIL_RX_OVERSIZED && !ours) {
        /* a request too large for this transport from its first frame: a host set up for
         * another transport, not line damage (a damaged size inside a request is asked for
         * again below) */
        if (first && !last) {
            s->rx_active = 1; /* fail it and drop the rest */
            s->rx_type = type;
            s->rx_len = 0;
            s->rx_answered = 0;
            fail_request(s, s->err);
        } else {
            answer_fail(s, type, s->err);
        }
    } else if ((ours && s->rx_answered) || type >= KHIL_MSG_TYPE_COUNT) {
        /* already answered or asked for again (wait for the resend), or a type no host
         * sends: a header made of line noise, nobody waits for its answer */
        s->dropped_frames++;
    } else {
        ask_retransmission(s, type);
        if (!last) { /* drop the rest of the damaged transmission */
            s->rx_active = 1;
            s->rx_type = type;
            s->rx_answered = 1;
        }
    }
    if (ours && last) {
        s->rx_active = 0;
    }
}

static void drain_events(khil_session *s)
{
    khil_rx_frame f;
    khil_rx_event ev;
    while ((ev = khil_decoder_next(&s->decoder, &f)) != KHIL_RX_NONE) {
        if (ev == KHIL_RX_FRAME) {
            on_frame(s, &f);
        } else {
            on_bad_frame(s, ev, &f);
        }
    }
}

void khil_session_feed(khil_session *s, const uint8_t *bytes, size_t len)
{
    if (len) {
        s->resend_gaps = 0; /* the line is not quiet */
    }
    while (len) {
        size_t taken = khil_decoder_push(&s->decoder, bytes, len);
        bytes += taken;
        len -= taken;
        drain_events(s);
    }
}

void khil_session_line_idle(khil_session *s)
{
    if (khil_decoder_pending(&s->decoder)) {
        khil_decoder_expire(&s->decoder);
        drain_events(s);
        return;
    }
    if (s->resend_type >= 0 && ++s->resend_gaps >= KHIL_SESSION_RESEND_WAIT) {
        /* A host that ignores REQUEST_RETRANSMIT (Kenning's UART host) still waits for an
         * answer to the request: fail it, with the reason, rather than leave it waiting. */
        uint8_t type = (uint8_t)s->resend_type;
        khil_text t;
        khil_text_str(khil_text_str(reason(s, &t), s->resend_reason),
                      "; no retransmission came");
        s->resend_type = -1;
        answer_fail(s, type, s->err);
    }
}
