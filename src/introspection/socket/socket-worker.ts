/**
 * The KVMI socket thread: owns the tool's socket, reads and writes it with plain syscalls
 * around one epoll, and cuts the input into frames. A READ_PHYSICAL that nothing before it
 * is still waiting on is answered here, straight from guest RAM, and the reply to a vCPU's
 * own event (event-slots.ts) wakes that vCPU from here; every other frame goes to the session
 * on the main thread, in order, and the session's messages come back here to be written.
 * Node's event loop is not on the path of a read or an event: one wake-up of this thread per
 * message, as in a C VMM.
 *
 * Order: a frame is settled here only when the session has handled every frame forwarded
 * before it (so a WRITE_PHYSICAL or SET_REGISTERS before it has landed, and replies are known
 * to be on). Bounds: reading stops while 256 frames wait for the session or 4 MiB wait for
 * the tool.
 *
 * Between frames, with nothing waiting for the session, the thread lends the reading side to
 * a vCPU that reads the reply to its own event itself (own-reply.ts); the vCPU takes the
 * socket out of this thread's epoll meanwhile and puts it back when done. So the socket is
 * registered twice: the descriptor itself for reading (its interest set under the slots'
 * lock, by whoever reads), and a duplicate for writing, which only this thread touches.
 */
import { availableParallelism } from 'node:os';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';

import { EAGAIN, EINTR, errnoName } from '../../kvm/errno.js';
import {
  addressOf, close, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_EVENT_SIZE, epollCreate1, epollCtl, EPOLLERR, EPOLLHUP,
  EPOLLIN, EPOLLOUT, epollWait, errno, F_DUPFD_CLOEXEC, fcntlInt, MAP_ANONYMOUS, MAP_SHARED, mmap, MSG_NOSIGNAL, PROT_READ,
  PROT_WRITE, read, send, viewAt, writevAt,
} from '../../kvm/libc.js';
import { FrameReader } from '../wire/frame-reader.js';
import { encodeReply, KVMI_ERROR_CODE_SIZE, KVMI_HEADER_SIZE, KVMI_MAX_REPLY_DATA, type Frame } from '../wire/header.js';
import { dialect } from '../wire/ids.js';
import { matchDirectReply } from './direct-reply.js';
import { EventSlots } from './event-slots.js';
import type { FromSocketThread, SocketWorkerData, ToSocketThread } from './messages.js';

const MAX_FORWARDED = 256;
/**
 * Before sleeping in poll(), the thread polls without sleeping for up to SPIN_US while the
 * tool's messages have been following each other closely (SPIN_UNTIL_US apart on average),
 * as QEMU's iothreads do (poll-max-ns): a wake-up from another CPU costs tens of µs on a PVM
 * host. Never on one CPU, where it would keep the tool off it.
 */
const SPIN_US = 50;
const SPIN_UNTIL_US = 200;
const spinning = availableParallelism() > 1;
/** How long the thread waited for the tool's next message, of late (µs, a moving average). */
let gapUs = 0;
const MAX_QUEUED_BYTES = 4 << 20;
/** How long a closing thread keeps trying to deliver what is queued to a tool that does not read. */
const CLOSE_FLUSH_MS = 1000;

const data = workerData as SocketWorkerData;
const port = data.port;
const fd = data.fd;
const numbering = dialect(data.dialect);
const readPhysicalId = numbering.commandId('READ_PHYSICAL');
const slots = data.slots === null ? null : new EventSlots(data.slots.buffer, data.slots.doorbells);
const ram = data.ram.map((r) => ({
  // A user-space address fits in 47 bits: a Number, so a read needs no bigint arithmetic.
  gpa: r.gpa, size: r.size, host: Number(r.hostAddress), bytes: new Uint8Array(viewAt(r.hostAddress, r.size)),
}));

/**
 * A READ_PHYSICAL reply leaves with one writev straight from guest RAM: its 16-byte header
 * and the iovec pair live in a page of this thread's own, at a fixed address.
 */
