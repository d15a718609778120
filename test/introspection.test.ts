// KVMI served from a real machine on KVM: a tool (the client) talks to MachineTarget.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMachine, type Machine } from '../src/index.js';
import { KvmiError, listen } from '../src/introspection/client.js';
import { connectIntrospection } from '../src/introspection/connect.js';
import { MachineTarget } from '../src/introspection/machine-target.js';
import { guest } from '../src/testing/kvm-guests.js';

async function waitForSerial(m: Machine, text: string, ms = 10_000): Promise<void> {
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(out)}`)), ms);
    const onSerial = (b: Uint8Array): void => {
      out += Buffer.from(b).toString('latin1');
      if (!out.includes(text)) return;
      clearTimeout(timer);
      m.events.off('serial', onSerial);
      resolve();
    };
    m.events.on('serial', onSerial);
  });
}

function pattern(seed: number, size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff);
}

test('a tool inspects a running machine over KVMI: memory, registers, pauses', async () => {
  const m = await createMachine({ kernel: guest('hlt'), memorySize: 64 << 20, cpus: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const listener = await listen(path);
  const uuid = '12345678-9abc-def0-1234-56789abcdef0';
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    const halted = waitForSerial(m, 'hlt: halting\n');
    await m.start();
    await halted;

    const readGpa = 0x300_0000;
    const writeGpa = 0x300_1000;
    const mine = pattern(7, 256);
    m.memory.write(readGpa, mine);

    const target = new MachineTarget(m);
    link = connectIntrospection(
      { id: 'i', path, handshakeTimeoutMs: 5000, unhookTimeoutMs: 5000, dialect: 'v7' },
      target, { uuid, name: 'inspected', startTime: 1_700_000_000_000 },
    );
    const vm = await listener.accept();
    assert.equal(vm.uuid, uuid);
    assert.equal(vm.name, 'inspected');
    assert.equal(vm.startTime, 1_700_000_000_000n);

    const { version } = await vm.getVersion();
    assert.ok(version >= 1, `version ${version}`);
    assert.equal((await vm.getGuestInfo()).vcpuCount, 2);
    assert.equal(target.eventSink !== null, true, 'the session installed its event sink');

    // Memory, both ways, through the VMM's mapping.
    assert.deepEqual(await vm.readPhysical(readGpa, mine.length), mine);
    const theirs = pattern(99, 300);
    await vm.writePhysical(writeGpa, theirs);
    assert.deepEqual(m.memory.read(writeGpa, theirs.length), theirs);
    assert.equal(await vm.getMaxGfn(), 64n << 8n, '64 MiB of RAM is 16384 frames');
    const ram = await vm.queryPhysical(readGpa);
    assert.equal(ram.type, 'ram');
    assert.ok(ram.start <= BigInt(readGpa) && ram.start + ram.size > BigInt(readGpa));
    await assert.rejects(vm.readPhysical(0x1_0000_0000_0000n, 16), (e: unknown) => e instanceof KvmiError);

    // Registers of a running machine: the vCPU is stopped for the read and runs on after.
    const live = await vm.getRegisters(0, [0xc000_0080]);
    assert.equal(m.status, 'running');
    assert.equal(live.sregs.cr0 & 1n, 1n, 'CR0.PE: the PVH guest runs in protected mode');
    assert.equal(live.msrs.length, 1);
    assert.equal(live.msrs[0]!.index, 0xc000_0080);
    await assert.rejects(vm.getRegisters(0, [0xdead_beef]), (e: unknown) => e instanceof KvmiError && e.code === 'EINVAL');

    // A tool-held pause of vCPU 0, then its registers: the guest is halted in its own code.
    await vm.pauseVcpu(0);
    const { regs, sregs } = await vm.getRegisters(0);
    assert.equal(sregs.cr0 & 1n, 1n, 'CR0.PE');
    const paging = (sregs.cr0 & 0x8000_0000n) !== 0n;
    const ripGpa = paging ? await vm.translateGva(0, regs.rip) : regs.rip;
    assert.ok(ripGpa !== null, `rip 0x${regs.rip.toString(16)} is mapped`);
    assert.ok(m.memory.contains(Number(ripGpa), 1), `rip 0x${regs.rip.toString(16)} is in RAM`);
    // The guest ends in `cli; hlt` forever: RIP is just past a HLT (0xf4) or on one.
    const around = await vm.readPhysical(ripGpa - 1n, 2);
    assert.ok(around[0] === 0xf4 || around[1] === 0xf4, `code around rip: ${Buffer.from(around).toString('hex')}`);
    if (!paging) assert.equal(await vm.translateGva(0, 0x1234_5678n), 0x1234_5678n, 'no paging: identity');

    // CPUID and the extended state, from the vCPU's own tables.
    const leaf0 = await vm.getCpuid(0, 0);
    assert.ok(leaf0.eax >= 1, 'CPUID.0 reports basic leaves');
    const xcr0 = await vm.getXcr(0, 0);
    assert.equal(xcr0 & 1n, 1n, 'XCR0.x87 is always set');
    const xsave = await vm.getXsave(0);
    assert.ok(xsave.length >= 512);

    // Every vCPU, libkvmi's way; each resumes when its PAUSE_VCPU event is answered.
    await vm.pauseAllVcpus();
    const events = vm.events();
    const seen = new Set<number>();
    // vCPU 0 owes two PAUSE_VCPU events (pauseVcpu above, then pauseAllVcpus), vCPU 1 one.
    for (let i = 0; i < 3; i++) {
      const { value: ev } = await events.next();
      assert.ok(ev !== undefined);
      assert.equal(ev.event, 'PAUSE_VCPU');
      seen.add(ev.vcpu);
      await ev.reply('continue');
    }
    assert.deepEqual([...seen].sort(), [0, 1]);

    // What nodevisor does not do is said, not pretended.
    await assert.rejects(vm.checkCommand('CONTROL_CR'), (e: unknown) => e instanceof KvmiError && e.code === 'EOPNOTSUPP');
    // What this machine cannot do yet is refused as honestly as what stock KVM cannot do.
    for (const c of ['SET_REGISTERS', 'INJECT_EXCEPTION', 'VCPU_CONTROL_SINGLESTEP', 'CONTROL_MSR', 'SET_PAGE_ACCESS'] as const) {
      await assert.rejects(vm.checkCommand(c), (e: unknown) => e instanceof KvmiError && e.code === 'EOPNOTSUPP', c);
    }
    for (const ev of ['BREAKPOINT', 'MSR', 'PF', 'SINGLESTEP'] as const) {
      await assert.rejects(vm.checkEvent(ev), (e: unknown) => e instanceof KvmiError && e.code === 'EOPNOTSUPP', ev);
    }
    await vm.checkCommand('READ_PHYSICAL');
    await vm.checkEvent('PAUSE_VCPU');
    await assert.rejects(vm.setRegisters(0, regs), (e: unknown) => e instanceof KvmiError);
    // Not implemented on a real machine yet (MACHINE_TARGET_UNSUPPORTED_*): refused when used.
    const refused = (e: unknown): boolean => e instanceof KvmiError && e.code === 'EOPNOTSUPP';
    await assert.rejects(vm.injectException(0, { vector: 3 }), refused);
    await assert.rejects(vm.controlEvents(0, 'BREAKPOINT', true), refused);
    await assert.rejects(vm.controlSingleStep(0, true), refused);
    await assert.rejects(vm.controlMsr(0, 0x174, true), refused);
    await assert.rejects(vm.setPageAccess([{ gpa: readGpa, access: 0b101 }]), refused);
    assert.deepEqual(await vm.readPhysical(readGpa, mine.length), mine, 'the session still serves');

    await vm.close();
    await link.close();
    link = undefined;
    assert.equal(m.status, 'running');
    // The guest still runs its halt loop and answers a machine-level pause.
    await m.pause();
    assert.equal(m.status, 'paused');
  } finally {
    await link?.close();
    await listener.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PAUSE_VCPU holds a spinning vCPU until its event is answered; register reads let it run on', async () => {
  const m = await createMachine({ kernel: guest('spin'), memorySize: 64 << 20, cpus: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const listener = await listen(path);
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    const spinning = waitForSerial(m, 'spin: spinning\n');
    await m.start();
    await spinning;
    link = connectIntrospection(
      { id: 'i', path, handshakeTimeoutMs: 5000, unhookTimeoutMs: 5000, dialect: 'v7' },
      new MachineTarget(m), { startTime: Date.now() },
    );
    const vm = await listener.accept();
    const events = vm.events();

    // Held: turn the guest's `jmp $` into a loop that counts in RAM.
    await vm.pauseVcpu(0);
    const { regs, sregs } = await vm.getRegisters(0);
    assert.equal(sregs.cr0 & 0x8000_0000n, 0n, 'the PVH guest runs without paging');
    assert.deepEqual(await vm.readPhysical(regs.rip, 2), Uint8Array.of(0xeb, 0xfe), 'jmp $');
    const counter = 0x300_0000;
    m.memory.writeU32(counter, 0);
    const loop = new Uint8Array(8);
    loop.set([0xff, 0x05]); // inc dword [disp32]
    new DataView(loop.buffer).setUint32(2, counter, true);
    loop.set([0xeb, 0xf8], 6); // jmp back to the inc
    await vm.writePhysical(regs.rip, loop);
    const count = (): number => m.memory.readU32(counter);
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

    await settle();
    assert.equal(count(), 0, 'the held vCPU does not run');
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'PAUSE_VCPU' && ev.vcpu === 0);
    assert.equal(ev.regs.rip, regs.rip, 'the event carries the held vCPU state');
    await ev.reply('continue');
    await settle();
    const running = count();
    assert.ok(running > 0, 'answering the event releases the vCPU');

    // A register read of a running vCPU stops it only for the read.
    const live = await vm.getRegisters(0);
    assert.ok(live.regs.rip >= regs.rip && live.regs.rip < regs.rip + 8n, 'inside the loop');
    const before = count();
    await settle();
    assert.ok(count() > before, 'still counting after a register read');

    // The machine's own pause stops it too, and `cont` resumes it.
    await m.pause();
    const paused = count();
    await settle();
    assert.equal(count(), paused);
    assert.equal((await vm.getRegisters(0)).regs.rip >= regs.rip, true, 'reads work on a paused machine');
    await m.resume();
    await settle();
    assert.ok(count() > paused, 'counting again after cont');

    await vm.close();
    await link.close();
    link = undefined;
  } finally {
    await link?.close();
    await listener.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
});
