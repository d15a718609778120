/**
 * KVMI_EVENT messages (VM → tool: the common vCPU state, then event-specific data) and
 * KVMI_EVENT_REPLY messages (tool → VM: a vCPU header, {u8 action; u8 event; padding}, then
 * reply-specific data). The layouts are the same in every dialect; only the event numbers
 * come from the dialect.
 */
import { PayloadReader, PayloadWriter } from './bytes.js';
import { invalid } from './errors.js';
import type { Dialect, KvmiEventName } from './ids.js';
import {
  decodeEventCommon, encodeEventCommon, KVMI_EVENT_COMMON_SIZE, type VcpuSnapshot,
} from './vcpu-state.js';

export interface CrEventData {
  cr: number;
  oldValue: bigint;
  newValue: bigint;
}

export interface MsrEventData {
  msr: number;
  oldValue: bigint;
  newValue: bigint;
}

export interface BreakpointEventData {
  /** Where the INT3 is, guest-physical. */
  gpa: bigint;
  insnLength: number;
}

export interface PfEventData {
  /** ~0 when the VMM does not know the linear address. */
  gva: bigint;
  gpa: bigint;
  /** The access that faulted: KVMI_PAGE_ACCESS_R, _W or _X. */
  access: number;
  view: number;
}

export interface TrapEventData {
  vector: number;
  errorCode: number;
  cr2: bigint;
}

export interface DescriptorEventData {
  descriptor: number;
  write: boolean;
}

export interface SingleStepEventData {
  failed: boolean;
}

export interface CpuidEventData {
  function: number;
  index: number;
  insnLength: number;
}

/** The event-specific data of each event (null: the common part says it all). */
export interface EventDataMap {
  UNHOOK: null;
  CR: CrEventData;
  MSR: MsrEventData;
  XSETBV: null;
  BREAKPOINT: BreakpointEventData;
  HYPERCALL: null;
  PF: PfEventData;
  TRAP: TrapEventData;
  DESCRIPTOR: DescriptorEventData;
  CREATE_VCPU: null;
  PAUSE_VCPU: null;
  SINGLESTEP: SingleStepEventData;
  CPUID: CpuidEventData;
}

interface DataCodec<T> {
  size: number;
  encode(w: PayloadWriter, x: T): void;
  decode(r: PayloadReader): T;
}

const none: DataCodec<null> = { size: 0, encode: () => undefined, decode: () => null };

function oldNew(w: PayloadWriter, x: { oldValue: bigint; newValue: bigint }): void {
  w.u64(x.oldValue).u64(x.newValue);
}

