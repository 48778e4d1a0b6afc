/* Names of TFLite builtin operators and tensor types, for error messages. */
#ifndef KHIL_NAMES_H
#define KHIL_NAMES_H

#include <stdint.h>

const char *khil_op_name(int32_t builtin);
const char *khil_type_name(int32_t type);

#endif /* KHIL_NAMES_H */
