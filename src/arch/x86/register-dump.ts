/**
 * QEMU 7.2's text for a vCPU's state (x86_cpu_dump_state) and for KVM internal errors
 * (kvm_handle_internal_error), so nodevisor's stderr matches QEMU's byte for byte.
 * QEMU builds its segment cache from kvm_segment (get_seg) and its hflags from CR0, EFER and
 * CS/SS; the same derivations are done here. Formatters return lines without a final
 * newline: join the blocks with a newline and end the report with one.
 */
import type { DTable, Regs, Segment, Sregs } from '../../hypervisor/x86-state.js';

export interface DebugRegs {
  dr0: bigint; dr1: bigint; dr2: bigint; dr3: bigint; dr6: bigint; dr7: bigint;
}

/** DR6/DR7 after reset (SDM vol. 3, 17.2). */
export const DEBUG_REGS_RESET: Readonly<DebugRegs> = {
  dr0: 0n, dr1: 0n, dr2: 0n, dr3: 0n, dr6: 0xffff0ff0n, dr7: 0x400n,
};

export interface RegisterDumpOptions {
  /** KVM_GET_DEBUGREGS; reset values when absent. */
  debugRegs?: DebugRegs;
  /** kvm_vcpu_events.interrupt.shadow != 0 (QEMU's "II"). */
  interruptShadow?: boolean;
  /** A20 gate; QEMU shows 1 unless the guest masked it. */
  a20?: boolean;
  /** kvm_vcpu_events.smi.smm. */
  smm?: boolean;
  /** The vCPU is halted (KVM_MP_STATE_HALTED). */
  halted?: boolean;
}

// QEMU's SegmentCache.flags layout: the descriptor's high dword.
const DESC_TYPE_SHIFT = 8;
const DESC_A_MASK = 1 << 8;
const DESC_W_MASK = 1 << 9; // data: writable
const DESC_R_MASK = 1 << 9; // code: readable
const DESC_E_MASK = 1 << 10; // data: expand-down
const DESC_C_MASK = 1 << 10; // code: conforming
const DESC_CS_MASK = 1 << 11;
const DESC_S_MASK = 1 << 12;
const DESC_DPL_SHIFT = 13;
const DESC_P_MASK = 1 << 15;
const DESC_AVL_MASK = 1 << 20;
const DESC_L_SHIFT = 21;
const DESC_B_SHIFT = 22;
const DESC_G_MASK = 1 << 23;

const CR0_PE_MASK = 1n;
const MSR_EFER_LMA = 1n << 10n;

const EFLAGS_CHARS: ReadonlyArray<[number, string]> = [
  [0x400, 'D'], [0x800, 'O'], [0x80, 'S'], [0x40, 'Z'], [0x10, 'A'], [0x04, 'P'], [0x01, 'C'],
];

const SYS_TYPE_NAMES_32 = [
  'Reserved', 'TSS16-avl', 'LDT', 'TSS16-busy', 'CallGate16', 'TaskGate', 'IntGate16',
  'TrapGate16', 'Reserved', 'TSS32-avl', 'Reserved', 'TSS32-busy', 'CallGate32', 'Reserved',
  'IntGate32', 'TrapGate32',
] as const;
const SYS_TYPE_NAMES_64 = [
  '<hiword>', 'Reserved', 'LDT', 'Reserved', 'Reserved', 'Reserved', 'Reserved', 'Reserved',
  'Reserved', 'TSS64-avl', 'Reserved', 'TSS64-busy', 'CallGate64', 'Reserved', 'IntGate64',
  'TrapGate64',
] as const;

/** QEMU's get_seg(): kvm_segment → SegmentCache.flags (0 for an unusable segment). */
export function segmentFlags(seg: Segment): number {
  if (seg.unusable) return 0;
  return ((seg.type << DESC_TYPE_SHIFT) | (seg.present ? DESC_P_MASK : 0)
    | (seg.dpl << DESC_DPL_SHIFT) | (seg.db << DESC_B_SHIFT) | (seg.s ? DESC_S_MASK : 0)
    | (seg.l << DESC_L_SHIFT) | (seg.g ? DESC_G_MASK : 0) | (seg.avl ? DESC_AVL_MASK : 0)) >>> 0;
}

