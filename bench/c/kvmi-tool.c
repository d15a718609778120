/*
 * kvmi-tool: nodevisor's KVMI side measured from a tool that costs next to nothing, as a
 * libkvmi-based tool in C would be. It listens on a unix socket, accepts the VMM, answers its
 * handshake (no secret), checks GET_VERSION, then measures against the `spin` guest (`jmp $`):
 *   - READ_PHYSICAL round trips with vCPU 0 held by a PAUSE_VCPU event, one in flight, 4096
 *     bytes and then 8176 (the largest reply), gpa = ((i * 7) % slots) * 4096 in the first
 *     16 MiB, after 1000 warm-up reads each; then the same with 16 in flight (a new request
 *     as each reply arrives: throughput, where one in flight is latency);
 *   - single-step events on vCPU 0, each answered CONTINUE at once;
 *   - breakpoint events: an INT3 written over the `jmp $`, each answered RETRY, so the INT3
 *     runs again and is the next event.
 * Event times run from the first timed reply to the arrival of the last event, after 500
 * warm-up events, as bench/introspection.ts's roundTrips() does. Every reply's error, size,
 * id and seq, and every event's number, vCPU and size, is checked; anything unexpected ends
 * the program with a message on stderr and status 3 (a failed system call: status 2).
 *
 *   kvmi-tool SOCKET_PATH READS EVENTS any|same
 *     any    no affinity: VMM and tool may run on different CPUs
 *     same   pinned to one CPU (the first this process may use) before anything else; pin
 *            the VMM to it too (taskset) to have every wake-up a switch on that CPU
 *
 * It prints `listening` once the socket is ready, then, after the measurements, the line
 *   RESULT read4k_ns=N read4k_count=N readmax_ns=N readmax_count=N read4k_pipe_ns=N readmax_pipe_ns=N
 *          step_ns=N step_count=N int3_ns=N int3_count=N cpu=N
 * (the _pipe_ns over the same count as their one-in-flight runs)
 * each _ns the total over its _count timed round trips; cpu is the pinned CPU, or -1 for any.
 * Not part of nodevisor.
 */
#include "kvm-common.h"

#include <stdarg.h>
#include <stddef.h>
#include <sys/un.h>

/* kvmi-v7 message ids, event numbers and actions (src/introspection/wire/ids.ts). */
#define KVMI_EVENT_REPLY 0
#define KVMI_EVENT 1
#define KVMI_GET_VERSION 2
#define KVMI_PAUSE_VCPU 7
#define KVMI_CONTROL_EVENTS 9
#define KVMI_READ_PHYSICAL 17
#define KVMI_WRITE_PHYSICAL 18
#define KVMI_VCPU_CONTROL_SINGLESTEP 63

#define KVMI_EVENT_BREAKPOINT 4
#define KVMI_EVENT_PAUSE_VCPU 10
#define KVMI_EVENT_SINGLESTEP 11

#define KVMI_EVENT_ACTION_CONTINUE 0
#define KVMI_EVENT_ACTION_RETRY 1

#define KVMI_VERSION 1
/* KVMI_MSG_SIZE (two pages) minus the header; a reply's data also loses the error code. */
#define KVMI_MAX_PAYLOAD (8192 - 8)
#define KVMI_MAX_READ (KVMI_MAX_PAYLOAD - 8)

#define HELLO_MIN 32
#define HELLO_MAX 65536
#define READ_WINDOW (16u << 20)
#define READ_WARMUP 1000L
#define READ_DEPTH 16
#define EVENT_WARMUP 500L

struct kvmi_msg_hdr {
  uint16_t id;
  uint16_t size; /* payload bytes after the header */
  uint32_t seq;
};

struct kvmi_error_code {
  int32_t err;
  uint32_t padding;
};

struct kvmi_vcpu_hdr {
  uint16_t vcpu;
  uint16_t padding1;
  uint32_t padding2;
};

struct kvmi_get_version_reply {
  uint32_t version;
  uint32_t padding;
  uint8_t features[8]; /* spp, vmfunc, eptp, ve, padding */
};

