import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHelpOption, parseBool, parseKeyval, parseQemuOpts } from './qemu-opts.js';

const entries = (m: Map<string, string>): Array<[string, string]> => [...m];

test('QemuOpts: implied first key, ,, escape, last duplicate wins', () => {
  assert.deepEqual(entries(parseQemuOpts('kvm,notify-vmexit=run', 'accel').values), [
    ['accel', 'kvm'],
    ['notify-vmexit', 'run'],
  ]);
  assert.deepEqual(entries(parseQemuOpts('a,,b,process=p', 'guest').values), [
    ['guest', 'a,b'],
    ['process', 'p'],
  ]);
  assert.deepEqual(entries(parseQemuOpts('x=a,,b,,', undefined).values), [['x', 'a,b,']]);
  // -accel kvm,accel=tcg ends up with tcg in QEMU.
  assert.deepEqual(entries(parseQemuOpts('kvm,accel=tcg', 'accel').values), [['accel', 'tcg']]);
  assert.deepEqual(entries(parseQemuOpts('', 'size').values), []);
});

test('QemuOpts: short-form booleans warn as QEMU does', () => {
  const r = parseQemuOpts('a,debug-threads,noflag', 'guest');
  assert.deepEqual(entries(r.values), [
    ['guest', 'a'],
    ['debug-threads', 'on'],
    ['flag', 'off'],
  ]);
  // qemu-system-x86_64 -m 1G,nobogus:
  //   ...: warning: short-form boolean option 'nobogus' deprecated
  //   Please use bogus=off instead
  assert.deepEqual(r.warnings, [
    "short-form boolean option 'debug-threads' deprecated\nPlease use debug-threads=on instead",
    "short-form boolean option 'noflag' deprecated\nPlease use flag=off instead",
  ]);
});

test('QemuOpts: validation in order against a description, help flag', () => {
  const desc = { size: 'size', slots: 'number', debug: 'bool' } as const;
  assert.throws(() => parseQemuOpts('1G,bogus=1', 'size', desc), { message: "Invalid parameter 'bogus'" });
  assert.throws(() => parseQemuOpts('1G,slots=x', 'size', desc), { message: "Parameter 'slots' expects a number" });
  assert.throws(() => parseQemuOpts('1G,debug=maybe', 'size', desc), { message: "Parameter 'debug' expects 'on' or 'off'" });
  // The first error wins: the size comes before the unknown key.
  assert.throws(() => parseQemuOpts('foo,bogus=1', 'size', desc), /Parameter 'size' expects/);
  assert.equal(parseQemuOpts('1G,help', 'size', desc).help, true);
  assert.equal(parseQemuOpts('1G,?', 'size', desc).help, true);
  // Without a description (as -accel), `help` is just a property and `id` is dropped.
  assert.deepEqual(entries(parseQemuOpts('kvm,help,id=x', 'accel').values), [
    ['accel', 'kvm'],
    ['help', 'on'],
  ]);
});

test('parseBool takes exactly QEMU spellings', () => {
  for (const v of ['on', 'yes', 'true', 'y']) assert.equal(parseBool('p', v), true);
  for (const v of ['off', 'no', 'false', 'n']) assert.equal(parseBool('p', v), false);
  for (const v of ['ON', 'True', 'Y', '1', '']) {
    assert.throws(() => parseBool('p', v), { message: "Parameter 'p' expects 'on' or 'off'" });
  }
  assert.equal(isHelpOption('?'), true);
  assert.equal(isHelpOption('Help'), false);
});

test('keyval: merge, last wins, QEMU errors', () => {
  const into = new Map<string, string>();
  parseKeyval('2,sockets=2', 'cpus', into);
  parseKeyval('cores=2,cpus=3', 'cpus', into);
  assert.deepEqual(entries(into), [
    ['sockets', '2'],
    ['cores', '2'],
    ['cpus', '3'],
  ]);
  assert.deepEqual(entries(parseKeyval('cpus=2,,', 'cpus').values), [['cpus', '2,']]);
  assert.deepEqual(entries(parseKeyval('2,', 'cpus').values), [['cpus', '2']]);
  // qemu-system-x86_64 -smp 2,,3 → -smp 2,,3: Invalid parameter ''
  assert.throws(() => parseKeyval('2,,3', 'cpus'), { message: "Invalid parameter ''" });
  assert.throws(() => parseKeyval(',2', 'cpus'), { message: "Invalid parameter ''" });
  // qemu-system-x86_64 -smp 2,sockets → -smp 2,sockets: Expected '=' after parameter 'sockets'
  assert.throws(() => parseKeyval('2,sockets', 'cpus'), { message: "Expected '=' after parameter 'sockets'" });
  assert.throws(() => parseKeyval('2,256=x', 'cpus'), { message: "Invalid parameter '256'" });
  assert.equal(parseKeyval('pc,help', 'type').help, true);
  assert.equal(parseKeyval('?', 'type').help, true);
});
