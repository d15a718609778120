/**
 * The VM side (connectIntrospection + KvmiSession over a FakeTarget) against the TypeScript
 * client, over a real unix socket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { IntrospectionConfig } from '../machine/config.js';
import { listen, type KvmiEvent, type KvmiListener, type KvmiVm } from './client.js';
import { connectIntrospection, type IntrospectionLink } from './connect.js';
import { FakeTarget, longModeSregs } from './testing/fake-target.js';
import { PageTableBuilder } from './testing/page-tables.js';
import { IntrospectionError, KvmiError, type KvmiErrorName } from './wire/errors.js';
import { dialect, KVMI_PAGE_ACCESS_R, KVMI_PAGE_ACCESS_W, KVMI_PAGE_ACCESS_X } from './wire/ids.js';

const UUID = '0badcafe-0000-4000-8000-000000000001';
const RWX = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;
const RX = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X;

interface Rig {
  target: FakeTarget;
  listener: KvmiListener;
  link: IntrospectionLink;
  logs: string[];
  toolLogs: string[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function rig(options: Partial<IntrospectionConfig> & { secret?: string } = {}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'introspector.sock');
  const logs: string[] = [];
  const toolLogs: string[] = [];
  const listener = await listen(path, { secret: options.secret, log: (l, m) => toolLogs.push(`${l}: ${m}`), dialect: options.dialect });
  const target = new FakeTarget(2, { mappedRam: true }); // READ_PHYSICAL answered by the socket thread, as on a VM
  const config: IntrospectionConfig = {
    id: 'kvmi0', path, handshakeTimeoutMs: 2000, unhookTimeoutMs: 2000, dialect: 'v7', ...options,
  };
  const link = connectIntrospection(config, target, { uuid: UUID, name: 'guest-a', startTime: 1_700_000_000_000 }, {
    log: (l, m) => logs.push(`${l}: ${m}`),
  });
  return {
    target, listener, link, logs, toolLogs,
    async [Symbol.asyncDispose]() {
      await link.close();
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function within<T>(p: Promise<T>, ms = 3000, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms))),
  ]);
}

/** The VM's events, one at a time. */
function eventsOf(vm: KvmiVm): () => Promise<KvmiEvent> {
  const it = vm.events();
  return async () => {
    const r = await within(it.next(), 3000, 'event');
    if (r.done === true) throw new Error('no more events');
    return r.value;
  };
}

const kvmiError = (code: KvmiErrorName) => (e: unknown): boolean => e instanceof KvmiError && e.code === code;

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

test('handshake without a key: the tool learns uuid, name and start time; GET_VERSION answers', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  assert.equal(vm.uuid, UUID);
  assert.equal(vm.name, 'guest-a');
  assert.equal(vm.startTime, 1_700_000_000_000n);
  assert.deepEqual(await vm.getVersion(), { version: 1, features: { spp: false, vmfunc: false, eptp: false, ve: false } });
  assert.equal(r.link.state, 'connected');
});

test('with a key: the right secret connects, a wrong one is closed and logged', async () => {
  {
    await using r = await rig({ key: new TextEncoder().encode('open sesame'), secret: 'open sesame' });
    const vm = await within(r.listener.accept());
    assert.equal((await vm.getGuestInfo()).vcpuCount, 2);
  }
  {
    await using r = await rig({ key: new TextEncoder().encode('open sesame'), secret: 'wrong' });
    await within(r.link.stopped, 3000, 'the link giving up');
    assert.equal(r.link.state, 'stopped');
    assert.ok(r.logs.some((l) => l.startsWith('error:') && /cookie hash/.test(l) && /closed/.test(l)), r.logs.join('\n'));
    assert.ok(r.logs.some((l) => /runs uninspected/.test(l)));
    await until(() => r.toolLogs.some((l) => /rejected/.test(l)), 'the tool saw the connection go');
  }
});

