/**
 * The VM side of a KVMI connection, after the handshake: serves the tool's commands against an
 * IntrospectionTarget and forwards the target's events to the tool.
 *
 * Messages are handled one at a time, in arrival order (a batch such as SET_REGISTERS followed
 * by an EVENT_REPLY relies on it). Each vCPU has at most one event outstanding: it waits for
 * the reply while other vCPUs run and commands keep being served; further events of that
 * vCPU queue behind it, PAUSE_VCPU events last. When the session ends, for whatever reason,
 * every waiting vCPU is released with CONTINUE, every hook the tool set is removed from the
 * target (breakpoint and single-step interception, MSR intercepts, write protection) and
 * every vCPU the tool paused is resumed: the guest runs on uninspected.
 *
 * Decisions where the notes leave a choice, from the KVMI documentation:
 *   unknown message id                      -ENOSYS
 *   known command impossible on stock KVM   -EOPNOTSUPP (CHECK_COMMAND agrees)
 *   CHECK_* of an unknown id                -EINVAL
 *   bad size, non-zero padding, flag > 1    -EINVAL
 *   SET_REGISTERS without a pending event   -EOPNOTSUPP ("not received during an introspection event")
 *   header announcing > 8184 bytes          connection closed
 *   a KVMI_EVENT message from the tool      connection closed (an answer would read as an event)
 *   EVENT_REPLY not matching the outstanding event (seq, vCPU, event, size, padding, action)
 *                                           connection closed (the VM never answers a reply)
 *   replies switched off, and a command that returns data, or an unknown or unsupported one
 *                                           connection closed
 */
import {
  COMMANDS_WITH_DATA, controllableMsr, EVENT_ACTIONS, filterableMsr, UNSUPPORTED_COMMANDS, UNSUPPORTED_EVENTS,
  VCPU_EVENTS, VECTORS_WITH_ERROR_CODE, VM_EVENTS,
} from './capabilities.js';
import { translateGva } from './gva.js';
import { silentLog, type IntrospectionLog } from './log.js';
import type { EventSlots } from './socket/event-slots.js';
import { WANT_BREAKPOINT, WANT_SINGLESTEP } from './socket/event-slots.js';
import type { IntrospectionTarget, TargetEvent, VcpuRegisters } from './target.js';
import { LAYOUTS, type LaidOutCommand } from './wire/commands.js';
import { errorNumber, KvmiError, type KvmiErrorName } from './wire/errors.js';
import {
  decodeEventReply, decodeEventReplyData, encodeEvent, eventReplyDataSize, type EventDataMap,
} from './wire/events.js';
import { FrameReader } from './wire/frame-reader.js';
import { encodeMessage, encodeReply, KVMI_MAX_REPLY_DATA, type Frame } from './wire/header.js';
import {
  dialect, KVMI_PAGE_ACCESS_R, KVMI_PAGE_ACCESS_W, KVMI_PAGE_ACCESS_X, KVMI_VERSION,
  type Dialect, type DialectName, type KvmiAction, type KvmiCommand, type KvmiEventName,
} from './wire/ids.js';
import { cpuMode, EVENT_MSR_NAMES, EVENT_MSRS, eventSnapshot, zeroSnapshot } from './wire/vcpu-state.js';

/** Where the session's messages go. */
export interface SessionTransport {
  /** Sends one whole message; the transport never splits or interleaves it. */
  write(bytes: Uint8Array): void;
  /** Ends the connection; called once, when the session ends. */
  close(): void;
  /**
   * Called after each received frame is handled (its reply, if any, written), with whether
   * replies are on: a transport that answers some commands itself (the socket thread's
   * READ_PHYSICAL) does so only when no frame before is still being handled.
   */
  handled?(replies: boolean): void;
}

export interface SessionOptions {
  dialect?: DialectName;
  log?: IntrospectionLog;
  /** How long `unhook()` waits for the tool to close the connection (default 60 000 ms). */
  unhookTimeoutMs?: number;
}

/** KVMI bounds the PAUSE_VCPU events a vCPU may owe; past this, -EBUSY. */
export const MAX_PENDING_PAUSES = 255;
export const DEFAULT_UNHOOK_TIMEOUT_MS = 60_000;

const ACTION_NAMES: readonly KvmiAction[] = ['continue', 'retry', 'crash'];
const PAGE_MASK = ~0xfffn;
const UNMAPPED = 0xffff_ffff_ffff_ffffn;
const EVENT_MSR_INDICES = EVENT_MSR_NAMES.map((n) => EVENT_MSRS[n]);
const NO_DATA = new Uint8Array(0);

/** An event on its way to the tool, and what to do with the answer. */
interface Outgoing {
  event: KvmiEventName;
  /** PAUSE_VCPU events go after every other event of the vCPU. */
  lowPriority: boolean;
  /** The event-specific data, from the vCPU's registers at sending time. */
  data(state: VcpuRegisters): EventDataMap[KvmiEventName];
  /** The vCPU's registers and event MSRs, when the target sent them with the event. */
  state?: VcpuRegisters;
  /** The tool's answer, or undefined when the session ends before it (release: CONTINUE). */
  answer(action: KvmiAction, rest: Uint8Array | undefined): void;
}

