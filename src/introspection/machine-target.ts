/**
 * The IntrospectionTarget of a real nodevisor Machine: guest memory through the VMM's own
 * mapping, vCPU state read in the vCPUs' threads, per-vCPU pauses through the vCPU control
 * words. Events: breakpoints and single-stepping through KVM_SET_GUEST_DEBUG in the vCPU's
 * thread, MSR writes through the VM's MSR filter; the vCPU that raised one waits in its thread
 * (serving SET_REGISTERS, GET_REGISTERS, ...) until the reply. Page writes through read-only
 * memory slots: RAM is split around the protected pages while every vCPU is stopped.
 *
 * On a PVM host (guest kernel mode emulated) KVM never reports an INT3 at CPL0 as a debug
 * exit: its emulator stops at the INT3 with an emulation failure. With breakpoints
 * intercepted the vCPU thread takes such a failure on a 0xCC byte as the breakpoint, and
 * CONTINUE steps past the INT3 and injects the guest's #BP (what the CPU would have done).
 *
 * Known limits of the pause hold: QMP `cont`, a reset and a wakeup resume every vCPU, and so
 * release a hold the tool set with PAUSE_VCPU (the interface asks that they do not).
 */
import type { Machine } from '../machine/machine.js';
import type { KvmiCommand, KvmiEventName } from './wire/ids.js';
import type { Regs } from '../hypervisor/x86-state.js';
import type { IntrospectionExit, IntrospectionState } from '../vcpu/messages.js';
import type {
  CpuidLeaf, ExceptionInjection, IntrospectionTarget, KvmiAction, PhysicalRange, RamMapping, TargetEvent, TargetEventSink,
  VcpuRegisters,
} from './target.js';
import { decodeStateBlock } from '../kvm/state-block.js';
import { EventSlots } from './socket/event-slots.js';
import { KvmiError } from './wire/errors.js';
import { KVMI_PAGE_ACCESS_W } from './wire/ids.js';

const PAGE_SHIFT = 12n;
const PAGE_MASK_LOW = (1n << PAGE_SHIFT) - 1n;
/** struct kvm_xcrs: u32 nr_xcrs, u32 flags, then {u32 xcr; u32 reserved; u64 value}[16]. */
const KVM_MAX_XCRS = 16;

/**
 * Commands the session accepts (capabilities.ts) that MachineTarget cannot serve yet: each
 * reaches a target method that answers -EOPNOTSUPP. CHECK_COMMAND should answer the same.
 * CONTROL_MSR is added on a host without user-space MSR exits.
 */
export const MACHINE_TARGET_UNSUPPORTED_COMMANDS: ReadonlySet<KvmiCommand> = new Set<KvmiCommand>([]);

/**
 * Events capabilities.ts offers that MachineTarget never raises: none, but MSR is added on a
 * host without user-space MSR exits.
 */
export const MACHINE_TARGET_UNSUPPORTED_EVENTS: ReadonlySet<KvmiEventName> = new Set<KvmiEventName>([]);

/** x2APIC MSRs: KVM's MSR filter cannot take them. */
const X2APIC_FIRST = 0x800;
const X2APIC_LAST = 0x8ff;

export interface MachineTargetOptions {
  /** The guest TSC frequency in Hz (KVM_GET_TSC_KHZ × 1000); default 0n, "unknown". */
  tscHz?: bigint;
}

export class MachineTarget implements IntrospectionTarget {
  readonly unsupported: { readonly commands: ReadonlySet<KvmiCommand>; readonly events: ReadonlySet<KvmiEventName> };
  readonly #machine: Machine;
  readonly tscHz: bigint;
  /** vCPUs the tool holds paused (PAUSE_VCPU). */
  readonly #held = new Set<number>();
  /** Reads in flight per vCPU that paused it themselves; the last one lets it run again. */
  readonly #reading = new Map<number, number>();
  #sink: TargetEventSink | null = null;
  /** The MSRs every vCPU thread reads into its events' state. */
  #stateMsrs: readonly number[] = [];
  /** MSRs whose guest writes are intercepted (VM-wide). */
  readonly #msrs = new Set<number>();
  /** Write-protected pages (page-aligned gpas). */
  readonly #protected = new Set<bigint>();
  /** Through which the vCPU threads send breakpoint and single-step events themselves. */
  readonly eventSlots: EventSlots;

