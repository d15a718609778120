/**
 * The small interface the VMM needs from a hypervisor: the system, a VM, a vCPU. KVM
 * (src/kvm/kvm.ts) is the real one; tests put a scriptable fake behind the same interface
 * (src/testing/fake-hypervisor.ts) to drive exits this host cannot produce through the very
 * same exit-handling code. A vCPU's exits are always read from a page in kvm_run's layout,
 * so decoding is shared too.
 */
import type { CpuidEntryData, IrqRoute, MsrEntry } from '../kvm/structs.js';
import type { KvmCapName } from '../kvm/capabilities.js';
import type { X86Mce } from '../kvm/hwpoison.js';
import type { Regs, Sregs } from './x86-state.js';

export interface Hypervisor {
  /** KVM_CHECK_EXTENSION: 0 when absent, else the capability's value. */
  checkExtension(cap: KvmCapName): number;
  vcpuMmapSize(): number;
  supportedCpuid(): CpuidEntryData[];
  /** KVM_X86_GET_MCE_CAP_SUPPORTED: the MCG_CAP bits KVM can emulate (0n without KVM_CAP_MCE). */
  supportedMceCap(): bigint;
  createVm(): HypervisorVm;
  close(): void;
}

export interface HypervisorVm {
  readonly fd: number;
  /** KVM_CHECK_EXTENSION on the VM (some capabilities depend on the VM type). */
  checkExtension(cap: KvmCapName): number;
  /** KVM_ENABLE_CAP on the VM with args[0]. */
  enableCap(cap: KvmCapName, arg0: bigint): void;
  setTssAddr(addr: number): void;
  setIdentityMapAddr(addr: number): void;
  createIrqchip(): void;
  createPit2(): void;
  setUserMemoryRegion(slot: number, gpa: number, size: number, hostAddress: bigint, flags?: number): void;
  setGsiRouting(routes: readonly IrqRoute[]): void;
  irqLine(irq: number, level: boolean): void;
  getIrqchip(chipId: number): Uint8Array;
  setIrqchip(state: Uint8Array): void;
  getPit2(): Uint8Array;
  setPit2(state: Uint8Array): void;
  /** Creates vCPU `id`; returns its fd (the handle a vCPU thread rebuilds its vCPU from). */
  createVcpu(id: number): number;
  /**
   * KVM_X86_SET_MSR_FILTER: guest accesses to these MSRs exit to user space (with
   * KVM_MSR_EXIT_REASON_FILTER enabled); all others stay with KVM.
   */
  setMsrFilter(deny: ReadonlyArray<{ index: number; read: boolean; write: boolean }>): void;
  /** KVM_RESET_DIRTY_RINGS after harvesting. */
  resetDirtyRings(): number;
  /** Closes a vCPU made by createVcpu (at the machine's end). */
  closeVcpu(vcpuFd: number): void;
  /** Maps a vCPU's run page; returns its address. */
  mapRun(vcpuFd: number, runSize: number): bigint;
  close(): void;
}

/** What KVM_RUN came back with. */
export type RunResult =
  /** The run page holds an exit to decode. */
  | 'exit'
  /** Nothing to decode: a kick (EINTR) or an AP still waiting for INIT/SIPI (EAGAIN). */
  | 'interrupted';

export interface HypervisorVcpu {
  /** The kvm_run page, as bytes and as a little-endian view. */
  readonly run: DataView;
  readonly runBytes: Uint8Array;
  runOnce(): RunResult;
  getRegs(): Regs;
  setRegs(r: Regs): void;
  getSregs(): Sregs;
  /**
   * RIP, CS.base and CR0 alone: where the code at RIP is and whether paging is on, without
   * decoding kvm_regs and kvm_sregs (about 1.2 us of bigints on every breakpoint).
   */
  getCodeAddress(): { rip: bigint; csBase: bigint; cr0: bigint };
  setSregs(s: Sregs): void;
  setCpuid(entries: readonly CpuidEntryData[]): void;
  getMsrs(indices: readonly number[]): MsrEntry[];
  /**
   * Registers, special registers and these MSRs in one state block (src/kvm/state-block.ts),
   * in `into` when it is long enough.
   */
  getStateBlock(msrs: readonly number[], into?: Uint8Array): Uint8Array;
  setMsrs(entries: readonly MsrEntry[]): void;
  setFpu(fpu: Uint8Array): void;
  getLapic(): Uint8Array;
  setLapic(state: Uint8Array): void;
  setMpState(state: number): void;
  getVcpuEvents(): Uint8Array;
  setVcpuEvents(b: Uint8Array): void;
  getXcrs(): Uint8Array;
  /** KVM_GET_XSAVE: struct kvm_xsave (4096 bytes). */
  getXsave(): Uint8Array;
  setXcrs(b: Uint8Array): void;
  /** A linear address through the vCPU's current paging mode, or null if unmapped. */
  translate(linear: bigint): bigint | null;
  nmi(): void;
  /** KVM_SET_GUEST_DEBUG: `control` is KVM_GUESTDBG_* (ENABLE, SINGLESTEP, USE_SW_BP); 0 turns it off. */
  setGuestDebug(control: number): void;
  /**
   * KVM_CAP_SYNC_REGS: while on, KVM copies the registers and special registers into the run
   * page at every exit, and `getRegs`, `getSregs` and `getStateBlock` read them there instead
   * of asking KVM (one ioctl each), until the thread changes vCPU state itself.
   */
  syncRegs(on: boolean): void;
  /** The signal mask in force while inside KVM_RUN. */
  setSignalMask(sigset: Uint8Array): void;
  /** KVM_X86_SETUP_MCE: machine-check banks (MCG_CAP); MCG_CTL and every MCi_CTL all ones. */
  setupMce(mcgCap: bigint): void;
  /** KVM_X86_SET_MCE: loads a bank and raises #MC (from the vCPU's thread, outside KVM_RUN). */
  setMce(mce: X86Mce): void;
}
