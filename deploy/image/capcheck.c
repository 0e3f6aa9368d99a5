/*
 * capcheck: does this container's privilege set allow what llm-tracer does at start-up?
 * Each step is the kernel operation the agent performs, in its order:
 *   1. open a host binary through /proc/1/root (hostPID; CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH)
 *   2. create a BPF ring buffer map                           (CAP_BPF)
 *   3. load a (trivial) uprobe program, BPF_PROG_TYPE_KPROBE  (CAP_BPF + CAP_PERFMON)
 *   4. create a uprobe perf event on that binary's entry point (CAP_PERFMON)
 *   5. attach the program to it and enable it
 *   6. read /sys/kernel/btf/vmlinux                           (BTF, for aya)
 * With `capcheck PATH multi`, steps 3-5 use a uprobe_multi BPF link instead (BPF_LINK_CREATE,
 * Linux >= 6.6), which needs no CAP_SYS_ADMIN, unlike a perf-event uprobe (since the 2025 kernel
 * change "require CAP_SYS_ADMIN for uprobes").
 * Prints one line per step and exits with the number of the first failing step (0 = all ok).
 * Built static (deploy/image/capcheck.sh) so it runs in a FROM-scratch image.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Not in older UAPI headers: enum bpf_attach_type value and the link_create layout (6.6). */
#define ATTACH_UPROBE_MULTI 48
struct link_create_uprobe_multi {
    uint32_t prog_fd, target_fd, attach_type, flags;
    uint64_t path, offsets, ref_ctr_offsets, cookies;
    uint32_t cnt, um_flags, pid, pad;
    uint8_t rest[64]; /* the rest of union bpf_attr, zero */
};

static int step(int n, const char *what, long rc) {
    printf("step %d %-34s %s%s%s\n", n, what, rc >= 0 ? "ok" : "FAILED (",
           rc >= 0 ? "" : strerror(errno), rc >= 0 ? "" : ")");
    fflush(stdout);
    if (rc < 0) exit(n);
    return (int)rc;
}

/* File offset of the ELF entry point (what a uprobe is placed at). */
static long entry_offset(int fd) {
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG)) return -1;
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, eh.e_phoff + (off_t)i * eh.e_phentsize) != sizeof ph) return -1;
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && eh.e_entry >= ph.p_vaddr &&
            eh.e_entry < ph.p_vaddr + ph.p_memsz)
            return (long)(eh.e_entry - ph.p_vaddr + ph.p_offset);
    }
    errno = ENOEXEC;
    return -1;
}

int main(int argc, char **argv) {
    const char *target = argc > 1 ? argv[1] : "/proc/1/root/usr/bin/true";
    int multi = argc > 2 && strcmp(argv[2], "multi") == 0;
    int fd = step(1, "open host binary via /proc/1/root", open(target, O_RDONLY));
    long off = step(1, "find its entry point", entry_offset(fd));

    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_RINGBUF;
    a.max_entries = 1 << 16;
    step(2, "create ring buffer map", syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));

    struct bpf_insn prog[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0}, /* r0 = 0 */
        {.code = BPF_JMP | BPF_EXIT},
    };
    char log[4096] = "";
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_KPROBE;
    a.expected_attach_type = multi ? ATTACH_UPROBE_MULTI : 0;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = 2;
    a.license = (uint64_t)(uintptr_t)"GPL";
    a.log_buf = (uint64_t)(uintptr_t)log;
    a.log_size = sizeof log;
    a.log_level = 1;
    int pfd = step(3, "load uprobe program", syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a));

    if (multi) {
        uint64_t offset = (uint64_t)off;
        struct link_create_uprobe_multi l;
        memset(&l, 0, sizeof l);
        l.prog_fd = (uint32_t)pfd;
        l.attach_type = ATTACH_UPROBE_MULTI;
        l.path = (uint64_t)(uintptr_t)target;
        l.offsets = (uint64_t)(uintptr_t)&offset;
        l.cnt = 1;
        step(4, "create uprobe_multi link", syscall(SYS_bpf, BPF_LINK_CREATE, &l, sizeof l));
        step(6, "read kernel BTF", open("/sys/kernel/btf/vmlinux", O_RDONLY));
        printf("all steps ok\n");
        return 0;
    }
    FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
    int type = -1;
    if (!f || fscanf(f, "%d", &type) != 1) type = -1;
    step(4, "read uprobe PMU type", type);
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.size = sizeof pa;
    pa.type = (uint32_t)type;
    pa.config1 = (uint64_t)(uintptr_t)target; /* uprobe_path */
    pa.config2 = (uint64_t)off;               /* probe_offset */
    int efd = step(4, "create uprobe perf event",
                   syscall(SYS_perf_event_open, &pa, -1 /* any pid */, 0, -1, PERF_FLAG_FD_CLOEXEC));
    step(5, "attach program to uprobe", ioctl(efd, PERF_EVENT_IOC_SET_BPF, pfd));
    step(5, "enable uprobe", ioctl(efd, PERF_EVENT_IOC_ENABLE, 0));
    step(6, "read kernel BTF", open("/sys/kernel/btf/vmlinux", O_RDONLY));
    printf("all steps ok\n");
    return 0;
}
