/**
 * The vCPU state blocks KVMI carries: the common part of every event (struct kvmi_event with
 * its x86 arch part) and the GET_REGISTERS reply. Both embed kvm_regs and kvm_sregs exactly as
 * KVM lays them out, so the codecs of src/kvm/structs.ts are reused.
 */
import type { Regs, Sregs } from '../../hypervisor/x86-state.js';
import {
  decodeRegs, decodeSregs, encodeRegs, encodeSregs, KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_SREGS_SIZE,
} from '../../kvm/structs.js';
import { PayloadReader, PayloadWriter } from './bytes.js';
import { invalid } from './errors.js';

/** The nine MSRs every event reports, in wire order, with their indices. */
export const EVENT_MSRS = {
  sysenterCs: 0x174,
  sysenterEsp: 0x175,
  sysenterEip: 0x176,
  efer: 0xc000_0080,
  star: 0xc000_0081,
  lstar: 0xc000_0082,
  cstar: 0xc000_0083,
  pat: 0x277,
  shadowGs: 0xc000_0102, // MSR_KERNEL_GS_BASE
} as const;

export type EventMsrName = keyof typeof EVENT_MSRS;
export type EventMsrs = Record<EventMsrName, bigint>;
export const EVENT_MSR_NAMES = Object.keys(EVENT_MSRS) as EventMsrName[];

/** What an event tells about the vCPU that raised it. */
export interface VcpuSnapshot {
  /** Operand size of the current code: 2, 4 or 8 bytes. */
  mode: number;
  /** The EPT view; always 0 here (no views on stock KVM). */
  view: number;
  regs: Regs;
  sregs: Sregs;
  msrs: EventMsrs;
}

/** sizeof(struct kvmi_event) on x86: 16 bytes of header and mode, then regs, sregs, 9 MSRs. */
export const KVMI_EVENT_COMMON_SIZE = 16 + KVM_REGS_SIZE + KVM_SREGS_SIZE + 9 * 8;

export interface EventCommon {
  vcpu: number;
  /** The event's number in the dialect. */
  event: number;
  state: VcpuSnapshot;
}

export function zeroEventMsrs(): EventMsrs {
  return Object.fromEntries(EVENT_MSR_NAMES.map((n) => [n, 0n])) as EventMsrs;
}

export function encodeEventCommon(w: PayloadWriter, c: EventCommon): void {
  w.u16(KVMI_EVENT_COMMON_SIZE).u16(c.vcpu).u8(c.event).pad(3);
  w.u8(c.state.mode).pad(1).u16(c.state.view).pad(4);
  w.raw(encodeRegs(c.state.regs));
  w.raw(encodeSregs(c.state.sregs));
  for (const n of EVENT_MSR_NAMES) w.u64(c.state.msrs[n]);
}

/**
 * The common part of an event. Its size field says where the event-specific data starts; a
 * newer VMM may send a larger common part, whose extra bytes are skipped.
 */
export function decodeEventCommon(r: PayloadReader): EventCommon {
  const size = r.u16();
  if (size < KVMI_EVENT_COMMON_SIZE) throw invalid(`event common part of ${size} bytes, expected ${KVMI_EVENT_COMMON_SIZE}`);
  const vcpu = r.u16();
  const event = r.u8();
  r.padding(3);
  const mode = r.u8();
  r.padding(1);
  const viewIndex = r.u16();
  r.padding(4);
  const regs = decodeRegs(r.bytes(KVM_REGS_SIZE));
  const sregs = decodeSregs(r.bytes(KVM_SREGS_SIZE));
  const msrs = zeroEventMsrs();
  for (const n of EVENT_MSR_NAMES) msrs[n] = r.u64();
  r.bytes(size - KVMI_EVENT_COMMON_SIZE);
  return { vcpu, event, state: { mode, view: viewIndex, regs, sregs, msrs } };
}

export interface MsrValue {
  index: number;
  value: bigint;
}

/** The GET_REGISTERS reply data: mode, regs, sregs and the MSRs asked for, in order. */
export interface RegistersReply {
  mode: number;
  regs: Regs;
  sregs: Sregs;
  msrs: MsrValue[];
}

