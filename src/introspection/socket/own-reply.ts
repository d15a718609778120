/**
 * A vCPU thread reading the tool's reply to its own event from the socket itself, so the
 * reply wakes the vCPU and no other thread: on one CPU, the same two context switches per
 * event as a C VMM, instead of three with the socket thread between (docs/performance.md).
 *
 * The vCPU takes the reading side as it sends (EventSlots.trySend with ownRead), which takes
 * the socket out of the socket thread's epoll meanwhile. It reads exactly as many bytes as
 * its reply has, and keeps them only when they are exactly the reply the socket thread would
 * have settled itself (direct-reply.ts). Anything else (a command, another vCPU's reply, part
 * of a frame, a closed connection, a tool slower than `waitMs`) goes back to the socket
 * thread with the reading side, bytes read included, and the vCPU waits for its answer the
 * ordinary way.
 */
import { EAGAIN, EINTR } from '../../kvm/errno.js';
import { errno, MSG_DONTWAIT, poll, POLLIN, recv } from '../../kvm/libc.js';
import { eventReplyDataSize } from '../wire/events.js';
import { KVMI_HEADER_SIZE } from '../wire/header.js';
import { dialect } from '../wire/ids.js';
import { matchDirectReply } from './direct-reply.js';
import { CARRY_BYTES, type EventSlots } from './event-slots.js';

/** struct kvmi_vcpu_hdr and struct kvmi_event_reply, before the event's own reply data. */
const EVENT_REPLY_HEAD = 16;
const got = new Uint8Array(CARRY_BYTES);
const gotView = new DataView(got.buffer);
/** Bytes of `got` read so far. */
let have = 0;
const pollfd = new Uint8Array(8);
const pollView = new DataView(pollfd.buffer);

/**
 * Waits for the reply to `vcpu`'s own event on the socket: polling without sleeping for up
 * to `spinUs`, then sleeping in poll() up to `waitMs` in all. Either way the reading side is
 * back with the socket thread on return, and the answer, once given, is in the slots
 * (EventSlots.takeAnswer): true if it is there already. Call only while `slots.reading(vcpu)`.
 */
export function readOwnReply(slots: EventSlots, vcpu: number, spinUs: number, waitMs: number): boolean {
  have = 0;
  let answered = false;
  try {
    answered = read(slots, vcpu, spinUs, waitMs);
    return answered;
  } finally {
    slots.stopReading(vcpu, answered || have === 0 ? undefined : got.subarray(0, have));
  }
}

function read(slots: EventSlots, vcpu: number, spinUs: number, waitMs: number): boolean {
  const out = slots.direct(vcpu);
  const event = out === undefined ? undefined : dialect(slots.dialect).event(out.event);
  if (out === undefined || event === undefined) return false;
  const length = KVMI_HEADER_SIZE + EVENT_REPLY_HEAD + eventReplyDataSize(event);
  if (length > CARRY_BYTES) return false;
  const fd = slots.socketFd;
  const start = performance.now();
  const spinUntil = start + spinUs / 1000;
  const until = start + waitMs;
  for (;;) {
    const n = recv(fd, have === 0 ? got : got.subarray(have), length - have, MSG_DONTWAIT);
    if (n > 0) {
      have += n;
      // struct kvmi_msg_hdr {u16 id; u16 size; u32 seq}: not this reply, not the vCPU's to read.
      if (have >= KVMI_HEADER_SIZE && (gotView.getUint16(2, true) !== length - KVMI_HEADER_SIZE || gotView.getUint32(4, true) !== out.seq)) return false;
      if (have === length) return settle(slots, vcpu, length);
      continue;
    }
    if (n === 0) return false; // the tool closed the connection: the socket thread sees to it
    const e = errno();
    if (e !== EAGAIN && e !== EINTR) return false;
    const now = performance.now();
    if (now >= until) return false;
    if (now < spinUntil) continue;
    pollView.setInt32(0, fd, true);
    pollView.setInt16(4, POLLIN, true);
    pollView.setInt16(6, 0, true);
    poll(pollfd, 1, Math.max(1, Math.ceil(until - now)));
  }
}

/** A whole frame of the reply's size and seq is in `got`: the vCPU's answer if it is its reply. */
function settle(slots: EventSlots, vcpu: number, length: number): boolean {
  const frame = { id: gotView.getUint16(0, true), size: length - KVMI_HEADER_SIZE, seq: gotView.getUint32(4, true), payload: got.subarray(KVMI_HEADER_SIZE, length) };
  const reply = matchDirectReply(slots, frame);
  if (reply === null || reply.vcpu !== vcpu) return false;
  // The session may have settled the event meanwhile (the tool left, or unhooked): the reply
  // is then stale, as the session would have found it, and the answer already given counts.
  if (slots.answer(vcpu, reply.seq, reply.action)) slots.noticeAnswered(vcpu);
  return true;
}
