// Checks the tables with ACPICA's iasl, the reference disassembler/compiler: every table
// must disassemble without a warning or error, and compiling the disassembly back (no
// optimizations, warnings as errors) must give our bytes again, header creator aside.
// iasl cannot disassemble a lone RSDP, so the RSDP is written as iasl data-table source
// from our fields and compiled: iasl computes both checksums itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AcpiDescription } from './description.js';
import { SDT_CHECKSUM, SDT_CREATOR_ID } from './sdt.js';
import { buildAcpiTables } from './tables.js';

const INSTALL_HINT = 'iasl is not installed: apt-get install acpica-tools';

function iasl(cwd: string, args: string[]): string {
  const r = spawnSync('iasl', args, { cwd, encoding: 'utf8' });
  if (r.error !== undefined) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') assert.fail(INSTALL_HINT);
    throw r.error;
  }
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, `iasl ${args.join(' ')} failed:\n${out}`);
  return out;
}

/** Our table with the fields iasl fills in itself (checksum, compiler ID and revision) zeroed. */
function normalized(bytes: Uint8Array): Uint8Array {
  const b = Uint8Array.from(bytes);
  b[SDT_CHECKSUM] = 0;
  b.fill(0, SDT_CREATOR_ID, SDT_CREATOR_ID + 8);
  return b;
}

const hex = (v: number | bigint, digits: number): string => v.toString(16).toUpperCase().padStart(digits, '0');

function rsdpSource(r: Uint8Array): string {
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const oem = String.fromCharCode(...r.subarray(9, 15));
  return [
    '[0008]                          Signature : "RSD PTR "',
    '[0001]                           Checksum : 00',
    `[0006]                             Oem ID : "${oem}"`,
    `[0001]                           Revision : ${hex(v.getUint8(15), 2)}`,
    `[0004]                       RSDT Address : ${hex(v.getUint32(16, true), 8)}`,
    `[0004]                             Length : ${hex(v.getUint32(20, true), 8)}`,
    `[0008]                       XSDT Address : ${hex(v.getBigUint64(24, true), 16)}`,
    '[0001]                  Extended Checksum : 00',
    '[0003]                           Reserved : 000000',
    '',
  ].join('\n');
}

function checkWithIasl(desc: AcpiDescription): void {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-acpi-'));
  try {
    const { blobs } = buildAcpiTables(desc);
    for (const { bytes } of blobs) {
      if (String.fromCharCode(...bytes.subarray(0, 8)) === 'RSD PTR ') {
        writeFileSync(join(dir, 'rsdp.asl'), rsdpSource(bytes));
        const out = iasl(dir, ['-we', 'rsdp.asl']);
        assert.match(out, /0 Errors, 0 Warnings, 0 Remarks/);
        assert.deepEqual(readFileSync(join(dir, 'rsdp.aml')), Buffer.from(bytes), 'iasl builds the same RSDP');
        continue;
      }
      const sig = String.fromCharCode(...bytes.subarray(0, 4)).toLowerCase();
      writeFileSync(join(dir, `${sig}.dat`), bytes);
      const dis = iasl(dir, ['-d', `${sig}.dat`]);
      assert.doesNotMatch(dis, /warning|error/i, `${sig}: iasl -d complains:\n${dis}`);
      const asl = readFileSync(join(dir, `${sig}.dsl`), 'utf8');
      assert.doesNotMatch(asl, /\*\*\*|Unknown|Invalid/i, `${sig}: the disassembly flags something:\n${asl}`);
      const out = iasl(dir, ['-we', '-oa', '-p', `${sig}-again`, `${sig}.dsl`]);
      assert.match(out, /0 Errors, 0 Warnings, 0 Remarks/, `${sig}: recompiling the disassembly:\n${out}`);
      const again = readFileSync(join(dir, `${sig}-again.aml`));
      assert.deepEqual(normalized(again), normalized(bytes), `${sig}: iasl compiles the disassembly back to our bytes`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('iasl disassembles every table cleanly and compiles it back to the same bytes (4 CPUs, pvpanic)', () => {
  checkWithIasl({ cpus: 4, pvpanicPort: 0x505 });
});

void test('the same for 1 and 254 CPUs without pvpanic', () => {
  checkWithIasl({ cpus: 1 });
  checkWithIasl({ cpus: 254 });
});