export const GET_REGISTERS_REPLY_BASE = 8 + KVM_REGS_SIZE + KVM_SREGS_SIZE + 8;

export function encodeRegistersReply(x: RegistersReply): Uint8Array {
  const w = new PayloadWriter(GET_REGISTERS_REPLY_BASE + KVM_MSR_ENTRY_SIZE * x.msrs.length);
  w.u32(x.mode).pad(4).raw(encodeRegs(x.regs)).raw(encodeSregs(x.sregs));
  w.u32(x.msrs.length).pad(4); // struct kvm_msrs {u32 nmsrs; u32 pad}
  for (const m of x.msrs) w.u32(m.index).pad(4).u64(m.value);
  return w.done();
}

/** `nmsrs`: how many MSRs were asked for; the reply must be exactly that long (libkvmi's rule). */
export function decodeRegistersReply(data: Uint8Array, nmsrs: number): RegistersReply {
  const want = GET_REGISTERS_REPLY_BASE + KVM_MSR_ENTRY_SIZE * nmsrs;
  if (data.length !== want) throw invalid(`GET_REGISTERS reply of ${data.length} bytes, expected ${want}`);
  const r = new PayloadReader(data);
  const mode = r.u32();
  r.padding(4);
  const regs = decodeRegs(r.bytes(KVM_REGS_SIZE));
  const sregs = decodeSregs(r.bytes(KVM_SREGS_SIZE));
  const n = r.u32();
  r.padding(4);
  if (n !== nmsrs) throw invalid(`GET_REGISTERS reply has ${n} MSRs, expected ${nmsrs}`);
  const msrs: MsrValue[] = [];
  for (let i = 0; i < n; i++) {
    const index = r.u32();
    r.padding(4);
    msrs.push({ index, value: r.u64() });
  }
  return { mode, regs, sregs, msrs };
}

const EFER_LMA = 1n << 10n;
const CR0_PE = 1n;

const RFLAGS_VM = 1n << 17n;

/** KVMI's "mode": 8 in 64-bit code, 4 in 32-bit protected mode, 2 in 16-bit code (and vm86). */
export function cpuMode(sregs: Sregs, rflags = 0n): number {
  if ((sregs.efer & EFER_LMA) !== 0n && sregs.cs.l !== 0) return 8;
  if ((sregs.cr0 & CR0_PE) === 0n || (rflags & RFLAGS_VM) !== 0n) return 2;
  return sregs.cs.db !== 0 ? 4 : 2;
}

function zeroSegment(): Sregs['cs'] {
  return { base: 0n, limit: 0, selector: 0, type: 0, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0 };
}

/** An event's vCPU state from registers and MSRs (the nine event MSRs; missing ones read 0). */
export function eventSnapshot(regs: Regs, sregs: Sregs, msrs: ReadonlyArray<{ index: number; value: bigint }>): VcpuSnapshot {
  const out = zeroEventMsrs();
  for (const name of EVENT_MSR_NAMES) {
    const found = msrs.find((m) => m.index === EVENT_MSRS[name]);
    if (found !== undefined) out[name] = found.value;
  }
  return { mode: cpuMode(sregs, regs.rflags), view: 0, regs, sregs, msrs: out };
}

/** An all-zero state, for events that concern no vCPU in particular (UNHOOK). */
export function zeroSnapshot(): VcpuSnapshot {
  const regs = {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 0n,
  };
  const sregs: Sregs = {
    cs: zeroSegment(), ds: zeroSegment(), es: zeroSegment(), fs: zeroSegment(), gs: zeroSegment(),
    ss: zeroSegment(), tr: zeroSegment(), ldt: zeroSegment(),
    gdt: { base: 0n, limit: 0 }, idt: { base: 0n, limit: 0 },
    cr0: 0n, cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n, apicBase: 0n, interruptBitmap: [0n, 0n, 0n, 0n],
  };
  return { mode: 0, view: 0, regs, sregs, msrs: zeroEventMsrs() };
}
