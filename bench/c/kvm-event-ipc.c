/*
 * kvm-event-ipc: the floor under an introspection event round trip with the tool in another
 * process. kvm-singlestep.c's bare KVM_RUN loop (one vCPU, flat 32-bit CPL0, `jmp $` single-
 * stepped or `int3` stopped on), plus, per exit, what any VMM must do for a tool elsewhere:
 * write the event to a forked "tool" process over a unix socketpair and block until its reply
 * arrives, then KVM_RUN again. The tool answers each event at once. Nothing is decoded and no
 * vCPU state is read (a KVMI event carries registers: a real VMM pays for reading them too),
 * so this is a lower bound for any VMM on this host.
 *
 *   kvm-event-ipc singlestep|int3 COUNT EVENT_BYTES REPLY_BYTES any|same
 *     any    no affinity: VMM and tool may run on different CPUs
 *     same   both pinned to one CPU (the first this process may use)
 *
 * The last stdout line is
 *   RESULT exits=N debug_exits=N internal_errors=N event_bytes=N reply_bytes=N cpu=N setup_ns=N run_ns=N
 * cpu is the CPU both ran on, or -1 for any; run_ns covers COUNT exits, each with its round
 * trip, after 1000 warm-up ones. Built and run by bench/introspection.ts; not part of nodevisor.
 */
#include "kvm-common.h"

#define RAM_SIZE (2u << 20)
#define CODE 0x1000u
#define WARMUP 1000L

int main(int argc, char **argv) {
  if (argc < 6 || (strcmp(argv[1], "singlestep") != 0 && strcmp(argv[1], "int3") != 0)
      || (strcmp(argv[5], "any") != 0 && strcmp(argv[5], "same") != 0) || atol(argv[3]) <= 0 || atol(argv[4]) <= 0) {
    fprintf(stderr, "usage: %s singlestep|int3 COUNT EVENT_BYTES REPLY_BYTES any|same\n", argv[0]);
    return 2;
  }
  int int3 = strcmp(argv[1], "int3") == 0;
  long count = atol(argv[2]);
  size_t event_size = (size_t)atol(argv[3]);
  size_t reply_size = (size_t)atol(argv[4]);
  int cpu = strcmp(argv[5], "same") == 0 ? pin_to_one_cpu() : -1;
  int64_t t_setup = now_ns();

  /* The tool first: forked before /dev/kvm is opened, it holds no VM file descriptors. */
  int tool_fd;
  pid_t tool = start_peer(&tool_fd, event_size, reply_size);
  char *event = calloc(1, event_size), *reply = malloc(reply_size);
  if (event == NULL || reply == NULL) die("malloc");

  struct vm v;
  debug_vm_create(&v, RAM_SIZE, CODE, int3);

  long debug_exits = 0, internal_errors = 0;
  int64_t t_run0 = 0;
  for (long i = 0; i < WARMUP + count; i++) {
    if (i == WARMUP) t_run0 = now_ns();
    run_debug_exit(&v, int3, &debug_exits, &internal_errors);
    /* The event to the tool, and the vCPU stays stopped until the reply is in. */
    memcpy(event, &v.run->debug.arch, sizeof v.run->debug.arch < event_size ? sizeof v.run->debug.arch : event_size);
    write_full(tool_fd, event, event_size);
    if (!read_full(tool_fd, reply, reply_size)) {
      fprintf(stderr, "kvm-event-ipc: the tool closed the socket\n");
      return 3;
    }
  }
  int64_t t_end = now_ns();
  stop_peer(tool_fd, tool);
  printf("RESULT exits=%ld debug_exits=%ld internal_errors=%ld event_bytes=%zu reply_bytes=%zu cpu=%d setup_ns=%lld "
         "run_ns=%lld\n",
         count, debug_exits, internal_errors, event_size, reply_size, cpu, (long long)(t_run0 - t_setup),
         (long long)(t_end - t_run0));
  return 0;
}
