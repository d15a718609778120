/**
 * The KVM API through koffi: /dev/kvm, a VM, a vCPU. Thin and synchronous; every failure
 * becomes a KvmError naming the ioctl and the errno. Objects are cheap handles over file
 * descriptors, so a worker thread can rebuild a KvmVcpu from the fd number it is given.
 */
import { NodevisorError } from '../errors.js';
import type { Hypervisor, HypervisorVcpu, HypervisorVm, RunResult } from '../hypervisor/hypervisor.js';
import type { Regs, Sregs } from '../hypervisor/x86-state.js';
import { KVM_CAP, type KvmCapName } from './capabilities.js';
import { EAGAIN, EFAULT, EHWPOISON, EINTR, errnoName } from './errno.js';
import * as K from './ioctls.js';
import { KvmError } from './kvm-error.js';
import { stateBlock } from './state-block.js';
import { setMce, setupMce, supportedMceCap, type X86Mce } from './hwpoison.js';
import {
  addressOf, close, errno, ioctlPtr, ioctlVal, mmap, munmap, MAP_ANONYMOUS, MAP_SHARED, O_CLOEXEC, O_RDWR, open, PROT_READ, PROT_WRITE,
  viewAt, type Pointer,
} from './libc.js';
import {
  decodeCpuid2, decodeMsrs, decodeRegs, decodeSregs, encodeCpuid2, encodeMemoryRegion, encodeMsrs, encodeRegs,
  encodeSregs, KVM_FPU_SIZE, KVM_LAPIC_STATE_SIZE, KVM_REGS_SIZE, KVM_SREGS_SIZE, REGS_RIP, SREGS,
  encodeIrqRouting, KVM_RUN, KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS, type CpuidEntryData, type IrqRoute, type MsrEntry,
} from './structs.js';

export const KVM_API_VERSION = 12;
export const KVM_DEVICE = '/dev/kvm';

function check(call: number | string, ret: number): number {
  if (ret < 0) throw new KvmError(typeof call === 'string' ? call : (K.IOCTL_NAMES.get(call) ?? `ioctl 0x${call.toString(16)}`), errno());
  return ret;
}

function ioctl(fd: number, req: number, arg: Uint8Array | null): number {
  return check(req, ioctlPtr(fd, req, arg));
}

function ioctlInt(fd: number, req: number, arg: bigint | number = 0n): number {
  return check(req, ioctlVal(fd, req, BigInt(arg)));
}

/** The hypervisor: /dev/kvm. */
export class Kvm implements Hypervisor {
  private constructor(readonly fd: number) {}

  /** Opens /dev/kvm, with an error that names the device and the fix when it cannot. */
  static open(path = KVM_DEVICE): Kvm {
    const fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      const fix = e === 2 ? 'is the kvm module loaded? (modprobe kvm_intel or kvm_amd)'
        : e === 13 || e === 1 ? `add your user to the group that owns ${path} (usually "kvm") or run as root`
          : 'check that KVM is available on this host';
      throw new NodevisorError('ERR_KVM_UNAVAILABLE', `Could not access KVM kernel module: ${path}: ${errnoName(e)}: ${fix}`);
    }
    const kvm = new Kvm(fd);
    const version = ioctlInt(fd, K.KVM_GET_API_VERSION);
    if (version !== KVM_API_VERSION) {
      kvm.close();
      throw new NodevisorError('ERR_KVM_UNAVAILABLE', `${path}: KVM API version ${version}, need ${KVM_API_VERSION}`);
    }
    return kvm;
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, else the capability's value. */
  checkExtension(cap: KvmCapName): number {
    return ioctlInt(this.fd, K.KVM_CHECK_EXTENSION, KVM_CAP[cap]);
  }

  vcpuMmapSize(): number {
    return ioctlInt(this.fd, K.KVM_GET_VCPU_MMAP_SIZE);
  }

