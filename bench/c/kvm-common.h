/*
 * kvm-common.h: what the C references in bench/c share (header-only, static inline functions):
 *   - timing and error exits;
 *   - a peer process on a socketpair that answers each IN-byte message with OUT bytes
 *     (the "tool" of kvm-event-ipc.c, the server of socket-pingpong.c), and CPU pinning;
 *   - the minimal VM: one vCPU in flat 32-bit protected mode, CPL0, no paging, with the same
 *     boot GDT and segments as nodevisor's PVH entry.
 * Built with the programs by bench/introspection.ts and bench/run.ts; not part of nodevisor.
 */
#ifndef NODEVISOR_BENCH_KVM_COMMON_H
#define NODEVISOR_BENCH_KVM_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOOT_GDT 0x500u

static inline void die(const char *what) {
  perror(what);
  exit(2);
}

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ the peer process */

/* Reads exactly len bytes; returns 0 on end of file before the first byte. */
static inline int read_full(int fd, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read");
    if (n == 0) {
      if (got == 0) return 0;
      fprintf(stderr, "end of file inside a message\n");
      exit(2);
    }
    got += (size_t)n;
  }
  return 1;
}

static inline void write_full(int fd, const void *buf, size_t len) {
  size_t put = 0;
  while (put < len) {
    ssize_t n = write(fd, (const char *)buf + put, len - put);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("write");
    put += (size_t)n;
  }
}

/*
 * Pins this process (and so the peer it forks later) to the first CPU it may run on, so that
 * every wake-up between the two is a switch on one CPU rather than an inter-processor one.
 * Returns that CPU.
 */
static inline int pin_to_one_cpu(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) < 0) die("sched_getaffinity");
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set)) cpu++;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
  return cpu;
}

/*
 * Forks the peer on a unix stream socketpair: it answers each in_size-byte message with
 * out_size bytes until the other end closes. Returns its pid; *fd is this side's end.
 */
static inline pid_t start_peer(int *fd, size_t in_size, size_t out_size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    /* A killed parent must not leave the peer blocked in read forever. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    close(sv[0]);
    char *in = malloc(in_size), *out = calloc(1, out_size);
    if (in == NULL || out == NULL) die("malloc");
    while (read_full(sv[1], in, in_size)) write_full(sv[1], out, out_size);
    _exit(0);
  }
  close(sv[1]);
  *fd = sv[0];
  return pid;
}

/* Closes our end (the peer sees end of file) and reaps the peer; exits if it failed. */
static inline void stop_peer(int fd, pid_t pid) {
  close(fd);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "the peer process failed (status 0x%x)\n", status);
    exit(3);
  }
}

/* ------------------------------------------------------------------ the minimal VM */

struct vm {
  int kvm, vm, vcpu;
  uint8_t *ram;
  struct kvm_run *run;
};

static inline void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type) {
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = sel;
  s->type = type;
  s->present = 1;
  s->db = 1;
  s->s = 1;
  s->g = 1;
}

