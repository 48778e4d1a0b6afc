/* QEMU TCG plugin for the Renode stand-in: the guest's executed instructions, counted into a
 * 64-bit word of a shared file (argument counter=PATH) that the stand-in reads whenever the
 * monitor is asked `sysbus.cpu ExecutedInstructions`. Each translation block adds its
 * instruction count inline when it runs (one vCPU: no races).
 *
 * Debian's QEMU 7.2 ships no qemu-plugin.h: the few entry points used are declared here from
 * the plugin API of that version (QEMU_PLUGIN_VERSION 1), as firmware/tools does. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t *counter;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, counter,
                                             qemu_plugin_tb_n_insns(tb));
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info, int argc,
                                                               char **argv)
{
    (void)info;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "counter=", 8) == 0) {
            path = argv[i] + 8;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "insn_counter: argument counter=PATH is needed\n");
        return -1;
    }
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    counter = mmap(NULL, sizeof *counter, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (counter == MAP_FAILED) {
        perror("insn_counter: mmap");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    return 0;
}
