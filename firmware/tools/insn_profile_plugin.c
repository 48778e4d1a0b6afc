/* QEMU TCG plugin: guest instructions executed per translation block start address, written to
 * a file at exit as "start_address instructions" lines (hex, decimal). A profiler maps the
 * addresses to firmware functions (benchmarks/bench_firmware_instructions.py --profile).
 *
 * Debian's QEMU 7.2 loads plugins (-plugin) but ships no qemu-plugin.h, so the few entry points
 * used are declared here from the plugin API of that version (QEMU_PLUGIN_VERSION 1).
 *
 *   gcc -O2 -shared -fPIC firmware/tools/insn_profile_plugin.c -o insn_profile_plugin.so
 *   qemu-system-arm ... -plugin ./insn_profile_plugin.so,out=profile.txt */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One translation: a block may be translated several times (same address, counts summed). The
 * inline add counts instructions without a call per block (one vCPU: no races). */
typedef struct block {
    uint64_t vaddr;
    uint64_t insns;
    struct block *next;
} block;

static block *blocks;
static char out_path[4096] = "insn_profile.txt";

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    block *b = calloc(1, sizeof *b);
    if (b == NULL) {
        abort();
    }
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->next = blocks;
    blocks = b;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void write_profile(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *f = fopen(out_path, "w");
    if (f == NULL) {
        perror(out_path);
        return;
    }
    for (const block *b = blocks; b != NULL; b = b->next) {
        if (b->insns != 0) {
            fprintf(f, "%llx %llu\n", (unsigned long long)b->vaddr, (unsigned long long)b->insns);
        }
    }
    fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_profile, NULL);
    return 0;
}