test('every command, against the fake VM', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());

  await vm.checkCommand('GET_REGISTERS');
  await vm.checkCommand('VCPU_CONTROL_SINGLESTEP');
  await vm.checkEvent('BREAKPOINT');
  await assert.rejects(vm.checkCommand(30), kvmiError('EINVAL'), 'unknown id');
  await assert.rejects(vm.checkEvent(12), kvmiError('EINVAL'));

  assert.deepEqual(await vm.getGuestInfo(), { vcpuCount: 2 });
  assert.deepEqual(await vm.getVcpuInfo(1), { tscSpeed: 2_500_000_000n });
  await assert.rejects(vm.getVcpuInfo(2), kvmiError('EINVAL'), 'no vCPU 2');

  const regs = await vm.getRegisters(1, [0x174, 0xc000_0082]);
  assert.equal(regs.mode, 8);
  assert.equal(regs.regs.rip, 0x1001n);
  assert.equal(regs.sregs.cr3, 0x8000n);
  assert.deepEqual(regs.msrs, [{ index: 0x174, value: 0x10n }, { index: 0xc000_0082, value: 0xffff_ffff_8100_0000n }]);
  await assert.rejects(vm.getRegisters(0, [0x4000_0000]), kvmiError('EINVAL'), 'an MSR the VM cannot read');

  assert.deepEqual(await vm.getCpuid(0, 0), { eax: 0xd, ebx: 0x756e_6547, ecx: 0x6c65_746e, edx: 0x4965_6e69 });
  await assert.rejects(vm.getCpuid(0, 0x4000_0100), kvmiError('ENOENT'));
  const xsave = await vm.getXsave(1);
  assert.equal(xsave.length, 4096);
  assert.equal(xsave[512], 1);
  assert.equal(await vm.getXcr(0), 7n);
  await assert.rejects(vm.getXcr(0, 1), kvmiError('EINVAL'));

  await vm.writePhysical(0x3000, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual([...(await vm.readPhysical(0x3001, 3))], [2, 3, 4]);
  assert.deepEqual([...t.ram.subarray(0x3000, 0x3004)], [1, 2, 3, 4]);
  await assert.rejects(vm.readPhysical(0x10_0000, 1), kvmiError('ENOENT'), 'past RAM');
  await assert.rejects(vm.readPhysical(0, 0), kvmiError('EINVAL'), 'nothing to read');
  await assert.rejects(vm.readPhysical(0, 8177), kvmiError('EINVAL'), 'more than a reply holds');
  assert.equal((await vm.readPhysical(0, 8176)).length, 8176, 'a full reply');
  await assert.rejects(vm.writePhysical(0xf_fffe, Uint8Array.of(1, 2, 3)), kvmiError('ENOENT'));
  assert.deepEqual(await vm.queryPhysical(0x1234), { start: 0n, size: 0x10_0000n, type: 'ram' });
  assert.deepEqual(await vm.queryPhysical(0xffff_fff0), { start: 0xfffc_0000n, size: 0x4_0000n, type: 'rom' });
  await assert.rejects(vm.queryPhysical(0x8000_0000), kvmiError('ENOENT'));
  assert.equal(await vm.getMaxGfn(), 0x100n);

  await vm.injectException(1, { vector: 14, errorCode: 2, address: 0xdead_0000n });
  assert.deepEqual(t.vcpus[1]!.injected, { vector: 14, hasErrorCode: true, errorCode: 2, address: 0xdead_0000n });
  await assert.rejects(vm.injectException(1, { vector: 6 }), kvmiError('EBUSY'), 'one at a time');
  await assert.rejects(vm.injectException(0, { vector: 2 }), kvmiError('EINVAL'), 'NMI is no exception');
  await assert.rejects(vm.injectException(0, { vector: 32 }), kvmiError('EINVAL'));
  await vm.injectException(0, { vector: 3, errorCode: 5, address: 9n });
  assert.deepEqual(t.vcpus[0]!.injected, { vector: 3, hasErrorCode: false, errorCode: 5, address: 0n });

  // Page tables in guest RAM: 4-level, then 5-level, walked by the VM side.
  const pt = new PageTableBuilder(t.ram, '4-level', 0x8_0000n);
  pt.map(0xffff_8880_0000_1000n, 0x3000n);
  pt.map(0xffff_ffff_8000_0000n, 0x20_0000n, 21n);
  t.vcpus[0]!.sregs = longModeSregs(pt.root);
  assert.equal(await vm.translateGva(0, 0xffff_8880_0000_1234n), 0x3234n);
  assert.equal(await vm.translateGva(0, 0xffff_ffff_8000_5678n), 0x20_5678n);
  assert.equal(await vm.translateGva(0, 0xffff_8880_0000_2000n), null, 'unmapped');
  const pt5 = new PageTableBuilder(t.ram, '5-level', 0xa_0000n);
  pt5.map(0xff00_0000_0000_0000n, 0x4000n);
  t.vcpus[1]!.sregs = longModeSregs(pt5.root, true);
  assert.equal(await vm.translateGva(1, 0xff00_0000_0000_0abcn), 0x4abcn);

  await vm.controlEvents(0, 'BREAKPOINT', true);
  assert.ok(t.breakpointIntercepts.has(0));
  await vm.controlEvents(0, 'BREAKPOINT', false);
  assert.ok(!t.breakpointIntercepts.has(0));
  await assert.rejects(vm.controlEvents(0, 'CREATE_VCPU', true), kvmiError('EINVAL'), 'a VM event');
  await assert.rejects(vm.controlEvents(0, 'PAUSE_VCPU', true), kvmiError('EINVAL'), 'always on');
  await vm.controlVmEvents('CREATE_VCPU', true);
  await assert.rejects(vm.controlVmEvents('BREAKPOINT', true), kvmiError('EINVAL'), 'a vCPU event');

  await vm.controlMsr(0, 0xc000_0082, true);
  await vm.controlMsr(1, 0xc000_0082, true);
  assert.ok(t.msrIntercepts.has(0xc000_0082));
  await vm.controlMsr(0, 0xc000_0082, false);
  assert.ok(t.msrIntercepts.has(0xc000_0082), 'vCPU 1 still wants it');
  await vm.controlMsr(1, 0xc000_0082, false);
  assert.ok(!t.msrIntercepts.has(0xc000_0082));
  await assert.rejects(vm.controlMsr(0, 0x4000_0000, true), kvmiError('EINVAL'), 'outside the ranges');
  await assert.rejects(vm.controlMsr(0, 0x830, true), kvmiError('EOPNOTSUPP'), 'x2APIC');

  await vm.setPageAccess([{ gpa: 0x5000, access: RX }, { gpa: 0x6123, access: RX }]);
  assert.deepEqual([...t.writeProtected].sort(), [0x5000n, 0x6000n]);
  assert.deepEqual(await vm.getPageAccess([0x5000, 0x6fff, 0x7000]), [RX, RX, RWX]);
  await vm.setPageAccess([{ gpa: 0x6000, access: RWX }]);
  assert.deepEqual([...t.writeProtected], [0x5000n]);
  await assert.rejects(vm.setPageAccess([{ gpa: 0x7000, access: KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W }]), kvmiError('EOPNOTSUPP'), 'no execute protection');
  await assert.rejects(vm.setPageAccess([{ gpa: 0x7000, access: KVMI_PAGE_ACCESS_W }]), kvmiError('EINVAL'), 'write without read');
  await assert.rejects(vm.setPageAccess([{ gpa: 0x7000, access: 8 | RWX }]), kvmiError('EINVAL'));
  await assert.rejects(vm.setPageAccess([{ gpa: 0x7000, access: RX }], 1), kvmiError('EOPNOTSUPP'), 'no EPT views');
  await assert.rejects(vm.setPageAccess([{ gpa: 0x7000, access: RX }, { gpa: 0x8000_0000, access: RX }]), kvmiError('EINVAL'));
  assert.ok(!t.writeProtected.has(0x7000n), 'a refused batch changes nothing');

  await vm.controlSingleStep(1, true);
  assert.ok(t.singleStepping.has(1));
  await vm.controlSingleStep(1, false);
  assert.ok(!t.singleStepping.has(1));

  await vm.pauseVcpu(1);
  const next = eventsOf(vm);
  const ev = await next();
  assert.equal(ev.event, 'PAUSE_VCPU');
  assert.equal(ev.vcpu, 1);
  assert.ok(t.vcpus[1]!.held);
  await ev.reply('continue');
  await until(() => !t.vcpus[1]!.held, 'vCPU 1 resumed after the PAUSE_VCPU reply');
});

