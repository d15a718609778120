import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { requireKvmGuests } from '../testing/kvm-guests.js';

const KVM_MODULE = fileURLToPath(new URL('./kvm.js', import.meta.url));

test('KVM_CREATE_VM interrupted by a signal (a profiler\'s SIGPROF) is retried, not an error', () => {
  requireKvmGuests();
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-create-vm-'));
  try {
    // Sampling every 20 us keeps SIGPROF arriving while the kernel sets each VM up.
    const script = `
      const { Kvm } = await import(${JSON.stringify(KVM_MODULE)});
      const kvm = Kvm.open();
      for (let i = 0; i < 40; i++) kvm.createVm().close();
      console.log('created 40');`;
    const r = spawnSync(process.execPath, ['--cpu-prof', '--cpu-prof-interval', '20', '--cpu-prof-dir', dir, '--input-type=module', '-e', script], {
      encoding: 'utf8', timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /created 40/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
