/**
 * The libc calls nodevisor makes, through koffi. Loaded once per thread (a worker gets its
 * own copy of this module). Every call that can fail returns -1 and leaves errno set;
 * `errno()` reads it right after the call, on the same thread.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
/** ioctl with a pointer argument: a Uint8Array/Buffer (passed by address) or null. */
export const ioctlPtr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as
  (fd: number, request: number, arg: Uint8Array | null) => number;
/** ioctl with an integer argument (KVM_CREATE_VCPU, KVM_CHECK_EXTENSION, KVM_RUN ...). */
export const ioctlVal = libc.func('ioctl', 'int', ['int', 'unsigned long', 'uint64_t']) as
  (fd: number, request: number, arg: bigint) => number;
const mmapRaw = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
const munmapRaw = libc.func('int munmap(void *addr, size_t len)');
const madviseRaw = libc.func('int madvise(void *addr, size_t len, int advice)');
const errnoLocation = libc.func('int *__errno_location()');
const strerrorRaw = libc.func('const char *strerror(int errnum)') as (e: number) => string;
export const getpid = libc.func('int getpid()') as () => number;
export const gettid = libc.func('int gettid()') as () => number;
export const tgkill = libc.func('int tgkill(int tgid, int tid, int sig)') as (tgid: number, tid: number, sig: number) => number;
/** pthread_sigmask(how, set, oldset): sigset_t is 128 bytes in glibc. */
export const pthreadSigmask = libc.func('int pthread_sigmask(int how, void *set, void *oldset)') as
  (how: number, set: Uint8Array, oldset: Uint8Array | null) => number;
export const sigtimedwait = libc.func('int sigtimedwait(void *set, void *info, void *timeout)') as
  (set: Uint8Array, info: Uint8Array | null, timeout: Uint8Array) => number;

/** Sockets and descriptors for the KVMI socket thread (src/introspection/socket/). */
export const socket = libc.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number;
export const connect = libc.func('int connect(int fd, void *addr, int len)') as (fd: number, addr: Uint8Array, len: number) => number;
export const dup = libc.func('int dup(int fd)') as (fd: number) => number;
/** fcntl with an int argument (F_DUPFD_CLOEXEC); glibc's x86-64 fcntl takes it in a register either way. */
export const fcntlInt = libc.func('fcntl', 'int', ['int', 'int', 'int']) as (fd: number, cmd: number, arg: number) => number;
export const read = libc.func('long read(int fd, void *buf, unsigned long count)') as (fd: number, buf: Uint8Array, count: number) => number;
export const send = libc.func('long send(int fd, void *buf, unsigned long count, int flags)') as
  (fd: number, buf: Uint8Array, count: number, flags: number) => number;
export const write = libc.func('long write(int fd, void *buf, unsigned long count)') as (fd: number, buf: Uint8Array, count: number) => number;
/** writev with the iovec array given by address (memory nodevisor mapped itself). */
export const writevAt = libc.func('writev', 'long', ['int', 'uint64_t', 'int']) as (fd: number, iov: bigint, iovcnt: number) => number;
/** poll(struct pollfd *fds, nfds, timeout ms): struct pollfd is {int fd; short events; short revents}. */
export const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)') as (fds: Uint8Array, nfds: number, timeout: number) => number;
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)') as (initval: number, flags: number) => number;
export const shutdown = libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number;
export const recv = libc.func('long recv(int fd, void *buf, unsigned long count, int flags)') as
  (fd: number, buf: Uint8Array, count: number, flags: number) => number;
export const epollCreate1 = libc.func('int epoll_create1(int flags)') as (flags: number) => number;
/** epoll_ctl(epfd, op, fd, event): struct epoll_event is packed, {u32 events; u64 data}, 12 bytes. */
export const epollCtl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as
  (epfd: number, op: number, fd: number, event: Uint8Array | null) => number;
export const epollWait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as
  (epfd: number, events: Uint8Array, maxevents: number, timeout: number) => number;