test('pausing every vCPU: one batch, one reply, one PAUSE_VCPU event each, resumed by the replies', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  const next = eventsOf(vm);
  await within(vm.pauseAllVcpus());
  // Any stray reply would have broken the client (a reply with an unknown seq): it still works.
  assert.equal((await vm.getGuestInfo()).vcpuCount, 2);
  const events = [await next(), await next()];
  assert.deepEqual(events.map((e) => `${e.event} ${e.vcpu}`).sort(), ['PAUSE_VCPU 0', 'PAUSE_VCPU 1']);
  assert.ok(r.target.vcpus.every((v) => v.held));
  // While paused, registers can be changed (an event is pending), and take effect.
  const regs = { ...events[0]!.regs, rax: 0x1234n };
  await vm.setRegisters(events[0]!.vcpu, regs);
  assert.equal(r.target.vcpus[events[0]!.vcpu]!.regs.rax, 0x1234n);
  for (const e of events) await e.reply('continue');
  await until(() => r.target.vcpus.every((v) => !v.held), 'every vCPU resumed');
});

test('a breakpoint event carries the state and the gpa; CONTINUE and RETRY reach the vCPU', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  const pt = new PageTableBuilder(t.ram, '4-level', 0x8_0000n);
  pt.map(0xffff_ffff_8100_0000n, 0x2000n);
  t.vcpus[0]!.sregs = longModeSregs(pt.root);
  t.vcpus[0]!.regs.rip = 0xffff_ffff_8100_0010n;
  await vm.controlEvents(0, 'BREAKPOINT', true);
  const next = eventsOf(vm);

  const hit = t.breakpoint(0, 0xffff_ffff_8100_0010n);
  const ev = await next();
  assert.equal(ev.event, 'BREAKPOINT');
  if (ev.event !== 'BREAKPOINT') return;
  assert.equal(ev.vcpu, 0);
  assert.equal(ev.data.gpa, 0x2010n, 'the session walked the page tables');
  assert.equal(ev.data.insnLength, 1);
  assert.equal(ev.regs.rip, 0xffff_ffff_8100_0010n);
  assert.equal(ev.mode, 8);
  assert.equal(ev.msrs.lstar, 0xffff_ffff_8100_0000n);
  assert.equal(ev.msrs.efer, 0x500n);
  await ev.reply('continue');
  assert.deepEqual(await within(hit), { action: 'continue' });

  const again = t.breakpoint(0, 0x1000n, 0x7777n);
  const ev2 = await next();
  assert.equal(ev2.event === 'BREAKPOINT' && ev2.data.gpa, 0x7777n, 'the target\'s own gpa wins');
  await vm.setRegisters(0, { ...ev2.regs, rip: ev2.regs.rip + 1n });
  await ev2.reply('retry');
  assert.deepEqual(await within(again), { action: 'retry' });
  assert.equal(t.vcpus[0]!.regs.rip, 0xffff_ffff_8100_0011n);
  await assert.rejects(ev2.reply('continue'), /already answered/);
});

