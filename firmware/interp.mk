# Make fragment for the int8 TFLite interpreter (firmware/interp/).
# Included by firmware/Makefile; also usable alone from firmware/:
#   make -C firmware -f interp.mk host-interp
# It defines INTERP_SRCS / INTERP_HDRS / INTERP_CFLAGS and the host shared libraries, and leaves
# the including Makefile's default goal alone.
KHIL_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

KHIL_FW_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
INTERP_DIR := $(KHIL_FW_DIR)/interp
INTERP_SRCS := \
	$(INTERP_DIR)/khil_loader.c \
	$(INTERP_DIR)/khil_interp.c \
	$(INTERP_DIR)/khil_flatbuffer.c \
	$(INTERP_DIR)/khil_planner.c \
	$(INTERP_DIR)/khil_quant.c \
	$(INTERP_DIR)/khil_names.c \
	$(INTERP_DIR)/khil_conv.c \
	$(INTERP_DIR)/khil_fully_connected.c \
	$(INTERP_DIR)/khil_pool.c \
	$(INTERP_DIR)/khil_add.c \
	$(INTERP_DIR)/khil_softmax.c
INTERP_HDRS := $(wildcard $(INTERP_DIR)/*.h) $(INTERP_DIR)/khil_ops.def
INTERP_INCLUDES := -I$(INTERP_DIR)
INTERP_CFLAGS := -std=c11 -Wall -Wextra -Werror

HOST_CC ?= gcc
KHIL_HOST_DIR := $(KHIL_FW_DIR)/build/host
# Bit-exact library, the same code the MCU runs (portable C paths).
KHIL_HOST_LIB := $(KHIL_HOST_DIR)/libkhil_interp.so
# Investigation build: arithmetic variants selectable at load time (docs/firmware-interpreter.md).
KHIL_HOST_VARIANTS_LIB := $(KHIL_HOST_DIR)/libkhil_interp_variants.so

.PHONY: host-interp
host-interp: $(KHIL_HOST_LIB) $(KHIL_HOST_VARIANTS_LIB)

$(KHIL_HOST_LIB): $(INTERP_SRCS) $(INTERP_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) -O2 -fPIC -shared $(INTERP_CFLAGS) $(INTERP_INCLUDES) $(INTERP_SRCS) -o $@.tmp
	mv -f $@.tmp $@

$(KHIL_HOST_VARIANTS_LIB): $(INTERP_SRCS) $(INTERP_HDRS)
	@mkdir -p $(dir $@)
	$(HOST_CC) -O2 -fPIC -shared -DKHIL_VARIANTS $(INTERP_CFLAGS) $(INTERP_INCLUDES) \
		$(INTERP_SRCS) -o $@.tmp
	mv -f $@.tmp $@

.DEFAULT_GOAL := $(KHIL_SAVED_DEFAULT_GOAL)