/* A VM with ram_size bytes of RAM at 0, an in-kernel irqchip, and vCPU 0 (host CPUID). */
static inline void vm_create(struct vm *v, size_t ram_size) {
  v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (v->kvm < 0) die("/dev/kvm");
  v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
  if (v->vm < 0) die("KVM_CREATE_VM");
  if (ioctl(v->vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) die("KVM_SET_TSS_ADDR");
  uint64_t idmap = 0xfeffc000;
  if (ioctl(v->vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(v->vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");

  v->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (v->ram == MAP_FAILED) die("mmap ram");
  struct kvm_userspace_memory_region region = {
    .slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uint64_t)(uintptr_t)v->ram,
  };
  if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");

  v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
  if (v->vcpu < 0) die("KVM_CREATE_VCPU");
  int run_size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
  v->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
  if (v->run == MAP_FAILED) die("mmap kvm_run");

  int nent = 256;
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
  if (cpuid == NULL) die("calloc");
  cpuid->nent = (uint32_t)nent;
  if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(v->vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");
  free(cpuid);
}

/*
 * vCPU 0 in flat 32-bit protected mode at rip (CPL0, no paging), rbx as given: the boot GDT
 * as nodevisor's (null, TSS 0x08, 32-bit code 0x10, data 0x18) written at BOOT_GDT, no IDT.
 */
static inline void vcpu_flat32(struct vm *v, uint32_t rip, uint32_t rbx) {
  uint64_t *gdt = (uint64_t *)(v->ram + BOOT_GDT);
  gdt[0] = 0;
  gdt[1] = 0x00008b0000000067ULL;
  gdt[2] = 0x00cf9b000000ffffULL;
  gdt[3] = 0x00cf93000000ffffULL;

  struct kvm_sregs sregs;
  if (ioctl(v->vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  flat_segment(&sregs.cs, 0x10, 0xb);
  flat_segment(&sregs.ds, 0x18, 0x3);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  memset(&sregs.tr, 0, sizeof sregs.tr);
  sregs.tr.selector = 0x08;
  sregs.tr.limit = 0x67;
  sregs.tr.type = 0xb;
  sregs.tr.present = 1;
  sregs.gdt.base = BOOT_GDT;
  sregs.gdt.limit = 4 * 8 - 1;
  sregs.idt.base = BOOT_GDT + 0x20;
  sregs.idt.limit = 0;
  sregs.cr0 = 0x11; /* PE | ET */
  sregs.cr3 = 0;
  sregs.cr4 = 0;
  sregs.efer = 0;
  if (ioctl(v->vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = rip;
  regs.rbx = rbx;
  regs.rflags = 2;
  if (ioctl(v->vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
}

/*
 * The debug loops' VM: one vCPU at `code` on `jmp $` (single-stepped: each KVM_RUN one
 * KVM_EXIT_DEBUG) or on `int3` (KVM_GUESTDBG_USE_SW_BP: each KVM_RUN stops on it).
 */
static inline void debug_vm_create(struct vm *v, size_t ram_size, uint32_t code, int int3) {
  vm_create(v, ram_size);
  if (int3) {
    v->ram[code] = 0xcc; /* int3 */
  } else {
    v->ram[code] = 0xeb; /* jmp $ */
    v->ram[code + 1] = 0xfe;
  }
  vcpu_flat32(v, code, 0);
  struct kvm_guest_debug dbg;
  memset(&dbg, 0, sizeof dbg);
  dbg.control = KVM_GUESTDBG_ENABLE | (int3 ? KVM_GUESTDBG_USE_SW_BP : KVM_GUESTDBG_SINGLESTEP);
  if (ioctl(v->vcpu, KVM_SET_GUEST_DEBUG, &dbg) < 0) die("KVM_SET_GUEST_DEBUG");
}

/*
 * One stop of the debug loops (kvm-singlestep.c, kvm-event-ipc.c), KVM_RUN again after an
 * EINTR: counted in *debug_exits or, for an INT3 a PVM host cannot intercept (emulation
 * failure, RIP on it), in *internal_errors; exits 3 on anything else.
 */
static inline void run_debug_exit(const struct vm *v, int int3, long *debug_exits, long *internal_errors) {
  while (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
    if (errno != EINTR) die("KVM_RUN");
  }
  const struct kvm_run *run = v->run;
  if (run->exit_reason == KVM_EXIT_DEBUG) {
    (*debug_exits)++;
    if (run->debug.arch.exception != (int3 ? 3u : 1u)) {
      fprintf(stderr, "debug exit with exception %u\n", run->debug.arch.exception);
      exit(3);
    }
  } else if (int3 && run->exit_reason == KVM_EXIT_INTERNAL_ERROR && run->internal.suberror == 1) {
    (*internal_errors)++;
  } else {
    fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
    exit(3);
  }
}

#endif
