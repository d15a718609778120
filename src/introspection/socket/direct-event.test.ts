import { test } from 'node:test';
import assert from 'node:assert/strict';

import { stateBlock } from '../../kvm/state-block.js';
import { encodeMsrs, encodeRegs, encodeSregs } from '../../kvm/structs.js';
import type { Regs, Sregs } from '../../hypervisor/x86-state.js';
import { sampleRegs, sampleSregs } from '../testing/wire-samples.js';
import { encodeEvent } from '../wire/events.js';
import { encodeMessage } from '../wire/header.js';
import { dialect, type DialectName } from '../wire/ids.js';
import { eventSnapshot } from '../wire/vcpu-state.js';
import { DIRECT_EVENT_MAX_BYTES, DIRECT_EVENT_MSRS, directEventMessage, type DirectEvent } from './direct-event.js';

const MSR_VALUES = DIRECT_EVENT_MSRS.map((index, i) => ({ index, data: 0x1111_0000_0000_0000n * BigInt(i + 1) + BigInt(index) }));

function block(regs: Regs, sregs: Sregs, msrs = MSR_VALUES, into?: Uint8Array): Uint8Array {
  const b = encodeMsrs(msrs);
  return stateBlock(encodeRegs(regs), encodeSregs(sregs), b, msrs.length, into);
}

/** What the session sends for the same event (the codec path). */
function viaCodec(d: DialectName, seq: number, vcpu: number, e: DirectEvent, regs: Regs, sregs: Sregs): Uint8Array {
  const state = eventSnapshot(regs, sregs, MSR_VALUES.map((m) => ({ index: m.index, value: m.data })));
  const payload = e.event === 'BREAKPOINT'
    ? encodeEvent(dialect(d), { vcpu, event: 'BREAKPOINT', state, data: { gpa: e.gpa, insnLength: e.insnLength } })
    : encodeEvent(dialect(d), { vcpu, event: 'SINGLESTEP', state, data: { failed: e.failed } });
  return encodeMessage(dialect(d).eventMessage, seq, payload);
}

test('a vCPU\'s own event is byte for byte what the session would send, in every CPU mode and both dialects', () => {
  const long = sampleSregs(1);
  const modes: Array<[string, Regs, Sregs]> = [
    ['64-bit', sampleRegs(1n), { ...long, efer: 0x500n, cs: { ...long.cs, l: 1 } }],
    ['32-bit', { ...sampleRegs(2n), rflags: 2n }, { ...long, efer: 0n, cr0: 0x11n, cs: { ...long.cs, l: 0, db: 1 } }],
    ['16-bit protected', { ...sampleRegs(3n), rflags: 2n }, { ...long, efer: 0n, cr0: 0x11n, cs: { ...long.cs, l: 0, db: 0 } }],
    ['real', { ...sampleRegs(4n), rflags: 2n }, { ...long, efer: 0n, cr0: 0x10n }],
    ['vm86', { ...sampleRegs(5n), rflags: 0x20002n }, { ...long, efer: 0n, cr0: 0x11n, cs: { ...long.cs, l: 0, db: 1 } }],
  ];
  const events: DirectEvent[] = [
    { event: 'BREAKPOINT', gpa: 0x1234_5678_9abcn, insnLength: 1 },
    { event: 'SINGLESTEP', failed: false },
    { event: 'SINGLESTEP', failed: true },
  ];
  // As a vCPU thread builds them: one block buffer and one message buffer for every event,
  // starting out full of garbage, so a byte left over from an earlier event would show.
  const blockBuffer = new Uint8Array(4096).fill(0xa5);
  const scratch = new Uint8Array(DIRECT_EVENT_MAX_BYTES).fill(0x5a);
  for (const d of ['v7', 'rfc-v5'] as const) {
    // RFC v5 has no SINGLESTEP event.
    for (const e of events.filter((x) => d === 'v7' || x.event === 'BREAKPOINT')) {
      for (const [name, regs, sregs] of modes) {
        const expected = viaCodec(d, 0xfeed_f00d, 3, e, regs, sregs);
        assert.deepEqual(directEventMessage(d, 0xfeed_f00d, 3, e, block(regs, sregs)), expected, `${d} ${e.event} ${name}`);
        const reused = directEventMessage(d, 0xfeed_f00d, 3, e, block(regs, sregs, MSR_VALUES, blockBuffer), scratch);
        assert.equal(reused.buffer, scratch.buffer, 'built in the scratch buffer');
        assert.deepEqual(new Uint8Array(reused), expected, `${d} ${e.event} ${name}, reused buffers`);
      }
    }
  }
});

test('a state block without every event MSR, in order, is refused (the session reads them instead)', () => {
  const e: DirectEvent = { event: 'SINGLESTEP', failed: false };
  assert.throws(() => directEventMessage('v7', 1, 0, e, block(sampleRegs(), sampleSregs(), MSR_VALUES.slice(1))));
  assert.throws(() => directEventMessage('v7', 1, 0, e, block(sampleRegs(), sampleSregs(), [...MSR_VALUES].reverse())));
});
