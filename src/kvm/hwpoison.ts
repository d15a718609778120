/**
 * Hardware memory errors on guest RAM: the host facilities a VMM (and its tests) need.
 *
 * - Collecting the SIGBUS the kernel sends for a poisoned page (KVM sends BUS_MCEERR_AR to the
 *   vCPU thread whose guest touched it; the kernel's early-kill sends BUS_MCEERR_AO to one
 *   thread of the process). Both are thread-directed and not forced, so a thread that blocks
 *   SIGBUS collects them with sigtimedwait. See docs/memory-failure.md.
 * - Injecting the machine check into the guest: KVM_X86_SETUP_MCE / KVM_X86_SET_MCE.
 * - Making poisoned pages for tests without harming the host: UFFDIO_POISON (Linux 6.6+) puts
 *   a poison marker in this process's page table; KVM then sees the page as hardware-poisoned
 *   (SIGBUS BUS_MCEERR_AR, exactly as for a real error) and MADV_DONTNEED removes the marker
 *   again. MADV_HWPOISON poisons the physical page itself (lost until reboot) and needs
 *   CONFIG_MEMORY_FAILURE, which the development host's kernel does not have.
 * - Reading host memory without dying on poison (pread on /proc/self/mem fails with EIO where a
 *   load would raise a SIGBUS the process cannot survive).
 *
 * Bindings live here rather than in libc.ts so that nothing else changes; the KVM request
 * numbers belong in ioctls.ts when this is wired in.
 */
import koffi from 'koffi';
import {
  close, errno, getpid, gettid, ioctlPtr, open, O_CLOEXEC, pthreadSigmask, SIG_BLOCK, sigset, sigtimedwait, timespec,
} from './libc.js';
import { errnoName } from './errno.js';
import { decodeSiginfo, encodeFaultSiginfo, SIGBUS, siginfoBuffer, type SigInfo } from './siginfo.js';

export { BUS_MCEERR_AO, BUS_MCEERR_AR } from './siginfo.js';

const libc = koffi.load('libc.so.6');
const madviseAt = libc.func('int madvise(uint64_t addr, size_t len, int advice)') as
  (addr: bigint, len: number, advice: number) => number;
const mmapAt = libc.func('uint64_t mmap(uint64_t addr, size_t len, int prot, int flags, int fd, int64_t off)') as
  (addr: bigint, len: number, prot: number, flags: number, fd: number, off: number) => number | bigint;
const munmapAt = libc.func('int munmap(uint64_t addr, size_t len)') as (addr: bigint, len: number) => number;
const prctl5 = libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as
  (option: number, a2: number, a3: number, a4: number, a5: number) => number;
const preadAt = libc.func('long pread(int fd, void *buf, size_t count, int64_t offset)') as
  (fd: number, buf: Uint8Array, count: number, offset: bigint) => number;
const syscall = libc.func('long syscall(long number, ...)') as (nr: number, ...typesAndArgs: unknown[]) => number;

const SYS_RT_TGSIGQUEUEINFO = 297;
const SYS_USERFAULTFD = 323;

export const MADV_DONTNEED = 4;
const MADV_DONTDUMP = 16;
/** Poison the physical page(s) behind a range (root, CONFIG_MEMORY_FAILURE). Permanent. */
export const MADV_HWPOISON = 100;
/** Migrate the data away and retire the physical page (root, CONFIG_MEMORY_FAILURE). */
export const MADV_SOFT_OFFLINE = 101;

export const PR_MCE_KILL = 33;
export const PR_MCE_KILL_GET = 34;
export const PR_MCE_KILL_CLEAR = 0;
export const PR_MCE_KILL_SET = 1;
export const PR_MCE_KILL_LATE = 0;
export const PR_MCE_KILL_EARLY = 1;
export const PR_MCE_KILL_DEFAULT = 2;

const PAGE = 4096;
const PROT_RW = 3;
const MAP_SHARED = 0x01;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;

function fail(what: string, e = errno()): never {
  const err = new Error(`${what}: ${errnoName(e)}`) as Error & { errno: number };
  err.errno = e;
  throw err;
}

function checkRange(hostAddress: bigint, len: number): void {
  if (hostAddress % BigInt(PAGE) !== 0n || len <= 0 || len % PAGE !== 0) {
    throw new RangeError(`not a page range: 0x${hostAddress.toString(16)} + ${len}`);
  }
}

// --- SIGBUS collection -----------------------------------------------------------------

const sigbusSet = sigset(SIGBUS);
const zeroTimeout = timespec(0);

