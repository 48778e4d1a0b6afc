# mps3-an547: Cortex-M55 with Helium (MVE: the vector registers need -mfloat-abi=softfp; calls
# keep the soft-float convention), CMSDK UART.
# Timing: under QEMU (the default) SysTick counts instructions (-icount shift=0; QEMU 7.2 has no
# DWT). On the real FPGA board build with BOARD_TIMER=dwt BOARD_TIMING=cycles.
BOARD_TIMER ?= systick
BOARD_TIMING ?= instructions
CPU_FLAGS := -mcpu=cortex-m55 -mthumb -mfloat-abi=softfp
BOARD_SRCS := boards/mps3-an547/board.c \
              boards/common/cortexm_startup.c \
              boards/common/timer_$(BOARD_TIMER).c \
              boards/common/cmsdk_uart.c
QEMU_MACHINE := mps3-an547
# Model + tensor arena region (bytes): the whole 4 MiB ISRAM.
ML_REGION_SIZE ?= 4194304
STACK_SIZE ?= 32768
