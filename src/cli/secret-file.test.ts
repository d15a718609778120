import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import type { MachineConfig } from '../machine/config.js';
import { loadSecretFiles, readSecretFile } from './secret-file.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-secret-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true });
  }
}

test('a file secret is the file\'s bytes, as they are (raw) or decoded (base64)', () => {
  withDir((dir) => {
    const raw = join(dir, 'raw');
    writeFileSync(raw, 'key\n'); // QEMU keeps the newline
    assert.deepEqual(readSecretFile({ id: 's', path: raw, format: 'raw' }), new TextEncoder().encode('key\n'));
    const b64 = join(dir, 'b64');
    writeFileSync(b64, 'a2V5\n'); // a newline is allowed in base64
    assert.deepEqual(readSecretFile({ id: 's', path: b64, format: 'base64' }), new TextEncoder().encode('key'));
  });
});

test('unreadable secret files fail with QEMU\'s (glib\'s) words', () => {
  withDir((dir) => {
    const missing = join(dir, 'missing');
    assert.throws(() => readSecretFile({ id: 's', path: missing, format: 'raw' }), new OptionError(
      `nodevisor: Unable to read ${missing}: Failed to open file “${missing}”: No such file or directory`,
    ));
    assert.throws(() => readSecretFile({ id: 's', path: dir, format: 'raw' }), new OptionError(
      `nodevisor: Unable to read ${dir}: Error reading file “${dir}”: Is a directory`,
    ));
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'a2V5!');
    assert.throws(() => readSecretFile({ id: 's', path: bad, format: 'base64' }), new OptionError('nodevisor: Base64 data contains invalid characters'));
  });
});

test('loadSecretFiles reads every file secret and keys the introspection config', () => {
  withDir((dir) => {
    const key = join(dir, 'key');
    writeFileSync(key, 'k1');
    const config = {
      introspection: { id: 'i', path: '/t', handshakeTimeoutMs: 1, unhookTimeoutMs: 1, dialect: 'v7' },
    } as MachineConfig;
    loadSecretFiles(config, [{ id: 'k', path: key, format: 'raw' }], 'k');
    assert.deepEqual(config.introspection?.key, new TextEncoder().encode('k1'));
    // An unused secret still has to be readable, as in QEMU.
    assert.throws(() => loadSecretFiles(config, [{ id: 'x', path: join(dir, 'nope'), format: 'raw' }], 'k'), OptionError);
  });
});
