/**
 * The IntrospectionTarget of a real nodevisor Machine: guest memory through the VMM's own
 * mapping, vCPU state read in the vCPUs' threads, per-vCPU pauses through the vCPU control
 * words. Events (breakpoints, single-stepping, MSR and page-write interception) and changes to
 * vCPU state (SET_REGISTERS, INJECT_EXCEPTION) are not implemented yet: they answer
 * -EOPNOTSUPP.
 *
 * Known limits of the pause hold: QMP `cont`, a reset and a wakeup resume every vCPU, and so
 * release a hold the tool set with PAUSE_VCPU (the interface asks that they do not).
 */
import type { Machine } from '../machine/machine.js';
import type { KvmiCommand, KvmiEventName } from './wire/ids.js';
import type { Regs } from '../hypervisor/x86-state.js';
import type {
  CpuidLeaf, ExceptionInjection, IntrospectionTarget, PhysicalRange, TargetEventSink, VcpuRegisters,
} from './target.js';
import { KvmiError } from './wire/errors.js';

const PAGE_SHIFT = 12n;
/** struct kvm_xcrs: u32 nr_xcrs, u32 flags, then {u32 xcr; u32 reserved; u64 value}[16]. */
const KVM_MAX_XCRS = 16;

/**
 * Commands the session accepts (capabilities.ts) that MachineTarget cannot serve yet: each
 * reaches a target method that answers -EOPNOTSUPP. CHECK_COMMAND should answer the same.
 */
export const MACHINE_TARGET_UNSUPPORTED_COMMANDS: ReadonlySet<KvmiCommand> = new Set<KvmiCommand>([
  'SET_REGISTERS', 'INJECT_EXCEPTION', 'VCPU_CONTROL_SINGLESTEP', 'CONTROL_MSR', 'SET_PAGE_ACCESS',
]);

/**
 * Events capabilities.ts offers that MachineTarget never raises yet. CONTROL_EVENTS enabling
 * BREAKPOINT fails (-EOPNOTSUPP from the target), but MSR, PF and SINGLESTEP are only recorded
 * by the session: CHECK_EVENT and CONTROL_EVENTS should refuse these.
 */
export const MACHINE_TARGET_UNSUPPORTED_EVENTS: ReadonlySet<KvmiEventName> = new Set<KvmiEventName>([
  'BREAKPOINT', 'MSR', 'PF', 'SINGLESTEP',
]);

export interface MachineTargetOptions {
  /** The guest TSC frequency in Hz (KVM_GET_TSC_KHZ × 1000); default 0n, "unknown". */
  tscHz?: bigint;
}

export class MachineTarget implements IntrospectionTarget {
  readonly unsupported = { commands: MACHINE_TARGET_UNSUPPORTED_COMMANDS, events: MACHINE_TARGET_UNSUPPORTED_EVENTS };
  readonly #machine: Machine;
  readonly tscHz: bigint;
  /** vCPUs the tool holds paused (PAUSE_VCPU). */
  readonly #held = new Set<number>();
  /** Reads in flight per vCPU that paused it themselves; the last one lets it run again. */
  readonly #reading = new Map<number, number>();
  #sink: TargetEventSink | null = null;

  constructor(machine: Machine, options: MachineTargetOptions = {}) {
    this.#machine = machine;
    this.tscHz = options.tscHz ?? 0n;
  }

  get vcpuCount(): number {
    return this.#machine.cpuCount;
  }

  /** The sink the session installed (no events are raised yet). */
  get eventSink(): TargetEventSink | null {
    return this.#sink;
  }