test('a vCPU\'s own events: sent only when enabled, answered without the session, SET_REGISTERS allowed, CRASH through the session', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  const next = eventsOf(vm);
  assert.equal(t.sendOwnEvent(0, { event: 'BREAKPOINT', gpa: 0x1000n, insnLength: 1 }), undefined, 'not enabled: not sent');
  await vm.controlEvents(0, 'BREAKPOINT', true);
  await vm.controlEvents(1, 'SINGLESTEP', true);
  assert.equal(t.sendOwnEvent(1, { event: 'SINGLESTEP', failed: false }), undefined, 'single steps also need stepping on');
  await vm.controlSingleStep(1, true);

  const hit = t.sendOwnEvent(0, { event: 'BREAKPOINT', gpa: 0x1234n, insnLength: 1 });
  assert.ok(hit !== undefined);
  const ev = await next();
  assert.ok(ev.event === 'BREAKPOINT');
  assert.equal(ev.data.gpa, 0x1234n);
  assert.equal(ev.regs.rip, t.vcpus[0]!.regs.rip);
  assert.equal(ev.msrs.lstar, 0xffff_ffff_8100_0000n);
  await vm.setRegisters(0, { ...ev.regs, rip: 0x4242n }); // the event is pending: allowed
  assert.equal(t.vcpus[0]!.regs.rip, 0x4242n);
  await ev.reply('retry');
  assert.equal(await within(hit), 'retry');
  assert.equal(t.registerReads, 0, 'the session read nothing');
  await assert.rejects(vm.setRegisters(0, ev.regs), kvmiError('EOPNOTSUPP'), 'answered: no event pending');

  const step = t.sendOwnEvent(1, { event: 'SINGLESTEP', failed: false });
  assert.ok(step !== undefined);
  const ev2 = await next();
  assert.ok(ev2.event === 'SINGLESTEP' && ev2.vcpu === 1);
  await ev2.reply('crash');
  assert.equal(await within(step), 'crash');
  assert.deepEqual(t.crashed, [1], 'CRASH stops the guest');
});

