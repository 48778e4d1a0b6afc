/* Running a loaded model and exposing its input and output tensors. */
#include <string.h>

#include "khil_internal.h"

khil_status khil_invoke(khil_interp *ip, char *err, size_t err_len)
{
    if (err != NULL && err_len > 0) {
        err[0] = 0;
    }
    if (ip == NULL || !ip->loaded) {
        khil_fmt(err, err_len, "khil_invoke: no model loaded");
        return KHIL_ERR_STATE;
    }
    khil_tensor *t = ip->tensors;
    for (int32_t i = 0; i < ip->num_ops; i++) {
        const khil_op *op = &ip->ops[i];
        switch ((khil_op_kind)op->kind) {
        case KHIL_OP_CONV:
            khil_kernel_conv(op, t);
            break;
        case KHIL_OP_DEPTHWISE:
            khil_kernel_depthwise(op, t);
            break;
        case KHIL_OP_FULLY_CONNECTED:
            khil_kernel_fully_connected(op, t);
            break;
        case KHIL_OP_AVERAGE_POOL:
            khil_kernel_average_pool(op, t);
            break;
        case KHIL_OP_ADD:
            khil_kernel_add(op, t);
            break;
        case KHIL_OP_SOFTMAX:
            khil_kernel_softmax(op, t);
            break;
        case KHIL_OP_RESHAPE:
            /* The output aliases the input; only a constant input needs no work either. */
            break;
        }
    }
    return KHIL_OK;
}

int khil_num_inputs(const khil_interp *ip)
{
    return (ip != NULL && ip->loaded) ? ip->num_inputs : 0;
}

int khil_num_outputs(const khil_interp *ip)
{
    return (ip != NULL && ip->loaded) ? ip->num_outputs : 0;
}

static khil_status describe(const khil_interp *ip, int32_t index, khil_tensor_info *out)
{
    const khil_tensor *t = &ip->tensors[index];
    memset(out, 0, sizeof *out);
    out->type = t->type;
    out->ndim = t->ndim;
    for (int d = 0; d < t->ndim && d < KHIL_MAX_DIMS; d++) {
        out->dims[d] = khil_load_i32(t->shape + 4 * d);
    }
    out->bytes = t->bytes;
    out->data = t->data;
    out->scale = t->scale;
    out->zero_point = t->zero_point;
    return KHIL_OK;
}

khil_status khil_input(const khil_interp *ip, int i, khil_tensor_info *out)
{
    if (ip == NULL || out == NULL || !ip->loaded) {
        return KHIL_ERR_STATE;
    }
    if (i < 0 || i >= ip->num_inputs) {
        return KHIL_ERR_ARG;
    }
    return describe(ip, ip->inputs[i], out);
}

khil_status khil_output(const khil_interp *ip, int i, khil_tensor_info *out)
{
    if (ip == NULL || out == NULL || !ip->loaded) {
        return KHIL_ERR_STATE;
    }
    if (i < 0 || i >= ip->num_outputs) {
        return KHIL_ERR_ARG;
    }
    return describe(ip, ip->outputs[i], out);
}

size_t khil_arena_peak(const khil_interp *ip)
{
    return ip != NULL ? ip->arena_peak : 0;
}

size_t khil_interp_struct_size(void)
{
    return sizeof(khil_interp);
}
