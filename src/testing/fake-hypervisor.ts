/**
 * A scriptable hypervisor behind the same interface as KVM, for tests only (the CLI cannot
 * select it). A script says what each KVM_RUN of a vCPU returns ("on the 3rd run, a NOTIFY
 * exit with context-invalid"); the fake writes that exit into a page in kvm_run's layout,
 * so the VMM decodes and handles it with exactly the code that handles real KVM exits.
 * Runs the script does not mention behave like a halted guest: they wait briefly and return
 * as if kicked.
 */
import type { Hypervisor, HypervisorVcpu, HypervisorVm, RunResult } from '../hypervisor/hypervisor.js';
import { zeroRegs, type Regs, type Sregs } from '../hypervisor/x86-state.js';
import { PVM_SUPPORTED_CPUID } from '../arch/x86/fixtures/pvm-supported-cpuid.js';
import type { KvmCapName } from '../kvm/capabilities.js';
import { EFAULT } from '../kvm/errno.js';
import { queueSigbusToSelf, type X86Mce } from '../kvm/hwpoison.js';
import { KvmError } from '../kvm/kvm-error.js';
import { KVM_LAPIC_STATE_SIZE, KVM_RUN, type CpuidEntryData, type IrqRoute, type MsrEntry } from '../kvm/structs.js';
import { decodeSregs, encodeMsrs, encodeRegs, encodeSregs } from '../kvm/structs.js';
import { stateBlock } from '../kvm/state-block.js';
import { KVM_EXIT, KVM_EXIT_IO_OUT } from '../vcpu/exit-reason.js';

/** One KVM_RUN: an exit (fields are written at offsets into the kvm_run exit union). */
export interface FakeRun {
  readonly exitReason: number;
  readonly fields?: ReadonlyArray<readonly [offset: number, size: 1 | 2 | 4 | 8, value: number | bigint]>;
  /** KVM_RUN fails with this errno (with the exit still written: how KVM reports MEMORY_FAULT). */
  readonly errno?: number;
  /** Bytes placed at the run page's I/O data area (for KVM_EXIT_IO). */
  readonly ioData?: readonly number[];
  /**
   * Instead of an exit, what KVM does when the guest touches a poisoned page: SIGBUS (this
   * si_code) queued to the vCPU thread for the page at `gpa`, and KVM_RUN returns EINTR.
   */
  readonly sigbus?: { readonly code: number; readonly gpa: number };
  /** The guest set CR4 to this before the run (to enable MCE, say). */
  readonly cr4?: bigint;
}

/** Per vCPU index, the runs in order; `null` is a run that only waits (a halted guest). */
export interface FakeScript {
  readonly vcpus: ReadonlyArray<ReadonlyArray<FakeRun | null>>;
  /** Capabilities the fake host reports; anything absent is 0. */
  readonly caps?: Partial<Record<KvmCapName, number>>;
}

const FAKE_RUN_SIZE = 0x2000;
const IO_DATA_OFFSET = 0x1000;

/** Ready-made exits, in the layouts of <linux/kvm.h>. */
export const fakeExit = {
  notify: (flags: number): FakeRun => ({ exitReason: KVM_EXIT.NOTIFY, fields: [[0, 4, flags]] }),
  memoryFault: (gpa: bigint, size: bigint, flags = 0n): FakeRun => ({
    exitReason: KVM_EXIT.MEMORY_FAULT, errno: EFAULT, fields: [[0, 8, flags], [8, 8, gpa], [16, 8, size]],
  }),
  rdmsr: (index: number, reason: number): FakeRun => ({ exitReason: KVM_EXIT.X86_RDMSR, fields: [[8, 4, reason], [12, 4, index]] }),
  wrmsr: (index: number, value: bigint, reason: number): FakeRun => ({
    exitReason: KVM_EXIT.X86_WRMSR, fields: [[8, 4, reason], [12, 4, index], [16, 8, value]],
  }),
  busLock: (): FakeRun => ({ exitReason: KVM_EXIT.X86_BUS_LOCK }),
  systemEvent: (type: number): FakeRun => ({ exitReason: KVM_EXIT.SYSTEM_EVENT, fields: [[0, 4, type], [4, 4, 0]] }),
  internalError: (suberror: number, data: readonly bigint[]): FakeRun => ({
    exitReason: KVM_EXIT.INTERNAL_ERROR,
    fields: [[0, 4, suberror], [4, 4, data.length], ...data.map((d, i) => [8 + i * 8, 8, d] as const)],
  }),
  failEntry: (reason: bigint, cpu: number): FakeRun => ({ exitReason: KVM_EXIT.FAIL_ENTRY, fields: [[0, 8, reason], [8, 4, cpu]] }),
  outb: (port: number, value: number): FakeRun => ({
    exitReason: KVM_EXIT.IO, ioData: [value],
    fields: [[0, 1, KVM_EXIT_IO_OUT], [1, 1, 1], [2, 2, port], [4, 4, 1], [8, 8, BigInt(IO_DATA_OFFSET)]],
  }),
  raw: (exitReason: number, hardwareReason = 0n): FakeRun => ({ exitReason, fields: [[0, 8, hardwareReason]] }),
  hlt: (): FakeRun => ({ exitReason: KVM_EXIT.HLT }),
} as const;