/**
 * Blocks SIGBUS in the calling thread, so that the kernel's memory-error SIGBUS stays pending
 * for takeSigbus instead of killing the process. Do not also block it in the KVM_RUN mask
 * (KVM_SET_SIGNAL_MASK): a vCPU whose guest touches poison would then spin inside KVM_RUN.
 * A SIGBUS the kernel *forces* (this thread's own load or store hit a bad page) ignores the
 * block and kills the process all the same.
 */
export function blockSigbus(): void {
  if (pthreadSigmask(SIG_BLOCK, sigbusSet, null) !== 0) throw new Error('pthread_sigmask(SIG_BLOCK, SIGBUS) failed');
}

/** A pending SIGBUS of the calling thread (or of the process), consumed; null when none. */
export function takeSigbus(): SigInfo | null {
  const info = siginfoBuffer();
  return sigtimedwait(sigbusSet, info, zeroTimeout) === SIGBUS ? decodeSiginfo(info) : null;
}

/**
 * Queues a SIGBUS with the given si_code/si_addr/si_addr_lsb to the calling thread itself
 * (rt_tgsigqueueinfo): a stand-in for the kernel's memory-error signal in tests. Linux lets a
 * thread queue a kernel-style si_code (> 0) only to itself (EPERM for any other thread, even
 * from root). Block SIGBUS first (blockSigbus), or the default action kills the process.
 */
export function queueSigbusToSelf(code: number, hostAddress: bigint, addrLsb = 12): void {
  const info = encodeFaultSiginfo(SIGBUS, code, hostAddress, addrLsb);
  const r = Number(syscall(SYS_RT_TGSIGQUEUEINFO, 'int', getpid(), 'int', gettid(), 'int', SIGBUS, 'void *', info));
  if (r < 0) fail('rt_tgsigqueueinfo(SIGBUS)');
}

export type MceKillPolicy = 'early' | 'late' | 'default';

/**
 * prctl(PR_MCE_KILL) for the calling thread. 'early': the kernel sends BUS_MCEERR_AO to this
 * thread as soon as it finds a poisoned page mapped by the process (needs
 * CONFIG_MEMORY_FAILURE to ever happen). Threads created afterwards inherit the setting, and
 * the kernel picks the first early-kill thread of the process, so call it on the thread that
 * collects AO signals and not before creating other threads.
 */
export function setMceKillPolicy(policy: MceKillPolicy): void {
  const r = policy === 'default'
    ? prctl5(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, 0, 0)
    : prctl5(PR_MCE_KILL, PR_MCE_KILL_SET, policy === 'early' ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE, 0, 0);
  if (r < 0) fail('prctl(PR_MCE_KILL)');
}

export function getMceKillPolicy(): MceKillPolicy {
  const r = prctl5(PR_MCE_KILL_GET, 0, 0, 0, 0);
  if (r < 0) fail('prctl(PR_MCE_KILL_GET)');
  return r === PR_MCE_KILL_EARLY ? 'early' : r === PR_MCE_KILL_LATE ? 'late' : 'default';
}

// --- Poisoning pages (tests) ------------------------------------------------------------

/**
 * Whether MADV_HWPOISON exists on this kernel (CONFIG_MEMORY_FAILURE). Probed with an empty
 * range, which the kernel accepts without touching anything when the advice is valid.
 */