test('two vCPUs with their own events out at once: each answer reaches its vCPU, in any order', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  const next = eventsOf(vm);
  await vm.controlEvents(0, 'BREAKPOINT', true);
  await vm.controlEvents(1, 'BREAKPOINT', true);
  const a = r.target.sendOwnEvent(0, { event: 'BREAKPOINT', gpa: 0x1000n, insnLength: 1 });
  const b = r.target.sendOwnEvent(1, { event: 'BREAKPOINT', gpa: 0x2000n, insnLength: 1 });
  assert.ok(a !== undefined && b !== undefined);
  const e1 = await next();
  const e2 = await next();
  const byVcpu = new Map([[e1.vcpu, e1], [e2.vcpu, e2]]);
  const second = byVcpu.get(1);
  assert.ok(second?.event === 'BREAKPOINT' && second.data.gpa === 0x2000n);
  await byVcpu.get(1)!.reply('retry');
  assert.equal(await within(b), 'retry');
  await byVcpu.get(0)!.reply('continue');
  assert.equal(await within(a), 'continue');
});

test('a vCPU\'s own event is released with CONTINUE when the tool leaves', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  const next = eventsOf(vm);
  await vm.controlEvents(0, 'BREAKPOINT', true);
  const hit = r.target.sendOwnEvent(0, { event: 'BREAKPOINT', gpa: 0x1000n, insnLength: 1 });
  assert.ok(hit !== undefined);
  assert.equal((await next()).event, 'BREAKPOINT');
  await vm.close();
  assert.equal(await within(hit), 'continue');
  assert.equal(r.target.breakpointIntercepts.size, 0, 'hooks removed');
});

