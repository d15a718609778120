/**
 * KVM exits decoded from the kvm_run page into a tagged union. Decoding copies only what the
 * handler needs; the I/O data views point into the run page itself, so a device's read
 * lands where KVM picks it up on the next KVM_RUN.
 */
import { KVM_RUN } from '../kvm/structs.js';
import { KVM_EXIT, KVM_EXIT_IO_OUT } from './exit-reason.js';

export type VcpuExit =
  | { reason: 'io'; out: boolean; port: number; size: number; count: number; data: Uint8Array }
  | { reason: 'mmio'; gpa: number; isWrite: boolean; data: Uint8Array }
  | { reason: 'hlt' }
  | { reason: 'shutdown' }
  | { reason: 'intr' }
  | { reason: 'irq-window-open' }
  | { reason: 'fail-entry'; hardwareEntryFailureReason: bigint; cpu: number }
  | { reason: 'internal-error'; suberror: number; data: bigint[] }
  | { reason: 'system-event'; type: number; data: bigint[] }
  | { reason: 'debug'; exception: number; pc: bigint; dr6: bigint; dr7: bigint }
  /** The guest read (`x86-rdmsr`) or wrote an MSR that user space handles; answer in the run page. */
  | { reason: 'x86-rdmsr'; index: number; msrReason: number }
  | { reason: 'x86-wrmsr'; index: number; msrReason: number; value: bigint }
  /** The guest kept the CPU from opening an event window for longer than the notify window. */
  | { reason: 'notify'; flags: number }
  /** KVM could not resolve a guest access to `gpa` (KVM_RUN failed with EFAULT/EHWPOISON). */
  | { reason: 'memory-fault'; gpa: bigint; size: bigint; flags: bigint }
  /** The guest took a bus lock (split lock); the exit happens after the instruction. */
  | { reason: 'bus-lock' }
  /** This vCPU's dirty ring is full: harvest it and reset the rings before running again. */
  | { reason: 'dirty-ring-full' }
  /** An exit KVM returns only for features nodevisor never enables, or only on other architectures. */
  | { reason: 'unhandled'; exitReason: number; hardwareExitReason: bigint };

const U = KVM_RUN.exit;

/** Where the answer to an MSR exit goes: the run page, read by KVM on the next KVM_RUN. */
export interface MsrAnswer {
  answerRdmsr(value: bigint | undefined): void;
  answerWrmsr(ok: boolean): void;
}

/** Decodes exits from one vCPU's run page; caches I/O data views (the offset rarely changes). */
export class ExitDecoder implements MsrAnswer {
  private readonly views = new Map<number, Uint8Array>();
  private readonly io: Extract<VcpuExit, { reason: 'io' }> = { reason: 'io', out: false, port: 0, size: 0, count: 0, data: new Uint8Array(0) };
  constructor(private readonly run: DataView, private readonly runBytes: Uint8Array) {}

  private lastKey = -1;
  private lastView: Uint8Array = new Uint8Array(0);

  private dataView(offset: number, length: number): Uint8Array {
    const key = offset * 4096 + length;
    if (key === this.lastKey) return this.lastView; // a loop on one port: the same view each time
    let v = this.views.get(key);
    if (v === undefined) {
      v = this.runBytes.subarray(offset, offset + length);
      this.views.set(key, v);
    }
    this.lastKey = key;
    this.lastView = v;
    return v;
  }

  private u64s(off: number, n: number): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < Math.min(n, 16); i++) out.push(this.run.getBigUint64(off + i * 8, true));
    return out;
  }

  /** Answers an X86_RDMSR exit: the value, or error=1 to make the guest's RDMSR raise #GP. */
  answerRdmsr(value: bigint | undefined): void {
    this.run.setUint8(U, value === undefined ? 1 : 0);
    this.run.setBigUint64(U + 16, value ?? 0n, true);
  }

  /** Answers an X86_WRMSR exit: error=1 makes the guest's WRMSR raise #GP. */
  answerWrmsr(ok: boolean): void {
    this.run.setUint8(U, ok ? 0 : 1);
  }

  decode(): VcpuExit {
    const r = this.run;
    const reason = r.getUint32(KVM_RUN.exitReason, true);
    switch (reason) {
      case KVM_EXIT.IO: {
        // The hottest exit: one object reused (nothing keeps an I/O exit past its handling).
        const io = this.io;
        io.size = r.getUint8(U + 1);
        io.count = r.getUint32(U + 4, true);
        io.out = r.getUint8(U) === KVM_EXIT_IO_OUT;
        io.port = r.getUint16(U + 2, true);
        io.data = this.dataView(r.getUint32(U + 8, true), io.size * io.count);
        return io;
      }
      case KVM_EXIT.MMIO: {
        const len = r.getUint32(U + 16, true);
        return {
          reason: 'mmio', gpa: Number(r.getBigUint64(U, true)), isWrite: r.getUint8(U + 20) !== 0,
          data: this.dataView(U + 8, Math.min(len, 8)),
        };
      }
      case KVM_EXIT.HLT: return { reason: 'hlt' };
      case KVM_EXIT.SHUTDOWN: return { reason: 'shutdown' };
      case KVM_EXIT.INTR: return { reason: 'intr' };
      case KVM_EXIT.IRQ_WINDOW_OPEN: return { reason: 'irq-window-open' };
      case KVM_EXIT.FAIL_ENTRY:
        return { reason: 'fail-entry', hardwareEntryFailureReason: r.getBigUint64(U, true), cpu: r.getUint32(U + 8, true) };
      case KVM_EXIT.INTERNAL_ERROR:
        return { reason: 'internal-error', suberror: r.getUint32(U, true), data: this.u64s(U + 8, r.getUint32(U + 4, true)) };
      case KVM_EXIT.SYSTEM_EVENT:
        return { reason: 'system-event', type: r.getUint32(U, true), data: this.u64s(U + 8, r.getUint32(U + 4, true)) };
      case KVM_EXIT.DEBUG:
        return {
          reason: 'debug', exception: r.getUint32(U, true), pc: r.getBigUint64(U + 8, true),
          dr6: r.getBigUint64(U + 16, true), dr7: r.getBigUint64(U + 24, true),
        };
      case KVM_EXIT.X86_RDMSR:
        return { reason: 'x86-rdmsr', msrReason: r.getUint32(U + 8, true), index: r.getUint32(U + 12, true) };
      case KVM_EXIT.X86_WRMSR:
        return {
          reason: 'x86-wrmsr', msrReason: r.getUint32(U + 8, true), index: r.getUint32(U + 12, true),
          value: r.getBigUint64(U + 16, true),
        };
      case KVM_EXIT.NOTIFY: return { reason: 'notify', flags: r.getUint32(U, true) };
      case KVM_EXIT.MEMORY_FAULT:
        return { reason: 'memory-fault', flags: r.getBigUint64(U, true), gpa: r.getBigUint64(U + 8, true), size: r.getBigUint64(U + 16, true) };
      case KVM_EXIT.X86_BUS_LOCK: return { reason: 'bus-lock' };
      case KVM_EXIT.DIRTY_RING_FULL: return { reason: 'dirty-ring-full' };
      default:
        return { reason: 'unhandled', exitReason: reason, hardwareExitReason: r.getBigUint64(U, true) };
    }
  }
}