interface Sent extends Outgoing {
  seq: number;
}

class VcpuState {
  /** Events enabled with CONTROL_EVENTS. */
  readonly events = new Set<KvmiEventName>();
  /** MSRs enabled with CONTROL_MSR. */
  readonly msrs = new Set<number>();
  /** The target intercepts INT3 on this vCPU for us. */
  breakpointIntercept = false;
  singlestep = false;
  readonly queue: Outgoing[] = [];
  pending: Sent | undefined;
  /** Reading registers for the next event. */
  sending = false;
  /** Accepted PAUSE_VCPU commands whose event has not been answered yet. */
  pauses = 0;
  /** target.pause() was called and resume() not yet. */
  held = false;
}

type Handler = (payload: Uint8Array) => Promise<Uint8Array | null> | Uint8Array | null;

export class KvmiSession {
  readonly #target: IntrospectionTarget;
  readonly #transport: SessionTransport;
  /** The target's vCPUs may send some events themselves through these (socket/event-slots.ts). */
  readonly #slots: EventSlots | undefined;
  readonly #dialect: Dialect;
  readonly #log: IntrospectionLog;
  readonly #unhookTimeoutMs: number;
  readonly #reader = new FrameReader();
  readonly #inbox: Frame[] = [];
  readonly #vcpus: VcpuState[] = [];
  readonly #vmEvents = new Set<KvmiEventName>();
  /** MSRs the target intercepts for us: the union of every vCPU's CONTROL_MSR set. */
  readonly #interceptedMsrs = new Set<number>();
  /** Page-aligned addresses of the pages the tool write-protected. */
  readonly #protected = new Set<bigint>();
  readonly #background = new Set<Promise<void>>();
  readonly #handlers: Partial<Record<KvmiCommand, Handler>>;
  #replies = true;
  #draining: Promise<void> | undefined;
  #closing = false;
  #nextEventSeq = 1;
  #peerGone!: () => void;
  readonly #peerGonePromise = new Promise<void>((resolve) => (this.#peerGone = resolve));
  #ended!: () => void;
  /** Resolves once the session has ended and the target is clean again. */
  readonly ended = new Promise<void>((resolve) => (this.#ended = resolve));
  #warnedPfContext = false;

  constructor(target: IntrospectionTarget, transport: SessionTransport, options: SessionOptions = {}) {
    this.#target = target;
    this.#transport = transport;
    this.#slots = target.eventSlots;
    this.#dialect = dialect(options.dialect ?? 'v7');
    this.#log = options.log ?? silentLog;
    this.#unhookTimeoutMs = options.unhookTimeoutMs ?? DEFAULT_UNHOOK_TIMEOUT_MS;
    this.#handlers = this.#makeHandlers();
    this.#unsupportedCommands = new Set([...UNSUPPORTED_COMMANDS, ...(target.unsupported?.commands ?? [])]);
    this.#unsupportedEvents = new Set([...UNSUPPORTED_EVENTS, ...(target.unsupported?.events ?? [])]);
  }

  /** What stock KVM cannot do, plus what this target cannot (yet). */
  readonly #unsupportedCommands: ReadonlySet<KvmiCommand>;
  readonly #unsupportedEvents: ReadonlySet<KvmiEventName>;

  get closed(): boolean {
    return this.#closing;
  }

  /** Starts serving: events flow from now on, and `initial` holds bytes already received. */
  start(initial: Uint8Array = NO_DATA): void {
    if (this.#slots !== undefined) {
      this.#slots.setDialect(this.#dialect.name);
      for (let i = 0; i < this.#slots.vcpuCount; i++) {
        this.#slots.setWanted(i, 0);
        this.#slots.setQueued(i, 0);
      }
    }
    this.#target.setEventSink((e) => this.#onTargetEvent(e), EVENT_MSR_INDICES);
    if (initial.length > 0) this.receive(initial);
  }

  /** Bytes from the tool, in any split. */
  receive(chunk: Uint8Array): void {
    if (this.#closing) return;
    try {
      this.#inbox.push(...this.#reader.push(chunk));
    } catch (e) {
      this.#violation((e as Error).message);
      return;
    }
    this.#draining ??= this.#drain();
  }

  /** Frames already cut from the stream (by the socket thread), in order. */
  receiveFrames(frames: readonly Frame[]): void {
    if (this.#closing) return;
    this.#inbox.push(...frames);
    this.#draining ??= this.#drain();
  }

  /** The stream broke the framing rules before a frame could be cut (the socket thread's reader). */
  framingError(message: string): void {
    if (!this.#closing) this.#violation(message);
  }

  /**
   * The socket thread answered a vCPU's own event while the session had events queued for
   * that vCPU: they can go out now.
   */
  directAnswered(vcpu: number): void {
    this.#pump(vcpu);
  }

  /** The tool closed the connection (or it broke). */
  peerClosed(): void {
    this.#peerGone();
    void this.close('the tool closed the connection');
  }

  /** Resolves when every message received so far has been handled. */
  async idle(): Promise<void> {
    while (this.#draining !== undefined) await this.#draining;
  }

  /**
   * The VMM wants the tool gone (shutdown, migration): sends UNHOOK if the tool asked for it,
   * gives it the unhook timeout to close the connection, then ends the session.
   */
  async unhook(): Promise<void> {
    if (!this.#closing && this.#vmEvents.has('UNHOOK')) {
      const payload = encodeEvent(this.#dialect, { vcpu: 0, event: 'UNHOOK', state: zeroSnapshot(), data: null });
      this.#transport.write(encodeMessage(this.#dialect.eventMessage, this.#eventSeq(), payload));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#peerGonePromise,
        this.ended,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#unhookTimeoutMs))),
      ]);
      clearTimeout(timer);
    }
    await this.close('unhooked');
  }

  /** Ends the session and cleans the target; resolves when done. */
  close(reason: string): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#log('info', `introspection: session ends: ${reason}`);
      void this.#teardown();
    }
    return this.ended;
  }

  // ---- receiving ----

  async #drain(): Promise<void> {
    // Never finish synchronously: receive() stores this promise before it may be cleared.
    await null;
    try {
      for (let f = this.#inbox.shift(); f !== undefined && !this.#closing; f = this.#inbox.shift()) {
        await this.#handle(f);
        this.#transport.handled?.(this.#replies);
      }
    } catch (e) {
      this.#log('error', `introspection: internal error: ${(e as Error).message}`);
      void this.close('internal error');
    } finally {
      this.#draining = undefined;
    }
  }

  async #handle(f: Frame): Promise<void> {
    if (f.id === this.#dialect.eventReplyMessage) {
      this.#eventReply(f);
      return;
    }
    if (f.id === this.#dialect.eventMessage) {
      // Its reply would carry the event id and read as an event: it cannot be answered.
      this.#violation(`the tool sent an event message (seq ${f.seq})`);
      return;
    }
    const name = this.#dialect.command(f.id);
    if (name === 'CONTROL_CMD_RESPONSE') {
      this.#controlCmdResponse(f);
      return;
    }
    const handler = name === undefined || this.#unsupportedCommands.has(name) ? undefined : this.#handlers[name];
    if (!this.#replies && (handler === undefined || COMMANDS_WITH_DATA.has(name as KvmiCommand))) {
      this.#violation(`message ${f.id} (seq ${f.seq}) needs a reply while replies are off`);
      return;
    }
    let err = 0;
    let data: Uint8Array | null = null;
    if (name === undefined) err = errorNumber('ENOSYS');
    else if (handler === undefined) err = errorNumber('EOPNOTSUPP');
    else {
      try {
        data = await handler(f.payload);
      } catch (e) {
        err = this.#errno(e, name);
      }
    }
    if (this.#replies && !this.#closing) this.#transport.write(encodeReply(f.id, f.seq, err, data ?? NO_DATA));
  }

  #errno(e: unknown, name: KvmiCommand): number {
    if (e instanceof KvmiError) return e.errno;
    this.#log('error', `introspection: ${name} failed: ${(e as Error).message}`);
    return errorNumber('EFAULT');
  }

  /** CONTROL_CMD_RESPONSE: `now` decides whether the new setting governs this very reply. */
  #controlCmdResponse(f: Frame): void {
    let q;
    try {
      q = LAYOUTS.CONTROL_CMD_RESPONSE.decodeRequest(f.payload);
    } catch (e) {
      // An invalid request leaves the setting alone.
      if (this.#replies) this.#transport.write(encodeReply(f.id, f.seq, (e as KvmiError).errno));
      return;
    }
    if (q.now) this.#replies = q.enable;
    if (this.#replies) this.#transport.write(encodeReply(f.id, f.seq, 0));
    if (!q.now) this.#replies = q.enable;
  }

  #eventReply(f: Frame): void {
    let r;
    try {
      r = decodeEventReply(f.payload);
    } catch (e) {
      this.#violation(`malformed event reply (seq ${f.seq}): ${(e as Error).message}`);
      return;
    }
    const v = this.#vcpus[r.vcpu];
    const sent = v?.pending;
    if (v === undefined || sent === undefined || sent.seq !== f.seq) {
      if (!this.#directReply(f, r)) this.#violation(`event reply (seq ${f.seq}, vCPU ${r.vcpu}) answers no outstanding event`);
      return;
    }
    if (r.eventId !== this.#dialect.eventId(sent.event)) {
      this.#violation(`event reply (seq ${f.seq}) names event ${r.eventId}, not ${sent.event}`);
      return;
    }
    if (r.rest.length !== eventReplyDataSize(sent.event)) {
      this.#violation(`${sent.event} reply with ${r.rest.length} bytes of data, expected ${eventReplyDataSize(sent.event)}`);
      return;
    }
    let action = ACTION_NAMES[r.action];
    if (action === undefined) {
      this.#violation(`event reply (seq ${f.seq}) with unknown action ${r.action}`);
      return;
    }
    if (!(EVENT_ACTIONS[sent.event]?.has(action) ?? false)) {
      // The KVMI patches logged this and carried on.
      this.#log('warning', `introspection: action ${action} is not defined for ${sent.event}; continuing`);
      action = 'continue';
    }
    try {
      sent.answer(action, r.rest);
    } catch (e) {
      // Bad reply data: the vCPU is still waiting, and the session's end releases it.
      this.#violation(`${sent.event} reply: ${(e as Error).message}`);
      return;
    }
    v.pending = undefined;
    this.#slots?.releaseSession(r.vcpu);
    this.#pump(r.vcpu);
  }

  /**
   * A reply to an event the vCPU sent itself, which the socket thread left to the session
   * (frames before it were still being handled, events are queued, or the action is CRASH).
   * The same checks as for the session's own events. False: no such event is outstanding.
   */
  #directReply(f: Frame, r: ReturnType<typeof decodeEventReply>): boolean {
    const out = this.#slots?.direct(r.vcpu);
    if (this.#slots === undefined || out === undefined || out.seq !== f.seq >>> 0) return false;
    const event = this.#dialect.event(out.event);
    if (event === undefined || r.eventId !== out.event) {
      this.#violation(`event reply (seq ${f.seq}) names event ${r.eventId}, not ${event ?? out.event}`);
      return true;
    }
    if (r.rest.length !== eventReplyDataSize(event)) {
      this.#violation(`${event} reply with ${r.rest.length} bytes of data, expected ${eventReplyDataSize(event)}`);
      return true;
    }
    let action = ACTION_NAMES[r.action];
    if (action === undefined) {
      this.#violation(`event reply (seq ${f.seq}) with unknown action ${r.action}`);
      return true;
    }
    if (!(EVENT_ACTIONS[event]?.has(action) ?? false)) {
      this.#log('warning', `introspection: action ${action} is not defined for ${event}; continuing`);
      action = 'continue';
    }
    if (action === 'crash') this.#target.crash(r.vcpu);
    this.#slots.answer(r.vcpu, f.seq, action);
    this.#pump(r.vcpu);
    return true;
  }

  #violation(what: string): void {
    this.#log('error', `introspection: protocol violation: ${what}`);
    void this.close('protocol violation');
  }

  // ---- events ----

  #vcpu(i: number): VcpuState {
    let v = this.#vcpus[i];
    if (v === undefined) {
      v = new VcpuState();
      this.#vcpus[i] = v;
    }
    return v;
  }

