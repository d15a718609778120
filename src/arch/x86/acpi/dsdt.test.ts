// Decodes the DSDT back with a tiny AML reader (only the objects the encoder makes) and
// checks what an OS would find in the namespace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildDsdt, dsdtAml, DSDT_REVISION } from './dsdt.js';
import { SDT_HEADER_SIZE } from './sdt.js';

type Value = bigint | string | { buffer: Uint8Array } | Value[];
type Term =
  | { op: 'name'; name: string; value: Value }
  | { op: 'scope' | 'device'; name: string; body: Term[] };

class AmlReader {
  pos = 0;
  constructor(private readonly b: Uint8Array) {}

  private byte(): number {
    const v = this.b[this.pos++];
    if (v === undefined) throw new Error('AML: ran off the end');
    return v;
  }

  /** Returns the offset where the package ends. */
  private pkgEnd(): number {
    const start = this.pos;
    const lead = this.byte();
    const extra = lead >> 6;
    let len = extra === 0 ? lead & 0x3f : lead & 0x0f;
    for (let i = 0; i < extra; i++) len |= this.byte() << (4 + 8 * i);
    return start + len;
  }

  private seg(): string {
    return String.fromCharCode(this.byte(), this.byte(), this.byte(), this.byte());
  }

  private nameString(): string {
    let prefix = '';
    while (this.b[this.pos] === 0x5c || this.b[this.pos] === 0x5e) prefix += String.fromCharCode(this.byte());
    const c = this.b[this.pos];
    if (c === 0x00) { this.pos++; return prefix; }
    if (c === 0x2e) { this.pos++; return prefix + [this.seg(), this.seg()].join('.'); }
    if (c === 0x2f) {
      this.pos++;
      const n = this.byte();
      return prefix + Array.from({ length: n }, () => this.seg()).join('.');
    }
    return prefix + this.seg();
  }

  private value(): Value {
    const op = this.byte();
    const le = (n: number): bigint => {
      let v = 0n;
      for (let i = 0; i < n; i++) v |= BigInt(this.byte()) << BigInt(8 * i);
      return v;
    };
    switch (op) {
      case 0x00: return 0n;
      case 0x01: return 1n;
      case 0xff: return 0xffff_ffff_ffff_ffffn;
      case 0x0a: return le(1);
      case 0x0b: return le(2);
      case 0x0c: return le(4);
      case 0x0e: return le(8);
      case 0x0d: {
        let s = '';
        for (let c = this.byte(); c !== 0; c = this.byte()) s += String.fromCharCode(c);
        return s;
      }
      case 0x11: {
        const end = this.pkgEnd();
        const size = this.value();
        assert.equal(typeof size, 'bigint');
        const buffer = this.b.slice(this.pos, end);
        assert.equal(BigInt(buffer.length), size, 'buffer size matches its contents');
        this.pos = end;
        return { buffer };
      }
      case 0x12: {
        const end = this.pkgEnd();
        const count = this.byte();
        const elements: Value[] = [];
        while (this.pos < end) elements.push(this.value());
        assert.equal(this.pos, end);
        assert.equal(elements.length, count, 'NumElements matches the elements present');
        return elements;
      }
      default: throw new Error(`AML: unexpected data opcode 0x${op.toString(16)} at ${this.pos - 1}`);
    }
  }

  terms(end = this.b.length): Term[] {
    const out: Term[] = [];
    while (this.pos < end) {
      const op = this.byte();
      if (op === 0x08) {
        const n = this.nameString();
        out.push({ op: 'name', name: n, value: this.value() });
      } else if (op === 0x10 || (op === 0x5b && this.byte() === 0x82)) {
        const pkgEnd = this.pkgEnd();
        const n = this.nameString();
        out.push({ op: op === 0x10 ? 'scope' : 'device', name: n, body: this.terms(pkgEnd) });
        assert.equal(this.pos, pkgEnd, `${n}: body ends where its PkgLength says`);
      } else {
        throw new Error(`AML: unexpected opcode 0x${op.toString(16)} at ${this.pos - 1}`);
      }
    }
    return out;
  }
}

interface Resources { io: Array<{ min: number; max: number; align: number; len: number }>; irqs: number[] }

/** Small resource descriptors: IO, IRQ (2 or 3 bytes) and the end tag, which must come last. */
function resources(v: Value): Resources {
  assert.ok(typeof v === 'object' && 'buffer' in v, '_CRS is a buffer');
  const b = v.buffer;
  const r: Resources = { io: [], irqs: [] };
  let o = 0;
  for (;;) {
    const tag = b[o]!;
    assert.equal(tag & 0x80, 0, 'small descriptors only');
    const len = tag & 7;
    const kind = tag >> 3;
    const dv = new DataView(b.buffer, b.byteOffset + o);
    if (kind === 0x0f) {
      assert.equal(o + 2, b.length, 'the end tag closes the template');
      return r;
    }
    if (kind === 0x08) {
      r.io.push({ min: dv.getUint16(2, true), max: dv.getUint16(4, true), align: dv.getUint8(6), len: dv.getUint8(7) });
    } else if (kind === 0x04) {
      const mask = dv.getUint16(1, true);
      for (let i = 0; i < 16; i++) if (mask & (1 << i)) r.irqs.push(i);
    } else {
      assert.fail(`unexpected descriptor 0x${tag.toString(16)}`);
    }
    o += 1 + len;
  }
}

