/**
 * Runs the reference, qemu-system-x86_64 7.2, on bad command lines and compares its error text
 * with ours, after the program name. Each case fails in QEMU before it would start a guest.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { parseArgs } from './parse-args.js';

const QEMU = 'qemu-system-x86_64';

const CASES: string[][] = [
  ['-m', 'foo'],
  ['-m', '16E'],
  ['-m', '256,256'],
  ['-m'],
  ['-bogus'],
  ['-smp', '256'],
  ['-smp', '4,sockets=3'],
  ['-smp', '2,,3'],
  ['-smp', 'foo'],
  ['-accel', 'foo'],
  ['-M', 'foo'],
  ['-cpu', 'foo'],
  ['-serial', 'bogus'],
  ['-name', 'a,bogus=1'],
  ['-display', 'foo'],
  ['-initrd', 'a'],
  ['-action', 'panic=bogus'],
  ['-action', 'noreboot'],
  ['-action', 'reboot=shutdown', '-action', 'panic=bogus'],
  ['-no-reboot', '-action', 'reboot=bogus'],
  ['-watchdog-action', 'bogus'],
  ['-uuid', 'bogus'],
  ['-qmp', 'bogus'],
  ['-qmp', 'tcp:localhost,server=on,wait=off'],
  ['-qmp', 'unix:/tmp/nodevisor-conformance.sock,server=on,wait=off,reconnect=1'],
  ['-nographic', '-qmp', 'stdio'],
  ['-mon', 'chardev=nope,mode=control'],
  ['-chardev', 'socket,id=c1'],
  ['-chardev', 'socket,id=c1,path=/tmp/a', '-chardev', 'socket,id=c1,path=/tmp/b'],
  ['-chardev', 'socket,id=1c,path=/tmp/a'],
];

/** Error lines without the program name; QEMU's machine is 'pc-i440fx-7.2' where ours is 'pc'. */
function normalize(text: string, program: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => (line.startsWith(`${program}: `) ? line.slice(program.length + 2) : line))
    .join('\n')
    .replaceAll("machine 'pc-i440fx-7.2'", "machine 'pc'");
}

test('error messages match qemu-system-x86_64 after the program name', () => {
  for (const argv of CASES) {
    const q = spawnSync(QEMU, argv, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    if (q.error !== undefined) {
      const missing = (q.error as NodeJS.ErrnoException).code === 'ENOENT';
      assert.fail(missing ? `${QEMU} is not installed (apt-get install qemu-system-x86)` : String(q.error));
    }
    assert.equal(q.status, 1, `${QEMU} ${argv.join(' ')} should fail`);
    let ours = '';
    try {
      parseArgs(argv);
    } catch (e) {
      if (!(e instanceof OptionError)) throw e;
      ours = e.message;
    }
    assert.equal(normalize(ours, 'nodevisor'), normalize(q.stderr, QEMU), argv.join(' '));
  }
});