  supportedCpuid(): CpuidEntryData[] {
    // E2BIG means "more entries than room": grow until it fits, as every VMM does.
    for (let cap = 64; cap <= 4096; cap *= 2) {
      const buf = encodeCpuid2([], cap);
      const ret = ioctlPtr(this.fd, K.KVM_GET_SUPPORTED_CPUID, buf);
      if (ret >= 0) return decodeCpuid2(buf);
      const e = errno();
      if (e !== 7) throw new KvmError('KVM_GET_SUPPORTED_CPUID', e);
    }
    throw new KvmError('KVM_GET_SUPPORTED_CPUID', 7);
  }

  supportedMceCap(): bigint {
    return this.checkExtension('MCE') > 0 ? supportedMceCap(this.fd) : 0n;
  }

  createVm(): KvmVm {
    // Creating a VM sleeps in the kernel and a signal (a profiler's SIGPROF) makes it return
    // EINTR with nothing created; QEMU's kvm_init retries too.
    for (;;) {
      const fd = ioctlVal(this.fd, K.KVM_CREATE_VM, 0n);
      if (fd >= 0) return new KvmVm(fd);
      if (errno() !== EINTR) check(K.KVM_CREATE_VM, fd);
    }
  }

  close(): void {
    close(this.fd);
  }
}

/** One VM (its fd). Safe to use from any thread: KVM serializes VM ioctls itself. */
export class KvmVm implements HypervisorVm {
  constructor(readonly fd: number) {}

  /** KVM_CHECK_EXTENSION on the VM fd: the answer for this VM's type. */
  checkExtension(cap: KvmCapName): number {
    return ioctlInt(this.fd, K.KVM_CHECK_EXTENSION, KVM_CAP[cap]);
  }

  /** KVM_ENABLE_CAP (struct kvm_enable_cap: cap, flags, args[4], pad[64]) with args[0]. */
  enableCap(cap: KvmCapName, arg0: bigint): void {
    const b = new Uint8Array(104);
    const v = new DataView(b.buffer);
    v.setUint32(0, KVM_CAP[cap], true);
    v.setBigUint64(8, arg0, true);
    ioctl(this.fd, K.KVM_ENABLE_CAP, b);
  }

  /** KVM_RESET_DIRTY_RINGS: KVM may reuse the entries harvesting marked collected. */
  resetDirtyRings(): number {
    return ioctlInt(this.fd, K.KVM_RESET_DIRTY_RINGS);
  }

  /**
   * KVM_X86_SET_MSR_FILTER: accesses to the MSRs in `deny` exit to user space (with
   * KVM_MSR_EXIT_REASON_FILTER enabled); every other MSR stays with KVM. An empty list
   * removes the filter. KVM copies the bitmaps during the call.
   */
  setMsrFilter(deny: ReadonlyArray<{ index: number; read: boolean; write: boolean }>): void {
    const b = new Uint8Array(K.KVM_MSR_FILTER_SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, 0, true); // KVM_MSR_FILTER_DEFAULT_ALLOW
    const ranges = msrFilterRanges(deny);
    if (ranges.length > 16) throw new NodevisorError('ERR_KVM_IOCTL', 'MSR filter needs more than 16 ranges');
    // Bitmaps need a native address: one anonymous mapping holds them all (each at most 8 KiB).
    const scratchBytes = Math.max(1, ranges.length) * 8192;
    const scratch = mmap(scratchBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
    if (!scratch) throw new KvmError('mmap(msr filter bitmap)', errno());
    const scratchAddr = addressOf(scratch);
    const scratchView = new Uint8Array(viewAt(scratchAddr, scratchBytes));
    ranges.forEach((range, r) => {
      scratchView.set(range.bitmap, r * 8192);
      const at = 8 + r * 24; // struct kvm_msr_filter_range { u32 flags, nmsrs, base; u8 *bitmap }
      v.setUint32(at, range.flags, true);
      v.setUint32(at + 4, range.nmsrs, true);
      v.setUint32(at + 8, range.base, true);
      v.setBigUint64(at + 16, scratchAddr + BigInt(r * 8192), true);
    });
    try {
      ioctl(this.fd, K.KVM_X86_SET_MSR_FILTER, b);
    } finally {
      munmap(scratch, scratchBytes);
    }
  }

  closeVcpu(vcpuFd: number): void {
    close(vcpuFd);
  }

  mapRun(vcpuFd: number, runSize: number): bigint {
    return KvmVcpu.mapRun(vcpuFd, runSize);
  }

  setTssAddr(addr: number): void {
    ioctlInt(this.fd, K.KVM_SET_TSS_ADDR, addr);
  }

  setIdentityMapAddr(addr: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(addr), true);
    ioctl(this.fd, K.KVM_SET_IDENTITY_MAP_ADDR, b);
  }