function find(terms: Term[], n: string): Term {
  const t = terms.find((x) => x.name === n);
  assert.ok(t, `${n} present`);
  return t;
}
function valueOf(terms: Term[], n: string): Value {
  const t = find(terms, n);
  assert.equal(t.op, 'name');
  return t.value;
}
function bodyOf(terms: Term[], n: string): Term[] {
  const t = find(terms, n);
  assert.ok(t.op !== 'name');
  return t.body;
}

void test('the DSDT header: signature, revision 2 (64-bit integers), length, checksum', () => {
  const t = buildDsdt({ cpus: 2 });
  const v = new DataView(t.buffer, t.byteOffset, t.byteLength);
  assert.equal(String.fromCharCode(...t.subarray(0, 4)), 'DSDT');
  assert.equal(v.getUint32(4, true), t.length);
  assert.equal(t[8], DSDT_REVISION);
  assert.equal(t.reduce((s, x) => (s + x) & 0xff, 0), 0);
  assert.deepEqual([...t.subarray(SDT_HEADER_SIZE)], [...dsdtAml({ cpus: 2 })]);
});

void test('sleep packages carry the SLP_TYP values the PM device implements', () => {
  const root = new AmlReader(dsdtAml({ cpus: 1 })).terms();
  assert.deepEqual(valueOf(root, '_S0_'), [0n, 0n, 0n, 0n]);
  assert.deepEqual(valueOf(root, '_S3_'), [1n, 1n, 0n, 0n]);
  assert.deepEqual(valueOf(root, '_S4_'), [2n, 2n, 0n, 0n]);
  assert.deepEqual(valueOf(root, '_S5_'), [0n, 0n, 0n, 0n]);
});

void test('\\_SB holds a processor device per CPU with the MADT UID, and the ISA devices', () => {
  const root = new AmlReader(dsdtAml({ cpus: 3 })).terms();
  const sb = bodyOf(root, '\\_SB_');
  const cpus = sb.filter((t) => t.op === 'device' && valueOf(t.body, '_HID') === 'ACPI0007');
  assert.deepEqual(cpus.map((t) => t.name), ['C000', 'C001', 'C002']);
  assert.deepEqual(cpus.map((t) => t.op === 'device' && valueOf(t.body, '_UID')), [0n, 1n, 2n]);

  const com1 = bodyOf(sb, 'COM1');
  assert.equal(valueOf(com1, '_HID'), 0x0105d041n); // PNP0501
  assert.deepEqual(resources(valueOf(com1, '_CRS')), { io: [{ min: 0x3f8, max: 0x3f8, align: 1, len: 8 }], irqs: [4] });

  const kbd = bodyOf(sb, 'KBD_');
  assert.equal(valueOf(kbd, '_HID'), 0x0303d041n); // PNP0303
  assert.deepEqual(resources(valueOf(kbd, '_CRS')), {
    io: [{ min: 0x60, max: 0x60, align: 1, len: 1 }, { min: 0x64, max: 0x64, align: 1, len: 1 }], irqs: [1],
  });

  const mou = bodyOf(sb, 'MOU_');
  assert.equal(valueOf(mou, '_HID'), 0x130fd041n); // PNP0F13
  assert.deepEqual(resources(valueOf(mou, '_CRS')), { io: [], irqs: [12] });

  const rtc = bodyOf(sb, 'RTC_');
  assert.equal(valueOf(rtc, '_HID'), 0x000bd041n); // PNP0B00
  assert.deepEqual(resources(valueOf(rtc, '_CRS')), { io: [{ min: 0x70, max: 0x70, align: 1, len: 2 }], irqs: [8] });

  assert.equal(sb.find((t) => t.name === 'PVPN'), undefined, 'no pvpanic unless asked for');
});

void test('pvpanic appears with its port when the machine has one', () => {
  const root = new AmlReader(dsdtAml({ cpus: 1, pvpanicPort: 0x505 })).terms();
  const pv = bodyOf(bodyOf(root, '\\_SB_'), 'PVPN');
  assert.equal(valueOf(pv, '_HID'), 'QEMU0001');
  assert.equal(valueOf(pv, '_STA'), 0x0bn);
  assert.deepEqual(resources(valueOf(pv, '_CRS')), { io: [{ min: 0x505, max: 0x505, align: 1, len: 1 }], irqs: [] });
});

void test('254 CPUs still decode (multi-byte PkgLength on \\_SB); bad descriptions are refused', () => {
  const root = new AmlReader(dsdtAml({ cpus: 254 })).terms();
  const sb = bodyOf(root, '\\_SB_');
  assert.equal(sb.filter((t) => t.name.startsWith('C0')).length, 254);
  assert.ok(find(sb, 'C0FD'));
  for (const cpus of [0, 255, 1.5]) assert.throws(() => dsdtAml({ cpus }), RangeError);
  assert.throws(() => dsdtAml({ cpus: 1, pvpanicPort: 0x10000 }), RangeError);
});
