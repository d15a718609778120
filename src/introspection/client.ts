/**
 * nodevisor's KVMI client, for introspection tools written in TypeScript: the libkvmi of
 * TypeScript. It listens on a unix socket, accepts VMs (nodevisor, or QEMU on a KVMI kernel),
 * performs the tool's side of the handshake and gives one `KvmiVm` per VM: every command as
 * an async method, events as an async iterator, each event answered with `reply()`.
 *
 *   const listener = await listen('/tmp/introspector');
 *   const vm = await listener.accept();
 *   await vm.controlEvents(0, 'BREAKPOINT', true);
 *   for await (const ev of vm.events()) {
 *     if (ev.event === 'BREAKPOINT') console.log(ev.regs.rip);
 *     await ev.reply('continue');
 *   }
 *
 * Errors: a command the VM refuses rejects with KvmiError (`code` 'EINVAL', 'EOPNOTSUPP', ...,
 * `errno` the wire number); a broken or closed connection with IntrospectionError.
 */
import { EventQueue } from '../util/event-queue.js';
import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';

import type { Regs, Sregs } from '../hypervisor/x86-state.js';
import { formatUuid, toolHandshake } from './handshake.js';
import { silentLog, type IntrospectionLog } from './log.js';
import { LAYOUTS, type Features, type LaidOutCommand, type PhysicalRange, type ReplyOf, type RequestOf } from './wire/commands.js';
import { errorName, IntrospectionError, KvmiError } from './wire/errors.js';
import {
  decodeEvent, encodeEventReply, type EventDataMap, type EventReplyDataMap, type PfReplyData,
} from './wire/events.js';
import { FrameReader } from './wire/frame-reader.js';
import { decodeReply, encodeMessage, type Frame } from './wire/header.js';
import {
  dialect, KVMI_EVENT_ACTION, type Dialect, type DialectName, type KvmiAction, type KvmiCommand, type KvmiEventName,
} from './wire/ids.js';
import type { EventMsrs, MsrValue } from './wire/vcpu-state.js';

export { KvmiError, IntrospectionError } from './wire/errors.js';
export type { KvmiErrorName, IntrospectionErrorCode } from './wire/errors.js';
export type { KvmiAction, KvmiCommand, KvmiEventName, DialectName } from './wire/ids.js';
export { KVMI_PAGE_ACCESS_R, KVMI_PAGE_ACCESS_W, KVMI_PAGE_ACCESS_X } from './wire/ids.js';
export type { Features, PhysicalRange, CpuidLeaf, PageAccessEntry } from './wire/commands.js';
export type { EventDataMap, PfReplyData } from './wire/events.js';
export type { EventMsrs, MsrValue } from './wire/vcpu-state.js';
export type { IntrospectionLog } from './log.js';
export type { Regs, Sregs } from '../hypervisor/x86-state.js';

export interface ListenOptions {
  /** The secret shared with the VM; its SHA-1 is sent in the handshake. */
  secret?: Uint8Array | string;
  /** How long a connecting VM has to send its hello (default 10 000 ms). */
  handshakeTimeoutMs?: number;
  /** Message numbering (default 'v7', libkvmi's). */
  dialect?: DialectName;
  /** Rejected connections and broken VMs are reported here. */
  log?: IntrospectionLog;
}

/** Listens on `path` (a stale socket file there is replaced, as libkvmi does). */
export async function listen(path: string, options: ListenOptions = {}): Promise<KvmiListener> {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
  const listener = new KvmiListener(path, options);
  await listener.started;
  return listener;
}

export class KvmiListener implements AsyncIterable<KvmiVm> {
  readonly path: string;
  readonly #server: net.Server;
  readonly #options: ListenOptions;
  readonly #ready: KvmiVm[] = [];
  readonly #waiters: Array<(vm: KvmiVm | undefined) => void> = [];
  #closed = false;
  readonly #sockets = new Set<net.Socket>();
  /** @internal */
  readonly started: Promise<void>;

