import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testMemory } from '../../memory/guest-memory.js';
import { PDE_START, PDPTE_START, PML4_START } from './layout.js';
import { writeIdentityPageTables } from './page-tables.js';

void test('identity page tables map the first 4 GiB with 2 MiB pages', () => {
  const mem = testMemory([{ gpa: 0, size: 0x10000 }]);
  mem.fill(PML4_START, 0x6000, 0xff); // stale contents must not survive
  writeIdentityPageTables(mem);
  assert.equal(mem.readU64(PML4_START), BigInt(PDPTE_START) | 3n);
  assert.equal(mem.readU64(PML4_START + 8), 0n);
  for (let d = 0; d < 4; d++) assert.equal(mem.readU64(PDPTE_START + d * 8), BigInt(PDE_START + d * 0x1000) | 3n);
  assert.equal(mem.readU64(PDPTE_START + 32), 0n);
  assert.equal(mem.readU64(PDE_START), 0x83n);
  assert.equal(mem.readU64(PDE_START + 8), 0x200000n | 0x83n);
  // The last 2 MiB page below 4 GiB.
  assert.equal(mem.readU64(PDE_START + 4 * 0x1000 - 8), 0xffe00000n | 0x83n);
});
