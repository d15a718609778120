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
import type { TargetEvent } from '../src/introspection/target.js';
import { guest } from '../src/testing/kvm-guests.js';
import { waitForSerial } from '../src/testing/wait-serial.js';


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
    // What stock KVM allows, this machine does.
    for (const c of ['SET_REGISTERS', 'INJECT_EXCEPTION', 'VCPU_CONTROL_SINGLESTEP', 'CONTROL_MSR', 'SET_PAGE_ACCESS'] as const) await vm.checkCommand(c);
    for (const ev of ['BREAKPOINT', 'MSR', 'SINGLESTEP', 'PF'] as const) await vm.checkEvent(ev);
    await vm.checkCommand('READ_PHYSICAL');
    await vm.checkEvent('PAUSE_VCPU');
    // KVMI: SET_REGISTERS only while the vCPU waits for an event reply.
    await assert.rejects(vm.setRegisters(0, regs), (e: unknown) => e instanceof KvmiError);
    const refused = (e: unknown): boolean => e instanceof KvmiError && e.code === 'EOPNOTSUPP';
    await assert.rejects(vm.setPageAccess([{ gpa: readGpa, access: 0b011 }]), refused, 'execution cannot be taken away');
    await assert.rejects(vm.controlMsr(0, 0x830, true), refused, 'x2APIC MSRs cannot be filtered');
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
    // The line is out before the guest's print routine has returned to its `jmp $`: wait until
    // vCPU 0 sits on it (under load that can take a while).
    for (let i = 0; ; i++) {
      await m.pause();
      const { regs: r } = await m.vcpuState(0);
      const atJmp = m.memory.readU8(Number(r.rip)) === 0xeb && m.memory.readU8(Number(r.rip) + 1) === 0xfe;
      await m.resume();
      if (atJmp) break;
      assert.ok(i < 100, 'the spin guest never reached its jmp $');
      await new Promise((res) => setTimeout(res, 20));
    }
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
    const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));
    /** Waits (up to 5 s) for the guest's counter to pass `from`: a loaded host may be slow to run it. */
    const countsPast = async (from: number): Promise<boolean> => {
      for (let i = 0; i < 500 && count() <= from; i++) await new Promise((r) => setTimeout(r, 10));
      return count() > from;
    };

    await settle();
    assert.equal(count(), 0, 'the held vCPU does not run');
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'PAUSE_VCPU' && ev.vcpu === 0);
    assert.equal(ev.regs.rip, regs.rip, 'the event carries the held vCPU state');
    await ev.reply('continue');
    assert.ok(await countsPast(0), 'answering the event releases the vCPU');

    // A register read of a running vCPU stops it only for the read.
    const live = await vm.getRegisters(0);
    assert.ok(live.regs.rip >= regs.rip && live.regs.rip < regs.rip + 8n, 'inside the loop');
    assert.ok(await countsPast(count()), 'still counting after a register read');

    // The machine's own pause stops it too, and `cont` resumes it.
    await m.pause();
    const paused = count();
    await settle();
    assert.equal(count(), paused);
    assert.equal((await vm.getRegisters(0)).regs.rip >= regs.rip, true, 'reads work on a paused machine');
    await m.resume();
    assert.ok(await countsPast(paused), 'counting again after cont');

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

/** Everything a machine printed on COM1, and waiting for what it prints next. */
class SerialLog {
  text = '';
  constructor(m: Machine) {
    m.events.on('serial', (b: Uint8Array) => { this.text += Buffer.from(b).toString('latin1'); });
  }

  /** Waits until `re` matches the output after `from`; returns the match. */
  async waitFor(re: RegExp, from = 0, ms = 10_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m !== null) return m;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(re)} after ${from}; got ${JSON.stringify(this.text.slice(from, from + 400))}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  count(re: RegExp, from = 0): number {
    return [...this.text.slice(from).matchAll(new RegExp(re.source, 'g'))].length;
  }
}