struct kvmi_pause_vcpu {
  struct kvmi_vcpu_hdr hdr;
  uint8_t wait;
  uint8_t padding[7];
};

struct kvmi_control_events {
  struct kvmi_vcpu_hdr hdr;
  uint16_t event_id;
  uint8_t enable;
  uint8_t padding[5];
};

struct kvmi_vcpu_control_singlestep {
  struct kvmi_vcpu_hdr hdr;
  uint8_t enable;
  uint8_t padding[7];
};

struct kvmi_physical {
  uint64_t gpa;
  uint64_t size;
};

/* The common part of every event: x86 state as KVM lays it out, then nine MSRs. */
struct kvmi_event {
  uint16_t size; /* where the event-specific data starts */
  uint16_t vcpu;
  uint8_t event;
  uint8_t padding[3];
  uint8_t mode;
  uint8_t padding1;
  uint16_t view;
  uint32_t padding2;
  struct kvm_regs regs;
  struct kvm_sregs sregs;
  uint64_t msrs[9];
};

struct kvmi_event_breakpoint {
  uint64_t gpa;
  uint8_t insn_len;
  uint8_t padding[7];
};

struct kvmi_event_singlestep {
  uint8_t failed;
  uint8_t padding[7];
};

struct kvmi_event_reply {
  struct kvmi_vcpu_hdr hdr;
  uint8_t action;
  uint8_t event;
  uint8_t padding[6];
};

_Static_assert(sizeof(struct kvmi_event) == 544, "struct kvmi_event is 544 bytes on x86");
_Static_assert(offsetof(struct kvmi_event, regs) == 16 && offsetof(struct kvmi_event, msrs) == 472,
               "struct kvmi_event: regs at 16, msrs at 472");
_Static_assert(sizeof(struct kvmi_event_reply) == 16, "struct kvmi_event_reply is 16 bytes");

struct message {
  struct kvmi_msg_hdr hdr;
  _Alignas(8) uint8_t payload[KVMI_MAX_PAYLOAD];
};

static int sock = -1;
static uint32_t next_seq = 1;
/* Replies land in `reply`, events in `event`: an event may arrive while a reply is awaited. */
static struct message reply, event;
/* `event` holds an event not yet answered; vCPU 0 raises nothing else until it is. */
static int event_pending;
static struct message out;

/* Bytes read from the socket ahead of need: one read per message rather than two. */
static uint8_t inbuf[64 * 1024];
static size_t in_pos, in_len;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("kvmi-tool: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(3);
}