  createIrqchip(): void {
    ioctlInt(this.fd, K.KVM_CREATE_IRQCHIP);
  }

  /**
   * KVM_CREATE_PIT2. KVM_PIT_SPEAKER_DUMMY makes the kernel answer port 0x61 with PIT
   * channel 2's output, which Linux's timer calibration polls.
   */
  createPit2(flags = KVM_PIT_SPEAKER_DUMMY): void {
    const b = new Uint8Array(64);
    new DataView(b.buffer).setUint32(0, flags, true);
    ioctl(this.fd, K.KVM_CREATE_PIT2, b);
  }

  setUserMemoryRegion(slot: number, gpa: number, size: number, hostAddress: bigint, flags = 0): void {
    ioctl(this.fd, K.KVM_SET_USER_MEMORY_REGION, encodeMemoryRegion(slot, flags, gpa, size, hostAddress));
  }

  /** KVM_SET_GSI_ROUTING with irqchip routes (replaces KVM's default table). */
  setGsiRouting(routes: readonly IrqRoute[]): void {
    ioctl(this.fd, K.KVM_SET_GSI_ROUTING, encodeIrqRouting(routes));
  }

  /** Sets an irqchip input line (ISA IRQ / GSI) to a level. */
  irqLine(irq: number, level: boolean): void {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, irq, true);
    v.setUint32(4, level ? 1 : 0, true);
    ioctl(this.fd, K.KVM_IRQ_LINE, b);
  }

  /** KVM_GET_IRQCHIP for chip 0 (PIC master), 1 (PIC slave), 2 (IOAPIC): the 520-byte struct. */
  getIrqchip(chipId: number): Uint8Array {
    const b = new Uint8Array(520);
    new DataView(b.buffer).setUint32(0, chipId, true);
    ioctl(this.fd, K.KVM_GET_IRQCHIP, b);
    return b;
  }

  setIrqchip(state: Uint8Array): void {
    ioctl(this.fd, K.KVM_SET_IRQCHIP, state);
  }

  getPit2(): Uint8Array {
    const b = new Uint8Array(112);
    ioctl(this.fd, K.KVM_GET_PIT2, b);
    return b;
  }

  setPit2(state: Uint8Array): void {
    ioctl(this.fd, K.KVM_SET_PIT2, state);
  }

  createVcpu(id: number): number {
    return ioctlInt(this.fd, K.KVM_CREATE_VCPU, id);
  }

  close(): void {
    close(this.fd);
  }
}