const hex8 = (n: bigint): string => n.toString(16).padStart(8, '0');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A machine running `name`, a tool connected to it over KVMI, and their teardown. */
async function inspected(
  name: string,
  run: (m: Machine, vm: Awaited<ReturnType<Awaited<ReturnType<typeof listen>>['accept']>>, log: SerialLog, target: MachineTarget) => Promise<void>,
): Promise<void> {
  const m = await createMachine({ kernel: guest(name), memorySize: 64 << 20, cpus: 1 });
  const log = new SerialLog(m);
  const dir = mkdtempSync(join(tmpdir(), 'nodevisor-kvmi-'));
  const path = join(dir, 'kvmi.sock');
  const listener = await listen(path);
  let link: ReturnType<typeof connectIntrospection> | undefined;
  try {
    await m.start();
    const target = new MachineTarget(m);
    link = connectIntrospection(
      { id: 'i', path, handshakeTimeoutMs: 5000, unhookTimeoutMs: 5000, dialect: 'v7' },
      target, { startTime: Date.now() },
    );
    const vm = await listener.accept();
    await run(m, vm, log, target);
    await link.close();
    link = undefined;
  } finally {
    await link?.close();
    await listener.close();
    await m.quit();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('breakpoints: the tool\'s INT3 arrives with its address; CONTINUE gives the guest its #BP, RETRY runs on', async () => {
  await inspected('breakpoint', async (m, vm, log) => {
    const target = BigInt(`0x${(await log.waitFor(/breakpoint: target ([0-9a-f]{8})\n/))[1]!}`);
    await log.waitFor(/breakpoint: call 1\n/);
    assert.deepEqual(await vm.readPhysical(target, 1), Uint8Array.of(0x90), 'the NOP the tool replaces');
    const events = vm.events();

    await vm.controlEvents(0, 'BREAKPOINT', true);
    await vm.writePhysical(target, Uint8Array.of(0xcc));
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'BREAKPOINT', `got ${ev?.event}`);
    assert.equal(ev.vcpu, 0);
    assert.equal(ev.regs.rip, target, 'RIP on the INT3');
    assert.equal(ev.data.gpa, target, 'paging is off: gpa = gva');
    assert.equal(ev.data.insnLength, 1);
    // The vCPU waits for the reply, and serves register reads meanwhile.
    const waiting = log.text.length;
    await sleep(100);
    assert.equal(log.count(/call \d+\n/, waiting), 0, 'no call completes while the event waits');
    assert.equal((await vm.getRegisters(0)).regs.rip, target);
    assert.equal(m.status, 'running');

    // CONTINUE: the guest's own #BP handler runs, with the return address just past the INT3.
    const before = log.text.length;
    await ev.reply('continue');
    await log.waitFor(new RegExp(`breakpoint: #BP at ${hex8(target + 1n)}\n`), before);

    // The INT3 is still there: the next call stops again. SET_REGISTERS past it and RETRY: no #BP.
    const ev2 = (await events.next()).value;
    assert.ok(ev2 !== undefined && ev2.event === 'BREAKPOINT');
    assert.equal(ev2.regs.rip, target);
    const skipped = log.text.length;
    await vm.setRegisters(0, { ...ev2.regs, rip: target + 1n });
    assert.equal((await vm.getRegisters(0)).regs.rip, target + 1n, 'the new RIP is in place before the vCPU runs');
    await ev2.reply('retry');
    await log.waitFor(/breakpoint: call \d+\n/, skipped);
    assert.equal(log.count(/#BP/, skipped), 0, 'RETRY injects nothing');

    // Third stop: the tool takes its INT3 out and RETRYs; the original NOP runs.
    const ev3 = (await events.next()).value;
    assert.ok(ev3 !== undefined && ev3.event === 'BREAKPOINT');
    await vm.writePhysical(target, Uint8Array.of(0x90));
    const restored = log.text.length;
    await ev3.reply('retry');
    const n = Number((await log.waitFor(/breakpoint: call (\d+)\n/, restored))[1]);
    await log.waitFor(new RegExp(`breakpoint: call ${n + 3}\n`), restored);
    assert.equal(log.count(/#BP/, restored), 0);
    await vm.controlEvents(0, 'BREAKPOINT', false);
    assert.equal(m.status, 'running');
  });
});

test('breakpoint events go from the vCPU thread to the tool and back without the main thread; a pause waits its turn', async () => {
  await inspected('breakpoint', async (m, vm, log, target) => {
    const at = BigInt(`0x${(await log.waitFor(/breakpoint: target ([0-9a-f]{8})\n/))[1]!}`);
    await log.waitFor(/breakpoint: call 1\n/);
    const events = vm.events();
    await vm.controlEvents(0, 'BREAKPOINT', true);
    await vm.writePhysical(at, Uint8Array.of(0xcc));
    for (let i = 0; i < 3; i++) {
      const ev = (await events.next()).value;
      assert.ok(ev !== undefined && ev.event === 'BREAKPOINT' && ev.regs.rip === at, `event ${i}: ${ev?.event}`);
      await ev.reply('continue');
    }
    assert.equal(target.eventsThroughMainThread, 0, 'every breakpoint was sent by the vCPU thread itself');

    // A PAUSE_VCPU while the vCPU's own event is out: answered at once (the vCPU is stopped),
    // its event follows the breakpoint's reply, and the vCPU stays held until that is answered.
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'BREAKPOINT');
    await vm.pauseVcpu(0);
    const held = log.text.length;
    await ev.reply('continue');
    const pause = (await events.next()).value;
    assert.ok(pause !== undefined && pause.event === 'PAUSE_VCPU', `got ${pause?.event}`);
    await vm.writePhysical(at, Uint8Array.of(0x90));
    await sleep(100);
    assert.equal(log.count(/call \d+\n/, held), 0, 'held by the pause');
    await pause.reply('continue');
    await log.waitFor(/breakpoint: call \d+\n/, held);
    await vm.controlEvents(0, 'BREAKPOINT', false);
    assert.equal(m.status, 'running');
  });
});

test('MachineTarget: a vCPU event carries the registers and asked-for MSRs its thread read at the exit', async () => {
  const m = await createMachine({ kernel: guest('breakpoint'), memorySize: 64 << 20, cpus: 1 });
  const log = new SerialLog(m);
  try {
    await m.start();
    const at = BigInt(`0x${(await log.waitFor(/breakpoint: target ([0-9a-f]{8})\n/))[1]!}`);
    const target = new MachineTarget(m);
    const seen: TargetEvent[] = [];
    const EFER = 0xc000_0080;
    const SYSENTER_CS = 0x174;
    target.setEventSink((e) => seen.push(e), [EFER, SYSENTER_CS]);
    await target.setBreakpointIntercept(0, true);
    assert.ok(target.writePhysical(at, Uint8Array.of(0xcc)));
    for (let i = 0; i < 500 && seen.length === 0; i++) await sleep(10);
    const e = seen[0];
    assert.ok(e !== undefined && e.kind === 'breakpoint', 'a breakpoint event');
    assert.ok(e.state !== undefined, 'the state came with the event');
    assert.equal(e.state.regs.rip, at);
    assert.deepEqual(e.state.msrs.map((x) => x.index), [EFER, SYSENTER_CS]);
    assert.deepEqual(e.state.regs, (await target.getRegisters(0, [])).regs, 'what a read now returns');
    target.writePhysical(at, Uint8Array.of(0x90));
    await target.setBreakpointIntercept(0, false);
    target.setEventSink(null);
    e.reply('retry');
    const after = log.text.length;
    await log.waitFor(/breakpoint: call \d+\n/, after);
  } finally {
    await m.quit();
  }
});

test('single-stepping: each instruction is an event, RIP advances; switching it off lets the guest run', async () => {
  await inspected('breakpoint', async (m, vm, log) => {
    await log.waitFor(/breakpoint: call 1\n/);
    const events = vm.events();
    await vm.controlEvents(0, 'SINGLESTEP', true);
    await vm.controlSingleStep(0, true);
    const rips: bigint[] = [];
    let last: Awaited<ReturnType<typeof events.next>>['value'];
    for (let i = 0; i < 20; i++) {
      last = (await events.next()).value;
      assert.ok(last !== undefined && last.event === 'SINGLESTEP', `got ${last?.event}`);
      assert.equal(last.data.failed, false);
      rips.push(last.regs.rip);
      if (i < 19) await last.reply('continue');
    }
    // Every step moves RIP (the guest spends most of its time in `dec ecx; jnz` delay loops).
    const shown = rips.map((r) => r.toString(16)).join(' ');
    assert.ok(rips.every((r, i) => i === 0 || r !== rips[i - 1]), `each step moves RIP: ${shown}`);
    assert.ok(new Set(rips).size >= 2, shown);
    // Off while the last step waits, then its reply: the guest runs freely again.
    await vm.controlSingleStep(0, false);
    const before = log.text.length;
    await last!.reply('continue');
    const n = Number((await log.waitFor(/breakpoint: call (\d+)\n/, before))[1]);
    await log.waitFor(new RegExp(`breakpoint: call ${n + 2}\n`), before);
    assert.equal(m.status, 'running');
  });
});

test('INJECT_EXCEPTION: a #BP reaches the guest\'s handler; a second one while it is pending is EBUSY', async () => {
  await inspected('breakpoint', async (_m, vm, log) => {
    await log.waitFor(/breakpoint: call 1\n/);
    const events = vm.events();
    await vm.pauseVcpu(0);
    await vm.injectException(0, { vector: 3 });
    await assert.rejects(vm.injectException(0, { vector: 3 }), (e: unknown) => e instanceof KvmiError && e.code === 'EBUSY');
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'PAUSE_VCPU');
    const before = log.text.length;
    await ev.reply('continue');
    await log.waitFor(/breakpoint: #BP at [0-9a-f]{8}\n/, before);
    await log.waitFor(/breakpoint: call \d+\n/, log.text.length);
  });
});

test('MSR write events: old and new values; the tool\'s value is what the guest reads back; a tool leaving mid-event', async () => {
  await inspected('msr-write', async (m, vm, log) => {
    await log.waitFor(/msr-write: wrote 00000002 read 00000002\n/);
    const events = vm.events();
    await vm.controlEvents(0, 'MSR', true);
    await vm.controlMsr(0, 0x174, true);
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'MSR', `got ${ev?.event}`);
    assert.equal(ev.data.msr, 0x174);
    assert.equal(ev.data.newValue, ev.data.oldValue + 1n, `old ${ev.data.oldValue}, new ${ev.data.newValue}`);
    const wrote = ev.data.newValue;
    const before = log.text.length;
    await ev.reply('continue', { newValue: 0xabcn });
    await log.waitFor(new RegExp(`msr-write: wrote ${hex8(wrote)} read 00000abc\n`), before);

    // The guest's own value when the tool keeps it; the old value is the tool's from before.
    const ev2 = (await events.next()).value;
    assert.ok(ev2 !== undefined && ev2.event === 'MSR');
    assert.equal(ev2.data.oldValue, 0xabcn);
    assert.equal(ev2.data.newValue, wrote + 1n);
    await ev2.reply('continue');
    await log.waitFor(new RegExp(`msr-write: wrote ${hex8(wrote + 1n)} read ${hex8(wrote + 1n)}\n`), before);

    // The tool goes away while a vCPU waits for it: the write happens as the guest meant it.
    const ev3 = (await events.next()).value;
    assert.ok(ev3 !== undefined && ev3.event === 'MSR');
    const left = log.text.length;
    await vm.close();
    const m3 = ev3.data.newValue;
    await log.waitFor(new RegExp(`msr-write: wrote ${hex8(m3)} read ${hex8(m3)}\n`), left);
    await log.waitFor(new RegExp(`msr-write: wrote ${hex8(m3 + 5n)} read ${hex8(m3 + 5n)}\n`), left);
    assert.equal(m.status, 'running');
  });
});

test('a tool that leaves during a breakpoint event: the vCPU goes on, guest debug is off', async () => {
  await inspected('breakpoint', async (m, vm, log) => {
    const target = BigInt(`0x${(await log.waitFor(/breakpoint: target ([0-9a-f]{8})\n/))[1]!}`);
    await log.waitFor(/breakpoint: call 1\n/);
    const events = vm.events();
    await vm.controlEvents(0, 'BREAKPOINT', true);
    await vm.controlEvents(0, 'SINGLESTEP', true);
    await vm.writePhysical(target, Uint8Array.of(0xcc));
    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'BREAKPOINT');
    // Stepping on too: both must be gone once the tool is.
    await vm.controlSingleStep(0, true);
    await vm.writePhysical(target, Uint8Array.of(0x90));
    const left = log.text.length;
    await vm.close();
    // The session answers CONTINUE: the guest takes its #BP and keeps calling, unstepped: a
    // single-stepped call (a 20000-round delay loop) would be some 40000 debug exits.
    await log.waitFor(new RegExp(`breakpoint: #BP at ${hex8(target + 1n)}\n`), left);
    const n = Number((await log.waitFor(/breakpoint: call (\d+)\n/, left))[1]);
    const exits = m.exitCounts()[0]!;
    await log.waitFor(new RegExp(`breakpoint: call ${n + 3}\n`), left);
    const per = (m.exitCounts()[0]! - exits) / 3;
    assert.ok(per < 5000, `${per} exits per call: still single-stepping?`);
    assert.equal(m.status, 'running');
  });
});

test('write protection: a guest write to a protected page is a PF event; CONTINUE stores it, RETRY asks again while protected', async () => {
  await inspected('breakpoint', async (m, vm, log) => {
    const counter = BigInt(`0x${(await log.waitFor(/breakpoint: counter ([0-9a-f]{8})\n/))[1]!}`);
    assert.equal(counter & 0xfffn, 0n, 'the counter starts its page');
    await log.waitFor(/breakpoint: call 2\n/);
    const events = vm.events();
    await vm.controlEvents(0, 'PF', true);
    await vm.setPageAccess([{ gpa: counter, access: 0b101 }]);
    assert.deepEqual(await vm.getPageAccess([counter, counter + 0x1000n]), [0b101, 0b111]);
    assert.deepEqual(m.readOnlyRam(), [{ gpa: Number(counter), size: 4096 }], 'one read-only memory slot, one page');

    const ev = (await events.next()).value;
    assert.ok(ev !== undefined && ev.event === 'PF', `got ${ev?.event}`);
    assert.equal(ev.data.gpa, counter, 'the counter\'s increment');
    assert.equal(ev.data.access, 0b010);
    const value = m.memory.readU32(Number(counter));
    await sleep(50);
    assert.equal(m.memory.readU32(Number(counter)), value, 'not stored while the event waits');
    const before = log.text.length;
    await ev.reply('continue');
    await log.waitFor(new RegExp(`breakpoint: call ${value + 1}\n`), before);

    // RETRY on a page still protected: the same write comes back as a new event.
    const ev2 = (await events.next()).value;
    assert.ok(ev2 !== undefined && ev2.event === 'PF');
    await ev2.reply('retry');
    const ev3 = (await events.next()).value;
    assert.ok(ev3 !== undefined && ev3.event === 'PF' && ev3.data.gpa === counter);
    assert.equal(m.memory.readU32(Number(counter)), value + 1, 'still not stored');
    // Unprotected while it waits, then RETRY: the store happens and the guest runs free.
    await vm.setPageAccess([{ gpa: counter, access: 0b111 }]);
    const released = log.text.length;
    await ev3.reply('retry');
    await log.waitFor(new RegExp(`breakpoint: call ${value + 2}\n`), released);
    await log.waitFor(new RegExp(`breakpoint: call ${value + 5}\n`), released);
    assert.deepEqual(m.readOnlyRam(), []);

    // Protected again, and the tool leaves mid-event: the store happens, protection is gone.
    await vm.setPageAccess([{ gpa: counter, access: 0b101 }]);
    const ev4 = (await events.next()).value;
    assert.ok(ev4 !== undefined && ev4.event === 'PF');
    const n = m.memory.readU32(Number(counter));
    const left = log.text.length;
    await vm.close();
    await log.waitFor(new RegExp(`breakpoint: call ${n + 1}\n`), left);
    await log.waitFor(new RegExp(`breakpoint: call ${n + 4}\n`), left);
    assert.deepEqual(m.readOnlyRam(), [], 'the counter page is plain RAM again');
    assert.equal(m.status, 'running');
  });
});