test('an event that carries its state is sent as it is, with no register read; one without is read first', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  await vm.controlEvents(1, 'SINGLESTEP', true);
  await vm.controlSingleStep(1, true);
  const next = eventsOf(vm);
  t.vcpus[1]!.regs.rip = 0x4242n;
  for (const carry of [true, false]) {
    t.eventsCarryState = carry;
    const reads = t.registerReads;
    const step = t.singleStep(1);
    const ev = await next();
    assert.equal(ev.regs.rip, 0x4242n, `carried: ${carry}`);
    assert.equal(ev.msrs.efer, t.vcpus[1]!.msrs.get(0xc000_0080) ?? 0n);
    assert.equal(t.registerReads - reads, carry ? 0 : 1, `carried: ${carry}`);
    await ev.reply('continue');
    assert.deepEqual(await within(step), { action: 'continue' });
  }
});

test('MSR events: CONTINUE applies the value of the reply', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  await vm.controlEvents(1, 'MSR', true);
  await vm.controlMsr(1, 0xc000_0082, true);
  const next = eventsOf(vm);
  const write = t.msrWrite(1, 0xc000_0082, 0xbad0_0000n);
  const ev = await next();
  assert.ok(ev.event === 'MSR');
  if (ev.event !== 'MSR') return;
  assert.deepEqual(ev.data, { msr: 0xc000_0082, oldValue: 0xffff_ffff_8100_0000n, newValue: 0xbad0_0000n });
  await ev.reply('continue', { newValue: 0xffff_ffff_8100_0000n });
  assert.deepEqual(await within(write), { action: 'continue', newValue: 0xffff_ffff_8100_0000n });
  // Without a value the guest's own write goes through.
  const write2 = t.msrWrite(1, 0xc000_0082, 0x42n);
  await (await next()).reply('continue');
  assert.deepEqual(await within(write2), { action: 'continue', newValue: 0x42n });
  // vCPU 0 did not ask: its writes continue without the tool.
  assert.deepEqual(await within(t.msrWrite(0, 0xc000_0082, 7n)), { action: 'continue', newValue: 7n });
});

test('page write events, single-step and vCPU creation events', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  const next = eventsOf(vm);
  await vm.setPageAccess([{ gpa: 0x9000, access: RX }]);
  await vm.controlEvents(0, 'PF', true);
  const write = t.pageWrite(0, 0x9008n);
  const pf = await next();
  assert.ok(pf.event === 'PF');
  if (pf.event !== 'PF') return;
  assert.deepEqual(pf.data, { gva: 0xffff_ffff_ffff_ffffn, gpa: 0x9008n, access: KVMI_PAGE_ACCESS_W, view: 0 });
  await pf.reply('retry');
  assert.deepEqual(await within(write), { action: 'retry' });
  assert.deepEqual(await within(t.pageWrite(0, 0xa000n)), { action: 'continue' }, 'an unprotected page');
  assert.deepEqual(await within(t.pageWrite(1, 0x9000n)), { action: 'continue' }, 'vCPU 1 did not enable PF');

  await vm.controlEvents(1, 'SINGLESTEP', true);
  await vm.controlSingleStep(1, true);
  const step = t.singleStep(1);
  const ss = await next();
  assert.equal(ss.event, 'SINGLESTEP');
  assert.deepEqual(ss.data, { failed: false });
  await ss.reply('continue');
  assert.deepEqual(await within(step), { action: 'continue' });

  await vm.controlVmEvents('CREATE_VCPU', true);
  const created = t.createVcpu(1);
  const cv = await next();
  assert.equal(cv.event, 'CREATE_VCPU');
  await cv.reply('crash');
  assert.deepEqual(await within(created), { action: 'crash' });
});

test('SET_REGISTERS is refused without a pending event', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  const { regs } = await vm.getRegisters(0);
  await assert.rejects(vm.setRegisters(0, { ...regs, rax: 1n }), kvmiError('EOPNOTSUPP'));
  assert.equal(r.target.vcpus[0]!.regs.rax, 0n);
  assert.ok(!r.target.calls.some((c) => c.startsWith('setRegisters')));
});