  #eventSeq(): number {
    const seq = this.#nextEventSeq;
    this.#nextEventSeq = (this.#nextEventSeq + 1) >>> 0 || 1;
    return seq;
  }

  #onTargetEvent(e: TargetEvent): void {
    if (this.#closing || !this.#wanted(e)) {
      releaseTargetEvent(e);
      return;
    }
    this.#vcpu(e.vcpu).queue.push(this.#outgoing(e));
    this.#publishQueued(e.vcpu);
    this.#pump(e.vcpu);
  }

  /** Whether the tool asked for this event; unwanted events continue at once. */
  #wanted(e: TargetEvent): boolean {
    if (e.kind === 'create-vcpu') return this.#vmEvents.has('CREATE_VCPU');
    const v = this.#vcpus[e.vcpu];
    if (v === undefined) return false;
    switch (e.kind) {
      case 'breakpoint': return v.events.has('BREAKPOINT');
      case 'msr': return v.events.has('MSR') && v.msrs.has(e.msr);
      case 'pf': return v.events.has('PF') && this.#protected.has(e.gpa & PAGE_MASK);
      case 'singlestep': return v.events.has('SINGLESTEP') && v.singlestep;
    }
  }

  #outgoing(e: TargetEvent): Outgoing {
    const base = { lowPriority: false, ...(e.state !== undefined ? { state: e.state } : {}) };
    switch (e.kind) {
      case 'breakpoint':
        return {
          ...base,
          event: 'BREAKPOINT',
          data: (s) => ({ gpa: e.gpa ?? this.#translate(e.gva, s) ?? UNMAPPED, insnLength: e.insnLength }),
          answer: (action) => e.reply(action),
        };
      case 'msr':
        return {
          ...base,
          event: 'MSR',
          data: () => ({ msr: e.msr, oldValue: e.oldValue, newValue: e.newValue }),
          answer: (action, rest) => {
            const value = rest === undefined ? e.newValue : decodeEventReplyData('MSR', rest).newValue;
            e.reply(action, value);
          },
        };
      case 'pf':
        return {
          ...base,
          event: 'PF',
          data: () => ({ gva: e.gva ?? UNMAPPED, gpa: e.gpa, access: e.access, view: 0 }),
          answer: (action, rest) => {
            if (rest !== undefined) this.#checkPfReply(rest);
            e.reply(action);
          },
        };
      case 'singlestep':
        return { ...base, event: 'SINGLESTEP', data: () => ({ failed: e.failed }), answer: (action) => e.reply(action) };
      case 'create-vcpu':
        return { ...base, event: 'CREATE_VCPU', data: () => null, answer: (action) => e.reply(action) };
    }
  }

  /** KVM cannot emulate with a tool-supplied context: the fields are parsed, then ignored. */
  #checkPfReply(rest: Uint8Array): void {
    const d = decodeEventReplyData('PF', rest);
    if ((d.ctxSize !== 0 || d.singlestep || d.repComplete) && !this.#warnedPfContext) {
      this.#warnedPfContext = true;
      this.#log('warning', 'introspection: PF reply emulation context ignored (not possible on stock KVM)');
    }
  }

  #translate(gva: bigint, s: VcpuRegisters): bigint | undefined {
    return translateGva(gva, s.sregs, (gpa, size) => this.#target.readPhysical(gpa, size));
  }

  /** Sends the vCPU's next event unless one is outstanding. */
  #pump(i: number): void {
    const v = this.#vcpus[i];
    if (v === undefined || this.#closing || v.pending !== undefined || v.sending) return;
    let at = v.queue.findIndex((o) => !o.lowPriority);
    if (at < 0) at = v.queue.length > 0 ? 0 : -1;
    if (at < 0) return;
    // The vCPU's own event is out: this one goes when that one is answered.
    if (this.#slots !== undefined && !this.#slots.claimForSession(i)) return;
    const next = v.queue.splice(at, 1)[0]!;
    this.#publishQueued(i);
    // The state came with the event (read by the vCPU's thread): send it now, no round trip.
    if (next.state !== undefined) {
      this.#send(i, v, next, next.state);
      return;
    }
    v.sending = true;
    const done = this.#target.getRegisters(i, EVENT_MSR_INDICES).then(
      (state) => {
        v.sending = false;
        this.#send(i, v, next, state);
      },
      (e: unknown) => {
        v.sending = false;
        this.#log('error', `introspection: vCPU ${i}: cannot read its state for ${next.event}: ${(e as Error).message}`);
        this.#slots?.releaseSession(i);
        next.answer('continue', undefined);
        this.#pump(i);
      },
    );
    this.#track(done);
  }

  /** Encodes and writes the vCPU's event; it is then outstanding until the tool replies. */
  #send(i: number, v: VcpuState, next: Outgoing, state: VcpuRegisters): void {
    if (this.#closing) {
      this.#slots?.releaseSession(i);
      next.answer('continue', undefined);
      return;
    }
    let payload: Uint8Array;
    try {
      payload = encodeEvent(this.#dialect, {
        vcpu: i, event: next.event, state: eventSnapshot(state.regs, state.sregs, state.msrs), data: next.data(state),
      } as Parameters<typeof encodeEvent>[1]);
    } catch (e) {
      // Never leave the vCPU waiting for an event that cannot be sent.
      this.#log('error', `introspection: vCPU ${i}: cannot send ${next.event}: ${(e as Error).message}`);
      this.#slots?.releaseSession(i);
      next.answer('continue', undefined);
      this.#pump(i);
      return;
    }
    const seq = this.#eventSeq();
    v.pending = { ...next, seq };
    this.#transport.write(encodeMessage(this.#dialect.eventMessage, seq, payload));
  }

  /** Tells the socket thread whether replies for this vCPU's own events must come through here. */
  #publishQueued(i: number): void {
    if (this.#slots !== undefined && i < this.#slots.vcpuCount) this.#slots.setQueued(i, this.#vcpus[i]?.queue.length ?? 0);
  }

  /** Which events the vCPU may send itself: those the tool enabled (single steps while stepping). */
  #publishWanted(i: number, stepping?: boolean): void {
    const v = this.#vcpus[i];
    if (this.#slots === undefined || v === undefined || i >= this.#slots.vcpuCount) return;
    const step = v.events.has('SINGLESTEP') && (stepping ?? v.singlestep);
    const mask = (v.events.has('BREAKPOINT') ? WANT_BREAKPOINT : 0) | (step ? WANT_SINGLESTEP : 0);
    this.#slots.setWanted(i, this.#closing ? 0 : mask);
  }

  #track(p: Promise<void>): void {
    const guarded = p.catch((e: unknown) => this.#log('error', `introspection: ${(e as Error).message}`));
    this.#background.add(guarded);
    void guarded.finally(() => this.#background.delete(guarded));
  }

  // ---- pausing ----

  /** Holds the vCPU (once pause resolves) and owes the tool one PAUSE_VCPU event. */
  async #pause(i: number): Promise<void> {
    const v = this.#vcpu(i);
    v.pauses++;
    try {
      await this.#target.pause(i);
    } catch (e) {
      v.pauses--;
      this.#releaseHold(i);
      throw e;
    }
    v.held = true;
    const answer = (action: KvmiAction): void => {
      if (action === 'crash') this.#target.crash(i);
      v.pauses--;
      this.#releaseHold(i);
    };
    v.queue.push({ event: 'PAUSE_VCPU', lowPriority: true, data: () => null, answer });
    this.#publishQueued(i);
    this.#pump(i);
  }

  #releaseHold(i: number): void {
    const v = this.#vcpus[i];
    if (v === undefined || !v.held || v.pauses > 0) return;
    v.held = false;
    this.#target.resume(i);
  }

  // ---- ending ----

  async #teardown(): Promise<void> {
    this.#transport.close();
    this.#releaseEvents();
    await this.idle();
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
    this.#releaseEvents(); // anything the last command or a late pause queued
    await this.#dropHooks();
    this.#target.setEventSink(null);
    this.#vcpus.forEach((v, i) => {
      if (v.held) {
        v.held = false;
        this.#target.resume(i);
      }
    });
    this.#ended();
  }

  /** Every vCPU waiting for the tool goes on as if it had answered CONTINUE. */
  #releaseEvents(): void {
    const slots = this.#slots;
    for (let i = 0; slots !== undefined && i < slots.vcpuCount; i++) {
      slots.setWanted(i, 0);
      const out = slots.direct(i);
      if (out !== undefined) slots.answer(i, out.seq, 'continue');
    }
    for (const [i, v] of this.#vcpus.entries()) {
      if (v === undefined) continue;
      const waiting = [...(v.pending === undefined ? [] : [v.pending]), ...v.queue.splice(0)];
      v.pending = undefined;
      this.#publishQueued(i);
      slots?.releaseSession(i);
      for (const o of waiting) {
        try {
          o.answer('continue', undefined);
        } catch (e) {
          this.#log('error', `introspection: releasing a vCPU: ${(e as Error).message}`);
        }
      }
    }
  }

  /** Puts the target back as it was before the tool: no interception left anywhere. */
  async #dropHooks(): Promise<void> {
    const undo = async (what: string, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (e) {
        this.#log('error', `introspection: cannot remove ${what}: ${(e as Error).message}`);
      }
    };
    for (const [i, v] of this.#vcpus.entries()) {
      if (v === undefined) continue;
      v.events.clear();
      if (v.breakpointIntercept) {
        v.breakpointIntercept = false;
        await undo(`vCPU ${i} breakpoint interception`, () => this.#target.setBreakpointIntercept(i, false));
      }
      if (v.singlestep) {
        v.singlestep = false;
        await undo(`vCPU ${i} single-stepping`, () => this.#target.setSingleStep(i, false));
      }
      v.msrs.clear();
    }
    for (const msr of [...this.#interceptedMsrs]) {
      this.#interceptedMsrs.delete(msr);
      await undo(`the MSR ${msr.toString(16)} intercept`, () => this.#target.setMsrIntercept(msr, false));
    }
    if (this.#protected.size > 0) {
      const pages = [...this.#protected];
      this.#protected.clear();
      await undo('write protection', () => this.#target.setWriteProtect(pages, false));
    }
  }

  // ---- commands ----

  /** A vCPU index from the tool: it must name an online vCPU. */
  #checkVcpu(vcpu: number): number {
    if (vcpu >= this.#target.vcpuCount) throw new KvmiError('EINVAL', `no vCPU ${vcpu}`);
    return vcpu;
  }

  #makeHandlers(): Partial<Record<KvmiCommand, Handler>> {
    const L = LAYOUTS;
    const t = this.#target;
    const fail = (code: KvmiErrorName, message?: string): never => {
      throw new KvmiError(code, message);
    };
    const reply = <C extends LaidOutCommand>(c: C, x: Parameters<(typeof LAYOUTS)[C]['encodeReply']>[0]): Uint8Array =>
      (L[c].encodeReply as (y: typeof x) => Uint8Array)(x);

    return {
      GET_VERSION: (p) => {
        L.GET_VERSION.decodeRequest(p);
        // No SPP, VMFUNC, EPTP switching or #VE on stock KVM.
        return reply('GET_VERSION', { version: KVMI_VERSION, features: { spp: false, vmfunc: false, eptp: false, ve: false } });
      },

      CHECK_COMMAND: (p) => {
        const { id } = L.CHECK_COMMAND.decodeRequest(p);
        const name = this.#dialect.command(id);
        if (name === undefined) return id === this.#dialect.eventReplyMessage ? null : fail('EINVAL', `unknown command ${id}`);
        return this.#unsupportedCommands.has(name) ? fail('EOPNOTSUPP') : null;
      },

      CHECK_EVENT: (p) => {
        const { id } = L.CHECK_EVENT.decodeRequest(p);
        const name = this.#dialect.event(id);
        if (name === undefined) return fail('EINVAL', `unknown event ${id}`);
        return this.#unsupportedEvents.has(name) ? fail('EOPNOTSUPP') : null;
      },

      GET_GUEST_INFO: (p) => {
        L.GET_GUEST_INFO.decodeRequest(p);
        return reply('GET_GUEST_INFO', { vcpuCount: t.vcpuCount });
      },

      GET_VCPU_INFO: (p) => {
        this.#checkVcpu(L.GET_VCPU_INFO.decodeRequest(p).vcpu);
        return reply('GET_VCPU_INFO', { tscSpeed: t.tscHz });
      },

      PAUSE_VCPU: async (p) => {
        const q = L.PAUSE_VCPU.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        if (this.#vcpu(i).pauses >= MAX_PENDING_PAUSES) fail('EBUSY', `vCPU ${i} owes ${MAX_PENDING_PAUSES} PAUSE_VCPU events`);
        const paused = this.#pause(i);
        // wait=1: answer once the vCPU is out of guest mode; wait=0: answer now.
        if (q.wait) await paused;
        else this.#track(paused);
        return null;
      },

      CONTROL_VM_EVENTS: (p) => {
        const q = L.CONTROL_VM_EVENTS.decodeRequest(p);
        const name = this.#dialect.event(q.event);
        if (name === undefined || !VM_EVENTS.has(name)) return fail('EINVAL', `event ${q.event} is not a VM event`);
        if (q.enable) this.#vmEvents.add(name);
        else this.#vmEvents.delete(name);
        return null;
      },

      CONTROL_EVENTS: async (p) => {
        const q = L.CONTROL_EVENTS.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        const name = this.#dialect.event(q.event);
        if (name === undefined || !VCPU_EVENTS.has(name)) return fail('EINVAL', `event ${q.event} is not a vCPU event`);
        if (this.#unsupportedEvents.has(name)) return q.enable ? fail('EOPNOTSUPP') : null;
        const v = this.#vcpu(i);
        if (q.enable === v.events.has(name)) return null;
        // Intercept before enabling, forget before releasing: no INT3 is swallowed meanwhile.
        if (!q.enable) {
          v.events.delete(name);
          this.#publishWanted(i);
        }
        if (name === 'BREAKPOINT' && v.breakpointIntercept !== q.enable) {
          await t.setBreakpointIntercept(i, q.enable);
          v.breakpointIntercept = q.enable;
        }
        if (q.enable) v.events.add(name);
        this.#publishWanted(i);
        return null;
      },

      CONTROL_MSR: async (p) => {
        const q = L.CONTROL_MSR.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        if (!controllableMsr(q.register)) return fail('EINVAL', `MSR ${q.register.toString(16)} is outside the controllable ranges`);
        if (!filterableMsr(q.register)) return fail('EOPNOTSUPP', 'x2APIC MSRs cannot be filtered');
        const v = this.#vcpu(i);
        if (q.enable) {
          if (!this.#interceptedMsrs.has(q.register)) {
            await t.setMsrIntercept(q.register, true);
            this.#interceptedMsrs.add(q.register);
          }
          v.msrs.add(q.register);
        } else {
          v.msrs.delete(q.register);
          const stillWanted = this.#vcpus.some((w) => w?.msrs.has(q.register));
          if (!stillWanted && this.#interceptedMsrs.has(q.register)) {
            await t.setMsrIntercept(q.register, false);
            this.#interceptedMsrs.delete(q.register);
          }
        }
        return null;
      },

      GET_REGISTERS: async (p) => {
        const q = L.GET_REGISTERS.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        const size = 8 + 144 + 312 + 8 + 16 * q.msrs.length;
        if (size > KVMI_MAX_REPLY_DATA) return fail('E2BIG', `${q.msrs.length} MSRs do not fit in a reply`);
        const s = await t.getRegisters(i, q.msrs);
        if (s.msrs.length !== q.msrs.length) return fail('EFAULT', 'the target returned the wrong number of MSRs');
        return reply('GET_REGISTERS', { mode: cpuMode(s.sregs, s.regs.rflags), regs: s.regs, sregs: s.sregs, msrs: s.msrs });
      },

      SET_REGISTERS: async (p) => {
        const q = L.SET_REGISTERS.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        if (this.#vcpus[i]?.pending === undefined && this.#slots?.direct(i) === undefined) {
          return fail('EOPNOTSUPP', `vCPU ${i} has no event pending`);
        }
        await t.setRegisters(i, q.regs);
        return null;
      },

      GET_CPUID: async (p) => {
        const q = L.GET_CPUID.decodeRequest(p);
        const leaf = await t.getCpuid(this.#checkVcpu(q.vcpu), q.function, q.index);
        return leaf === undefined ? fail('ENOENT', `no CPUID leaf ${q.function.toString(16)}.${q.index}`) : reply('GET_CPUID', leaf);
      },

      GET_XSAVE: async (p) => {
        const q = L.GET_XSAVE.decodeRequest(p);
        const area = await t.getXsave(this.#checkVcpu(q.vcpu));
        return area.length > KVMI_MAX_REPLY_DATA ? fail('E2BIG', 'the XSAVE area does not fit in a reply') : area;
      },

      READ_PHYSICAL: (p) => {
        const q = L.READ_PHYSICAL.decodeRequest(p);
        if (q.size === 0n || q.size > BigInt(KVMI_MAX_REPLY_DATA)) return fail('EINVAL', `cannot read ${q.size} bytes`);
        if (q.gpa + q.size > 1n << 64n) return fail('EINVAL', 'the range wraps');
        return t.readPhysical(q.gpa, Number(q.size)) ?? fail('ENOENT', `no RAM at ${q.gpa.toString(16)}`);
      },

      WRITE_PHYSICAL: (p) => {
        const q = L.WRITE_PHYSICAL.decodeRequest(p);
        if (q.data.length === 0) return fail('EINVAL', 'nothing to write');
        if (q.gpa + BigInt(q.data.length) > 1n << 64n) return fail('EINVAL', 'the range wraps');
        return t.writePhysical(q.gpa, new Uint8Array(q.data)) ? null : fail('ENOENT', `no RAM at ${q.gpa.toString(16)}`);
      },

      INJECT_EXCEPTION: async (p) => {
        const q = L.INJECT_EXCEPTION.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        // Vector 2 is the NMI, an interrupt; above 31 are not exceptions.
        if (q.vector > 31 || q.vector === 2) return fail('EINVAL', `vector ${q.vector} is not an exception`);
        await t.injectException(i, {
          vector: q.vector,
          hasErrorCode: VECTORS_WITH_ERROR_CODE.has(q.vector),
          errorCode: q.errorCode,
          address: q.vector === 14 ? q.address : 0n,
        });
        return null;
      },

      GET_PAGE_ACCESS: (p) => {
        const q = L.GET_PAGE_ACCESS.decodeRequest(p);
        if (q.view !== 0) return fail('EOPNOTSUPP', 'no EPT views');
        const all = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;
        return reply('GET_PAGE_ACCESS', q.gpas.map((g) => {
          if (t.queryPhysical(g)?.type !== 'ram') fail('EINVAL', `no RAM at ${g.toString(16)}`);
          return this.#protected.has(g & PAGE_MASK) ? all & ~KVMI_PAGE_ACCESS_W : all;
        }));
      },

      SET_PAGE_ACCESS: async (p) => {
        const q = L.SET_PAGE_ACCESS.decodeRequest(p);
        if (q.view !== 0) return fail('EOPNOTSUPP', 'no EPT views');
        const wanted = new Map<bigint, boolean>(); // page → write-protected
        for (const e of q.entries) {
          if (e.access > 7) fail('EINVAL', `access bits ${e.access}`);
          if ((e.access & KVMI_PAGE_ACCESS_W) !== 0 && (e.access & KVMI_PAGE_ACCESS_R) === 0) fail('EINVAL', 'write without read');
          // Stock KVM can take writes away, never reads or execution.
          if ((e.access & (KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X)) !== (KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X)) {
            fail('EOPNOTSUPP', `access ${e.access}: only write protection is possible`);
          }
          if (t.queryPhysical(e.gpa)?.type !== 'ram') fail('EINVAL', `no RAM at ${e.gpa.toString(16)}`);
          wanted.set(e.gpa & PAGE_MASK, (e.access & KVMI_PAGE_ACCESS_W) === 0);
        }
        const protect = [...wanted].filter(([g, w]) => w && !this.#protected.has(g)).map(([g]) => g);
        const release = [...wanted].filter(([g, w]) => !w && this.#protected.has(g)).map(([g]) => g);
        if (protect.length > 0) {
          await t.setWriteProtect(protect, true);
          for (const g of protect) this.#protected.add(g);
        }
        if (release.length > 0) {
          await t.setWriteProtect(release, false);
          for (const g of release) this.#protected.delete(g);
        }
        return null;
      },

      GET_MAX_GFN: (p) => {
        L.GET_MAX_GFN.decodeRequest(p);
        return reply('GET_MAX_GFN', { gfn: t.maxGfn() });
      },

      VCPU_TRANSLATE_GVA: async (p) => {
        const q = L.VCPU_TRANSLATE_GVA.decodeRequest(p);
        const s = await t.getRegisters(this.#checkVcpu(q.vcpu), []);
        return reply('VCPU_TRANSLATE_GVA', { gpa: this.#translate(q.gva, s) ?? UNMAPPED });
      },

      VCPU_GET_XCR: async (p) => {
        const q = L.VCPU_GET_XCR.decodeRequest(p);
        const value = await t.getXcr(this.#checkVcpu(q.vcpu), q.xcr);
        return value === undefined ? fail('EINVAL', `XCR${q.xcr} is not supported`) : reply('VCPU_GET_XCR', { value });
      },

      QUERY_PHYSICAL: (p) => {
        const q = L.QUERY_PHYSICAL.decodeRequest(p);
        const range = t.queryPhysical(q.gpa);
        return range === undefined ? fail('ENOENT', `nothing at ${q.gpa.toString(16)}`) : reply('QUERY_PHYSICAL', range);
      },

      VCPU_CONTROL_SINGLESTEP: async (p) => {
        const q = L.VCPU_CONTROL_SINGLESTEP.decodeRequest(p);
        const i = this.#checkVcpu(q.vcpu);
        const v = this.#vcpu(i);
        if (v.singlestep !== q.enable) {
          if (!q.enable) this.#publishWanted(i, false);
          await t.setSingleStep(i, q.enable);
          v.singlestep = q.enable;
          this.#publishWanted(i);
        }
        return null;
      },
    };
  }
}

/** CONTINUE for an event no tool will see: the guest's own behaviour. */
export function releaseTargetEvent(e: TargetEvent): void {
  if (e.kind === 'msr') e.reply('continue', e.newValue);
  else e.reply('continue');
}
