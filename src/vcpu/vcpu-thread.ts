/**
 * The main thread's handle on one vCPU thread: start it, pause it (within milliseconds,
 * even while the guest halts or spins), resume it, ask it for its state, stop it.
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { BootCpuState, Regs, Sregs } from '../hypervisor/x86-state.js';
import type { CpuidEntryData, MsrEntry } from '../kvm/structs.js';
import { getpid, tgkill } from '../kvm/libc.js';
import type { DevicePlan } from '../machine/devices.js';
import * as C from './control.js';
import { Doorbell, type DoorbellWord } from './doorbell.js';
import type { VcpuBackend, VcpuCommand, VcpuEvent, VcpuReply, VcpuRunConfig, VcpuSetup, VcpuWorkerData } from './messages.js';
import { NO_REPLY } from './messages.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface VcpuThreadOptions {
  readonly index: number;
  readonly vmFd: number;
  readonly vcpuFd: number;
  readonly runAddress: bigint;
  readonly runSize: number;
  readonly devices: DevicePlan;
  readonly ram: ReadonlyArray<{ gpa: number; size: number; hostAddress: bigint }>;
  readonly config: VcpuRunConfig;
  readonly backend: VcpuBackend;
}

export class VcpuThread {
  readonly index: number;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(C.CONTROL_WORDS * 4));
  private readonly bell = new Doorbell({ buffer: this.ctl.buffer as SharedArrayBuffer, index: C.DOORBELL });
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private nextId = 1;
  private readonly replies = new Map<number, (r: VcpuReply) => void>();
  private readonly ready: Promise<void>;
  private exited = false;
  /** Events the worker reports (VcpuEvent minus 'ready'). */
  readonly events = new EventEmitter<{ event: [VcpuEvent]; exit: [number] }>();

  constructor(opts: VcpuThreadOptions) {
    this.index = opts.index;
    // Start paused: the machine sets the vCPU up, then resumes it.
    Atomics.store(this.ctl, C.REQ, C.PAUSE);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: VcpuWorkerData = {
      index: opts.index, vmFd: opts.vmFd, vcpuFd: opts.vcpuFd, runAddress: opts.runAddress,
      runSize: opts.runSize, control: this.ctl.buffer as SharedArrayBuffer, devices: opts.devices,
      ram: opts.ram, port: port2, config: opts.config, backend: opts.backend,
    };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: data, transferList: [port2], name: `vcpu${opts.index}`,
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32, stackSizeMb: 1 },
    });
    port1.on('message', (r: VcpuReply) => {
      const resolve = this.replies.get(r.id);
      this.replies.delete(r.id);
      resolve?.(r);
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.on('message', (e: VcpuEvent) => {
        if (e.type === 'ready') resolve();
        else this.events.emit('event', e);
      });
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => {
        this.exited = true;
        reject(new Error(`vCPU ${opts.index} thread exited (${code}) before it was ready`));
        for (const r of this.replies.values()) r({ id: 0, ok: false, message: `vCPU ${opts.index} thread exited` });
        this.replies.clear();
        this.events.emit('exit', code);
      });
    });
    this.worker.on('error', (e) => this.events.emit('event', { type: 'fatal', message: e.message }));
  }

  /** Resolves once the worker runs and has blocked its kick signal. */
  started(): Promise<void> {
    return this.ready;
  }

  get state(): number {
    return Atomics.load(this.ctl, C.STATE);
  }

  get exitCount(): number {
    return Atomics.load(this.ctl, C.EXITS);
  }

  /** The worker's kernel thread id (0 until it has started). */
  get threadId(): number {
    return Atomics.load(this.ctl, C.TID);
  }

  /** Queues an NMI for this vCPU and kicks it so it is delivered at once. */
  injectNmi(): void {
    Atomics.store(this.ctl, C.NMI, 1);
    this.ring();
    this.kick();
  }

  get kickCount(): number {
    return Atomics.load(this.ctl, C.KICKS);
  }

  private ring(): void {
    this.bell.ring();
  }

  private kick(): void {
    const tid = Atomics.load(this.ctl, C.TID);
    if (tid > 0 && !this.exited) tgkill(getpid(), tid, C.KICK_SIGNAL);
  }

  private async waitState(pred: (s: number) => boolean): Promise<void> {
    for (;;) {
      const s = Atomics.load(this.ctl, C.STATE);
      if (pred(s) || this.exited) return;
      const w = Atomics.waitAsync(this.ctl, C.STATE, s, 1000);
      if (w.async) await w.value;
    }
  }

  /** Stops the vCPU at its next exit, kicking it out of KVM_RUN if it is inside. */
  async pause(): Promise<void> {
    await this.ready;
    Atomics.store(this.ctl, C.REQ, C.PAUSE);
    this.ring();
    this.kick();
    await this.waitState((s) => s === C.PAUSED || s === C.EXITED);
  }

  resume(): void {
    if (Atomics.compareExchange(this.ctl, C.REQ, C.PAUSE, C.RUN) === C.PAUSE) this.ring();
  }

  private call(cmd: DistributiveOmit<VcpuCommand, 'id'>): Promise<VcpuReply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (this.exited) {
        resolve({ id, ok: false, message: `vCPU ${this.index} thread has exited` });
        return;
      }
      this.replies.set(id, resolve);
      this.port.postMessage({ ...cmd, id } as VcpuCommand);
      this.ring();
    });
  }

  private async callOk(cmd: DistributiveOmit<VcpuCommand, 'id'>): Promise<VcpuReply & { ok: true }> {
    const r = await this.call(cmd);
    if (!r.ok) throw Object.assign(new Error(`vCPU ${this.index}: ${cmd.cmd}: ${r.message}`), r.code !== undefined ? { code: r.code } : {});
    return r;
  }

  /** The CPUID table given to the vCPU at setup (KVM_SET_CPUID2); empty before setup. */
  get cpuid(): readonly CpuidEntryData[] {
    return this.cpuidTable;
  }

  private cpuidTable: readonly CpuidEntryData[] = [];

  async setup(setup: VcpuSetup): Promise<void> {
    await this.ready;
    await this.callOk({ cmd: 'setup', setup });
    this.cpuidTable = setup.cpuid;
  }

  async reset(boot: BootCpuState | null): Promise<void> {
    await this.callOk({ cmd: 'reset', boot });
  }

  async getState(): Promise<{ regs: Regs; sregs: Sregs }> {
    const r = await this.callOk({ cmd: 'get-state' });
    return { regs: r.regs!, sregs: r.sregs! };
  }

  /**
   * KVM_GET_MSRS (the vCPU must be paused): the MSRs read, in order; fewer than asked when KVM
   * stopped at one it cannot read.
   */
  async getMsrs(indices: readonly number[]): Promise<MsrEntry[]> {
    const r = await this.callOk({ cmd: 'get-msrs', indices: [...indices] });
    return r.msrs!;
  }

  /** struct kvm_xsave (the vCPU must be paused). */
  async getXsave(): Promise<Uint8Array> {
    const r = await this.callOk({ cmd: 'get-xsave' });
    return r.xsave!;
  }

  /** struct kvm_xcrs (the vCPU must be paused). */
  async getXcrs(): Promise<Uint8Array> {
    const r = await this.callOk({ cmd: 'get-xcrs' });
    return r.xcrs!;
  }

  /** KVM_SET_REGS (introspection; the vCPU must be stopped or waiting for an event reply). */
  async setRegs(regs: Regs): Promise<void> {
    await this.callOk({ cmd: 'set-regs', regs });
  }

  /**
   * Queues an exception for the next entry (KVM_SET_VCPU_EVENTS; the vCPU must be stopped).
   * Rejects with an error whose `code` is 'EBUSY' while another is still pending.
   */
  async injectException(e: { vector: number; hasErrorCode: boolean; errorCode: number; address: bigint }): Promise<void> {
    await this.callOk({ cmd: 'inject-exception', ...e });
  }

  /** KVM_SET_GUEST_DEBUG for introspection: INT3 and/or single-step exits (absent: unchanged). */
  async setGuestDebug(flags: { breakpoints?: boolean; singleStep?: boolean }): Promise<void> {
    await this.callOk({ cmd: 'guest-debug', ...flags });
  }

  /** Answers the vCPU's outstanding introspection event; it then goes on (or stays paused). */
  replyEvent(action: 'continue' | 'retry' | 'crash', newValue?: bigint): void {
    // One way: the thread sends nothing back, which would only wake this thread again.
    if (this.exited) return;
    this.port.postMessage({ id: NO_REPLY, cmd: 'event-reply', action, ...(newValue !== undefined ? { newValue } : {}) } satisfies VcpuCommand);
    this.ring();
  }

  /** The MSRs this vCPU reads into each introspection event's state, with its registers. */
  async setEventMsrs(indices: readonly number[]): Promise<void> {
    await this.callOk({ cmd: 'event-msrs', indices: [...indices] });
  }

  /** Hands the thread introspection's event slots, through which it sends its own events. */
  async setEventSlots(buffer: SharedArrayBuffer): Promise<void> {
    await this.callOk({ cmd: 'event-slots', buffer });
  }

  /** The word the thread sleeps on while stopped: adding to it (and notifying) wakes it. */
  get doorbell(): DoorbellWord {
    return { buffer: this.ctl.buffer as SharedArrayBuffer, index: C.DOORBELL };
  }

  /** Ends the thread. Safe to call more than once. */
  async quit(): Promise<void> {
    if (this.exited) return;
    Atomics.store(this.ctl, C.REQ, C.QUIT);
    this.ring();
    this.kick();
    await new Promise<void>((resolve) => {
      if (this.exited) resolve();
      else this.worker.once('exit', () => resolve());
    });
  }
}