test('unsupported commands answer EOPNOTSUPP, and CHECK_COMMAND / CHECK_EVENT agree', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  await assert.rejects(vm.controlCr(0, 4, true), kvmiError('EOPNOTSUPP'));
  await assert.rejects(vm.checkCommand('CONTROL_CR'), kvmiError('EOPNOTSUPP'));
  for (const c of ['CONTROL_VE', 'GET_MAP_TOKEN', 'CONTROL_SPP', 'SWITCH_EPT_VIEW', 'GET_EPT_VIEW', 'CREATE_EPT_VIEW', 'VCPU_CHANGE_GFN'] as const) {
    await assert.rejects(vm.checkCommand(c), kvmiError('EOPNOTSUPP'), c);
    await assert.rejects(vm.request(dialect('v7').commandId(c) ?? -1), kvmiError('EOPNOTSUPP'), c);
  }
  for (const e of ['CR', 'XSETBV', 'DESCRIPTOR', 'CPUID', 'HYPERCALL', 'TRAP'] as const) {
    await assert.rejects(vm.checkEvent(e), kvmiError('EOPNOTSUPP'), e);
    await assert.rejects(vm.controlEvents(0, e, true), kvmiError('EOPNOTSUPP'), e);
    await vm.controlEvents(0, e, false); // turning off what is off is true
  }
  for (const e of ['BREAKPOINT', 'MSR', 'PF', 'SINGLESTEP', 'PAUSE_VCPU', 'CREATE_VCPU', 'UNHOOK'] as const) await vm.checkEvent(e);
  await assert.rejects(vm.request(200), kvmiError('ENOSYS'), 'an unknown message id');
  assert.equal((await vm.getGuestInfo()).vcpuCount, 2, 'the connection survives all of it');
});

test('the tool disconnecting mid-event releases the vCPU and removes every hook', async () => {
  await using r = await rig();
  const t = r.target;
  const vm = await within(r.listener.accept());
  await vm.controlEvents(0, 'BREAKPOINT', true);
  await vm.controlEvents(1, 'MSR', true);
  await vm.controlMsr(1, 0x174, true);
  await vm.controlSingleStep(1, true);
  await vm.setPageAccess([{ gpa: 0x4000, access: RX }]);
  await vm.pauseVcpu(1, { wait: true });
  const next = eventsOf(vm);
  assert.equal((await next()).event, 'PAUSE_VCPU');
  const hit = t.breakpoint(0, 0x1000n, 0x1000n);
  assert.equal((await next()).event, 'BREAKPOINT');
  await vm.close();
  assert.deepEqual(await within(hit), { action: 'continue' }, 'the vCPU goes on as if CONTINUE');
  await until(() => t.sink === null, 'the session let go of the target');
  assert.equal(t.breakpointIntercepts.size, 0);
  assert.equal(t.singleStepping.size, 0);
  assert.equal(t.msrIntercepts.size, 0);
  assert.equal(t.writeProtected.size, 0);
  assert.ok(t.vcpus.every((v) => !v.held), 'the paused vCPU runs again');
  assert.deepEqual(await within(t.breakpoint(0, 0n, 0n)), { action: 'continue' }, 'later events need no tool');
  await within(r.link.stopped, 3000, 'no reconnect: the link stops');
});

test('with reconnect, a lost tool is retried', async () => {
  await using r = await rig({ reconnect: 0.05 });
  const first = await within(r.listener.accept());
  await first.close();
  const second = await within(r.listener.accept(), 3000, 'the second connection');
  assert.equal(second.uuid, UUID);
  assert.equal((await second.getGuestInfo()).vcpuCount, 2);
  assert.ok(r.logs.some((l) => /session ends: the tool closed the connection/.test(l)), r.logs.join('\n'));
});

