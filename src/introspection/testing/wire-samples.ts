/**
 * Sample values and byte-level checks shared by the wire tests: registers with every field
 * set, and the property every KVMI layout must have, that each byte is either part of a field
 * (a change survives decode → encode) or padding the decoder checks (a change is EINVAL).
 */
import assert from 'node:assert/strict';

import { SREGS } from '../../kvm/structs.js';
import type { Regs, Sregs } from '../../hypervisor/x86-state.js';
import { REG_NAMES, SEGMENT_NAMES } from '../../hypervisor/x86-state.js';
import { KvmiError } from '../wire/errors.js';

export function sampleRegs(seed = 1n): Regs {
  const r = {} as Regs;
  REG_NAMES.forEach((n, i) => (r[n] = (0x0123_4567_89ab_cdefn * (BigInt(i) + seed)) & 0xffff_ffff_ffff_ffffn));
  return r;
}

export function sampleSregs(seed = 1): Sregs {
  const seg = (k: number): Sregs['cs'] => ({
    base: 0x1000n * BigInt(k + seed), limit: 0xfffff + k, selector: 8 * k + seed, type: 11, present: 1, dpl: k % 4,
    db: k & 1, s: 1, l: (k + 1) & 1, g: 1, avl: 0, unusable: 0,
  });
  const segs = Object.fromEntries(SEGMENT_NAMES.map((n, k) => [n, seg(k)])) as Pick<Sregs, (typeof SEGMENT_NAMES)[number]>;
  return {
    ...segs,
    gdt: { base: 0xffff_8000_0000_1000n, limit: 0x7f },
    idt: { base: 0xffff_8000_0000_2000n, limit: 0xfff },
    cr0: 0x8005_0033n, cr2: 0xdead_beefn, cr3: 0x1234_5000n, cr4: 0x3706f0n, cr8: 2n, efer: 0xd01n,
    apicBase: 0xfee0_0900n, interruptBitmap: [1n, 2n, 3n, 4n],
  };
}

/** kvm_sregs bytes KVM itself pads (segment padding, descriptor-table padding): not KVMI's to check. */
export function sregsPadding(at: number): Set<number> {
  const out = new Set<number>();
  for (let k = 0; k < 8; k++) out.add(at + k * 24 + 23);
  for (const dt of [SREGS.gdt, SREGS.idt]) for (let j = 10; j < 16; j++) out.add(at + dt + j);
  return out;
}

/** Asserts that every byte of `encoded` is a field or checked padding. */
export function assertEveryByteAccountedFor<T>(
  what: string,
  encoded: Uint8Array,
  decode: (b: Uint8Array) => T,
  encode: (x: T) => Uint8Array,
  ignore: ReadonlySet<number> = new Set(),
): void {
  for (let i = 0; i < encoded.length; i++) {
    if (ignore.has(i)) continue;
    const mutated = Uint8Array.from(encoded);
    mutated[i] = (mutated[i] ?? 0) ^ 0xff;
    let decoded: T;
    try {
      decoded = decode(mutated);
    } catch (e) {
      assert.ok(e instanceof KvmiError && e.code === 'EINVAL', `${what} byte ${i}: ${String(e)}`);
      continue;
    }
    assert.deepEqual(encode(decoded), mutated, `${what}: byte ${i} is neither a field nor checked padding`);
  }
}

/** Asserts that one byte more or one byte less is EINVAL. */
export function assertExactSize(what: string, encoded: Uint8Array, decode: (b: Uint8Array) => unknown): void {
  const longer = new Uint8Array(encoded.length + 1);
  longer.set(encoded);
  assert.throws(() => decode(longer), (e: unknown) => e instanceof KvmiError && e.code === 'EINVAL', `${what} + 1 byte`);
  if (encoded.length > 0) {
    assert.throws(() => decode(encoded.subarray(0, encoded.length - 1)), (e: unknown) => e instanceof KvmiError && e.code === 'EINVAL', `${what} - 1 byte`);
  }
}