/** What the machine did to the fake host, for tests to check. */
export interface FakeHostLog {
  enabledCaps: Array<{ cap: KvmCapName; arg0: bigint }>;
  irqchip: boolean;
  pit: boolean;
  vcpus: number;
  /** MSRs sent to user space by the MSR filter. */
  msrFilter: number[];
}

export class FakeHypervisor implements Hypervisor {
  readonly log: FakeHostLog = { enabledCaps: [], irqchip: false, pit: false, vcpus: 0, msrFilter: [] };
  constructor(readonly script: FakeScript) {}

  checkExtension(cap: KvmCapName): number {
    if (cap === 'MAX_VCPUS' || cap === 'NR_VCPUS') return this.script.caps?.[cap] ?? 8;
    return this.script.caps?.[cap] ?? 0;
  }
  vcpuMmapSize(): number {
    return FAKE_RUN_SIZE;
  }
  supportedCpuid(): CpuidEntryData[] {
    return PVM_SUPPORTED_CPUID.map((e) => ({ ...e }));
  }
  supportedMceCap(): bigint {
    return this.script.caps?.MCE ? 0x1000100n | BigInt(this.script.caps.MCE) : 0n;
  }
  createVm(): HypervisorVm {
    return new FakeVm(this);
  }
  close(): void {}
}

class FakeVm implements HypervisorVm {
  readonly fd = -1;
  constructor(private readonly host: FakeHypervisor) {}
  checkExtension(cap: KvmCapName): number {
    return this.host.checkExtension(cap);
  }
  enableCap(cap: KvmCapName, arg0: bigint): void {
    this.host.log.enabledCaps.push({ cap, arg0 });
  }
  setTssAddr(): void {}
  setIdentityMapAddr(): void {}
  createIrqchip(): void {
    this.host.log.irqchip = true;
  }
  createPit2(): void {
    this.host.log.pit = true;
  }
  setUserMemoryRegion(): void {}
  setGsiRouting(_routes: readonly IrqRoute[]): void {}
  irqLine(): void {}
  getIrqchip(): Uint8Array {
    return new Uint8Array(520);
  }
  setIrqchip(): void {}
  getPit2(): Uint8Array {
    return new Uint8Array(112);
  }
  setPit2(): void {}
  createVcpu(): number {
    this.host.log.vcpus++;
    return -1; // never a real fd: closing it is harmless
  }
  closeVcpu(): void {}
  setMsrFilter(deny: ReadonlyArray<{ index: number; read: boolean; write: boolean }>): void {
    this.host.log.msrFilter = deny.map((d) => d.index);
  }
  resetDirtyRings(): number {
    return 0;
  }
  mapRun(): bigint {
    return 0n;
  }
  close(): void {}
}

/** The vCPU side, built inside the vCPU thread from the (cloneable) script. */
export class FakeVcpu implements HypervisorVcpu {
  readonly runBytes = new Uint8Array(FAKE_RUN_SIZE);
  readonly run = new DataView(this.runBytes.buffer);
  private runs = 0;
  private regs: Regs = zeroRegs();
  private sregs: Sregs = decodeSregs(new Uint8Array(312));
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  private readonly msrs = new Map<number, bigint>();
  /** Machine checks raised with setMce, in order. */
  readonly mces: X86Mce[] = [];

