# mps3-an547 (QEMU): Cortex-M55 (soft-float ABI), CMSDK UART, SysTick timer (QEMU has no DWT).
CPU_FLAGS := -mcpu=cortex-m55 -mthumb -mfloat-abi=soft
BOARD_SRCS := boards/mps3-an547/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_systick.c \
              boards/common/cmsdk_uart.c
QEMU_MACHINE := mps3-an547
# Model + tensor arena region (bytes): the whole 4 MiB ISRAM.
ML_REGION_SIZE ?= 4194304
STACK_SIZE ?= 32768