  constructor(machine: Machine, options: MachineTargetOptions = {}) {
    this.#machine = machine;
    this.tscHz = options.tscHz ?? 0n;
    const msrs = machine.canInterceptMsrs;
    this.unsupported = {
      commands: msrs ? MACHINE_TARGET_UNSUPPORTED_COMMANDS : new Set<KvmiCommand>([...MACHINE_TARGET_UNSUPPORTED_COMMANDS, 'CONTROL_MSR']),
      events: msrs ? MACHINE_TARGET_UNSUPPORTED_EVENTS : new Set<KvmiEventName>([...MACHINE_TARGET_UNSUPPORTED_EVENTS, 'MSR']),
    };
    machine.setIntrospectionHandler((vcpu, event, state) => this.#onEvent(vcpu, event, eventState(state, this.#stateMsrs)));
    const vcpus = Array.from({ length: machine.cpuCount }, (_, i) => machine.introspectionVcpu(i));
    this.eventSlots = EventSlots.create(vcpus.length, vcpus.map((v) => v.doorbell));
    // Until a thread has them, its events go through the main thread.
    for (const v of vcpus) void v.setEventSlots(this.eventSlots.buffer).catch(() => undefined);
  }

  /** Events the vCPU threads raised through the main thread (not sent by the thread itself). */
  get eventsThroughMainThread(): number {
    return this.#throughMain;
  }

  #throughMain = 0;

  /** A vCPU waits for the reply to this: hand it to the session, or answer CONTINUE without one. */
  #onEvent(vcpu: number, event: IntrospectionExit, state: VcpuRegisters | undefined): void {
    this.#throughMain++;
    let answered = false;
    const answer = (action: KvmiAction, newValue?: bigint): void => {
      if (answered) return;
      answered = true;
      if (action === 'crash') this.crash(vcpu);
      this.#machine.introspectionVcpu(vcpu).replyEvent(action, newValue);
    };
    const withState = state === undefined ? {} : { state };
    let e: TargetEvent;
    switch (event.kind) {
      case 'breakpoint':
        e = {
          kind: 'breakpoint', vcpu, ...withState, gva: event.gva, ...(event.gpa !== undefined ? { gpa: event.gpa } : {}),
          insnLength: event.insnLength, reply: (action) => answer(action),
        };
        break;
      case 'singlestep':
        e = { kind: 'singlestep', vcpu, ...withState, failed: event.failed, reply: (action) => answer(action) };
        break;
      case 'msr':
        e = {
          kind: 'msr', vcpu, ...withState, msr: event.msr, oldValue: event.oldValue, newValue: event.newValue,
          reply: (action, newValue) => answer(action, newValue),
        };
        break;
      case 'pf':
        e = {
          kind: 'pf', vcpu, ...withState, gpa: event.gpa, access: KVMI_PAGE_ACCESS_W,
          reply: (action) => {
            // RETRY runs the write again: on a page still protected that is this event again
            // (raised once the session is done with this reply); otherwise the store happens.
            if (action === 'retry' && this.#protected.has(event.gpa & ~PAGE_MASK_LOW) && !answered) {
              answered = true;
              setImmediate(() => this.#onEvent(vcpu, event, state));
              return;
            }
            answer(action === 'retry' ? 'continue' : action);
          },
        };
        break;
    }
    const sink = this.#sink;
    if (sink === null) {
      answer('continue', event.kind === 'msr' ? event.newValue : undefined);
      return;
    }
    try {
      sink(e);
    } catch {
      answer('continue', event.kind === 'msr' ? event.newValue : undefined);
    }
  }

  get vcpuCount(): number {
    return this.#machine.cpuCount;
  }

  /** The sink the session installed. */
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

  ramMapping(): RamMapping[] {
    return this.#machine.memory.regions.map((r) => ({ gpa: r.gpa, size: r.size, hostAddress: r.hostAddress }));
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

  setRegisters(vcpu: number, regs: Regs): Promise<void> {
    return this.#stopped(vcpu, () => this.#machine.introspectionVcpu(vcpu).setRegs(regs));
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

  injectException(vcpu: number, exception: ExceptionInjection): Promise<void> {
    if (!Number.isInteger(exception.vector) || exception.vector < 0 || exception.vector > 31) {
      return Promise.reject(new KvmiError('EINVAL', `vector ${exception.vector} is not an exception`));
    }
    return this.#stopped(vcpu, async () => {
      try {
        await this.#machine.introspectionVcpu(vcpu).injectException({
          vector: exception.vector, hasErrorCode: exception.hasErrorCode, errorCode: exception.errorCode, address: exception.address,
        });
      } catch (e) {
        if ((e as { code?: unknown }).code === 'EBUSY') throw new KvmiError('EBUSY', (e as Error).message);
        throw e;
      }
    });
  }

  setBreakpointIntercept(vcpu: number, enable: boolean): Promise<void> {
    return this.#stopped(vcpu, () => this.#machine.introspectionVcpu(vcpu).setGuestDebug({ breakpoints: enable }));
  }

  setSingleStep(vcpu: number, enable: boolean): Promise<void> {
    return this.#stopped(vcpu, () => this.#machine.introspectionVcpu(vcpu).setGuestDebug({ singleStep: enable }));
  }

  setMsrIntercept(msr: number, enable: boolean): Promise<void> {
    if (enable === this.#msrs.has(msr)) return Promise.resolve();
    if (enable && !this.#machine.canInterceptMsrs) {
      return Promise.reject(new KvmiError('EOPNOTSUPP', 'this host cannot send MSR writes to user space'));
    }
    if (enable && msr >= X2APIC_FIRST && msr <= X2APIC_LAST) {
      return Promise.reject(new KvmiError('EOPNOTSUPP', 'x2APIC MSRs cannot be filtered'));
    }
    const next = new Set(this.#msrs);
    if (enable) next.add(msr);
    else next.delete(msr);
    try {
      this.#machine.setInterceptedMsrs([...next]);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    if (enable) this.#msrs.add(msr);
    else this.#msrs.delete(msr);
    return Promise.resolve();
  }

  async setWriteProtect(gpas: readonly bigint[], enable: boolean): Promise<void> {
    const next = new Set(this.#protected);
    for (const g of gpas) {
      if (enable) next.add(g & ~PAGE_MASK_LOW);
      else next.delete(g & ~PAGE_MASK_LOW);
    }
    if (next.size === this.#protected.size && [...next].every((g) => this.#protected.has(g))) return;
    // Memory slots are replaced: no vCPU may run meanwhile.
    await this.#allStopped(0, () => {
      this.#machine.setWriteProtectedPages([...next].map(Number));
      return Promise.resolve();
    });
    this.#protected.clear();
    for (const g of next) this.#protected.add(g);
  }

  /** Runs `fn` with every vCPU from `from` on stopped (as #stopped does for one). */
  #allStopped(from: number, fn: () => Promise<void>): Promise<void> {
    if (from >= this.vcpuCount) return fn();
    return this.#stopped(from, () => this.#allStopped(from + 1, fn));
  }

  setEventSink(sink: TargetEventSink | null, stateMsrs: readonly number[] = []): void {
    this.#sink = sink;
    if (sink === null || sameMsrs(stateMsrs, this.#stateMsrs)) return;
    this.#stateMsrs = [...stateMsrs];
    // Until a vCPU thread has the list its events carry fewer MSRs, and the session reads them.
    for (let i = 0; i < this.vcpuCount; i++) {
      void this.#machine.introspectionVcpu(i).setEventMsrs(stateMsrs).catch(() => undefined);
    }
  }
}

function sameMsrs(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

/**
 * A vCPU thread's event state in the target's terms; undefined (the session then reads the
 * registers itself) unless it holds every MSR asked for.
 */
function eventState(block: IntrospectionState | null, msrs: readonly number[]): VcpuRegisters | undefined {
  if (block === null) return undefined;
  let state: ReturnType<typeof decodeStateBlock>;
  try {
    state = decodeStateBlock(block);
  } catch {
    return undefined;
  }
  if (state.msrs.length !== msrs.length || !state.msrs.every((m, i) => m.index === msrs[i])) return undefined;
  return { regs: state.regs, sregs: state.sregs, msrs: state.msrs.map((m) => ({ index: m.index, value: m.data })) };
}