/** One vCPU: its fd and its mapped kvm_run page. */
export class KvmVcpu implements HypervisorVcpu {
  readonly run: DataView;
  readonly runBytes: Uint8Array;
  readonly runAddress: bigint;
  private readonly regsBuf = new Uint8Array(KVM_REGS_SIZE);
  private readonly sregsBuf = new Uint8Array(KVM_SREGS_SIZE);
  private readonly regsView = new DataView(this.regsBuf.buffer);
  private readonly sregsView = new DataView(this.sregsBuf.buffer);
  /** kvm_run.s.regs: the registers KVM_CAP_SYNC_REGS leaves in the run page. */
  private readonly syncedRegs: Uint8Array;
  private readonly syncedSregs: Uint8Array;
  /** getStateBlock's MSR list, and its struct kvm_msrs. */
  private stateMsrs: readonly number[] = [];
  private stateMsrsBuf = encodeMsrs([]);
  /** kvm_run.kvm_valid_regs asks for REGS and SREGS at every exit. */
  private syncing = false;
  /** kvm_run.s holds the vCPU as the last exit left it: nothing has changed it since. */
  private synced = false;

  constructor(readonly fd: number, runAddress: bigint, runSize: number) {
    this.runAddress = runAddress;
    const ab = viewAt(runAddress, runSize);
    this.run = new DataView(ab);
    this.runBytes = new Uint8Array(ab);
    this.syncedRegs = this.runBytes.subarray(KVM_RUN.syncRegs, KVM_RUN.syncRegs + KVM_REGS_SIZE);
    this.syncedSregs = this.runBytes.subarray(KVM_RUN.syncSregs, KVM_RUN.syncSregs + KVM_SREGS_SIZE);
  }