  constructor(path: string, options: ListenOptions) {
    this.path = path;
    this.#options = options;
    this.#server = net.createServer((socket) => void this.#admit(socket));
    this.started = new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(path, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** The next VM that completed the handshake. */
  async accept(): Promise<KvmiVm> {
    const vm = await this.#next();
    if (vm === undefined) throw new IntrospectionError('ERR_KVMI_CLOSED', 'the listener is closed');
    return vm;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<KvmiVm, void, undefined> {
    for (let vm = await this.#next(); vm !== undefined; vm = await this.#next()) yield vm;
  }

  #next(): Promise<KvmiVm | undefined> {
    const vm = this.#ready.shift();
    if (vm !== undefined || this.#closed) return Promise.resolve(vm);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Stops listening; VMs already accepted stay connected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#sockets) s.destroy();
    for (const w of this.#waiters.splice(0)) w(undefined);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #admit(socket: net.Socket): Promise<void> {
    const log = this.#options.log ?? silentLog;
    this.#sockets.add(socket);
    socket.on('error', () => undefined); // reported through the handshake or the VM
    try {
      const { hello, rest } = await toolHandshake(socket, {
        secret: this.#options.secret,
        timeoutMs: this.#options.handshakeTimeoutMs,
      });
      const vm = new KvmiVm(socket, {
        uuid: formatUuid(hello.uuid), name: hello.name, startTime: hello.startTime,
        dialect: dialect(this.#options.dialect ?? 'v7'),
      });
      vm.start(rest);
      // As libkvmi does: a VM that rejected our secret closes instead of answering this.
      await vm.getVersion();
      this.#sockets.delete(socket);
      if (this.#closed) {
        await vm.close();
        return;
      }
      const w = this.#waiters.shift();
      if (w !== undefined) w(vm);
      else this.#ready.push(vm);
    } catch (e) {
      this.#sockets.delete(socket);
      log('warning', `introspection: VM connection rejected: ${(e as Error).message}`);
      socket.destroy();
    }
  }
}

/** The vCPU state every event carries. */
export interface KvmiEventCommon {
  /** The message's sequence number (replies echo it). */
  readonly seq: number;
  readonly vcpu: number;
  /** 2, 4 or 8: the operand size of the code that was running. */
  readonly mode: number;
  readonly view: number;
  readonly regs: Regs;
  readonly sregs: Sregs;
  readonly msrs: EventMsrs;
}

/** What a reply may carry besides its action (MSR: the value to write; PF: emulation context). */
export type KvmiReplyData<E extends KvmiEventName> = E extends 'MSR' | 'CR'
  ? { newValue: bigint }
  : E extends 'PF'
    ? Partial<PfReplyData>
    : never;

/** One event, typed by its name: `data` is the event-specific part. */
export type KvmiEvent = {
  [E in KvmiEventName]: KvmiEventCommon & {
    readonly event: E;
    readonly data: EventDataMap[E];
    /**
     * Answers the event; the vCPU waits for this. For MSR, `newValue` defaults to the value
     * the guest is writing. UNHOOK takes no reply (calling it does nothing).
     */
    reply(action: KvmiAction, data?: KvmiReplyData<E>): Promise<void>;
  };
}[KvmiEventName];

export interface ExceptionRequest {
  vector: number;
  errorCode?: number;
  /** CR2 for a #PF. */
  address?: bigint;
}

interface Pending {
  id: number;
  resolve(data: Uint8Array): void;
  reject(e: Error): void;
}

type Address = bigint | number;

export interface KvmiVmInfo {
  uuid: string;
  name: string;
  startTime: bigint;
  dialect: Dialect;
}

export class KvmiVm {
  /** The VM's UUID, as "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
  readonly uuid: string;
  readonly name: string;
  /** When the VM started, milliseconds since the epoch. */
  readonly startTime: bigint;
  readonly #socket: net.Socket;
  readonly #dialect: Dialect;
  readonly #reader = new FrameReader();
  readonly #pending = new Map<number, Pending>();
  readonly #events = new EventQueue<KvmiEvent>();
  #nextSeq = 1;
  #closed = false;
  #closedResolve!: () => void;
  /** Resolves when the connection is gone. */
  readonly closed = new Promise<void>((resolve) => (this.#closedResolve = resolve));

  /** @internal Built by KvmiListener after the handshake. */
  constructor(socket: net.Socket, info: KvmiVmInfo) {
    this.#socket = socket;
    this.uuid = info.uuid;
    this.name = info.name;
    this.startTime = info.startTime;
    this.#dialect = info.dialect;
  }

  /** @internal */
  start(rest: Uint8Array): void {
    this.#socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    this.#socket.on('close', () => this.#shutdown(new IntrospectionError('ERR_KVMI_CLOSED', 'the VM closed the connection')));
    if (rest.length > 0) this.#receive(rest);
    this.#socket.resume();
  }

  get dialect(): DialectName {
    return this.#dialect.name;
  }

  // ---- commands ----

  /** Sends a raw command and resolves with its reply data (or rejects with its error). */
  request(id: number, payload: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new IntrospectionError('ERR_KVMI_CLOSED', 'the VM is disconnected'));
    const seq = this.#seq();
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(seq, { id, resolve, reject });
      this.#socket.write(encodeMessage(id, seq, payload));
    });
  }

  async #call<C extends LaidOutCommand>(command: C, req: RequestOf<C>): Promise<ReplyOf<C>> {
    const layout = LAYOUTS[command] as unknown as {
      encodeRequest(q: RequestOf<C>): Uint8Array;
      decodeReply(d: Uint8Array, q: RequestOf<C>): ReplyOf<C>;
    };
    const data = await this.request(this.#id(command), layout.encodeRequest(req));
    try {
      return layout.decodeReply(data, req);
    } catch (e) {
      throw new IntrospectionError('ERR_KVMI_PROTOCOL', `malformed ${command} reply: ${(e as Error).message}`);
    }
  }

  #id(command: KvmiCommand): number {
    const id = this.#dialect.commandId(command);
    if (id === undefined) throw new KvmiError('ENOSYS', `the ${this.#dialect.name} dialect has no ${command}`);
    return id;
  }

  #event(event: KvmiEventName | number): number {
    if (typeof event === 'number') return event;
    const id = this.#dialect.eventId(event);
    if (id === undefined) throw new KvmiError('EINVAL', `the ${this.#dialect.name} dialect has no event ${event}`);
    return id;
  }

  async getVersion(): Promise<{ version: number; features: Features }> {
    return this.#call('GET_VERSION', null);
  }

  /** Resolves if the VM serves the command; rejects with its reason (EOPNOTSUPP, EPERM, EINVAL). */
  async checkCommand(command: KvmiCommand | number): Promise<void> {
    await this.#call('CHECK_COMMAND', { id: typeof command === 'number' ? command : this.#id(command) });
  }

  /** Resolves if the VM can raise the event. */
  async checkEvent(event: KvmiEventName | number): Promise<void> {
    await this.#call('CHECK_EVENT', { id: this.#event(event) });
  }

  async getGuestInfo(): Promise<{ vcpuCount: number }> {
    return this.#call('GET_GUEST_INFO', null);
  }

  /** The vCPU's TSC frequency in Hz (0 if the VM does not know). */
  async getVcpuInfo(vcpu: number): Promise<{ tscSpeed: bigint }> {
    return this.#call('GET_VCPU_INFO', { vcpu });
  }

  /** Asks for a PAUSE_VCPU event from the vCPU; it stays paused until that event is answered. */
  async pauseVcpu(vcpu: number, options: { wait?: boolean } = {}): Promise<void> {
    await this.#call('PAUSE_VCPU', { vcpu, wait: options.wait ?? true });
  }

  /**
   * Pauses vCPUs 0..count-1 (default: all) the way libkvmi does: replies off, one PAUSE_VCPU
   * per vCPU, replies back on, all in one write, and exactly one reply, to the last message.
   * A PAUSE_VCPU event per vCPU follows; each vCPU resumes when its event is answered.
   */
  async pauseAllVcpus(count?: number): Promise<void> {
    const n = count ?? (await this.getGuestInfo()).vcpuCount;
    if (n === 0) return;
    if (this.#closed) throw new IntrospectionError('ERR_KVMI_CLOSED', 'the VM is disconnected');
    const toggle = this.#id('CONTROL_CMD_RESPONSE');
    const pause = this.#id('PAUSE_VCPU');
    const parts = [encodeMessage(toggle, this.#seq(), LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable: false, now: true }))];
    for (let vcpu = 0; vcpu < n; vcpu++) {
      parts.push(encodeMessage(pause, this.#seq(), LAYOUTS.PAUSE_VCPU.encodeRequest({ vcpu, wait: true })));
    }
    const last = this.#seq();
    parts.push(encodeMessage(toggle, last, LAYOUTS.CONTROL_CMD_RESPONSE.encodeRequest({ enable: true, now: true })));
    await new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(last, { id: toggle, resolve, reject });
      this.#socket.write(Buffer.concat(parts));
    });
  }

  /** Enables or disables a VM-wide event (CREATE_VCPU, UNHOOK). */
  async controlVmEvents(event: KvmiEventName | number, enable: boolean): Promise<void> {
    await this.#call('CONTROL_VM_EVENTS', { event: this.#event(event), enable });
  }

  /** Enables or disables a vCPU event (BREAKPOINT, MSR, PF, SINGLESTEP, ...). */
  async controlEvents(vcpu: number, event: KvmiEventName | number, enable: boolean): Promise<void> {
    await this.#call('CONTROL_EVENTS', { vcpu, event: this.#event(event), enable });
  }

  async controlCr(vcpu: number, cr: number, enable: boolean): Promise<void> {
    await this.#call('CONTROL_CR', { vcpu, enable, register: cr });
  }

  /** MSR events for one MSR (with the MSR event enabled by controlEvents). */
  async controlMsr(vcpu: number, msr: number, enable: boolean): Promise<void> {
    await this.#call('CONTROL_MSR', { vcpu, enable, register: msr });
  }

  async getRegisters(vcpu: number, msrs: readonly number[] = []): Promise<{ mode: number; regs: Regs; sregs: Sregs; msrs: MsrValue[] }> {
    return this.#call('GET_REGISTERS', { vcpu, msrs: [...msrs] });
  }

  /** Only while the vCPU has an event outstanding (else EOPNOTSUPP); applies when it resumes. */
  async setRegisters(vcpu: number, regs: Regs): Promise<void> {
    await this.#call('SET_REGISTERS', { vcpu, regs });
  }

  async getCpuid(vcpu: number, fn: number, index = 0): Promise<{ eax: number; ebx: number; ecx: number; edx: number }> {
    return this.#call('GET_CPUID', { vcpu, function: fn, index });
  }

  async getXsave(vcpu: number): Promise<Uint8Array> {
    return this.#call('GET_XSAVE', { vcpu });
  }

  async getXcr(vcpu: number, xcr = 0): Promise<bigint> {
    return (await this.#call('VCPU_GET_XCR', { vcpu, xcr })).value;
  }

  async readPhysical(gpa: Address, size: number): Promise<Uint8Array> {
    return this.#call('READ_PHYSICAL', { gpa: BigInt(gpa), size: BigInt(size) });
  }

  async writePhysical(gpa: Address, data: Uint8Array): Promise<void> {
    await this.#call('WRITE_PHYSICAL', { gpa: BigInt(gpa), data });
  }

  async queryPhysical(gpa: Address): Promise<PhysicalRange> {
    return this.#call('QUERY_PHYSICAL', { gpa: BigInt(gpa) });
  }

  /** One past the highest guest frame number. */
  async getMaxGfn(): Promise<bigint> {
    return (await this.#call('GET_MAX_GFN', null)).gfn;
  }

  async injectException(vcpu: number, e: ExceptionRequest): Promise<void> {
    await this.#call('INJECT_EXCEPTION', { vcpu, vector: e.vector, errorCode: e.errorCode ?? 0, address: e.address ?? 0n });
  }

  /** The guest-physical address, or null when the guest's page tables do not map `gva`. */
  async translateGva(vcpu: number, gva: Address): Promise<bigint | null> {
    const { gpa } = await this.#call('VCPU_TRANSLATE_GVA', { vcpu, gva: BigInt.asUintN(64, BigInt(gva)) });
    return gpa === 0xffff_ffff_ffff_ffffn ? null : gpa;
  }

  /** Sets KVMI_PAGE_ACCESS_* bits per page; on stock KVM only W can be taken away. */
  async setPageAccess(entries: ReadonlyArray<{ gpa: Address; access: number }>, view = 0): Promise<void> {
    await this.#call('SET_PAGE_ACCESS', { view, entries: entries.map((e) => ({ gpa: BigInt(e.gpa), access: e.access })) });
  }

  async getPageAccess(gpas: readonly Address[], view = 0): Promise<number[]> {
    return this.#call('GET_PAGE_ACCESS', { view, gpas: gpas.map((g) => BigInt(g)) });
  }

  async controlSingleStep(vcpu: number, enable: boolean): Promise<void> {
    await this.#call('VCPU_CONTROL_SINGLESTEP', { vcpu, enable });
  }

  // ---- events ----

  /** Events in arrival order, buffered from connection time; ends with the connection. */
  events(): AsyncGenerator<KvmiEvent, void, undefined> {
    return this.#events[Symbol.asyncIterator]();
  }


  /** Closes the connection; the VM releases every vCPU and removes every hook. */
  async close(): Promise<void> {
    if (!this.#socket.destroyed) this.#socket.end(() => this.#socket.destroy());
    await this.closed;
  }

  // ---- receiving ----

  #seq(): number {
    const seq = this.#nextSeq;
    this.#nextSeq = (this.#nextSeq + 1) >>> 0 || 1;
    return seq;
  }

  #receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    try {
      for (const f of this.#reader.push(chunk)) this.#frame(f);
    } catch (e) {
      this.#shutdown(e instanceof IntrospectionError ? e : new IntrospectionError('ERR_KVMI_PROTOCOL', (e as Error).message));
      this.#socket.destroy();
    }
  }

  #frame(f: Frame): void {
    if (f.id === this.#dialect.eventMessage) {
      this.#events.push(this.#makeEvent(f));
      return;
    }
    const p = this.#pending.get(f.seq);
    if (p === undefined || p.id !== f.id) {
      throw new IntrospectionError('ERR_KVMI_PROTOCOL', `unexpected message ${f.id} (seq ${f.seq})`);
    }
    this.#pending.delete(f.seq);
    let reply;
    try {
      reply = decodeReply(f.payload);
    } catch (e) {
      const broken = new IntrospectionError('ERR_KVMI_PROTOCOL', `malformed reply (seq ${f.seq}): ${(e as Error).message}`);
      p.reject(broken);
      throw broken;
    }
    const { err, data } = reply;
    if (err === 0) {
      p.resolve(data);
      return;
    }
    const name = errorName(err);
    p.reject(name === undefined ? new IntrospectionError('ERR_KVMI_UNKNOWN_ERROR', `error ${err}`) : new KvmiError(name));
  }

  #makeEvent(f: Frame): KvmiEvent {
    const d = decodeEvent(this.#dialect, f.payload);
    let answered = false;
    const reply = async (action: KvmiAction, data?: { newValue?: bigint } & Partial<PfReplyData>): Promise<void> => {
      if (d.event === 'UNHOOK') return;
      if (answered) throw new Error(`event ${f.seq} was already answered`);
      if (this.#closed) throw new IntrospectionError('ERR_KVMI_CLOSED', 'the VM is disconnected');
      answered = true;
      let replyData: EventReplyDataMap[keyof EventReplyDataMap] | undefined;
      if (d.event === 'MSR') replyData = { newValue: data?.newValue ?? d.data.newValue };
      else if (d.event === 'CR') replyData = { newValue: data?.newValue ?? d.data.newValue };
      else if (d.event === 'PF') {
        replyData = {
          ctxAddr: data?.ctxAddr ?? 0n, ctxSize: data?.ctxSize ?? 0, singlestep: data?.singlestep ?? false,
          repComplete: data?.repComplete ?? false, ctxData: data?.ctxData ?? new Uint8Array(0),
        };
      }
      const payload = encodeEventReply(this.#dialect, {
        vcpu: d.vcpu, action: KVMI_EVENT_ACTION[action], event: d.event, data: replyData,
      } as Parameters<typeof encodeEventReply>[1]);
      this.#socket.write(encodeMessage(this.#dialect.eventReplyMessage, f.seq, payload));
    };
    const { mode, view: v, regs, sregs, msrs } = d.state;
    return { seq: f.seq, vcpu: d.vcpu, event: d.event, data: d.data, mode, view: v, regs, sregs, msrs, reply } as KvmiEvent;
  }

  #shutdown(reason: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
    this.#events.close();
    this.#closedResolve();
  }
}
