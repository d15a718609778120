/**
 * Which tool replies may settle a vCPU's own event without the session: exactly the reply to
 * the event in that vCPU's slot (vCPU, seq, event, size) with CONTINUE or RETRY, defined for
 * that event, while the session has nothing queued for the vCPU. Anything else (CRASH, a
 * stale or malformed reply) is the session's to judge, as it judges replies to its own
 * events. Used by the socket thread and by a vCPU that reads its own reply.
 */
import { EVENT_ACTIONS } from '../capabilities.js';
import { decodeEventReply, eventReplyDataSize } from '../wire/events.js';
import type { Frame } from '../wire/header.js';
import { dialect, type KvmiAction } from '../wire/ids.js';
import type { EventSlots } from './event-slots.js';

/** KVMI action numbers; CRASH is left to the session (it must stop the guest). */
const DIRECT_ACTIONS: ReadonlyArray<KvmiAction | undefined> = ['continue', 'retry'];

export interface DirectReply {
  readonly vcpu: number;
  readonly seq: number;
  readonly action: KvmiAction;
}

export function matchDirectReply(slots: EventSlots, f: Frame): DirectReply | null {
  const numbering = dialect(slots.dialect);
  if (f.id !== numbering.eventReplyMessage) return null;
  let r;
  try {
    r = decodeEventReply(f.payload);
  } catch {
    return null;
  }
  const out = slots.direct(r.vcpu);
  if (out === undefined || out.seq !== f.seq >>> 0 || out.event !== r.eventId || slots.queued(r.vcpu) > 0) return null;
  const event = numbering.event(r.eventId);
  const action = DIRECT_ACTIONS[r.action];
  if (event === undefined || action === undefined || !(EVENT_ACTIONS[event]?.has(action) ?? false)) return null;
  if (r.rest.length !== eventReplyDataSize(event)) return null;
  return { vcpu: r.vcpu, seq: f.seq >>> 0, action };
}
