/**
 * The text an operator reads when a vCPU stops on an exit nodevisor cannot continue from:
 * QEMU's lines where QEMU has them (KVM internal error, failed entry, register dump, code
 * bytes), and for every other exit what happened and what the numbers were.
 */
import { formatCodeBytes, formatInternalError, formatRegisterDump } from '../arch/x86/register-dump.js';
import type { Regs, Sregs } from '../hypervisor/x86-state.js';
import type { VcpuExit } from './exit.js';
import { exitReasonName, KVM_EXIT, KVM_INTERNAL_ERROR, KVM_MEMORY_EXIT_FLAG_PRIVATE, NON_X86_EXITS } from './exit-reason.js';

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/** What each internal-error suberror means, beyond QEMU's numbers. */
const SUBERROR_MEANING: Record<number, string> = {
  [KVM_INTERNAL_ERROR.EMULATION]: '', // QEMU's own line ("emulation failure") says it
  [KVM_INTERNAL_ERROR.SIMUL_EX]: 'an exception occurred while KVM delivered another (simultaneous exceptions)',
  [KVM_INTERNAL_ERROR.DELIVERY_EV]: 'KVM could not deliver an event to the guest (data: vectoring info, exit reason, ...)',
  [KVM_INTERNAL_ERROR.UNEXPECTED_EXIT_REASON]: 'the CPU exited for a reason KVM does not handle (data: the hardware exit reason)',
};

/** The lines that say what the exit was. */
export function describeExit(exit: VcpuExit, why?: string): string[] {
  const lines: string[] = [];
  switch (exit.reason) {
    case 'internal-error': {
      lines.push(formatInternalError(exit.suberror, exit.data));
      const meaning = SUBERROR_MEANING[exit.suberror];
      if (meaning) lines.push(meaning);
      else if (meaning === undefined) lines.push(`suberror ${exit.suberror} is not one nodevisor knows`);
      break;
    }
    case 'fail-entry':
      lines.push(`KVM: entry failed, hardware error ${hex(exit.hardwareEntryFailureReason)}`);
      lines.push(`(the CPU refused to enter the guest on host CPU ${exit.cpu}; the guest state is inconsistent)`);
      break;
    case 'memory-fault': {
      const priv = (exit.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE) !== 0n;
      lines.push(`KVM: memory fault at gpa ${hex(exit.gpa)} size ${hex(exit.size)} (${priv ? 'private' : 'shared'} memory, flags ${hex(exit.flags)})`);
      lines.push('KVM could not map guest memory there: no memory slot, a poisoned page, or a private/shared mismatch');
      break;
    }
    case 'notify':
      lines.push(`KVM: notify VM exit (flags ${hex(exit.flags)})`);
      break;
    case 'unhandled':
      if (exit.exitReason === KVM_EXIT.UNKNOWN) {
        lines.push(`KVM: unknown exit, hardware reason ${hex(exit.hardwareExitReason)}`);
      } else if (NON_X86_EXITS.has(exit.exitReason)) {
        lines.push(`KVM: exit ${exit.exitReason} (${exitReasonName(exit.exitReason)}) belongs to another architecture`);
      } else if (exit.exitReason <= KVM_EXIT.MEMORY_FAULT) {
        lines.push(`KVM: unexpected exit ${exit.exitReason} (${exitReasonName(exit.exitReason)}): nodevisor never enables what produces it`);
      } else {
        lines.push(`KVM: unknown exit reason ${exit.exitReason} (hardware exit reason ${hex(exit.hardwareExitReason)})`);
      }
      break;
    default:
      lines.push(`KVM: unexpected ${exit.reason} exit`);
  }
  if (why) lines.push(why);
  return lines;
}

/** The whole report: the exit, then QEMU's register dump and code bytes when there are any. */
export function exitReport(
  exit: VcpuExit, why: string | undefined,
  regs: Regs | null, sregs: Sregs | null, code: Array<number | null> | null, codeIndex: number,
): string {
  const lines = describeExit(exit, why);
  if (regs && sregs) {
    lines.push(formatRegisterDump(regs, sregs));
    if (code) lines.push(formatCodeBytes(code, codeIndex));
  }
  return lines.join('\n');
}
