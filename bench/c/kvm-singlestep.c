/*
 * kvm-singlestep: the bare-cost reference for nodevisor's introspection event benchmark.
 * A minimal VMM in C: one vCPU in flat 32-bit protected mode (CPL0, no paging, kvm-common.h's
 * vcpu_flat32, as nodevisor's PVH entry) on a few bytes of code at 0x1000,
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
#include "kvm-common.h"

#define RAM_SIZE (2u << 20)
#define CODE 0x1000u
#define WARMUP 1000L

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[1], "singlestep") != 0 && strcmp(argv[1], "int3") != 0)) {
    fprintf(stderr, "usage: %s singlestep|int3 COUNT\n", argv[0]);
    return 2;
  }
  int int3 = strcmp(argv[1], "int3") == 0;
  long count = atol(argv[2]);
  int64_t t_setup = now_ns();

  struct vm v;
  debug_vm_create(&v, RAM_SIZE, CODE, int3);

  long debug_exits = 0, internal_errors = 0;
  int64_t t_run0 = 0;
  for (long i = 0; i < WARMUP + count; i++) {
    if (i == WARMUP) t_run0 = now_ns();
    run_debug_exit(&v, int3, &debug_exits, &internal_errors);
  }
  int64_t t_end = now_ns();
  printf("RESULT exits=%ld debug_exits=%ld internal_errors=%ld setup_ns=%lld run_ns=%lld\n", count, debug_exits,
         internal_errors, (long long)(t_run0 - t_setup), (long long)(t_end - t_run0));
  return 0;
}
