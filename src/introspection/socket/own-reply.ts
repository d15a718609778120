/**
 * A vCPU thread reading the tool's reply to its own event from the socket itself, so the
 * reply wakes the vCPU and no other thread: on one CPU, the same two context switches per
 * event as a C VMM, instead of three with the socket thread between (docs/performance.md).
 *
 * The vCPU takes the reading side as it sends (EventSlots.trySend with ownRead), which takes
 * the socket out of the socket thread's epoll meanwhile. It then only peeks: a frame is
 * taken off the socket only when it is, whole, exactly the reply the socket thread would
 * have settled itself (direct-reply.ts). Anything else (a command, another vCPU's reply, a
 * closed connection, a tool slower than `waitMs`) hands the reading side back untouched, and
 * the vCPU waits for its answer the ordinary way.
 */
import { EAGAIN, EINTR } from '../../kvm/errno.js';
import { errno, MSG_DONTWAIT, MSG_PEEK, poll, POLLIN, recv, SHUT_RDWR, shutdown } from '../../kvm/libc.js';
import { KVMI_HEADER_SIZE } from '../wire/header.js';
import { matchDirectReply } from './direct-reply.js';
import type { EventSlots } from './event-slots.js';

/** Longer than any event reply (header, kvmi_vcpu_hdr, kvmi_event_reply, reply data). */
const PEEK_BYTES = 64;
const peeked = new Uint8Array(PEEK_BYTES);
const peekedView = new DataView(peeked.buffer);
const taken = new Uint8Array(PEEK_BYTES);
const pollfd = new Uint8Array(8);
const pollView = new DataView(pollfd.buffer);

/**
 * Waits for the reply to `vcpu`'s own event on the socket: polling without sleeping for up
 * to `spinUs`, then sleeping in poll() up to `waitMs` in all. Either way the reading side is
 * back with the socket thread on return, and the answer, once given, is in the slots
 * (EventSlots.takeAnswer): true if it is there already. Call only while `slots.reading(vcpu)`.
 */
export function readOwnReply(slots: EventSlots, vcpu: number, spinUs: number, waitMs: number): boolean {
  try {
    return read(slots, vcpu, spinUs, waitMs);
  } finally {
    slots.stopReading(vcpu);
  }
}

function read(slots: EventSlots, vcpu: number, spinUs: number, waitMs: number): boolean {
  const fd = slots.socketFd;
  const start = performance.now();
  const spinUntil = start + spinUs / 1000;
  const until = start + waitMs;
  for (;;) {
    const n = recv(fd, peeked, PEEK_BYTES, MSG_PEEK | MSG_DONTWAIT);
    if (n === 0) return false; // the tool closed the connection: the socket thread sees to it
    if (n < 0) {
      const e = errno();
      if (e !== EAGAIN && e !== EINTR) return false;
    } else if (n >= KVMI_HEADER_SIZE) {
      const length = KVMI_HEADER_SIZE + peekedView.getUint16(2, true);
      if (length > PEEK_BYTES) return false;
      if (n >= length) return take(slots, vcpu, fd, length);
    }
    const now = performance.now();
    if (now >= until) return false;
    if (now < spinUntil) continue;
    pollView.setInt32(0, fd, true);
    pollView.setInt16(4, POLLIN, true);
    pollView.setInt16(6, 0, true);
    poll(pollfd, 1, Math.max(1, Math.ceil(until - now)));
  }
}

/** The whole first frame is in `peeked`: takes it off the socket if it is this vCPU's reply. */
function take(slots: EventSlots, vcpu: number, fd: number, length: number): boolean {
  const v = peekedView;
  const frame = { id: v.getUint16(0, true), size: v.getUint16(2, true), seq: v.getUint32(4, true), payload: peeked.subarray(KVMI_HEADER_SIZE, length) };
  const reply = matchDirectReply(slots, frame);
  if (reply === null || reply.vcpu !== vcpu) return false;
  let n: number;
  do n = recv(fd, taken, length, MSG_DONTWAIT); while (n < 0 && errno() === EINTR);
  if (n !== length) {
    // Peeked whole, and nobody else reads: the stream cannot be trusted any more.
    shutdown(fd, SHUT_RDWR);
    return false;
  }
  // The session may have settled the event meanwhile (the tool left, or unhooked): the reply
  // is then stale, as the session would have found it, and the answer already given counts.
  if (!slots.answer(vcpu, reply.seq, reply.action)) return false;
  slots.noticeAnswered(vcpu);
  return true;
}
