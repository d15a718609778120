/**
 * A vCPU thread's own KVMI event message, built from the state block its thread read at the
 * exit (src/kvm/state-block.ts). struct kvmi_event embeds kvm_regs and kvm_sregs exactly as KVM
 * lays them out, so they are copied as bytes: no decoding into bigints and back on the path of
 * every event (about 10 us here). The result is what the session's codec (wire/events.ts)
 * makes of the same state, byte for byte; socket/direct-event.test.ts holds them to it.
 */
import { KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_SREGS_SIZE } from '../../kvm/structs.js';
import { eventDataSize } from '../wire/events.js';
import { KVMI_HEADER_SIZE } from '../wire/header.js';
import { dialect, type DialectName } from '../wire/ids.js';
import { EVENT_MSR_NAMES, EVENT_MSRS, KVMI_EVENT_COMMON_SIZE } from '../wire/vcpu-state.js';
import { WANT_BREAKPOINT, WANT_SINGLESTEP, type EventSlots } from './event-slots.js';

export type DirectEvent =
  | { event: 'BREAKPOINT'; gpa: bigint; insnLength: number }
  | { event: 'SINGLESTEP'; failed: boolean };

/** The MSRs a direct event's state block must hold, in this order (the session's event MSRs). */
export const DIRECT_EVENT_MSRS: readonly number[] = EVENT_MSR_NAMES.map((n) => EVENT_MSRS[n]);

/** The dialect's number for the event; undefined when the dialect has none (RFC v5: no SINGLESTEP). */
function directEventId(d: DialectName, e: DirectEvent['event']): number | undefined {
  return dialect(d).eventId(e);
}

export interface DirectEventOptions {
  /** Take the socket's reading side too (EventSlots.trySend). */
  readonly ownRead?: boolean;
  /** A buffer of at least DIRECT_EVENT_MAX_BYTES the message is built in, reused by the caller. */
  readonly scratch?: Uint8Array;
}

/**
 * What a vCPU thread does with a breakpoint or single step: sends it to the tool itself when
 * the slots allow it, reading its state (`state`, a state block) only then. False: the event
 * must go through the session.
 */
export function sendDirectEvent(slots: EventSlots, vcpu: number, e: DirectEvent, state: () => Uint8Array | null, options: DirectEventOptions = {}): boolean {
  const d = slots.dialect;
  const id = directEventId(d, e.event);
  if (id === undefined) return false;
  return slots.trySend(vcpu, e.event === 'BREAKPOINT' ? WANT_BREAKPOINT : WANT_SINGLESTEP, id, (seq) => {
    const block = state();
    if (block === null) throw new Error('no state');
    return directEventMessage(d, seq, vcpu, e, block, options.scratch);
  }, options.ownRead === true);
}

// Offsets in the state block: kvm_regs, kvm_sregs, struct kvm_msrs.
const RFLAGS = 136;
const SREGS = KVM_REGS_SIZE;
const CS_DB = SREGS + 17;
const CS_L = SREGS + 19;
const CR0 = SREGS + 224;
const EFER = SREGS + 264;
const MSRS = KVM_REGS_SIZE + KVM_SREGS_SIZE;

/** KVMI's mode (wire/vcpu-state.ts cpuMode) from the raw registers. */
function mode(v: DataView): number {
  if ((v.getUint32(EFER, true) & 0x400) !== 0 && v.getUint8(CS_L) !== 0) return 8; // EFER.LMA, CS.L
  if ((v.getUint32(CR0, true) & 1) === 0 || (v.getUint32(RFLAGS, true) & 0x20000) !== 0) return 2; // !CR0.PE, RFLAGS.VM
  return v.getUint8(CS_DB) !== 0 ? 4 : 2;
}

/** The longest message directEventMessage builds. */
export const DIRECT_EVENT_MAX_BYTES = KVMI_HEADER_SIZE + KVMI_EVENT_COMMON_SIZE + Math.max(eventDataSize('BREAKPOINT'), eventDataSize('SINGLESTEP'));

/**
 * The whole message (header, common part, event data), at the start of `into` when given
 * (the result is then a view of it). Throws when the block does not hold every event MSR:
 * the event must then go through the session, which reads them itself.
 */
export function directEventMessage(d: DialectName, seq: number, vcpu: number, e: DirectEvent, block: Uint8Array, into?: Uint8Array): Uint8Array {
  const src = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const n = src.getUint32(MSRS, true);
  if (n !== DIRECT_EVENT_MSRS.length || block.byteLength < MSRS + 8 + n * KVM_MSR_ENTRY_SIZE) {
    throw new Error('the state block lacks the event MSRs');
  }
  const numbering = dialect(d);
  const id = numbering.eventId(e.event);
  if (id === undefined) throw new Error(`the ${d} dialect has no ${e.event} event`);
  const size = KVMI_EVENT_COMMON_SIZE + eventDataSize(e.event);
  const out = into !== undefined && into.length >= KVMI_HEADER_SIZE + size ? into.subarray(0, KVMI_HEADER_SIZE + size) : new Uint8Array(KVMI_HEADER_SIZE + size);
  out.fill(0); // the padding
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint16(0, numbering.eventMessage, true);
  v.setUint16(2, size, true);
  v.setUint32(4, seq >>> 0, true);
  // struct kvmi_event: size, vcpu, event, 3 padding; mode, padding, view (0), 4 padding.
  const c = KVMI_HEADER_SIZE;
  v.setUint16(c, KVMI_EVENT_COMMON_SIZE, true);
  v.setUint16(c + 2, vcpu, true);
  v.setUint8(c + 4, id);
  v.setUint8(c + 8, mode(src));
  out.set(block.subarray(0, KVM_REGS_SIZE + KVM_SREGS_SIZE), c + 16);
  const msrs = c + 16 + KVM_REGS_SIZE + KVM_SREGS_SIZE;
  for (let i = 0; i < n; i++) {
    const entry = MSRS + 8 + i * KVM_MSR_ENTRY_SIZE;
    if (src.getUint32(entry, true) !== DIRECT_EVENT_MSRS[i]) throw new Error('the state block lacks the event MSRs');
    // struct kvm_msr_entry {u32 index; u32 reserved; u64 data}: the data, byte by byte (no view per MSR).
    for (let k = 0; k < 8; k++) out[msrs + 8 * i + k] = block[entry + 8 + k]!;
  }
  const data = c + KVMI_EVENT_COMMON_SIZE;
  if (e.event === 'BREAKPOINT') {
    v.setBigUint64(data, e.gpa, true);
    v.setUint8(data + 8, e.insnLength);
  } else {
    v.setUint8(data, e.failed ? 1 : 0);
  }
  return out;
}