const EVENT_DATA: { [E in KvmiEventName]: DataCodec<EventDataMap[E]> } = {
  UNHOOK: none,
  CR: {
    size: 24,
    encode: (w, x) => oldNew(w.u16(x.cr).pad(6), x),
    decode: (r) => {
      const cr = r.u16();
      r.padding(6);
      return { cr, oldValue: r.u64(), newValue: r.u64() };
    },
  },
  MSR: {
    size: 24,
    encode: (w, x) => oldNew(w.u32(x.msr).pad(4), x),
    decode: (r) => {
      const msr = r.u32();
      r.padding(4);
      return { msr, oldValue: r.u64(), newValue: r.u64() };
    },
  },
  XSETBV: none,
  BREAKPOINT: {
    size: 16,
    encode: (w, x) => void w.u64(x.gpa).u8(x.insnLength).pad(7),
    decode: (r) => {
      const gpa = r.u64();
      const insnLength = r.u8();
      r.padding(7);
      return { gpa, insnLength };
    },
  },
  HYPERCALL: none,
  PF: {
    size: 24,
    encode: (w, x) => void w.u64(x.gva).u64(x.gpa).u8(x.access).pad(1).u16(x.view).pad(4),
    decode: (r) => {
      const gva = r.u64();
      const gpa = r.u64();
      const access = r.u8();
      r.padding(1);
      const v = r.u16();
      r.padding(4);
      return { gva, gpa, access, view: v };
    },
  },
  TRAP: {
    size: 16,
    encode: (w, x) => void w.u8(x.vector).pad(3).u32(x.errorCode).u64(x.cr2),
    decode: (r) => {
      const vector = r.u8();
      r.padding(3);
      return { vector, errorCode: r.u32(), cr2: r.u64() };
    },
  },
  DESCRIPTOR: {
    size: 8,
    encode: (w, x) => void w.u8(x.descriptor).u8(+x.write).pad(6),
    decode: (r) => {
      const descriptor = r.u8();
      const write = r.flag('write');
      r.padding(6);
      return { descriptor, write };
    },
  },
  CREATE_VCPU: none,
  PAUSE_VCPU: none,
  SINGLESTEP: {
    size: 8,
    encode: (w, x) => void w.u8(+x.failed).pad(7),
    decode: (r) => {
      const failed = r.flag('failed');
      r.padding(7);
      return { failed };
    },
  },
  CPUID: {
    size: 16,
    encode: (w, x) => void w.u32(x.function).u32(x.index).u8(x.insnLength).pad(7),
    decode: (r) => {
      const fn = r.u32();
      const index = r.u32();
      const insnLength = r.u8();
      r.padding(7);
      return { function: fn, index, insnLength };
    },
  },
};

/** Bytes of event-specific data that follow the common part. */
export function eventDataSize(event: KvmiEventName): number {
  return EVENT_DATA[event].size;
}

export interface KvmiEventMessage<E extends KvmiEventName = KvmiEventName> {
  vcpu: number;
  event: E;
  state: VcpuSnapshot;
  data: EventDataMap[E];
}

/** The payload of a KVMI_EVENT message. */
export function encodeEvent<E extends KvmiEventName>(d: Dialect, m: KvmiEventMessage<E>): Uint8Array {
  const id = d.eventId(m.event);
  if (id === undefined) throw new Error(`the ${d.name} dialect has no number for event ${m.event}`);
  const codec = EVENT_DATA[m.event];
  const w = new PayloadWriter(KVMI_EVENT_COMMON_SIZE + codec.size);
  encodeEventCommon(w, { vcpu: m.vcpu, event: id, state: m.state });
  codec.encode(w, m.data);
  return w.done();
}

/** A received event: the dialect's number is kept so that a reply can echo it. */
export type DecodedEvent = { [E in KvmiEventName]: KvmiEventMessage<E> & { eventId: number } }[KvmiEventName];

/**
 * Decodes a KVMI_EVENT payload. As libkvmi does, event-specific data shorter than this side
 * knows is zero-filled and longer data is ignored, so a VMM of another version stays readable.
 */
export function decodeEvent(d: Dialect, payload: Uint8Array): DecodedEvent {
  const r = new PayloadReader(payload);
  const common = decodeEventCommon(r);
  const name = d.event(common.event);
  if (name === undefined) throw invalid(`unknown event ${common.event}`);
  const codec = EVENT_DATA[name];
  const specific = new Uint8Array(codec.size);
  specific.set(r.bytes(Math.min(codec.size, r.remaining)));
  const data = codec.decode(new PayloadReader(specific));
  return { vcpu: common.vcpu, event: name, eventId: common.event, state: common.state, data } as DecodedEvent;
}

export interface PfReplyData {
  ctxAddr: bigint;
  ctxSize: number;
  singlestep: boolean;
  repComplete: boolean;
  /** Up to 256 bytes of emulation context. */
  ctxData: Uint8Array;
}

/** Reply-specific data by event; events missing here take none. */
export interface EventReplyDataMap {
  CR: { newValue: bigint };
  MSR: { newValue: bigint };
  PF: PfReplyData;
}

export const PF_CTX_DATA_SIZE = 256;