export function madvHwpoisonSupported(): boolean {
  const p = mmapAt(0n, PAGE, PROT_RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  const addr = BigInt(p);
  if (addr === 0xffffffffffffffffn) return false;
  try {
    return madviseAt(addr, 0, MADV_HWPOISON) === 0;
  } finally {
    munmapAt(addr, PAGE);
  }
}

/**
 * MADV_HWPOISON: poisons the physical pages behind the range for real (root only). The pages
 * are lost to the host until reboot (the debugfs unpoison-pfn of hwpoison-inject can give
 * back software-poisoned ones). Since Linux 6.6 the kernel treats the call as
 * action-required: the calling thread gets a forced SIGBUS BUS_MCEERR_AR when the page is
 * mapped and dirty, which kills a Node process. Returns 0 or the errno (EINVAL without
 * CONFIG_MEMORY_FAILURE, EPERM without CAP_SYS_ADMIN). Use poisonPages in tests.
 */
export function madviseHwpoison(hostAddress: bigint, len: number): number {
  checkRange(hostAddress, len);
  return madviseAt(hostAddress, len, MADV_HWPOISON) === 0 ? 0 : errno();
}

// userfaultfd(2) and its ioctls (<linux/userfaultfd.h>; UFFDIO_POISON is Linux 6.6+).
const UFFD_API = 0xaan;
const UFFD_FEATURE_POISON = 1n << 14n;
const UFFDIO_API = 0xc018aa3f;
const UFFDIO_REGISTER = 0xc020aa00;
const UFFDIO_UNREGISTER = 0x8010aa01;
const UFFDIO_POISON = 0xc020aa08;
const UFFDIO_REGISTER_MODE_MISSING = 1n;
const O_NONBLOCK = 0o4000;

function openUffd(): { fd: number; features: bigint } | null {
  const fd = Number(syscall(SYS_USERFAULTFD, 'int', O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) return null;
  const api = new Uint8Array(24); // struct uffdio_api { u64 api, features, ioctls }
  const v = new DataView(api.buffer);
  v.setBigUint64(0, UFFD_API, true);
  v.setBigUint64(8, UFFD_FEATURE_POISON, true);
  if (ioctlPtr(fd, UFFDIO_API, api) < 0) {
    close(fd);
    return null;
  }
  return { fd, features: v.getBigUint64(8, true) };
}

/** Whether poisonPages works here: userfaultfd with UFFD_FEATURE_POISON (Linux 6.6+). */
export function uffdPoisonSupported(): boolean {
  const u = openUffd();
  if (!u) return false;
  close(u.fd);
  return (u.features & UFFD_FEATURE_POISON) !== 0n;
}

function rangeBytes(size: number, hostAddress: bigint, len: number): Uint8Array {
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, hostAddress, true);
  v.setBigUint64(8, BigInt(len), true);
  return b;
}

/**
 * Makes [hostAddress, +len) read as hardware-poisoned for this process, without harming the
 * host: the PTEs are zapped (MADV_DONTNEED; shared memory keeps its contents in the page
 * cache), the range is registered with a userfaultfd just long enough for UFFDIO_POISON to
 * install poison markers, then unregistered (markers stay). Afterwards:
 * - a guest access through KVM: SIGBUS BUS_MCEERR_AR, si_addr = page, lsb 12, to the vCPU
 *   thread (the same signal a real hardware error produces);
 * - a direct load/store by this process: a forced SIGBUS (BUS_ADRERR on a kernel without
 *   CONFIG_MEMORY_FAILURE, BUS_MCEERR_AR with it), which kills the process;
 * - kernel copies (pread of /proc/self/mem, write(2) from it): EIO / EFAULT.
 * clearPoison() undoes it. Throws when the kernel cannot (see uffdPoisonSupported).
 */
export function poisonPages(hostAddress: bigint, len: number): void {
  checkRange(hostAddress, len);
  const u = openUffd();
  if (!u) fail('userfaultfd');
  try {
    if ((u.features & UFFD_FEATURE_POISON) === 0n) fail('UFFD_FEATURE_POISON', 95 /* EOPNOTSUPP */);
    if (madviseAt(hostAddress, len, MADV_DONTNEED) !== 0) fail('madvise(MADV_DONTNEED)');
    const reg = rangeBytes(32, hostAddress, len); // struct uffdio_register { range; u64 mode, ioctls }
    new DataView(reg.buffer).setBigUint64(16, UFFDIO_REGISTER_MODE_MISSING, true);
    if (ioctlPtr(u.fd, UFFDIO_REGISTER, reg) < 0) fail('UFFDIO_REGISTER');
    try {
      const po = rangeBytes(32, hostAddress, len); // struct uffdio_poison { range; u64 mode; s64 updated }
      if (ioctlPtr(u.fd, UFFDIO_POISON, po) < 0) fail('UFFDIO_POISON');
      const updated = new DataView(po.buffer).getBigInt64(24, true);
      if (updated !== BigInt(len)) fail(`UFFDIO_POISON poisoned ${updated} of ${len} bytes`, 5 /* EIO */);
    } finally {
      // Unregistered, so no access to the range ever waits on this (closed) userfaultfd.
      ioctlPtr(u.fd, UFFDIO_UNREGISTER, rangeBytes(16, hostAddress, len));
    }
  } finally {
    close(u.fd);
  }
}

/**
 * Removes poisonPages' markers (MADV_DONTNEED). Shared memory (guest RAM) reads back what it
 * held before; private memory reads back zeros. Does nothing for a page poisoned for real:
 * use replacePages for that.
 */
export function clearPoison(hostAddress: bigint, len: number): void {
  checkRange(hostAddress, len);
  if (madviseAt(hostAddress, len, MADV_DONTNEED) !== 0) fail('madvise(MADV_DONTNEED)');
}

/**
 * Puts fresh zeroed shared anonymous pages over [hostAddress, +len) (mmap MAP_FIXED), dropping
 * whatever was there, poisoned or not. QEMU does this to every guest page it saw poisoned
 * when the machine resets (kvm_unpoison_all -> qemu_ram_remap), so the rebooted guest does
 * not hit the same bad page. KVM follows the new pages through its MMU notifier.
 */
export function replacePages(hostAddress: bigint, len: number): void {
  checkRange(hostAddress, len);
  const p = BigInt(mmapAt(hostAddress, len, PROT_RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  if (p !== hostAddress) fail('mmap(MAP_FIXED)');
  madviseAt(hostAddress, len, MADV_DONTDUMP); // as the rest of guest RAM (memory/ram.ts)
}

let procSelfMem = -1;

/**
 * Copies host memory at `hostAddress` into `dest` through the kernel (pread on
 * /proc/self/mem) instead of a load: a poisoned page makes it return the errno (EIO) rather
 * than raise a SIGBUS that kills the process. Returns 0 on success. One syscall per call:
 * for the VMM's own non-hot accesses to guest RAM after a memory error has been seen.
 */
export function copyFromHost(hostAddress: bigint, dest: Uint8Array): number {
  if (procSelfMem < 0) {
    procSelfMem = open('/proc/self/mem', O_CLOEXEC /* O_RDONLY */);
    if (procSelfMem < 0) return errno();
  }
  let done = 0;
  while (done < dest.length) {
    const n = preadAt(procSelfMem, dest.subarray(done), dest.length - done, hostAddress + BigInt(done));
    if (n < 0) return errno();
    if (n === 0) return 5; // EIO
    done += n;
  }
  return 0;
}

// --- Machine-check injection (KVM) -------------------------------------------------------

// _IOW/_IOR(KVMIO, nr, size): move to ioctls.ts when wired in.
export const KVM_X86_SETUP_MCE = 0x4008ae9c;
export const KVM_X86_GET_MCE_CAP_SUPPORTED = 0x8008ae9d;
export const KVM_X86_SET_MCE = 0x4040ae9e;
/** KVM_CHECK_EXTENSION(KVM_CAP_MCE) answers the number of banks KVM supports. */
export const KVM_CAP_MCE = 31;
export const KVM_X86_MCE_BYTES = 64;

/** struct kvm_x86_mce: the bank registers KVM_X86_SET_MCE loads and the #MC it raises. */
export interface X86Mce {
  bank: number;
  status: bigint;
  addr: bigint;
  misc: bigint;
  mcgStatus: bigint;
}

/** struct kvm_x86_mce { u64 status, addr, misc, mcg_status; u8 bank; u8 pad1[7]; u64 pad2[3] }. */
export function encodeX86Mce(m: X86Mce): Uint8Array {
  const b = new Uint8Array(KVM_X86_MCE_BYTES);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, m.status, true);
  v.setBigUint64(8, m.addr, true);
  v.setBigUint64(16, m.misc, true);
  v.setBigUint64(24, m.mcgStatus, true);
  v.setUint8(32, m.bank);
  return b;
}

/** KVM_X86_GET_MCE_CAP_SUPPORTED (on /dev/kvm): the MCG_CAP bits KVM can emulate. */
export function supportedMceCap(kvmFd: number): bigint {
  const b = new Uint8Array(8);
  if (ioctlPtr(kvmFd, KVM_X86_GET_MCE_CAP_SUPPORTED, b) < 0) fail('KVM_X86_GET_MCE_CAP_SUPPORTED');
  return new DataView(b.buffer).getBigUint64(0, true);
}

/**
 * KVM_X86_SETUP_MCE: gives the vCPU machine-check banks (MCG_CAP; low byte = bank count).
 * Also sets MCG_CTL and every MCi_CTL to all ones, i.e. reporting enabled.
 */
export function setupMce(vcpuFd: number, mcgCap: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, mcgCap, true);
  if (ioctlPtr(vcpuFd, KVM_X86_SETUP_MCE, b) < 0) fail('KVM_X86_SETUP_MCE');
}

/**
 * KVM_X86_SET_MCE, from the vCPU's own thread while it is out of KVM_RUN. KVM applies the
 * architectural rules itself and answers 0 in every case: with an uncorrected error and
 * CR4.MCE clear or MCG_STATUS.MCIP already set it raises a triple fault (the next KVM_RUN
 * exits with KVM_EXIT_SHUTDOWN); with MCG_CTL or the bank's MCi_CTL not all ones it drops
 * the error. So decide first (see runstate/memory-failure.ts), and inject only for 'inject'.
 */
export function setMce(vcpuFd: number, mce: X86Mce): void {
  if (ioctlPtr(vcpuFd, KVM_X86_SET_MCE, encodeX86Mce(mce)) < 0) fail('KVM_X86_SET_MCE');
}
