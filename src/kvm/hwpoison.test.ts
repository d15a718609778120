/**
 * Host tests of the memory-error facilities. The file doubles as the worker script: in a
 * worker thread it runs the vCPU side (block SIGBUS, KVM_RUN, collect, decide, inject).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import {
  blockSigbus, clearPoison, copyFromHost, encodeX86Mce, getMceKillPolicy, KVM_X86_MCE_BYTES, KVM_X86_SET_MCE,
  KVM_X86_SETUP_MCE, madvHwpoisonSupported, poisonPages, queueSigbusToSelf, replacePages, setMce,
  setMceKillPolicy, setupMce, supportedMceCap, takeSigbus, uffdPoisonSupported,
} from './hwpoison.js';
import { Kvm, KvmVcpu } from './kvm.js';
import {
  addressOf, MAP_ANONYMOUS, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE, pthreadSigmask, SIG_BLOCK, sigset,
  viewAt,
} from './libc.js';
import { BUS_MCEERR_AO, BUS_MCEERR_AR, memoryErrorOf, SIGBUS, type SigInfo } from './siginfo.js';
import type { CpuidEntryData } from './structs.js';
import {
  decideMemoryFailure, MCG_SER_P, MSR_MCE_BANK_CTL, MSR_MCG_CAP, MSR_MCG_CTL, MSR_MCG_STATUS, QEMU_MCG_CAP,
  vcpuMceState, type MemoryFailureDecision,
} from '../runstate/memory-failure.js';
import type { Segment } from '../hypervisor/x86-state.js';

const PAGE = 4096;
const RAM_SIZE = 4 << 20;
const KICK = 34;
const KVM_EXIT_IO = 2;
const KVM_EXIT_MMIO = 6;

interface WorkerJob {
  kind: 'queue' | 'kvm';
  vcpuFd?: number; runAddress?: bigint; runSize?: number; ramAddress?: bigint; cpuid?: CpuidEntryData[];
  mcgCap?: bigint; cr4mce?: boolean;
}
type WorkerResult =
  | { kind: 'queue'; got: SigInfo | null; afterTake: SigInfo | null }
  | { kind: 'kvm'; first: string; info: SigInfo | null; decision: MemoryFailureDecision | null; second: string;
    secondDetail: number };

// --- The guest: long mode, CPL3 (runs natively under PVM, so KVM faults the page in and sees the poison).
// 0x1100: mov rbx,0x3000; mov al,[rbx]; mov rdx,0x200000; mov [rdx],al; jmp $   (0x200000 -> GPA 0x10000000: MMIO)
const USER_CODE = [0x48, 0xbb, 0x00, 0x30, 0, 0, 0, 0, 0, 0, 0x8a, 0x03, 0x48, 0xba, 0x00, 0x00, 0x20, 0, 0, 0, 0, 0, 0x88, 0x02, 0xeb, 0xfe];
// 0x1800, the #MC handler (CPL0): mov al,0x12; out 0x12,al; hlt; jmp back
const MC_HANDLER = [0xb0, 0x12, 0xe6, 0x12, 0xf4, 0xeb, 0xf9];
const DATA_GPA = 0x3000;

function buildGuest(ram: Uint8Array): void {
  const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const q = (at: number, val: bigint | number): void => v.setBigUint64(at, BigInt(val), true);
  ram.set(USER_CODE, 0x1100);
  ram.set(MC_HANDLER, 0x1800);
  ram.fill(0x42, DATA_GPA, DATA_GPA + PAGE);
  // PML4 0x10000 -> PDPT 0x11000 -> PD 0x12000 -> PT 0x13000 (0-2 MiB, user pages); PD[1] -> PT 0x14000 (MMIO page).
  q(0x10000, 0x11000 | 7); q(0x11000, 0x12000 | 7); q(0x12000, 0x13000 | 7); q(0x12008, 0x14000 | 7);
  for (let i = 0; i < 512; i++) q(0x13000 + 8 * i, (i << 12) | 7);
  q(0x14000, 0x10000000 | 7);
  // GDT at 0x500: null, code64, data, user code64, user data, TSS (0x28) at 0x600 with RSP0 0x9000.
  q(0x508, 0x00af9b000000ffffn); q(0x510, 0x00cf93000000ffffn); q(0x518, 0x00affb000000ffffn);
  q(0x520, 0x00cff3000000ffffn); q(0x528, 0x0000890006000067n);
  q(0x604, 0x9000);
  // IDT at 0x800: vector 18 (#MC) -> 0x08:0x1800, 64-bit interrupt gate.
  v.setUint16(0x800 + 18 * 16, 0x1800, true);
  v.setUint16(0x800 + 18 * 16 + 2, 0x08, true);
  v.setUint8(0x800 + 18 * 16 + 5, 0x8e);
}

function seg(selector: number, type: number, l: number, dpl: number): Segment {
  return { base: 0n, limit: 0xffffffff, selector, type, present: 1, dpl, db: l ? 0 : 1, s: 1, l, g: 1, avl: 0, unusable: 0 };
}

function describeExit(vcpu: KvmVcpu): { text: string; detail: number } {
  const reason = vcpu.run.getUint32(8, true);
  if (reason === KVM_EXIT_MMIO) return { text: `mmio 0x${vcpu.run.getBigUint64(32, true).toString(16)}`, detail: vcpu.run.getUint8(40) };
  if (reason === KVM_EXIT_IO) return { text: `io 0x${vcpu.run.getUint16(34, true).toString(16)}`, detail: 0 };
  return { text: `exit ${reason}`, detail: 0 };
}

/** The vCPU thread, following docs/memory-failure.md. */
function vcpuWorker(job: WorkerJob): WorkerResult {
  if (job.kind === 'queue') {
    blockSigbus();
    queueSigbusToSelf(BUS_MCEERR_AO, 0x7f0000005000n, 12);
    const got = takeSigbus();
    return { kind: 'queue', got, afterTake: takeSigbus() };
  }
  const vcpu = new KvmVcpu(job.vcpuFd!, job.runAddress!, job.runSize!);
  vcpu.setCpuid(job.cpuid!);
  const s = vcpu.getSregs();
  s.cs = seg(0x1b, 0xb, 1, 3);
  s.ds = s.es = s.fs = s.gs = s.ss = seg(0x23, 3, 0, 3);
  s.tr = { ...seg(0x28, 0xb, 0, 0), base: 0x600n, limit: 0x67, s: 0, g: 0, db: 0 };
  s.gdt = { base: 0x500n, limit: 6 * 8 - 1 };
  s.idt = { base: 0x800n, limit: 256 * 16 - 1 };
  s.cr0 = 0x80000011n; s.cr3 = 0x10000n; s.cr4 = 0x20n | (job.cr4mce ? 0x40n : 0n); s.efer = 0x500n;
  vcpu.setSregs(s);
  vcpu.setRegs({ rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0x8000n, rbp: 0n, r8: 0n, r9: 0n, r10: 0n,
    r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0x1100n, rflags: 2n });
  setupMce(job.vcpuFd!, job.mcgCap!);
  // The recipe: SIGBUS and the kick blocked in the thread, nothing blocked inside KVM_RUN.
  if (pthreadSigmask(SIG_BLOCK, sigset(KICK, SIGBUS), null) !== 0) throw new Error('pthread_sigmask');
  vcpu.setSignalMask(sigset());
  const r = vcpu.runOnce();
  let info: SigInfo | null = null;
  let decision: MemoryFailureDecision | null = null;
  if (r === 'interrupted') {
    info = takeSigbus();
    const err = info ? memoryErrorOf(info) : null;
    if (err) {
      const gpa = err.hostAddress - job.ramAddress!;
      const owner = gpa >= 0n && gpa < BigInt(RAM_SIZE) ? 'guest' : 'hypervisor';
      const msr = new Map(vcpu.getMsrs([MSR_MCG_CAP, MSR_MCG_STATUS, MSR_MCG_CTL, MSR_MCE_BANK_CTL]).map((m) => [m.index, m.data]));
      const mcgCap = msr.get(MSR_MCG_CAP) ?? 0n;
      const state = vcpuMceState({ cr4: vcpu.getSregs().cr4, mcgCap, mcgStatus: msr.get(MSR_MCG_STATUS) ?? 0n,
        mcgCtl: msr.get(MSR_MCG_CTL) ?? 0n, bankCtl: msr.get(MSR_MCE_BANK_CTL) ?? 0n });
      decision = decideMemoryFailure({ owner, actionRequired: err.actionRequired, mcaRecovery: (mcgCap & MCG_SER_P) !== 0n,
        ...state, hostAddress: err.hostAddress, guestAddress: gpa });
      if (decision.next.kind === 'inject') setMce(job.vcpuFd!, decision.next.mce);
      else clearPoison(err.hostAddress, err.size); // a reset would replace the page; here: repair and go on
    }
  }
  const first = r === 'interrupted' ? 'interrupted' : describeExit(vcpu).text;
  const r2 = vcpu.runOnce();
  const second = r2 === 'interrupted' ? { text: 'interrupted', detail: 0 } : describeExit(vcpu);
  return { kind: 'kvm', first, info, decision, second: second.text, secondDetail: second.detail };
}

