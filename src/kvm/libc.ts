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

/** A sigset_t with the given signals set. */
export function sigset(...signals: number[]): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  for (const s of signals) set[(s - 1) >> 3]! |= 1 << ((s - 1) & 7);
  return set;
}
