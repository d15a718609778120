import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openChardev } from './open.js';

test('file backend truncates, writes, and keeps every byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-file-'));
  try {
    const path = join(dir, 'serial.log');
    writeFileSync(path, 'old contents that must go');
    const dev = await openChardev({ kind: 'file', path });
    dev.write(new TextEncoder().encode('hello '));
    dev.write(new TextEncoder().encode('world\n'));
    await dev.flush();
    assert.equal(readFileSync(path, 'utf8'), 'hello world\n');
    await dev.close();
    dev.write(new TextEncoder().encode('after close'));
    assert.equal(readFileSync(path, 'utf8'), 'hello world\n');
    // 0666 less the umask, as QEMU creates it.
    const umask = process.umask();
    const fresh = join(dir, 'fresh.log');
    await (await openChardev({ kind: 'file', path: fresh })).close();
    assert.equal(statSync(fresh).mode & 0o777, 0o666 & ~umask);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file backend reports QEMU\'s message when the file cannot be opened', async () => {
  // qemu-system-x86_64 -serial file:/nonexistent/dir/x:
  //   ... Could not open '/nonexistent/dir/x': No such file or directory
  await assert.rejects(openChardev({ kind: 'file', path: '/nonexistent/dir/x' }), {
    code: 'ERR_SYSCALL',
    message: "Could not open '/nonexistent/dir/x': No such file or directory",
  });
});
