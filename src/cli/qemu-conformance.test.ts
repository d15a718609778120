/**
 * Runs the reference, qemu-system-x86_64 7.2, on bad command lines and compares its error text
 * with ours, after the program name. Each case fails in QEMU before it would start a guest.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OptionError } from '../errors.js';
import { parseArgs } from './parse-args.js';
import { readSecretFile } from './secret-file.js';

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
  ['-chardev', 'socket,id=c,path=/tmp/a,wait=off'],
  ['-chardev', 'socket,id=c,wait=off'],
  // The KVM accelerator's properties. QEMU here defaults to TCG: the cases name kvm.
  ['-accel', 'kvm,notify-window=-1'],
  ['-accel', 'kvm,notify-window=4294967296'],
  ['-accel', 'kvm,notify-window=abc'],
  ['-accel', 'kvm,notify-window'],
  ['-accel', 'kvm,notify-vmexit=foo'],
  ['-accel', 'kvm,notify-vmexit=Run'],
  ['-accel', 'kvm,kernel-irqchip=true'],
  ['-accel', 'kvm,kernel-irqchip=foo'],
  ['-accel', 'kvm,dirty-ring-size=3'],
  ['-accel', 'kvm,dirty-ring-size=-1'],
  ['-accel', 'kvm,dirty-ring-size=0x10000000000'],
  ['-accel', 'kvm,bogus=1'],
  ['-accel', 'kvm,bogus=1,dirty-ring-size=3'],
  ['-accel', 'kvm,dirty-ring-size=3,bogus=1'],
  ['-accel', 'foo', '-accel', 'kvm,bogus=1'],
  ['-accel', 'kvm,bogus=1', '-accel', 'kvm'],
  ['-smp', '999', '-accel', 'kvm,bogus=1'],
  ['-accel', 'kvm,bogus=1', '-cpu', 'foo'],
  ['-enable-kvm', '-M', 'kernel-irqchip=foo'],
  ['-M', 'accel=kvm,kernel-irqchip=true'],
  ['-M', 'kernel-irqchip=on,kernel-irqchip=foo', '-accel', 'kvm'],
  ['-M', 'kernel-irqchip=foo', '-accel', 'kvm,kernel-irqchip=on'],
  // -device: read when met (the id), created in order after the CPU.
  ['-device', 'foo'],
  ['-device', ''],
  ['-device', 'pvpanic,ioport=70000'],
  ['-device', 'pvpanic,ioport=-1'],
  ['-device', 'pvpanic,ioport=abc'],
  ['-device', 'pvpanic,ioport=0x505,ioport=1k'],
  ['-device', 'pvpanic,bogus=1'],
  ['-device', 'ib700,bogus=1'],
  ['-device', 'ib700,ioport=5'],
  ['-device', 'pvpanic,bus=foo'],
  ['-device', 'pvpanic', '-device', 'pvpanic'],
  ['-device', 'pvpanic,ioport=0x600', '-device', 'pvpanic,ioport=0x601'],
  ['-device', 'pvpanic,id=1p,x'],
  ['-device', 'pvpanic,id=a', '-device', 'ib700,id=a', '-M', 'foo'],
  ['-device', 'foo', '-cpu', 'bar'],
  ['-device', 'foo', '-accel', 'kvm,bogus=1'],
  ['-device', 'pvpanic', '-device', 'pvpanic', '-device', 'foo'],
  ['-watchdog', 'ib700'],
  ['-accel', 'kvm', '-cpu', 'host,hv-crash=maybe'],
  ['-accel', 'kvm', '-cpu', 'host,hv-crash,hv-crash=foo'],
  // -object: read when met; secrets are made before the chardevs.
  ['-object', 'foo'],
  ['-object', 'foo,id=1s'],
  ['-object', 'id=x'],
  ['-object', 'secret'],
  ['-object', 'secret,bogus=1'],
  ['-object', 'secret,id=s'],
  ['-object', 'secret,id=s,data=a,format=foo'],
  ['-object', 'secret,id=s,bogus=1,format=foo'],
  ['-object', 'secret,id=s,data=a,bogus=1'],
  ['-object', 'secret,id=s,data=a,x'],
  ['-object', 'secret,id=s,data=a,file=/etc/hostname'],
  ['-object', 'secret,id=s,data=@@@,format=base64'],
  ['-object', 'secret,id=s,data=a', '-object', 'secret,id=s,data=b'],
  ['-object', 'secret,id=s,id=t,data=a', '-object', 'secret,id=s,data=b'],
  ['-object', 'secret,id=1s,data=a'],
  ['-object', 'secret,id=s', '-chardev', 'socket,id=c1'],
  ['-object', 'secret,id=s', '-smp', '999'],
  ['-object', 'secret,id=s', '-M', 'foo'],
  ['-M', 'foo', '-object', 'bar'],
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

function runQemu(argv: readonly string[]): SpawnSyncReturns<string> {
  const q = spawnSync(QEMU, argv, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (q.error !== undefined) {
    const missing = (q.error as NodeJS.ErrnoException).code === 'ENOENT';
    assert.fail(missing ? `${QEMU} is not installed (apt-get install qemu-system-x86)` : String(q.error));
  }
  assert.equal(q.status, 1, `${QEMU} ${argv.join(' ')} should fail`);
  return q;
}

test('error messages match qemu-system-x86_64 after the program name', () => {
  for (const argv of CASES) {
    const q = runQemu(argv);
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

test('reading a secret file fails as in qemu-system-x86_64', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-secret-'));
  try {
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'abc$');
    const cases: Array<[string, 'raw' | 'base64']> = [[join(dir, 'missing'), 'raw'], [dir, 'raw'], ['', 'raw'], [bad, 'base64']];
    for (const [path, format] of cases) {
      const q = runQemu(['-object', `secret,id=s,file=${path},format=${format}`]);
      let ours = '';
      try {
        readSecretFile({ id: 's', path, format });
      } catch (e) {
        if (!(e instanceof OptionError)) throw e;
        ours = e.message;
      }
      assert.equal(normalize(ours, 'nodevisor'), normalize(q.stderr, QEMU), path);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});