const REPLY_HEAD = KVMI_HEADER_SIZE + KVMI_ERROR_CODE_SIZE;
const scratch = mmap(4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
if (scratch === null) throw new Error('socket thread: cannot map its scratch page');
const scratchAddress = addressOf(scratch);
const scratchView = new DataView(viewAt(scratchAddress, 64));
const IOV = 32;
const scratchIov = scratchAddress + BigInt(IOV);
scratchView.setBigUint64(IOV, scratchAddress, true);
scratchView.setBigUint64(IOV + 8, BigInt(REPLY_HEAD), true);

const reader = new FrameReader();
const input = new Uint8Array(64 << 10);
const inputView = new DataView(input.buffer);
const wakeBuffer = new Uint8Array(8);

// The epoll: what each registration's data says it is.
const SOCKET = 0;
const OUTPUT = 1;
const WAKE = 2;
const epfd = epollCreate1(EPOLL_CLOEXEC);
/** The socket once more, registered for writability alone. */
const outFd = fcntlInt(fd, F_DUPFD_CLOEXEC, 0);
if (epfd < 0 || outFd < 0) throw new Error(`socket thread: ${errnoName(errno())}`);
const epollEvents = new Uint8Array(EPOLL_EVENT_SIZE * 3);
const epollView = new DataView(epollEvents.buffer);
const oneEvent = new Uint8Array(EPOLL_EVENT_SIZE);
const oneView = new DataView(oneEvent.buffer);

function epoll(op: number, target: number, events: number, tag: number): void {
  oneView.setUint32(0, events, true);
  oneView.setBigUint64(4, BigInt(tag), true);
  if (epollCtl(epfd, op, target, oneEvent) < 0) throw new Error(`epoll_ctl: ${errnoName(errno())}`);
}
epoll(EPOLL_CTL_ADD, fd, EPOLLIN, SOCKET);
epoll(EPOLL_CTL_ADD, outFd, 0, OUTPUT);
epoll(EPOLL_CTL_ADD, data.wakeFd, EPOLLIN, WAKE);

let wantIn = true;
/**
 * Whether this thread reads; a vCPU reading its own reply overrides it meanwhile (EventSlots).
 * No interest also means no hang-up report (epoll, unlike poll). Each reason to stop reading
 * ends on its own: the session drains what it was given, output waiting for the tool is
 * watched on the duplicate (which reports a hang-up), a broken stream closes the connection.
 */
function readInterest(want: boolean): void {
  if (want === wantIn) return;
  wantIn = want;
  if (slots === null) {
    epoll(EPOLL_CTL_MOD, fd, want ? EPOLLIN : 0, SOCKET);
    return;
  }
  slots.lock();
  try {
    slots.setWantIn(want);
  } finally {
    slots.unlock();
  }
}

let wantOut = false;
function writeInterest(want: boolean): void {
  if (want === wantOut) return;
  wantOut = want;
  epoll(EPOLL_CTL_MOD, outFd, want ? EPOLLOUT : 0, OUTPUT);
}

const queue: Uint8Array[] = [];
let queuedBytes = 0;
/** Bytes of queue[0] already sent. */
let sentOfFirst = 0;
/** Frames forwarded to the session and not yet handled. */
let forwarded = 0;
let replies = true;
let peerGone = false;
/** The input broke the framing: nothing more is read. */
let broken = false;
let closeBy = 0;

function post(m: FromSocketThread): void {
  port.postMessage(m);
}

function enqueue(bytes: Uint8Array): void {
  if (peerGone) return;
  queue.push(bytes);
  queuedBytes += bytes.length;
}

/** The connection is gone: `error` says why when the tool did not simply close it. */
function lost(error?: string): void {
  if (peerGone) return;
  peerGone = true;
  queue.length = 0;
  queuedBytes = 0;
  sentOfFirst = 0;
  post({ type: 'peer-closed', ...(error !== undefined ? { error } : {}) });
}

/**
 * Answers a READ_PHYSICAL of RAM; false when the session must (errors included). With nothing
 * queued the reply is written from guest RAM directly; otherwise it is copied to the queue.
 * Decoded here by hand, as the session's codec would (struct kvmi_physical {u64 gpa; u64
 * size}, nothing else): on the path of every read, no bigint and no object is made.
 */
function readPhysical(f: Frame): boolean {
  const p = f.payload;
  if (f.id !== readPhysicalId || ram.length === 0 || p.length !== 16) return false;
  const v = p.buffer === input.buffer ? inputView : new DataView(p.buffer, p.byteOffset, 16);
  const at0 = p.buffer === input.buffer ? p.byteOffset : 0;
  const gpaHigh = v.getUint32(at0 + 4, true);
  const sizeHigh = v.getUint32(at0 + 12, true);
  const size = v.getUint32(at0 + 8, true);
  // Above 2^53 (gpa) or KVMI_MAX_REPLY_DATA (size), or none: the session answers.
  if (gpaHigh >= 0x200000 || sizeHigh !== 0 || size === 0 || size > KVMI_MAX_REPLY_DATA) return false;
  const gpa = gpaHigh * 0x1_0000_0000 + v.getUint32(at0, true);
  let r;
  for (const x of ram) {
    if (gpa >= x.gpa && gpa + size <= x.gpa + x.size) {
      r = x;
      break;
    }
  }
  if (r === undefined) return false;
  const at = gpa - r.gpa;
  if (queue.length > 0 || !writeFromRam(f, r.host + at, size)) {
    enqueue(encodeReply(f.id, f.seq, 0, r.bytes.subarray(at, at + size)));
  }
  return true;
}

/** One writev of header + `size` guest bytes at host address `address`; false if nothing was sent (queue it instead). */
function writeFromRam(f: Frame, address: number, size: number): boolean {
  scratchView.setUint16(0, f.id, true);
  scratchView.setUint16(2, KVMI_ERROR_CODE_SIZE + size, true);
  scratchView.setUint32(4, f.seq, true);
  scratchView.setUint32(8, 0, true); // err 0
  scratchView.setUint32(12, 0, true); // padding
  scratchView.setUint32(IOV + 16, address % 0x1_0000_0000, true);
  scratchView.setUint32(IOV + 20, Math.floor(address / 0x1_0000_0000), true);
  scratchView.setUint32(IOV + 24, size, true);
  scratchView.setUint32(IOV + 28, 0, true);
  let n: number;
  let e: number;
  slots?.lock();
  try {
    do {
      n = writevAt(fd, scratchIov, 2);
      e = n < 0 ? errno() : 0;
    } while (e === EINTR);
  } finally {
    slots?.unlock();
  }
  if (n < 0) {
    if (e === EAGAIN) return false;
    lost(`writev: ${errnoName(e)}`);
    return true;
  }
  // A unix stream socket takes a message this small whole or not at all; part of one would
  // leave the stream broken, so the connection ends (as for a vCPU's own event).
  if (n < REPLY_HEAD + size) lost(`writev: ${n} of ${REPLY_HEAD + size} bytes`);
  return true;
}

/** Answers a vCPU's own event when the reply settles it without the session (direct-reply.ts). */
function answerDirect(f: Frame): boolean {
  if (slots === null) return false;
  const r = matchDirectReply(slots, f);
  if (r === null || !slots.answer(r.vcpu, r.seq, r.action)) return false;
  // The session may have queued an event for this vCPU meanwhile: it can go out now.
  if (slots.queued(r.vcpu) > 0) post({ type: 'direct-answered', vcpu: r.vcpu });
  return true;
}

function dispatch(frames: Frame[]): void {
  let forward: Frame[] | null = null;
  for (const f of frames) {
    if (forwarded === 0 && answerDirect(f)) continue;
    if (forwarded === 0 && replies && readPhysical(f)) continue;
    (forward ??= []).push(f);
    forwarded++;
  }
  if (forward !== null) post({ type: 'frames', frames: forward });
}

function receive(bytes: Uint8Array): void {
  let frames: Frame[];
  try {
    frames = reader.push(bytes);
  } catch (e) {
    broken = true;
    post({ type: 'violation', message: (e as Error).message });
    return;
  }
  dispatch(frames);
}

/** Reads what the socket has; true if it had anything. */
function readSocket(): boolean {
  let got = false;
  for (;;) {
    const n = read(fd, input, input.length);
    if (n > 0) {
      got = true;
      receive(input.subarray(0, n));
      if (n < input.length || broken) return got;
      continue;
    }
    if (n === 0) {
      lost();
      return got;
    }
    const e = errno();
    if (e === EINTR) continue;
    if (e !== EAGAIN) lost(`read: ${errnoName(e)}`);
    return got;
  }
}

/** Sends what is queued, under the write lock the vCPUs share (they write their own events). */
function flush(): void {
  if (queue.length === 0) return;
  slots?.lock();
  try {
    sendQueued();
  } finally {
    slots?.setBacklog(queue.length > 0);
    slots?.unlock();
  }
}

function sendQueued(): void {
  while (queue.length > 0 && !peerGone) {
    const first = queue[0]!;
    const rest = sentOfFirst === 0 ? first : first.subarray(sentOfFirst);
    const n = send(fd, rest, rest.length, MSG_NOSIGNAL);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      if (e !== EAGAIN) lost(`send: ${errnoName(e)}`);
      return;
    }
    sentOfFirst += n;
    if (sentOfFirst === first.length) {
      queue.shift();
      queuedBytes -= first.length;
      sentOfFirst = 0;
    }
  }
}

