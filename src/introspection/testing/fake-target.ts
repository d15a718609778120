/**
 * An in-memory IntrospectionTarget for tests: RAM in a byte array, vCPUs as plain register
 * sets, hooks recorded in sets, and events raised on demand whose replies resolve promises,
 * the way a blocked vCPU thread would be woken.
 */
import { zeroRegs, type Regs, type Sregs } from '../../hypervisor/x86-state.js';
import type {
  CpuidLeaf, RamMapping, ExceptionInjection, IntrospectionTarget, KvmiAction, PhysicalRange, TargetEvent, TargetEventSink,
  VcpuRegisters,
} from '../target.js';
import {
  addressOf, MAP_ANONYMOUS, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE, viewAt, type Pointer,
} from '../../kvm/libc.js';
import { stateBlock } from '../../kvm/state-block.js';
import { encodeMsrs, encodeRegs, encodeSregs } from '../../kvm/structs.js';
import { DIRECT_EVENT_MSRS, sendDirectEvent, type DirectEvent } from '../socket/direct-event.js';
import { EventSlots } from '../socket/event-slots.js';
import { KvmiError } from '../wire/errors.js';
import { zeroSnapshot } from '../wire/vcpu-state.js';

export const FAKE_RAM_SIZE = 0x10_0000; // 1 MiB at gpa 0

/** A mapped fake RAM is unmapped once nothing refers to its bytes (a link holds its target, and so them, while it runs). */
const unmapWhenCollected = new FinalizationRegistry<Pointer>((p) => munmap(p, FAKE_RAM_SIZE));
export const FAKE_ROM = { start: 0xfffc_0000n, size: 0x4_0000n } as const;

export interface FakeVcpu {
  regs: Regs;
  sregs: Sregs;
  msrs: Map<number, bigint>;
  xcr0: bigint;
  /** Set while the session holds the vCPU paused. */
  held: boolean;
  injected: ExceptionInjection | undefined;
}

export interface EventOutcome {
  action: KvmiAction;
  /** MSR events: the value the vCPU writes. */
  newValue?: bigint;
}

/** 64-bit long mode with paging: CR0.PE|PG, CR4.PAE, EFER.LME|LMA, a 64-bit code segment. */
export function longModeSregs(cr3: bigint, la57 = false): Sregs {
  const s = zeroSnapshot().sregs;
  s.cr0 = 0x8000_0011n;
  s.cr3 = cr3;
  s.cr4 = 0x20n | (la57 ? 1n << 12n : 0n);
  s.efer = 0x500n;
  s.cs = { ...s.cs, l: 1, present: 1, s: 1, type: 11, selector: 0x10 };
  return s;
}

export class FakeTarget implements IntrospectionTarget {
  readonly vcpus: FakeVcpu[];
  /** With `mappedRam`, mapped like a VM's RAM so that the socket thread reads it too. */
  readonly ram: Uint8Array;
  readonly #ramAddress: bigint | null;
  tscHz = 2_500_000_000n;
  readonly breakpointIntercepts = new Set<number>();
  readonly singleStepping = new Set<number>();
  readonly msrIntercepts = new Set<number>();
  readonly writeProtected = new Set<bigint>();
  readonly crashed: number[] = [];
  /** Every call, in order, as "method vcpu/argument". */
  readonly calls: string[] = [];
  sink: TargetEventSink | null = null;
  /** The MSRs the session asked events to carry. */
  stateMsrs: readonly number[] = [];
  /** Whether vCPU events carry their state (as MachineTarget's do), sparing `getRegisters`. */
  eventsCarryState = false;
  /** `getRegisters` calls so far. */
  registerReads = 0;
  /** When set, pause() waits for this before resolving (to test wait=1). */
  pauseDelayMs = 0;

  /** Slots as MachineTarget has them: `sendOwnEvent` plays a vCPU thread sending its own event. */
  readonly eventSlots: EventSlots;
  /** One doorbell word per vCPU, rung when the vCPU's own event is answered. */
  readonly #doorbells: Int32Array;