  #check(vcpu: number): void {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpuCount) throw new KvmiError('EINVAL', `no vCPU ${vcpu}`);
  }

  /** [gpa, gpa+size) as numbers when it lies inside one RAM region; otherwise undefined. */
  #ram(gpa: bigint, size: number): { gpa: number; length: number } | undefined {
    if (gpa < 0n || size < 0 || gpa + BigInt(size) > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const at = Number(gpa);
    return this.#machine.memory.contains(at, size) ? { gpa: at, length: size } : undefined;
  }

  maxGfn(): bigint {
    let end = 0n;
    for (const r of this.#machine.memory.regions) {
      const e = BigInt(r.gpa) + BigInt(r.size);
      if (e > end) end = e;
    }
    return (end + (1n << PAGE_SHIFT) - 1n) >> PAGE_SHIFT;
  }

  readPhysical(gpa: bigint, size: number): Uint8Array | undefined {
    const r = this.#ram(gpa, size);
    return r === undefined ? undefined : this.#machine.memory.read(r.gpa, r.length);
  }

  writePhysical(gpa: bigint, data: Uint8Array): boolean {
    const r = this.#ram(gpa, data.length);
    if (r === undefined) return false;
    this.#machine.memory.write(r.gpa, data);
    return true;
  }

  queryPhysical(gpa: bigint): PhysicalRange | undefined {
    for (const r of this.#machine.memory.regions) {
      const start = BigInt(r.gpa);
      const size = BigInt(r.size);
      if (gpa >= start && gpa < start + size) return { start, size, type: 'ram' };
    }
    return undefined;
  }

  async pause(vcpu: number): Promise<void> {
    this.#check(vcpu);
    this.#held.add(vcpu);
    await this.#machine.pauseVcpu(vcpu);
  }

  resume(vcpu: number): void {
    this.#check(vcpu);
    if (!this.#held.delete(vcpu)) return;
    if ((this.#reading.get(vcpu) ?? 0) === 0) this.#machine.resumeVcpu(vcpu);
  }

  crash(_vcpu: number): void {
    // KVMI_EVENT_ACTION_CRASH: treated as a guest panic (the -action panic policy decides).
    void this.#machine.guestPanicked().catch(() => undefined);
  }

  /** Runs `read` while the vCPU is stopped: pauses it for the read unless the tool holds it. */
  async #stopped<T>(vcpu: number, read: () => Promise<T>): Promise<T> {
    this.#check(vcpu);
    this.#reading.set(vcpu, (this.#reading.get(vcpu) ?? 0) + 1);
    try {
      // A no-op unless the machine runs; a held vCPU is already stopped.
      if (!this.#held.has(vcpu)) await this.#machine.pauseVcpu(vcpu);
      return await read();
    } finally {
      const left = (this.#reading.get(vcpu) ?? 1) - 1;
      if (left > 0) this.#reading.set(vcpu, left);
      else this.#reading.delete(vcpu);
      if (left === 0 && !this.#held.has(vcpu)) this.#machine.resumeVcpu(vcpu);
    }
  }

  getRegisters(vcpu: number, msrs: readonly number[]): Promise<VcpuRegisters> {
    return this.#stopped(vcpu, async () => {
      const v = this.#machine.introspectionVcpu(vcpu);
      const { regs, sregs } = await v.getState();
      const read = msrs.length === 0 ? [] : await v.getMsrs(msrs);
      if (read.length < msrs.length) {
        throw new KvmiError('EINVAL', `MSR 0x${(msrs[read.length] ?? 0).toString(16)} cannot be read`);
      }
      return { regs, sregs, msrs: read.map((m) => ({ index: m.index, value: m.data })) };
    });
  }

  setRegisters(_vcpu: number, _regs: Regs): Promise<void> {
    return Promise.reject(new KvmiError('EOPNOTSUPP', 'SET_REGISTERS needs events, not implemented yet'));
  }

  async getCpuid(vcpu: number, fn: number, index: number): Promise<CpuidLeaf | undefined> {
    this.#check(vcpu);
    const table = this.#machine.introspectionVcpu(vcpu).cpuid;
    // KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1): the index selects the entry; otherwise it is ignored.
    const e = table.find((x) => x.function === fn && ((x.flags & 1) === 0 || x.index === index));
    return e === undefined ? undefined : { eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx };
  }

  getXsave(vcpu: number): Promise<Uint8Array> {
    return this.#stopped(vcpu, () => this.#machine.introspectionVcpu(vcpu).getXsave());
  }

  getXcr(vcpu: number, xcr: number): Promise<bigint | undefined> {
    return this.#stopped(vcpu, async () => {
      const b = await this.#machine.introspectionVcpu(vcpu).getXcrs();
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const n = Math.min(v.getUint32(0, true), KVM_MAX_XCRS);
      for (let i = 0; i < n; i++) {
        const o = 8 + i * 16;
        if (v.getUint32(o, true) === xcr) return v.getBigUint64(o + 8, true);
      }
      return undefined;
    });
  }

  injectException(_vcpu: number, _exception: ExceptionInjection): Promise<void> {
    return Promise.reject(new KvmiError('EOPNOTSUPP', 'exception injection is not implemented yet'));
  }

  setBreakpointIntercept(_vcpu: number, enable: boolean): Promise<void> {
    // Switching off what was never on succeeds (the session undoes hooks when it ends).
    return enable ? Promise.reject(new KvmiError('EOPNOTSUPP', 'breakpoint events are not implemented yet')) : Promise.resolve();
  }

  setSingleStep(_vcpu: number, enable: boolean): Promise<void> {
    return enable ? Promise.reject(new KvmiError('EOPNOTSUPP', 'single-stepping is not implemented yet')) : Promise.resolve();
  }

  setMsrIntercept(_msr: number, enable: boolean): Promise<void> {
    return enable ? Promise.reject(new KvmiError('EOPNOTSUPP', 'MSR events are not implemented yet')) : Promise.resolve();
  }

  setWriteProtect(_gpas: readonly bigint[], enable: boolean): Promise<void> {
    return enable ? Promise.reject(new KvmiError('EOPNOTSUPP', 'write protection is not implemented yet')) : Promise.resolve();
  }

  setEventSink(sink: TargetEventSink | null): void {
    this.#sink = sink;
  }
}