function serveMainThread(): void {
  read(data.wakeFd, wakeBuffer, 8);
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    const msg = m.message as ToSocketThread;
    switch (msg.type) {
      case 'write':
        enqueue(msg.bytes);
        break;
      case 'handled':
        forwarded--;
        replies = msg.replies;
        break;
      case 'close':
        closeBy ||= Date.now() + CLOSE_FLUSH_MS;
        break;
    }
  }
  for (const vcpu of slots?.takeNotices() ?? []) post({ type: 'direct-answered', vcpu });
}

function run(): void {
  if (data.initial.length > 0) receive(data.initial);
  flush();
  /** This thread read and answered the last time round: the tool may have sent more already. */
  let readMore = false;
  for (;;) {
    if (closeBy !== 0 && (queue.length === 0 || peerGone || Date.now() >= closeBy)) return;
    const reading = !peerGone && !broken && closeBy === 0 && forwarded < MAX_FORWARDED && queuedBytes < MAX_QUEUED_BYTES;
    // A tool woken by a reply often sends its next request before this thread runs on (one
    // CPU): read it without an epoll_wait first, still holding the reading side.
    if (readMore && reading) {
      readMore = readSocket();
      flush();
      if (readMore) continue;
    }
    readInterest(reading);
    writeInterest(queue.length > 0 && !peerGone);
    // A vCPU may read its own reply next only at a frame boundary, with the session caught up.
    slots?.leaveReading(reading && forwarded === 0 && reader.buffered === 0);
    const idle = performance.now();
    let n = 0;
    if (spinning && reading && gapUs < SPIN_UNTIL_US) {
      const until = idle + SPIN_US / 1000;
      do n = epollWait(epfd, epollEvents, 3, 0); while (n === 0 && performance.now() < until);
    }
    if (n === 0) n = epollWait(epfd, epollEvents, 3, closeBy === 0 ? -1 : Math.max(0, closeBy - Date.now()));
    // While a vCPU reads its own reply, the socket is not this thread's to read. One that
    // hands back bytes it read is about to let go: wait for it, then take them first.
    let mayRead = slots === null || slots.takeReading();
    if (!mayRead && slots !== null && slots.carrying) {
      slots.waitForReaders();
      mayRead = true;
    }
    const carried = mayRead ? slots?.takeCarried() ?? null : null;
    if (carried !== null && !broken && !peerGone) receive(carried);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new Error(`epoll_wait: ${errnoName(e)}`);
    }
    let wake = false;
    let ready = 0;
    for (let i = 0; i < n; i++) {
      const events = epollView.getUint32(i * EPOLL_EVENT_SIZE, true);
      const tag = epollView.getUint32(i * EPOLL_EVENT_SIZE + 4, true); // data's low half: the tags are small
      if (tag === WAKE) wake = true;
      else ready |= tag === SOCKET ? events : events & (EPOLLHUP | EPOLLERR);
    }
    if (wake) serveMainThread();
    if ((ready & EPOLLIN) !== 0) gapUs = 0.75 * gapUs + 0.25 * (performance.now() - idle) * 1000;
    if (mayRead && (ready & EPOLLIN) !== 0 && reading) readMore = readSocket();
    else if (mayRead && (ready & (EPOLLHUP | EPOLLERR)) !== 0) lost('the connection broke');
    flush();
  }
}

if (slots !== null) {
  slots.lock();
  slots.openSocket(fd, epfd, data.wakeFd);
  slots.unlock();
}
try {
  run();
} finally {
  if (slots !== null) {
    slots.lock();
    slots.closeSocket();
    slots.unlock();
    slots.waitForReaders();
  }
  close(fd);
  close(outFd);
  close(epfd);
  port.close();
}