const REPLY_DATA: { [E in keyof EventReplyDataMap]: DataCodec<EventReplyDataMap[E]> } = {
  CR: { size: 8, encode: (w, x) => void w.u64(x.newValue), decode: (r) => ({ newValue: r.u64() }) },
  MSR: { size: 8, encode: (w, x) => void w.u64(x.newValue), decode: (r) => ({ newValue: r.u64() }) },
  PF: {
    size: 16 + PF_CTX_DATA_SIZE,
    encode: (w, x) => {
      const ctx = new Uint8Array(PF_CTX_DATA_SIZE);
      ctx.set(x.ctxData.subarray(0, PF_CTX_DATA_SIZE));
      w.u64(x.ctxAddr).u32(x.ctxSize).u8(+x.singlestep).u8(+x.repComplete).pad(2).raw(ctx);
    },
    decode: (r) => {
      const ctxAddr = r.u64();
      const ctxSize = r.u32();
      const singlestep = r.flag('singlestep');
      const repComplete = r.flag('rep_complete');
      r.padding(2);
      return { ctxAddr, ctxSize, singlestep, repComplete, ctxData: Uint8Array.from(r.bytes(PF_CTX_DATA_SIZE)) };
    },
  },
};

function replyCodec(event: KvmiEventName): DataCodec<unknown> | undefined {
  return event in REPLY_DATA ? (REPLY_DATA[event as keyof EventReplyDataMap] as DataCodec<unknown>) : undefined;
}

/** Bytes of reply-specific data an event's reply carries. */
export function eventReplyDataSize(event: KvmiEventName): number {
  return replyCodec(event)?.size ?? 0;
}

/** vCPU header (8) + struct kvmi_event_reply (8). */
export const EVENT_REPLY_COMMON_SIZE = 16;

export interface EventReplyMessage<E extends KvmiEventName = KvmiEventName> {
  vcpu: number;
  /** KVMI_EVENT_ACTION_*. */
  action: number;
  event: E;
  data?: E extends keyof EventReplyDataMap ? EventReplyDataMap[E] : undefined;
}

/** The payload of a KVMI_EVENT_REPLY; missing reply data is sent as zeros. */
export function encodeEventReply<E extends KvmiEventName>(d: Dialect, m: EventReplyMessage<E>): Uint8Array {
  const id = d.eventId(m.event);
  if (id === undefined) throw new Error(`the ${d.name} dialect has no number for event ${m.event}`);
  const codec = replyCodec(m.event);
  const w = new PayloadWriter(EVENT_REPLY_COMMON_SIZE + (codec?.size ?? 0));
  w.u16(m.vcpu).pad(6).u8(m.action).u8(id).pad(6);
  if (codec !== undefined) {
    if (m.data === undefined) w.pad(codec.size);
    else codec.encode(w, m.data);
  }
  return w.done();
}

export interface DecodedEventReply {
  vcpu: number;
  action: number;
  /** The event number the reply names. */
  eventId: number;
  /** The reply-specific bytes, unparsed: their layout depends on the event answered. */
  rest: Uint8Array;
}

/** The common part of a reply; padding must be zero. */
export function decodeEventReply(payload: Uint8Array): DecodedEventReply {
  const r = new PayloadReader(payload);
  const vcpu = r.u16();
  r.padding(6);
  const action = r.u8();
  const eventId = r.u8();
  r.padding(6);
  return { vcpu, action, eventId, rest: r.bytes(r.remaining) };
}

/** Parses the reply-specific data of `event`; it must be exactly as long as its layout. */
export function decodeEventReplyData<E extends keyof EventReplyDataMap>(event: E, rest: Uint8Array): EventReplyDataMap[E] {
  const codec = REPLY_DATA[event] as DataCodec<EventReplyDataMap[E]>;
  if (rest.length !== codec.size) throw invalid(`${event} reply data of ${rest.length} bytes, expected ${codec.size}`);
  return codec.decode(new PayloadReader(rest));
}