  /** Maps the vCPU's kvm_run page (done once, by whoever creates the vCPU). */
  static mapRun(fd: number, runSize: number): bigint {
    const p: Pointer | null = mmap(runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    if (!p) throw new KvmError('mmap(kvm_run)', errno());
    return addressOf(p);
  }

  /**
   * KVM_RUN. 'exit' when the run page holds an exit to decode, 'interrupted' when there is
   * nothing to decode: EINTR (a kick) or EAGAIN (an AP woke from its wait for INIT/SIPI
   * without being started yet; QEMU simply runs it again). EFAULT or EHWPOISON with the exit
   * reason set to KVM_EXIT_MEMORY_FAULT is an exit too (the only one KVM reports through a
   * failing KVM_RUN). Any other failure throws.
   */
  runOnce(): RunResult {
    this.synced = false;
    const ret = ioctlVal(this.fd, K.KVM_RUN, 0n);
    if (ret >= 0) {
      this.synced = this.syncing;
      return 'exit';
    }
    const e = errno();
    if (e === EINTR || e === EAGAIN) return 'interrupted';
    if ((e === EFAULT || e === EHWPOISON) && this.run.getUint32(KVM_RUN.exitReason, true) === KVM_EXIT_MEMORY_FAULT) return 'exit';
    throw new KvmError('KVM_RUN', e);
  }

  syncRegs(on: boolean): void {
    this.run.setBigUint64(KVM_RUN.validRegs, on ? BigInt(KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS) : 0n, true);
    this.syncing = on;
    this.synced = false;
  }

  /** kvm_regs as of now: from the run page when it is current, else KVM_GET_REGS. */
  private regsBytes(): Uint8Array {
    if (this.synced) return this.syncedRegs;
    ioctl(this.fd, K.KVM_GET_REGS, this.regsBuf);
    return this.regsBuf;
  }

  private sregsBytes(): Uint8Array {
    if (this.synced) return this.syncedSregs;
    ioctl(this.fd, K.KVM_GET_SREGS, this.sregsBuf);
    return this.sregsBuf;
  }

  getRegs(): Regs {
    return decodeRegs(this.regsBytes());
  }

  setRegs(r: Regs): void {
    this.synced = false;
    ioctl(this.fd, K.KVM_SET_REGS, encodeRegs(r, this.regsBuf));
  }

  getSregs(): Sregs {
    return decodeSregs(this.sregsBytes());
  }

  getCodeAddress(): { rip: bigint; csBase: bigint; cr0: bigint } {
    // struct kvm_sregs starts with cs, and struct kvm_segment with its base.
    if (this.synced) {
      return {
        rip: this.run.getBigUint64(KVM_RUN.syncRegs + REGS_RIP, true),
        csBase: this.run.getBigUint64(KVM_RUN.syncSregs, true),
        cr0: this.run.getBigUint64(KVM_RUN.syncSregs + SREGS.cr0, true),
      };
    }
    this.regsBytes();
    this.sregsBytes();
    return { rip: this.regsView.getBigUint64(REGS_RIP, true), csBase: this.sregsView.getBigUint64(0, true), cr0: this.sregsView.getBigUint64(SREGS.cr0, true) };
  }

  setSregs(s: Sregs): void {
    this.synced = false;
    ioctl(this.fd, K.KVM_SET_SREGS, encodeSregs(s, this.sregsBuf));
  }

  setCpuid(entries: readonly CpuidEntryData[]): void {
    ioctl(this.fd, K.KVM_SET_CPUID2, encodeCpuid2(entries));
  }

  getMsrs(indices: readonly number[]): MsrEntry[] {
    const b = encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const n = ioctl(this.fd, K.KVM_GET_MSRS, b);
    return decodeMsrs(b, n);
  }

  getStateBlock(msrs: readonly number[], into?: Uint8Array): Uint8Array {
    const regs = this.regsBytes();
    const sregs = this.sregsBytes();
    // The same list at every event: its struct kvm_msrs is encoded once (KVM fills in data only).
    if (msrs !== this.stateMsrs) {
      this.stateMsrs = msrs;
      this.stateMsrsBuf = encodeMsrs(msrs.map((index) => ({ index, data: 0n })));
    }
    const read = msrs.length === 0 ? 0 : ioctl(this.fd, K.KVM_GET_MSRS, this.stateMsrsBuf);
    return stateBlock(regs, sregs, this.stateMsrsBuf, read, into);
  }

  /** KVM_SET_MSRS sets entries in order and stops at the first it refuses: that is an error here. */
  setMsrs(entries: readonly MsrEntry[]): void {
    this.synced = false;
    const n = ioctl(this.fd, K.KVM_SET_MSRS, encodeMsrs(entries));
    if (n !== entries.length) {
      const bad = entries[n];
      throw new NodevisorError('ERR_KVM_IOCTL', `KVM_SET_MSRS refused MSR 0x${(bad?.index ?? 0).toString(16)}`);
    }
  }

  getFpu(): Uint8Array {
    const b = new Uint8Array(KVM_FPU_SIZE);
    ioctl(this.fd, K.KVM_GET_FPU, b);
    return b;
  }

  setFpu(fpu: Uint8Array): void {
    ioctl(this.fd, K.KVM_SET_FPU, fpu);
  }

  getLapic(): Uint8Array {
    const b = new Uint8Array(KVM_LAPIC_STATE_SIZE);
    ioctl(this.fd, K.KVM_GET_LAPIC, b);
    return b;
  }

  setLapic(state: Uint8Array): void {
    this.synced = false;
    ioctl(this.fd, K.KVM_SET_LAPIC, state);
  }

  getMpState(): number {
    const b = new Uint8Array(4);
    ioctl(this.fd, K.KVM_GET_MP_STATE, b);
    return new DataView(b.buffer).getUint32(0, true);
  }

  setMpState(state: number): void {
    this.synced = false;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, state, true);
    ioctl(this.fd, K.KVM_SET_MP_STATE, b);
  }

  getVcpuEvents(): Uint8Array {
    const b = new Uint8Array(64);
    ioctl(this.fd, K.KVM_GET_VCPU_EVENTS, b);
    return b;
  }

  setVcpuEvents(b: Uint8Array): void {
    this.synced = false;
    ioctl(this.fd, K.KVM_SET_VCPU_EVENTS, b);
  }

  getXcrs(): Uint8Array {
    const b = new Uint8Array(392);
    ioctl(this.fd, K.KVM_GET_XCRS, b);
    return b;
  }