  constructor(
    private readonly script: ReadonlyArray<FakeRun | null>,
    private readonly hostAddressOf: (gpa: number) => bigint,
  ) {}

  runOnce(): RunResult {
    const step = this.script[this.runs++];
    if (!step) {
      Atomics.wait(this.sleeper, 0, 0, 2); // a halted guest: nothing happens for a while
      return 'interrupted';
    }
    if (step.cr4 !== undefined) this.sregs.cr4 = step.cr4;
    if (step.sigbus) {
      queueSigbusToSelf(step.sigbus.code, this.hostAddressOf(step.sigbus.gpa));
      return 'interrupted';
    }
    this.runBytes.fill(0, 0, KVM_RUN.exit + 256);
    this.run.setUint32(KVM_RUN.exitReason, step.exitReason, true);
    for (const [off, size, value] of step.fields ?? []) {
      const at = KVM_RUN.exit + off;
      if (size === 1) this.run.setUint8(at, Number(value));
      else if (size === 2) this.run.setUint16(at, Number(value), true);
      else if (size === 4) this.run.setUint32(at, Number(value), true);
      else this.run.setBigUint64(at, BigInt(value), true);
    }
    if (step.ioData) this.runBytes.set(step.ioData, IO_DATA_OFFSET);
    if (step.errno !== undefined) {
      if (step.exitReason === KVM_EXIT.MEMORY_FAULT) return 'exit'; // as KvmVcpu.runOnce reports it
      throw new KvmError('KVM_RUN', step.errno);
    }
    return 'exit';
  }
  getRegs(): Regs {
    return { ...this.regs };
  }
  setRegs(r: Regs): void {
    this.regs = { ...r };
  }
  getSregs(): Sregs {
    return { ...this.sregs };
  }

  getCodeAddress(): { rip: bigint; csBase: bigint; cr0: bigint } {
    return { rip: this.regs.rip, csBase: this.sregs.cs.base, cr0: this.sregs.cr0 };
  }

  setSregs(s: Sregs): void {
    this.sregs = { ...s };
  }
  setCpuid(): void {}
  getMsrs(indices: readonly number[]): MsrEntry[] {
    return indices.map((index) => ({ index, data: this.msrs.get(index) ?? 0n }));
  }
  setMsrs(entries: readonly MsrEntry[]): void {
    for (const e of entries) this.msrs.set(e.index, e.data);
  }
  getStateBlock(msrs: readonly number[], into?: Uint8Array): Uint8Array {
    return stateBlock(encodeRegs(this.regs), encodeSregs(this.sregs), encodeMsrs(this.getMsrs(msrs)), msrs.length, into);
  }
  /** As KVM_X86_SETUP_MCE: MCG_CAP, and reporting enabled in MCG_CTL and every bank. */
  setupMce(mcgCap: bigint): void {
    const ones = 0xffffffffffffffffn;
    this.msrs.set(0x179, mcgCap);
    this.msrs.set(0x17b, ones);
    for (let bank = 0; bank < Number(mcgCap & 0xffn); bank++) this.msrs.set(0x400 + 4 * bank, ones);
  }
  setMce(mce: X86Mce): void {
    this.mces.push(mce);
    this.msrs.set(0x17a, mce.mcgStatus);
  }
  setFpu(): void {}
  getLapic(): Uint8Array {
    return new Uint8Array(KVM_LAPIC_STATE_SIZE);
  }
  setLapic(): void {}
  setMpState(): void {}
  getVcpuEvents(): Uint8Array {
    return new Uint8Array(64);
  }
  setVcpuEvents(): void {}
  getXcrs(): Uint8Array {
    return new Uint8Array(392);
  }
  getXsave(): Uint8Array {
    return new Uint8Array(4096);
  }
  setXcrs(): void {}
  translate(linear: bigint): bigint | null {
    return linear;
  }
  nmi(): void {}
  /** The last KVM_SET_GUEST_DEBUG control word (KVM_GUESTDBG_*). */
  guestDebug = 0;
  setGuestDebug(control: number): void {
    this.guestDebug = control;
  }
  syncRegs(): void {}
  setSignalMask(): void {}
}