static void take(void *dst, size_t len) {
  uint8_t *to = dst;
  while (len > 0) {
    if (in_pos == in_len) {
      ssize_t n = read(sock, inbuf, sizeof inbuf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("read");
      if (n == 0) fail("the VM closed the connection");
      in_pos = 0;
      in_len = (size_t)n;
    }
    size_t k = in_len - in_pos < len ? in_len - in_pos : len;
    memcpy(to, inbuf + in_pos, k);
    in_pos += k;
    to += k;
    len -= k;
  }
}

/* Receives one message into `event` or `reply`; returns its id. */
static uint16_t receive(void) {
  struct kvmi_msg_hdr h;
  take(&h, sizeof h);
  if (h.size > KVMI_MAX_PAYLOAD) fail("message %u (seq %u) announces %u bytes", h.id, h.seq, h.size);
  struct message *m = &reply;
  if (h.id == KVMI_EVENT) {
    if (event_pending) fail("event (seq %u) while event seq %u is unanswered", h.seq, event.hdr.seq);
    event_pending = 1;
    m = &event;
  }
  m->hdr = h;
  take(m->payload, h.size);
  return h.id;
}

/* Header and payload in one write, as the VMM expects a message whole. */
static void send_message(uint16_t id, uint32_t seq, const void *payload, size_t size) {
  out.hdr = (struct kvmi_msg_hdr){id, (uint16_t)size, seq};
  memcpy(out.payload, payload, size);
  write_full(sock, &out, sizeof out.hdr + size);
}

/*
 * Sends a command and waits for its reply, which must carry exactly data_size bytes after a
 * zero error code. Returns the data, valid until the next message arrives.
 */
static const uint8_t *command(uint16_t id, const char *name, const void *req, size_t req_size, size_t data_size) {
  uint32_t seq = next_seq++;
  send_message(id, seq, req, req_size);
  while (receive() == KVMI_EVENT) continue; /* held in `event` for next_event() */
  if (reply.hdr.id != id || reply.hdr.seq != seq) {
    fail("%s (seq %u): got message %u (seq %u) instead of its reply", name, seq, reply.hdr.id, reply.hdr.seq);
  }
  struct kvmi_error_code ec;
  if (reply.hdr.size < sizeof ec) fail("%s: reply of %u bytes", name, reply.hdr.size);
  memcpy(&ec, reply.payload, sizeof ec);
  if (ec.err != 0) fail("%s: error %d (%u bytes)", name, ec.err, reply.hdr.size);
  if (reply.hdr.size != sizeof ec + data_size) {
    fail("%s: reply data of %u bytes, expected %zu", name, reply.hdr.size - (unsigned)sizeof ec, data_size);
  }
  return reply.payload + sizeof ec;
}

static const struct kvmi_event *held(void) {
  return (const struct kvmi_event *)event.payload;
}

static const void *event_data(void) {
  return event.payload + held()->size;
}

/*
 * The next event (or the one already held), which must be event number `id` from vCPU 0 with
 * data_size bytes of data; a single step must not have failed.
 */
static const struct kvmi_event *next_event(uint8_t id, size_t data_size) {
  while (!event_pending) {
    if (receive() != KVMI_EVENT) fail("message %u (seq %u) while no command is pending", reply.hdr.id, reply.hdr.seq);
  }
  const struct kvmi_event *e = held();
  if (event.hdr.size < sizeof *e || e->size < sizeof *e || event.hdr.size != e->size + data_size) {
    fail("event (seq %u) of %u bytes, common part %u", event.hdr.seq, event.hdr.size,
         event.hdr.size < sizeof *e ? 0u : e->size);
  }
  if (e->event != id || e->vcpu != 0) {
    fail("event %u from vCPU %u, expected event %u from vCPU 0", e->event, e->vcpu, id);
  }
  if (id == KVMI_EVENT_SINGLESTEP) {
    struct kvmi_event_singlestep d;
    memcpy(&d, event_data(), sizeof d);
    if (d.failed) fail("single step failed (seq %u)", event.hdr.seq);
  }
  return e;
}

static void reply_event(uint8_t action) {
  const struct kvmi_event *e = held();
  struct kvmi_event_reply r = {{e->vcpu, 0, 0}, action, e->event, {0}};
  send_message(KVMI_EVENT_REPLY, event.hdr.seq, &r, sizeof r);
  event_pending = 0;
}

static void pause_vcpu0(void) {
  struct kvmi_pause_vcpu q = {{0, 0, 0}, 1, {0}};
  command(KVMI_PAUSE_VCPU, "PAUSE_VCPU", &q, sizeof q, 0);
}

static void control_event(uint8_t id, int enable) {
  struct kvmi_control_events q = {{0, 0, 0}, id, (uint8_t)enable, {0}};
  command(KVMI_CONTROL_EVENTS, "CONTROL_EVENTS", &q, sizeof q, 0);
}

static void control_singlestep(int enable) {
  struct kvmi_vcpu_control_singlestep q = {{0, 0, 0}, (uint8_t)enable, {0}};
  command(KVMI_VCPU_CONTROL_SINGLESTEP, "VCPU_CONTROL_SINGLESTEP", &q, sizeof q, 0);
}

static const uint8_t *read_physical(uint64_t gpa, uint64_t size) {
  struct kvmi_physical q = {gpa, size};
  return command(KVMI_READ_PHYSICAL, "READ_PHYSICAL", &q, sizeof q, size);
}

static void write_byte(uint64_t gpa, uint8_t byte) {
  uint8_t q[sizeof(struct kvmi_physical) + 1];
  struct kvmi_physical h = {gpa, 1};
  memcpy(q, &h, sizeof h);
  q[sizeof h] = byte;
  command(KVMI_WRITE_PHYSICAL, "WRITE_PHYSICAL", q, sizeof q, 0);
}

/* ns for `count` reads of `size` bytes, one in flight, after READ_WARMUP untimed ones. */
static int64_t time_reads(uint64_t size, long count) {
  uint64_t slots = (READ_WINDOW - size) / 4096;
  int64_t t0 = 0;
  for (long i = 0; i < READ_WARMUP + count; i++) {
    if (i == READ_WARMUP) t0 = now_ns();
    read_physical(((uint64_t)i * 7 % slots) * 4096, size);
  }
  return now_ns() - t0;
}

/*
 * ns for `count` reads of `size` bytes with READ_DEPTH in flight, after READ_WARMUP untimed
 * ones: a request goes out as each reply comes in, and replies must come in order.
 */
static int64_t time_reads_pipelined(uint64_t size, long count) {
  uint64_t slots = (READ_WINDOW - size) / 4096;
  long total = READ_WARMUP + count, sent = 0;
  uint32_t first = next_seq;
  int64_t t0 = 0;
  for (; sent < READ_DEPTH && sent < total; sent++) {
    struct kvmi_physical q = {((uint64_t)sent * 7 % slots) * 4096, size};
    send_message(KVMI_READ_PHYSICAL, next_seq++, &q, sizeof q);
  }
  for (long done = 0; done < total; done++) {
    if (done == READ_WARMUP) t0 = now_ns();
    if (receive() == KVMI_EVENT) fail("an event during reads");
    struct kvmi_error_code ec;
    memcpy(&ec, reply.payload, sizeof ec);
    if (reply.hdr.id != KVMI_READ_PHYSICAL || reply.hdr.seq != first + (uint32_t)done || ec.err != 0
        || reply.hdr.size != sizeof ec + size) {
      fail("pipelined READ_PHYSICAL %ld: message %u (seq %u, err %d, %u bytes)", done, reply.hdr.id, reply.hdr.seq, ec.err,
           reply.hdr.size);
    }
    if (sent < total) {
      struct kvmi_physical q = {((uint64_t)sent * 7 % slots) * 4096, size};
      send_message(KVMI_READ_PHYSICAL, next_seq++, &q, sizeof q);
      sent++;
    }
  }
  return now_ns() - t0;
}

/*
 * Answers warm-up + count events of one kind with `action` as each arrives; ns over the last
 * `count`. The last event is left held, unanswered, for the caller to undo its hook first.
 */
static int64_t round_trips(uint8_t id, size_t data_size, uint8_t action, long count) {
  next_event(id, data_size);
  int64_t t0 = 0;
  for (long i = 0; i < EVENT_WARMUP + count; i++) {
    if (i == EVENT_WARMUP) t0 = now_ns();
    reply_event(action);
    next_event(id, data_size);
  }
  return now_ns() - t0;
}

static void listen_and_accept(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) fail("socket path too long: %s", path);
  strcpy(addr.sun_path, path);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  unlink(path);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(lfd, 1) < 0) die("listen");
  printf("listening\n");
  fflush(stdout);
  sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (sock < 0) die("accept");
  close(lfd);
  unlink(path);
}