function hex(value: bigint | number, digits: number): string {
  const v = BigInt.asUintN(digits * 4, BigInt(value));
  return v.toString(16).padStart(digits, '0');
}

interface DumpMode {
  pe: boolean;
  lma: boolean;
  cs64: boolean;
}

function dumpMode(sregs: Sregs): DumpMode {
  const lma = (sregs.efer & MSR_EFER_LMA) !== 0n;
  return { pe: (sregs.cr0 & CR0_PE_MASK) !== 0n, lma, cs64: lma && sregs.cs.l !== 0 && !sregs.cs.unusable };
}

function segmentDescription(flags: number, lma: boolean): string {
  const dpl = ` DPL=${(flags >> DESC_DPL_SHIFT) & 3} `;
  if (flags & DESC_S_MASK) {
    let kind: string;
    if (flags & DESC_CS_MASK) {
      kind = (flags & (1 << DESC_L_SHIFT)) ? 'CS64' : (flags & (1 << DESC_B_SHIFT)) ? 'CS32' : 'CS16';
      kind += ` [${flags & DESC_C_MASK ? 'C' : '-'}${flags & DESC_R_MASK ? 'R' : '-'}`;
    } else {
      kind = (flags & (1 << DESC_B_SHIFT)) || lma ? 'DS  ' : 'DS16';
      kind += ` [${flags & DESC_E_MASK ? 'E' : '-'}${flags & DESC_W_MASK ? 'W' : '-'}`;
    }
    return `${dpl}${kind}${flags & DESC_A_MASK ? 'A' : '-'}]`;
  }
  const names = lma ? SYS_TYPE_NAMES_64 : SYS_TYPE_NAMES_32;
  return dpl + names[(flags >> DESC_TYPE_SHIFT) & 0xf];
}

/** One line of cpu_x86_dump_seg_cache: "CS =0008 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]". */
export function formatSegment(name: string, seg: Segment, mode: DumpMode): string {
  const flags = segmentFlags(seg);
  const base = mode.cs64 ? hex(seg.base, 16) : hex(seg.base, 8);
  let line = `${name.padEnd(3)}=${hex(seg.selector, 4)} ${base} ${hex(seg.limit, 8)} ${hex(flags & 0x00ffff00, 8)}`;
  if (mode.pe && (flags & DESC_P_MASK)) line += segmentDescription(flags, mode.lma);
  return line;
}

function formatDTable(name: string, table: DTable, lma: boolean): string {
  return `${name}=     ${lma ? hex(table.base, 16) : hex(table.base, 8)} ${hex(table.limit, 8)}`;
}

function eflagsChars(eflags: number): string {
  return EFLAGS_CHARS.map(([mask, c]) => (eflags & mask ? c : '-')).join('');
}

