/*
 * kvm-singlestep: the bare-cost reference for nodevisor's introspection event benchmark.
 * A minimal VMM in C: one vCPU in flat 32-bit protected mode (CPL0, no paging, the same
 * GDT/segments as kvm-ioloop.c and nodevisor's PVH entry) on a few bytes of code at 0x1000,
 * and KVM_RUN in a tight loop that counts debug exits. No tool, no decoding, no register reads.
 *
 *   kvm-singlestep singlestep COUNT   code `jmp $`; KVM_SET_GUEST_DEBUG(ENABLE | SINGLESTEP):
 *                                     every instruction is a KVM_EXIT_DEBUG (exception 1)
 *   kvm-singlestep int3 COUNT         code `int3`; KVM_SET_GUEST_DEBUG(ENABLE | USE_SW_BP): each
 *                                     KVM_RUN stops on the INT3 and is run again as it stands
 *                                     (KVM_EXIT_DEBUG, or on a PVM host an emulation failure,
 *                                     KVM_EXIT_INTERNAL_ERROR suberror 1, RIP on the INT3)
 *
 * The last stdout line is
 *   RESULT exits=N debug_exits=N internal_errors=N setup_ns=N run_ns=N
 * run_ns covers COUNT exits, after 1000 warm-up exits. Built and run by bench/introspection.ts;
 * not part of nodevisor.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE (2u << 20)
#define BOOT_GDT 0x500u
#define CODE 0x1000u
#define WARMUP 1000L

static void die(const char *what) {
  perror(what);
  exit(2);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type) {
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

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "singlestep") != 0 && strcmp(argv[1], "int3") != 0)) {
    fprintf(stderr, "usage: %s singlestep|int3 COUNT\n", argv[0]);
    return 2;
  }
  int int3 = strcmp(argv[1], "int3") == 0;
  long count = atol(argv[2]);
  int64_t t_setup = now_ns();

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) die("KVM_SET_TSS_ADDR");
  uint64_t idmap = 0xfeffc000;
  if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");

  uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) die("mmap ram");
  struct kvm_userspace_memory_region region = {
    .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)ram,
  };
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");

  /* Boot GDT as nodevisor's: null, TSS (0x08), 32-bit code (0x10), data (0x18). */
  uint64_t *gdt = (uint64_t *)(ram + BOOT_GDT);
  gdt[0] = 0;
  gdt[1] = 0x00008b0000000067ULL;
  gdt[2] = 0x00cf9b000000ffffULL;
  gdt[3] = 0x00cf93000000ffffULL;
  if (int3) {
    ram[CODE] = 0xcc; /* int3 */
  } else {
    ram[CODE] = 0xeb; /* jmp $ */
    ram[CODE + 1] = 0xfe;
  }

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size < 0) die("KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  int nent = 256;
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + (size_t)nent * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = (uint32_t)nent;
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");

  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
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
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = CODE;
  regs.rflags = 2;
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

  struct kvm_guest_debug dbg;
  memset(&dbg, 0, sizeof dbg);
  dbg.control = KVM_GUESTDBG_ENABLE | (int3 ? KVM_GUESTDBG_USE_SW_BP : KVM_GUESTDBG_SINGLESTEP);
  if (ioctl(vcpu, KVM_SET_GUEST_DEBUG, &dbg) < 0) die("KVM_SET_GUEST_DEBUG");

  long debug_exits = 0, internal_errors = 0;
  int64_t t_run0 = 0;
  for (long i = 0; i < WARMUP + count; i++) {
    if (i == WARMUP) t_run0 = now_ns();
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) {
        i--;
        continue;
      }
      die("KVM_RUN");
    }
    if (run->exit_reason == KVM_EXIT_DEBUG) {
      debug_exits++;
      if (run->debug.arch.exception != (int3 ? 3u : 1u)) {
        fprintf(stderr, "kvm-singlestep: debug exit with exception %u\n", run->debug.arch.exception);
        return 3;
      }
    } else if (int3 && run->exit_reason == KVM_EXIT_INTERNAL_ERROR && run->internal.suberror == 1) {
      internal_errors++;
    } else {
      fprintf(stderr, "kvm-singlestep: unexpected exit reason %u\n", run->exit_reason);
      return 3;
    }
  }
  int64_t t_end = now_ns();
  printf("RESULT exits=%ld debug_exits=%ld internal_errors=%ld setup_ns=%lld run_ns=%lld\n", count, debug_exits,
         internal_errors, (long long)(t_run0 - t_setup), (long long)(t_end - t_run0));
  return 0;
}