  setXcrs(b: Uint8Array): void {
    ioctl(this.fd, K.KVM_SET_XCRS, b);
  }

  getXsave(): Uint8Array {
    const b = new Uint8Array(4096);
    ioctl(this.fd, K.KVM_GET_XSAVE, b);
    return b;
  }

  setXsave(b: Uint8Array): void {
    ioctl(this.fd, K.KVM_SET_XSAVE, b);
  }

  /** KVM_TRANSLATE: a linear address through the vCPU's current paging mode, or null if unmapped. */
  translate(linear: bigint): bigint | null {
    const b = new Uint8Array(24);
    const v = new DataView(b.buffer);
    v.setBigUint64(0, linear, true);
    ioctl(this.fd, K.KVM_TRANSLATE, b);
    return v.getUint8(16) ? v.getBigUint64(8, true) : null;
  }

  nmi(): void {
    ioctlInt(this.fd, K.KVM_NMI);
  }

  /** KVM_SET_GUEST_DEBUG with `control` (KVM_GUESTDBG_*) and no debug registers. */
  setGuestDebug(control: number): void {
    this.synced = false;
    const b = new Uint8Array(72);
    new DataView(b.buffer).setUint32(0, control >>> 0, true);
    ioctl(this.fd, K.KVM_SET_GUEST_DEBUG, b);
  }

  setupMce(mcgCap: bigint): void {
    setupMce(this.fd, mcgCap);
  }

  setMce(mce: X86Mce): void {
    setMce(this.fd, mce);
  }

  /** KVM_SET_SIGNAL_MASK: the signal mask in force while inside KVM_RUN. */
  setSignalMask(sigset: Uint8Array): void {
    const b = new Uint8Array(4 + 8);
    new DataView(b.buffer).setUint32(0, 8, true); // the kernel's sigset is 8 bytes
    b.set(sigset.subarray(0, 8), 4);
    ioctl(this.fd, K.KVM_SET_SIGNAL_MASK, b);
  }
}

const KVM_EXIT_MEMORY_FAULT = 39;

/** struct kvm_guest_debug control bits. */
export const KVM_GUESTDBG_ENABLE = 0x1;
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
export const KVM_GUESTDBG_USE_SW_BP = 0x10000;

/** One struct kvm_msr_filter_range: `flags` 1 read, 2 write; a clear bit in `bitmap` denies. */
export interface MsrFilterRange {
  flags: number;
  base: number;
  nmsrs: number;
  bitmap: Uint8Array;
}

/**
 * The ranges of an MSR filter that denies `deny` (one kind of access per range): sorted
 * indices are grouped so that each range spans at most 65536 MSRs (an 8 KiB bitmap).
 */
export function msrFilterRanges(deny: ReadonlyArray<{ index: number; read: boolean; write: boolean }>): MsrFilterRange[] {
  const out: MsrFilterRange[] = [];
  for (const kind of [{ flag: 1, pick: 'read' }, { flag: 2, pick: 'write' }] as const) {
    const idx = [...new Set(deny.filter((d) => d[kind.pick]).map((d) => d.index >>> 0))].sort((a, b) => a - b);
    let group: number[] = [];
    const flush = (): void => {
      if (group.length === 0) return;
      const base = group[0]!;
      const nmsrs = group[group.length - 1]! - base + 1;
      const bitmap = new Uint8Array(Math.ceil(nmsrs / 8)).fill(0xff); // a set bit allows
      for (const i of group) bitmap[(i - base) >> 3]! &= ~(1 << ((i - base) & 7));
      out.push({ flags: kind.flag, base, nmsrs, bitmap });
      group = [];
    };
    for (const i of idx) {
      if (group.length > 0 && i - group[0]! >= 0x10000) flush();
      group.push(i);
    }
    flush();
  }
  return out;
}
export const KVM_PIT_SPEAKER_DUMMY = 1;
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