/** x86_cpu_dump_state(cs, f, 0): the general, segment, control and debug registers. */
export function formatRegisterDump(regs: Regs, sregs: Sregs, opts: RegisterDumpOptions = {}): string {
  const mode = dumpMode(sregs);
  const dr = opts.debugRegs ?? DEBUG_REGS_RESET;
  const eflags = Number(BigInt.asUintN(32, regs.rflags));
  const status = `[${eflagsChars(eflags)}] CPL=${(segmentFlags(sregs.ss) >> DESC_DPL_SHIFT) & 3} II=${opts.interruptShadow ? 1 : 0}`
    + ` A20=${opts.a20 === false ? 0 : 1} SMM=${opts.smm ? 1 : 0} HLT=${opts.halted ? 1 : 0}`;
  const lines: string[] = [];
  if (mode.cs64) {
    const r = (name: string, v: bigint): string => `${name}=${hex(v, 16)}`;
    lines.push(
      [r('RAX', regs.rax), r('RBX', regs.rbx), r('RCX', regs.rcx), r('RDX', regs.rdx)].join(' '),
      [r('RSI', regs.rsi), r('RDI', regs.rdi), r('RBP', regs.rbp), r('RSP', regs.rsp)].join(' '),
      [r('R8 ', regs.r8), r('R9 ', regs.r9), r('R10', regs.r10), r('R11', regs.r11)].join(' '),
      [r('R12', regs.r12), r('R13', regs.r13), r('R14', regs.r14), r('R15', regs.r15)].join(' '),
      `RIP=${hex(regs.rip, 16)} RFL=${hex(eflags, 8)} ${status}`,
    );
  } else {
    const r = (name: string, v: bigint): string => `${name}=${hex(v, 8)}`;
    lines.push(
      [r('EAX', regs.rax), r('EBX', regs.rbx), r('ECX', regs.rcx), r('EDX', regs.rdx)].join(' '),
      [r('ESI', regs.rsi), r('EDI', regs.rdi), r('EBP', regs.rbp), r('ESP', regs.rsp)].join(' '),
      `EIP=${hex(regs.rip, 8)} EFL=${hex(eflags, 8)} ${status}`,
    );
  }
  const segs: ReadonlyArray<[string, Segment]> = [
    ['ES', sregs.es], ['CS', sregs.cs], ['SS', sregs.ss], ['DS', sregs.ds], ['FS', sregs.fs],
    ['GS', sregs.gs], ['LDT', sregs.ldt], ['TR', sregs.tr],
  ];
  for (const [name, seg] of segs) lines.push(formatSegment(name, seg, mode));
  lines.push(formatDTable('GDT', sregs.gdt, mode.lma), formatDTable('IDT', sregs.idt, mode.lma));
  if (mode.lma) {
    lines.push(`CR0=${hex(sregs.cr0, 8)} CR2=${hex(sregs.cr2, 16)} CR3=${hex(sregs.cr3, 16)} CR4=${hex(sregs.cr4, 8)}`);
  } else {
    lines.push(`CR0=${hex(sregs.cr0, 8)} CR2=${hex(sregs.cr2, 8)} CR3=${hex(sregs.cr3, 8)} CR4=${hex(sregs.cr4, 8)}`);
  }
  // Debug registers print as 64-bit in both modes (TARGET_FMT_lx on a 64-bit target).
  lines.push([dr.dr0, dr.dr1, dr.dr2, dr.dr3].map((v, i) => `DR${i}=${hex(v, 16)} `).join(''));
  lines.push(`DR6=${hex(dr.dr6, 16)} DR7=${hex(dr.dr7, 16)}`);
  lines.push(`EFER=${hex(sregs.efer, 16)}`);
  return lines.join('\n');
}

/** QEMU dumps 50 code bytes, up to 20 of them before RIP. */
export const DUMP_CODE_BYTES_TOTAL = 50;
export const DUMP_CODE_BYTES_BACKWARD = 20;

/** Where the `Code=` window starts (linear address) and which of its bytes is at RIP. */
export function codeWindow(rip: bigint, csBase: bigint): { start: bigint; ripIndex: number } {
  const back = rip < BigInt(DUMP_CODE_BYTES_BACKWARD) ? Number(rip) : DUMP_CODE_BYTES_BACKWARD;
  return { start: BigInt.asUintN(64, csBase + rip - BigInt(back)), ripIndex: back };
}

/** The `Code=` line; a null byte could not be read and prints as "??". */
export function formatCodeBytes(bytes: ArrayLike<number | null>, ripIndex: number): string {
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    const text = b === null || b === undefined ? '??' : hex(b & 0xff, 2);
    parts.push(i === ripIndex ? `<${text}>` : text);
  }
  return `Code=${parts.join(' ')}`;
}

export const KVM_INTERNAL_ERROR_EMULATION = 1;

/** kvm_handle_internal_error's lines (before the register dump QEMU prints after them). */
export function formatInternalError(suberror: number, data: readonly bigint[]): string {
  const lines = [`KVM internal error. Suberror: ${suberror}`];
  data.forEach((d, i) => lines.push(`extra data[${i}]: 0x${hex(d, 16)}`));
  if (suberror === KVM_INTERNAL_ERROR_EMULATION) lines.push('emulation failure');
  return lines.join('\n');
}