/* The VM's hello (size-prefixed, its fields unused here), our answer, and GET_VERSION as libkvmi checks it. */
static void handshake(void) {
  uint32_t size;
  take(&size, sizeof size);
  if (size < HELLO_MIN || size > HELLO_MAX) fail("hello struct_size %u outside %u..%u", size, HELLO_MIN, HELLO_MAX);
  for (uint32_t left = size - sizeof size; left > 0;) {
    uint8_t skip[256];
    uint32_t k = left < sizeof skip ? left : (uint32_t)sizeof skip;
    take(skip, k);
    left -= k;
  }
  /* struct_size, then a cookie hash of zeros: no secret. */
  struct {
    uint32_t struct_size;
    uint8_t cookie_hash[20];
  } answer = {24, {0}};
  write_full(sock, &answer, sizeof answer);
  struct kvmi_get_version_reply v;
  memcpy(&v, command(KVMI_GET_VERSION, "GET_VERSION", NULL, 0, sizeof v), sizeof v);
  if (v.version != KVMI_VERSION) fail("KVMI version %u, expected %u", v.version, KVMI_VERSION);
}

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[4], "any") != 0 && strcmp(argv[4], "same") != 0) || atol(argv[2]) <= 0
      || atol(argv[3]) <= 0) {
    fprintf(stderr, "usage: %s SOCKET_PATH READS EVENTS any|same\n", argv[0]);
    return 2;
  }
  long reads = atol(argv[2]);
  long events = atol(argv[3]);
  int cpu = strcmp(argv[4], "same") == 0 ? pin_to_one_cpu() : -1;

  listen_and_accept(argv[1]);
  handshake();

  /* Reads with vCPU 0 held: its PAUSE_VCPU event stays unanswered meanwhile. */
  pause_vcpu0();
  next_event(KVMI_EVENT_PAUSE_VCPU, 0);
  int64_t read4k_ns = time_reads(4096, reads);
  int64_t readmax_ns = time_reads(KVMI_MAX_READ, reads);
  int64_t read4k_pipe_ns = time_reads_pipelined(4096, reads);
  int64_t readmax_pipe_ns = time_reads_pipelined(KVMI_MAX_READ, reads);
  reply_event(KVMI_EVENT_ACTION_CONTINUE);

  /* Single-step events on the guest's `jmp $`. */
  control_event(KVMI_EVENT_SINGLESTEP, 1);
  control_singlestep(1);
  int64_t step_ns =
    round_trips(KVMI_EVENT_SINGLESTEP, sizeof(struct kvmi_event_singlestep), KVMI_EVENT_ACTION_CONTINUE, events);
  control_singlestep(0);
  reply_event(KVMI_EVENT_ACTION_CONTINUE);
  control_event(KVMI_EVENT_SINGLESTEP, 0);

  /* Breakpoint events: an INT3 over the `jmp $` (flat 32-bit, no paging: RIP is the gpa). */
  pause_vcpu0();
  uint64_t rip = next_event(KVMI_EVENT_PAUSE_VCPU, 0)->regs.rip;
  const uint8_t *code = read_physical(rip, 2);
  if (code[0] != 0xeb || code[1] != 0xfe) {
    fail("expected jmp $ at 0x%llx, found %02x %02x", (unsigned long long)rip, code[0], code[1]);
  }
  control_event(KVMI_EVENT_BREAKPOINT, 1);
  write_byte(rip, 0xcc);
  reply_event(KVMI_EVENT_ACTION_CONTINUE);
  int64_t int3_ns =
    round_trips(KVMI_EVENT_BREAKPOINT, sizeof(struct kvmi_event_breakpoint), KVMI_EVENT_ACTION_RETRY, events);
  const struct kvmi_event *last = held();
  struct kvmi_event_breakpoint bp;
  memcpy(&bp, event_data(), sizeof bp);
  if (last->regs.rip != rip || bp.gpa != rip || bp.insn_len != 1) {
    fail("breakpoint at rip 0x%llx gpa 0x%llx (length %u), not on the INT3 at 0x%llx",
         (unsigned long long)last->regs.rip, (unsigned long long)bp.gpa, bp.insn_len, (unsigned long long)rip);
  }
  write_byte(rip, 0xeb);
  reply_event(KVMI_EVENT_ACTION_RETRY);
  control_event(KVMI_EVENT_BREAKPOINT, 0);

  printf("RESULT read4k_ns=%lld read4k_count=%ld readmax_ns=%lld readmax_count=%ld read4k_pipe_ns=%lld readmax_pipe_ns=%lld "
         "step_ns=%lld step_count=%ld int3_ns=%lld int3_count=%ld cpu=%d\n",
         (long long)read4k_ns, reads, (long long)readmax_ns, reads, (long long)read4k_pipe_ns, (long long)readmax_pipe_ns,
         (long long)step_ns, events, (long long)int3_ns, events, cpu);
  close(sock);
  return 0;
}