function runWorker(job: WorkerJob): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', (m: WorkerResult) => resolve(m));
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`worker exited ${code}`)); });
  });
}

function mapShared(len: number): { addr: bigint; bytes: Uint8Array; unmap: () => void } {
  const p = mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
  assert.ok(p, 'mmap');
  const addr = addressOf(p);
  return { addr, bytes: new Uint8Array(viewAt(addr, len)), unmap: () => munmap(p, len) };
}

function requirePoison(): void {
  if (!uffdPoisonSupported()) throw new Error('userfaultfd UFFDIO_POISON is not available (Linux 6.6+ needed): cannot make poisoned pages');
}

function requireKvm(): void {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    throw new Error('/dev/kvm is missing or not accessible: this test needs KVM');
  }
}

if (!isMainThread) {
  parentPort!.postMessage(vcpuWorker(workerData as WorkerJob));
} else {
  test('struct kvm_x86_mce and the MCE ioctl numbers', () => {
    assert.equal(KVM_X86_MCE_BYTES, 64);
    assert.equal(KVM_X86_SETUP_MCE, 0x4008ae9c);
    assert.equal(KVM_X86_SET_MCE, 0x4040ae9e);
    const b = encodeX86Mce({ bank: 9, status: 0xbd80000000000134n, addr: 0x3000n, misc: 0x8cn, mcgStatus: 7n });
    const v = new DataView(b.buffer);
    assert.equal(b.length, 64);
    assert.equal(v.getBigUint64(0, true), 0xbd80000000000134n);
    assert.equal(v.getBigUint64(8, true), 0x3000n);
    assert.equal(v.getBigUint64(16, true), 0x8cn);
    assert.equal(v.getBigUint64(24, true), 7n);
    assert.equal(v.getUint8(32), 9);
    assert.ok(b.subarray(33).every((x) => x === 0));
  });

  test('a memory-error SIGBUS queued to a thread that blocks SIGBUS is collected there, once', async () => {
    const r = await runWorker({ kind: 'queue' });
    assert.ok(r.kind === 'queue');
    assert.ok(r.got);
    assert.equal(r.got.signo, SIGBUS);
    assert.equal(r.got.code, BUS_MCEERR_AO);
    assert.deepEqual(memoryErrorOf(r.got), { actionRequired: false, hostAddress: 0x7f0000005000n, size: 4096 });
    assert.equal(r.afterTake, null);
    // It was thread-directed: nothing for the main thread.
    assert.equal(takeSigbus(), null);
  });

  test('PR_MCE_KILL is per thread and settable (the AO collector asks for early kill)', async () => {
    const before = getMceKillPolicy();
    try {
      setMceKillPolicy('early');
      assert.equal(getMceKillPolicy(), 'early');
      setMceKillPolicy('late');
      assert.equal(getMceKillPolicy(), 'late');
    } finally {
      setMceKillPolicy(before);
    }
    assert.equal(getMceKillPolicy(), before);
  });

  test('madvHwpoisonSupported probes without poisoning anything', () => {
    assert.equal(typeof madvHwpoisonSupported(), 'boolean');
  });

  test('poisonPages: kernel copies fail with EIO, clearPoison brings the shared contents back', () => {
    requirePoison();
    const m = mapShared(2 * PAGE);
    try {
      m.bytes.fill(0x42);
      poisonPages(m.addr, PAGE);
      const out = new Uint8Array(16);
      assert.equal(copyFromHost(m.addr, out), 5, 'EIO from the poisoned page');
      assert.equal(copyFromHost(m.addr + BigInt(PAGE), out), 0, 'the next page is fine');
      assert.equal(out[0], 0x42);
      clearPoison(m.addr, PAGE);
      assert.equal(copyFromHost(m.addr, out), 0);
      assert.equal(out[15], 0x42);
      assert.equal(m.bytes[5], 0x42);
    } finally {
      m.unmap();
    }
  });

  test('replacePages puts a fresh zero page in place of a poisoned one', () => {
    requirePoison();
    const m = mapShared(2 * PAGE);
    try {
      m.bytes.fill(0x42);
      poisonPages(m.addr + BigInt(PAGE), PAGE);
      replacePages(m.addr + BigInt(PAGE), PAGE);
      const out = new Uint8Array(PAGE);
      assert.equal(copyFromHost(m.addr + BigInt(PAGE), out), 0);
      assert.ok(out.every((x) => x === 0));
      assert.equal(m.bytes[PAGE + 7], 0, 'the old view sees the new page');
      assert.equal(m.bytes[7], 0x42, 'the neighbour is untouched');
    } finally {
      m.unmap();
    }
  });

  test('bad ranges are refused before any syscall', () => {
    assert.throws(() => poisonPages(0x1001n, PAGE), RangeError);
    assert.throws(() => clearPoison(0x1000n, 100), RangeError);
    assert.throws(() => replacePages(0x1000n, 0), RangeError);
  });

  for (const cr4mce of [false, true]) {
    test(`KVM: a guest read of a poisoned page -> EINTR + SIGBUS BUS_MCEERR_AR in the vCPU thread -> ${cr4mce ? 'inject a machine check' : 'reset'}`, async () => {
      requireKvm();
      requirePoison();
      const kvm = Kvm.open();
      const vm = kvm.createVm();
      const ram = mapShared(RAM_SIZE);
      let vcpuFd = -1;
      try {
        vm.setTssAddr(0xfffbd000);
        vm.setUserMemoryRegion(0, 0, RAM_SIZE, ram.addr);
        buildGuest(ram.bytes);
        vcpuFd = vm.createVcpu(0);
        const runSize = kvm.vcpuMmapSize();
        const runAddress = vm.mapRun(vcpuFd, runSize);
        const mcgCap = QEMU_MCG_CAP & (supportedMceCap(kvm.fd) | 0xffn);
        poisonPages(ram.addr + BigInt(DATA_GPA), PAGE);
        const r = await runWorker({ kind: 'kvm', vcpuFd, runAddress, runSize, ramAddress: ram.addr, cpuid: kvm.supportedCpuid(), mcgCap, cr4mce });
        assert.ok(r.kind === 'kvm');
        assert.equal(r.first, 'interrupted');
        assert.ok(r.info);
        assert.equal(r.info.code, BUS_MCEERR_AR);
        assert.equal(r.info.addr, ram.addr + BigInt(DATA_GPA));
        assert.equal(r.info.addrLsb, 12);
        assert.ok(r.decision);
        if (cr4mce) {
          assert.deepEqual(r.decision.event, { recipient: 'guest', action: 'inject', flags: { 'action-required': true, recursive: false } });
          assert.equal(r.second, 'io 0x12', 'the guest took the #MC in its handler');
        } else {
          assert.deepEqual(r.decision.event, { recipient: 'guest', action: 'reset', flags: { 'action-required': true, recursive: false } });
          assert.equal(r.second, 'mmio 0x10000000', 'after the repair the read completes');
          assert.equal(r.secondDetail, 0x42, 'with the page contents from before');
        }
      } finally {
        try { clearPoison(ram.addr + BigInt(DATA_GPA), PAGE); } catch { /* already clear */ }
        if (vcpuFd >= 0) vm.closeVcpu(vcpuFd);
        vm.close();
        kvm.close();
        ram.unmap();
      }
    });
  }
}
