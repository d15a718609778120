/*
 * socket-pingpong: the floor under every KVMI round trip between two processes on this host.
 * A client and a forked server on a unix stream socketpair: the client writes a 16-byte
 * request, the server answers it with REPLY_BYTES bytes, the client reads them all; both
 * block in read. No encoding, no copying beyond the socket's own: what any tool talking to
 * any VMM over a socket pays at least, per request.
 *
 *   socket-pingpong REPLY_BYTES COUNT DEPTH any|same
 *     DEPTH  requests in flight (1: each waits for the previous reply, as libkvmi's reads)
 *     any    no affinity: client and server may run on different CPUs (a wake-up may be an
 *            inter-processor interrupt, which is expensive on a PVM host)
 *     same   both pinned to one CPU (the first this process may use): a wake-up is a switch
 *
 * The last stdout line is
 *   RESULT round_trips=N reply_bytes=N depth=N cpu=N run_ns=N
 * cpu is the CPU both ran on, or -1 for any; run_ns covers COUNT round trips after 1000
 * warm-up ones. Built and run by bench/introspection.ts; not part of nodevisor.
 */
#include "kvm-common.h"

#define REQUEST 16
#define WARMUP 1000L

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[4], "any") != 0 && strcmp(argv[4], "same") != 0) || atol(argv[1]) <= 0
      || atol(argv[2]) <= 0 || atol(argv[3]) <= 0) {
    fprintf(stderr, "usage: %s REPLY_BYTES COUNT DEPTH any|same\n", argv[0]);
    return 2;
  }
  size_t reply_size = (size_t)atol(argv[1]);
  long count = atol(argv[2]);
  long depth = atol(argv[3]);
  int cpu = strcmp(argv[4], "same") == 0 ? pin_to_one_cpu() : -1;

  int fd;
  pid_t server = start_peer(&fd, REQUEST, reply_size);
  char request[REQUEST] = {0};
  char *reply = malloc(reply_size);
  if (reply == NULL) die("malloc");

  long total = WARMUP + count, sent = 0;
  int64_t t0 = 0;
  for (; sent < depth && sent < total; sent++) write_full(fd, request, REQUEST);
  for (long received = 0; received < total; received++) {
    if (received == WARMUP) t0 = now_ns();
    if (!read_full(fd, reply, reply_size)) {
      fprintf(stderr, "socket-pingpong: the server closed the socket\n");
      return 3;
    }
    if (sent < total) {
      write_full(fd, request, REQUEST);
      sent++;
    }
  }
  int64_t t1 = now_ns();
  stop_peer(fd, server);
  printf("RESULT round_trips=%ld reply_bytes=%zu depth=%ld cpu=%d run_ns=%lld\n", count, reply_size, depth, cpu,
         (long long)(t1 - t0));
  return 0;
}