  constructor(vcpuCount = 2, options: { mappedRam?: boolean } = {}) {
    this.#doorbells = new Int32Array(new SharedArrayBuffer(4 * vcpuCount));
    this.eventSlots = EventSlots.create(vcpuCount, Array.from({ length: vcpuCount }, (_, index) => ({ buffer: this.#doorbells.buffer as SharedArrayBuffer, index })));
    if (options.mappedRam === true) {
      const mapping = mmap(FAKE_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
      if (mapping === null) throw new Error('fake target: cannot map its RAM');
      this.#ramAddress = addressOf(mapping);
      this.ram = new Uint8Array(viewAt(this.#ramAddress, FAKE_RAM_SIZE));
      unmapWhenCollected.register(this.ram.buffer, mapping);
    } else {
      this.#ramAddress = null;
      this.ram = new Uint8Array(FAKE_RAM_SIZE);
    }
    this.vcpus = Array.from({ length: vcpuCount }, (_, i) => ({
      regs: { ...zeroRegs(), rip: 0x1000n + BigInt(i), rax: BigInt(i) },
      sregs: longModeSregs(0x8000n),
      msrs: new Map<number, bigint>([[0x174, 0x10n], [0xc000_0080, 0x500n], [0xc000_0082, 0xffff_ffff_8100_0000n]]),
      xcr0: 7n,
      held: false,
      injected: undefined,
    }));
  }

  get vcpuCount(): number {
    return this.vcpus.length;
  }

  #vcpu(i: number): FakeVcpu {
    const v = this.vcpus[i];
    if (v === undefined) throw new Error(`fake target: no vCPU ${i}`);
    return v;
  }

  #inRam(gpa: bigint, size: number): boolean {
    return gpa >= 0n && gpa + BigInt(size) <= BigInt(FAKE_RAM_SIZE);
  }

  maxGfn(): bigint {
    return BigInt(FAKE_RAM_SIZE) >> 12n;
  }

  /** `readPhysical` calls so far (the socket thread answers most reads without one). */
  physicalReads = 0;

  readPhysical(gpa: bigint, size: number): Uint8Array | undefined {
    this.physicalReads++;
    if (!this.#inRam(gpa, size)) return undefined;
    return this.ram.slice(Number(gpa), Number(gpa) + size);
  }

  ramMapping(): RamMapping[] {
    return this.#ramAddress === null ? [] : [{ gpa: 0, size: FAKE_RAM_SIZE, hostAddress: this.#ramAddress }];
  }

  writePhysical(gpa: bigint, data: Uint8Array): boolean {
    if (!this.#inRam(gpa, data.length)) return false;
    this.ram.set(data, Number(gpa));
    return true;
  }

  queryPhysical(gpa: bigint): PhysicalRange | undefined {
    if (this.#inRam(gpa, 1)) return { start: 0n, size: BigInt(FAKE_RAM_SIZE), type: 'ram' };
    if (gpa >= FAKE_ROM.start && gpa < FAKE_ROM.start + FAKE_ROM.size) return { start: FAKE_ROM.start, size: FAKE_ROM.size, type: 'rom' };
    return undefined;
  }

  async pause(vcpu: number): Promise<void> {
    this.calls.push(`pause ${vcpu}`);
    if (this.pauseDelayMs > 0) await new Promise((r) => setTimeout(r, this.pauseDelayMs));
    this.#vcpu(vcpu).held = true;
  }

  resume(vcpu: number): void {
    this.calls.push(`resume ${vcpu}`);
    this.#vcpu(vcpu).held = false;
  }

  crash(vcpu: number): void {
    this.crashed.push(vcpu);
  }

  /**
   * What a vCPU thread does for a breakpoint or single step when the session lets it: writes
   * the event to the tool itself. Undefined when it may not (the event then goes the sink's
   * way); otherwise resolves with the answer the socket thread or the session gave it.
   * `ownRead`: the "vCPU" takes the socket's reading side too (the caller then plays the
   * vCPU's readOwnReply).
   */
  sendOwnEvent(vcpu: number, e: DirectEvent, ownRead = false): Promise<KvmiAction> | undefined {
    const v = this.#vcpu(vcpu);
    const msrs = DIRECT_EVENT_MSRS.map((index) => ({ index, data: v.msrs.get(index) ?? 0n }));
    const block = stateBlock(encodeRegs(v.regs), encodeSregs(v.sregs), encodeMsrs(msrs), msrs.length);
    if (!sendDirectEvent(this.eventSlots, vcpu, e, () => block, { ownRead })) return undefined;
    return (async () => {
      for (;;) {
        const bell = Atomics.load(this.#doorbells, vcpu);
        const answer = this.eventSlots.takeAnswer(vcpu);
        if (answer !== null) return answer;
        const w = Atomics.waitAsync(this.#doorbells, vcpu, bell, 5000);
        if (w.async) await w.value;
      }
    })();
  }

  async getRegisters(vcpu: number, msrs: readonly number[]): Promise<VcpuRegisters> {
    this.registerReads++;
    return this.#read(vcpu, msrs);
  }

  #read(vcpu: number, msrs: readonly number[]): VcpuRegisters {
    const v = this.#vcpu(vcpu);
    return {
      regs: { ...v.regs },
      sregs: structuredClone(v.sregs),
      msrs: msrs.map((index) => {
        // The fake knows the two architectural ranges; anything else is "not an MSR".
        if (!(index < 0x2000 || (index >= 0xc000_0000 && index < 0xc000_2000))) {
          throw new KvmiError('EINVAL', `MSR ${index.toString(16)}`);
        }
        return { index, value: v.msrs.get(index) ?? 0n };
      }),
    };
  }

  async setRegisters(vcpu: number, regs: Regs): Promise<void> {
    this.calls.push(`setRegisters ${vcpu}`);
    this.#vcpu(vcpu).regs = { ...regs };
  }

  async getCpuid(_vcpu: number, fn: number, index: number): Promise<CpuidLeaf | undefined> {
    if (fn === 0) return { eax: 0xd, ebx: 0x756e_6547, ecx: 0x6c65_746e, edx: 0x4965_6e69 };
    if (fn === 7 && index === 0) return { eax: 0, ebx: 0x29c6_fbf, ecx: 0, edx: 0 };
    return undefined;
  }

  async getXsave(vcpu: number): Promise<Uint8Array> {
    const area = new Uint8Array(4096);
    area[0] = 0x7f;
    area[512] = vcpu;
    return area;
  }

  async getXcr(vcpu: number, xcr: number): Promise<bigint | undefined> {
    return xcr === 0 ? this.#vcpu(vcpu).xcr0 : undefined;
  }

  async injectException(vcpu: number, e: ExceptionInjection): Promise<void> {
    const v = this.#vcpu(vcpu);
    if (v.injected !== undefined) throw new KvmiError('EBUSY', 'an exception is already pending');
    v.injected = e;
  }

  async setBreakpointIntercept(vcpu: number, enable: boolean): Promise<void> {
    this.calls.push(`breakpoints ${vcpu} ${enable}`);
    if (enable) this.breakpointIntercepts.add(vcpu);
    else this.breakpointIntercepts.delete(vcpu);
  }

  async setSingleStep(vcpu: number, enable: boolean): Promise<void> {
    this.calls.push(`singlestep ${vcpu} ${enable}`);
    if (enable) this.singleStepping.add(vcpu);
    else this.singleStepping.delete(vcpu);
  }

  async setMsrIntercept(msr: number, enable: boolean): Promise<void> {
    this.calls.push(`msr ${msr.toString(16)} ${enable}`);
    if (enable) this.msrIntercepts.add(msr);
    else this.msrIntercepts.delete(msr);
  }

  async setWriteProtect(gpas: readonly bigint[], enable: boolean): Promise<void> {
    this.calls.push(`writeProtect ${gpas.map((g) => g.toString(16)).join(',')} ${enable}`);
    for (const g of gpas) {
      if (enable) this.writeProtected.add(g);
      else this.writeProtected.delete(g);
    }
  }

  setEventSink(sink: TargetEventSink | null, stateMsrs: readonly number[] = []): void {
    this.sink = sink;
    this.stateMsrs = stateMsrs;
  }

  /** Raises an event as a vCPU thread would and resolves with the reply it gets. */
  raise(build: (reply: (action: KvmiAction, newValue?: bigint) => void) => TargetEvent): Promise<EventOutcome> {
    return new Promise<EventOutcome>((resolve) => {
      let answered = false;
      const built = build((action, newValue) => {
        if (answered) throw new Error('fake target: an event was answered twice');
        answered = true;
        resolve(newValue === undefined ? { action } : { action, newValue });
      });
      const event = this.eventsCarryState && built.kind !== 'create-vcpu'
        ? { ...built, state: this.#read(built.vcpu, this.stateMsrs) } : built;
      if (this.sink !== null) this.sink(event);
      else if (event.kind === 'msr') event.reply('continue', event.newValue);
      else event.reply('continue');
    });
  }

  breakpoint(vcpu: number, gva: bigint, gpa?: bigint): Promise<EventOutcome> {
    return this.raise((reply) => ({ kind: 'breakpoint', vcpu, gva, gpa, insnLength: 1, reply }));
  }

  msrWrite(vcpu: number, msr: number, newValue: bigint): Promise<EventOutcome> {
    const oldValue = this.#vcpu(vcpu).msrs.get(msr) ?? 0n;
    return this.raise((reply) => ({ kind: 'msr', vcpu, msr, oldValue, newValue, reply: (a, v) => reply(a, v) }));
  }

  pageWrite(vcpu: number, gpa: bigint, gva?: bigint): Promise<EventOutcome> {
    return this.raise((reply) => ({ kind: 'pf', vcpu, gpa, gva, access: 2, reply }));
  }

  singleStep(vcpu: number): Promise<EventOutcome> {
    return this.raise((reply) => ({ kind: 'singlestep', vcpu, failed: false, reply }));
  }

  createVcpu(vcpu: number): Promise<EventOutcome> {
    return this.raise((reply) => ({ kind: 'create-vcpu', vcpu, reply }));
  }
}
