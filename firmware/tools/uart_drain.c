/* UART drain: the baseline of the upload-throughput benchmark. Reads a 4-byte little-endian
 * length N, then N bytes it throws away, then answers one byte 'D' - the same bytes through
 * the same emulated UART and receive path as the firmware, with no protocol work. */
#include <stdint.h>

#include "board.h"

void app_report_fault(const char *reason) { (void)reason; }

int main(void)
{
    board_init();
    for (;;) {
        uint32_t len = 0;
        for (int i = 0; i < 4; i++) {
            len |= (uint32_t)board_uart_getc() << (8 * i);
        }
        for (uint32_t i = 0; i < len; i++) {
            (void)board_uart_getc();
        }
        board_uart_putc('D');
    }
}