test('unhooking: the tool gets UNHOOK, lets go, and the link stops', async () => {
  await using r = await rig({ reconnect: 0.05 });
  const vm = await within(r.listener.accept());
  await vm.controlVmEvents('UNHOOK', true);
  await vm.controlEvents(0, 'BREAKPOINT', true);
  const next = eventsOf(vm);
  const closing = r.link.close();
  const ev = await next();
  assert.equal(ev.event, 'UNHOOK');
  await ev.reply('continue'); // UNHOOK takes no reply: nothing is sent
  await vm.close();
  await within(closing, 3000, 'close');
  assert.equal(r.link.state, 'stopped');
  assert.equal(r.target.breakpointIntercepts.size, 0);
});

test('the client reports a closed VM to pending commands and ends the event stream', async () => {
  await using r = await rig();
  const vm = await within(r.listener.accept());
  const events = vm.events();
  const ended = events.next();
  await r.link.close();
  assert.deepEqual(await within(ended), { done: true, value: undefined });
  await assert.rejects(vm.getGuestInfo(), (e: unknown) => e instanceof IntrospectionError && e.code === 'ERR_KVMI_CLOSED');
});

test('the RFC v5 dialect: the same session under the seed\'s numbering', async () => {
  await using r = await rig({ dialect: 'rfc-v5' });
  const vm = await within(r.listener.accept());
  assert.equal(vm.dialect, 'rfc-v5');
  assert.equal((await vm.getGuestInfo()).vcpuCount, 2);
  await vm.controlEvents(0, 'BREAKPOINT', true);
  const next = eventsOf(vm);
  const hit = r.target.breakpoint(0, 0x1000n, 0x1000n);
  const ev = await next();
  assert.equal(ev.event, 'BREAKPOINT');
  await ev.reply('continue');
  assert.deepEqual(await within(hit), { action: 'continue' });
  await assert.rejects(vm.pauseVcpu(0), kvmiError('ENOSYS'), 'v5 has no PAUSE_VCPU');
  await assert.rejects(vm.request(27), kvmiError('EOPNOTSUPP'), 'PAUSE_ALL_VCPUS');
});

test('the breakpoint example of docs/introspection.md', async () => {
  await using r = await rig();
  const out: string[] = [];
  const print = (line: string): number => out.push(line);
  const hex = (x: bigint): string => `0x${x.toString(16)}`;
  r.target.ram[0x1000] = 0x90;

  // --- the example, with print() for console.log ---
  const vm = await r.listener.accept();
  print(`${vm.name} (${vm.uuid}) connected`);
  const gpa = 0x1000n;
  const [original] = await vm.readPhysical(gpa, 1);
  await vm.writePhysical(gpa, Uint8Array.of(0xcc));
  const { vcpuCount } = await vm.getGuestInfo();
  for (let i = 0; i < vcpuCount; i++) await vm.controlEvents(i, 'BREAKPOINT', true);
  const guest = r.target.breakpoint(1, 0x1000n, 0x1000n); // the guest runs into it
  for await (const ev of vm.events()) {
    if (ev.event !== 'BREAKPOINT') {
      await ev.reply('continue');
      continue;
    }
    const { rip, rsp, rax } = ev.regs;
    print(`vCPU ${ev.vcpu} hit INT3 at gpa ${hex(ev.data.gpa)}: rip=${hex(rip)} rsp=${hex(rsp)} rax=${hex(rax)} cr3=${hex(ev.sregs.cr3)}`);
    if (ev.data.gpa === gpa) {
      await vm.writePhysical(gpa, Uint8Array.of(original!)); // our INT3: put the byte back
      await ev.reply('retry'); // and run the instruction again
      break;
    }
    await ev.reply('continue'); // the guest's own INT3: it gets its #BP
  }
  // --- end of the example ---

  assert.deepEqual(await within(guest), { action: 'retry' });
  assert.equal(r.target.ram[0x1000], 0x90);
  assert.deepEqual(out, [
    `guest-a (${UUID}) connected`,
    'vCPU 1 hit INT3 at gpa 0x1000: rip=0x1001 rsp=0x0 rax=0x1 cr3=0x8000',
  ]);
});
