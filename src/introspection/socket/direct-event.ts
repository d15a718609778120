/**
 * A vCPU thread's own KVMI event message, built from the state block its thread read at the
 * exit (src/kvm/state-block.ts): what the session would send for the same event, byte for
 * byte (the wire codecs are the same).
 */
import { decodeStateBlock } from '../../kvm/state-block.js';
import { encodeEvent } from '../wire/events.js';
import { encodeMessage } from '../wire/header.js';
import { dialect, type DialectName } from '../wire/ids.js';
import { EVENT_MSR_NAMES, EVENT_MSRS, eventSnapshot } from '../wire/vcpu-state.js';

export type DirectEvent =
  | { event: 'BREAKPOINT'; gpa: bigint; insnLength: number }
  | { event: 'SINGLESTEP'; failed: boolean };

/** The MSRs a direct event's state block must hold, in this order (the session's event MSRs). */
export const DIRECT_EVENT_MSRS: readonly number[] = EVENT_MSR_NAMES.map((n) => EVENT_MSRS[n]);

/** The dialect's number for the event. */
export function directEventId(d: DialectName, e: DirectEvent['event']): number {
  const id = dialect(d).eventId(e);
  if (id === undefined) throw new Error(`the ${d} dialect has no ${e} event`);
  return id;
}

/**
 * The whole message (header, common part, event data). Throws when the block does not hold
 * every event MSR: the event must then go through the session, which reads them itself.
 */
export function directEventMessage(d: DialectName, seq: number, vcpu: number, e: DirectEvent, block: Uint8Array): Uint8Array {
  const s = decodeStateBlock(block);
  if (s.msrs.length !== DIRECT_EVENT_MSRS.length || !s.msrs.every((m, i) => m.index === DIRECT_EVENT_MSRS[i])) {
    throw new Error('the state block lacks the event MSRs');
  }
  const state = eventSnapshot(s.regs, s.sregs, s.msrs.map((m) => ({ index: m.index, value: m.data })));
  const payload = e.event === 'BREAKPOINT'
    ? encodeEvent(dialect(d), { vcpu, event: 'BREAKPOINT', state, data: { gpa: e.gpa, insnLength: e.insnLength } })
    : encodeEvent(dialect(d), { vcpu, event: 'SINGLESTEP', state, data: { failed: e.failed } });
  return encodeMessage(dialect(d).eventMessage, seq, payload);
}