/**
 * futex(2) through glibc's syscall(), whose x86-64 version only moves registers, so it is
 * declared with fixed arguments: (SYS_futex, address, op, value, timeout).
 */
const futexRaw = libc.func('syscall', 'long', ['long', 'uint64_t', 'int', 'int', 'void *']) as
  (nr: number, address: bigint, op: number, value: number, timeout: Uint8Array | null) => number;
const SYS_futex = 202;
const FUTEX_WAIT_PRIVATE = 128;
const FUTEX_WAKE_PRIVATE = 129;
/** memmove(p, p, 0) returns p: here, the address koffi passes for a typed array. */
const identity = libc.func('memmove', 'uint64_t', ['void *', 'void *', 'size_t']) as
  (dst: Int32Array, src: Int32Array, n: number) => number | bigint;

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTDUMP = 16;
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIGSET_BYTES = 128;
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MSG_NOSIGNAL = 0x4000;
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const SHUT_RDWR = 2;
export const F_DUPFD_CLOEXEC = 1030;
export const MSG_DONTWAIT = 0x40;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLL_EVENT_SIZE = 12;
/** What write() adds one to an eventfd with (a u64 of 1). */
export const EVENTFD_ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/** The opaque pointer koffi returns for a `void *`. */
export type Pointer = object;

export function errno(): number {
  return koffi.decode(errnoLocation(), 'int') as number;
}

export function strerror(e: number): string {
  return strerrorRaw(e);
}

/** mmap returning null on failure (errno set). */
export function mmap(len: number, prot: number, flags: number, fd: number, offset = 0): Pointer | null {
  const p = mmapRaw(null, len, prot, flags, fd, offset) as Pointer;
  return koffi.address(p) === 0xffffffffffffffffn ? null : p;
}

export function munmap(p: Pointer, len: number): number {
  return munmapRaw(p, len) as number;
}

export function madvise(p: Pointer, len: number, advice: number): number {
  return madviseRaw(p, len, advice) as number;
}

export function addressOf(p: Pointer): bigint {
  return koffi.address(p);
}

/** An ArrayBuffer over host memory at `address` (from any thread of the process). */
export function viewAt(address: bigint, len: number): ArrayBuffer {
  return koffi.view(address, len);
}

/**
 * The address of element `index` of a SharedArrayBuffer's Int32Array. koffi hands C the
 * typed array's own memory, and a SharedArrayBuffer's memory never moves.
 */
export function addressOfWord(words: Int32Array, index: number): bigint {
  if (!(words.buffer instanceof SharedArrayBuffer)) throw new TypeError('only shared memory has a fixed address');
  return BigInt(identity(words, words, 0)) + BigInt(index * 4);
}

/**
 * Sleeps while the 32-bit word at `address` holds `expected` (FUTEX_WAIT), at most `timeout`
 * (a struct timespec, relative) when given. Returns 0 when woken, -1 with errno set otherwise
 * (EAGAIN: the word had changed; ETIMEDOUT; EINTR).
 */
export function futexWait(address: bigint, expected: number, timeout: Uint8Array | null): number {
  return futexRaw(SYS_futex, address, FUTEX_WAIT_PRIVATE, expected, timeout);
}

/** Wakes up to `count` threads sleeping in futexWait on `address`; returns how many. */
export function futexWake(address: bigint, count: number): number {
  return futexRaw(SYS_futex, address, FUTEX_WAKE_PRIVATE, count, null);
}

/** A struct timespec: a relative timeout for futexWait or sigtimedwait. */
export function timespec(ms: number): Uint8Array {
  const t = new Uint8Array(16);
  const v = new DataView(t.buffer);
  v.setBigInt64(0, BigInt(Math.floor(ms / 1000)), true);
  v.setBigInt64(8, BigInt(Math.floor((ms % 1000) * 1e6)), true);
  return t;
}

/** A sigset_t with the given signals set. */
export function sigset(...signals: number[]): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  for (const s of signals) set[(s - 1) >> 3]! |= 1 << ((s - 1) & 7);
  return set;
}
