/**
 * siginfo_t on x86_64 Linux (glibc and kernel agree): 128 bytes, little-endian.
 *
 *   0  int si_signo     4  int si_errno     8  int si_code     12  (padding)
 *   16 the union: for SIGBUS/SIGSEGV  void *si_addr (16), short si_addr_lsb (24)
 *                 for kill/tgkill     pid_t si_pid (16), uid_t si_uid (20)
 *                 for sigqueue        pid_t si_pid (16), uid_t si_uid (20), sigval si_value (24)
 *
 * Pure: decoding and encoding only, no FFI. The memory-error signals a VMM cares about are
 * SIGBUS with si_code BUS_MCEERR_AR (action required: this thread consumed a poisoned page,
 * KVM sends it when a guest access hits one) and BUS_MCEERR_AO (action optional: the kernel
 * found a poisoned page mapped here before anyone used it). si_addr is the host virtual
 * address of the page, si_addr_lsb its size as a shift (12 for a 4 KiB page).
 */

export const SIGINFO_BYTES = 128;
export const SIGBUS = 7;

/** si_code values for SIGBUS (<asm-generic/siginfo.h>). */
export const BUS_ADRALN = 1;
export const BUS_ADRERR = 2;
export const BUS_OBJERR = 3;
export const BUS_MCEERR_AR = 4;
export const BUS_MCEERR_AO = 5;

/** si_code values of signals sent by user space. */
export const SI_USER = 0;
export const SI_QUEUE = -1;
export const SI_TKILL = -6;

const OFF_SIGNO = 0;
const OFF_ERRNO = 4;
const OFF_CODE = 8;
const OFF_ADDR = 16;
const OFF_ADDR_LSB = 24;
const OFF_PID = 16;
const OFF_UID = 20;

export interface SigInfo {
  signo: number;
  errno: number;
  code: number;
  /** si_addr (fault signals); for other signals the same bytes hold si_pid/si_uid. */
  addr: bigint;
  /** si_addr_lsb: meaningful for BUS_MCEERR_AR/AO only. */
  addrLsb: number;
  /** si_pid / si_uid: meaningful for signals sent by a process (si_code <= 0). */
  pid: number;
  uid: number;
}

/** A zeroed buffer to pass to sigtimedwait/sigwaitinfo. */
export function siginfoBuffer(): Uint8Array {
  return new Uint8Array(SIGINFO_BYTES);
}

export function decodeSiginfo(buf: Uint8Array): SigInfo {
  if (buf.length < 32) throw new RangeError(`siginfo: ${buf.length} bytes, need at least 32`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    signo: v.getInt32(OFF_SIGNO, true),
    errno: v.getInt32(OFF_ERRNO, true),
    code: v.getInt32(OFF_CODE, true),
    addr: v.getBigUint64(OFF_ADDR, true),
    addrLsb: v.getInt16(OFF_ADDR_LSB, true),
    pid: v.getInt32(OFF_PID, true),
    uid: v.getUint32(OFF_UID, true),
  };
}

/**
 * A siginfo_t for a fault signal (si_addr, si_addr_lsb): what tests queue to a thread with
 * rt_tgsigqueueinfo to stand in for the kernel's SIGBUS.
 */
export function encodeFaultSiginfo(signo: number, code: number, addr: bigint, addrLsb = 0): Uint8Array {
  const buf = siginfoBuffer();
  const v = new DataView(buf.buffer);
  v.setInt32(OFF_SIGNO, signo, true);
  v.setInt32(OFF_ERRNO, 0, true);
  v.setInt32(OFF_CODE, code, true);
  v.setBigUint64(OFF_ADDR, addr, true);
  v.setInt16(OFF_ADDR_LSB, addrLsb, true);
  return buf;
}

/** A hardware memory error reported by SIGBUS. */
export interface MemoryErrorSignal {
  /** BUS_MCEERR_AR: the receiving thread consumed the poison and cannot go on without action. */
  actionRequired: boolean;
  /** Host virtual address of the start of the poisoned block (si_addr). */
  hostAddress: bigint;
  /** Size of the poisoned block in bytes (1 << si_addr_lsb; 4096 when the kernel gave no size). */
  size: number;
}

/**
 * The memory error a siginfo reports, or null when it is not one (another signal, or a SIGBUS
 * with another si_code such as BUS_ADRERR: a plain bus error, not a hardware memory failure).
 */
export function memoryErrorOf(info: SigInfo): MemoryErrorSignal | null {
  if (info.signo !== SIGBUS) return null;
  if (info.code !== BUS_MCEERR_AR && info.code !== BUS_MCEERR_AO) return null;
  const lsb = info.addrLsb > 0 && info.addrLsb < 48 ? info.addrLsb : 12;
  const size = 2 ** lsb;
  // si_addr is the faulting address rounded down by the kernel; round again for safety.
  const hostAddress = info.addr & ~(BigInt(size) - 1n);
  return { actionRequired: info.code === BUS_MCEERR_AR, hostAddress, size };
}

const BUS_CODE_NAMES: Readonly<Record<number, string>> = {
  [BUS_ADRALN]: 'BUS_ADRALN',
  [BUS_ADRERR]: 'BUS_ADRERR',
  [BUS_OBJERR]: 'BUS_OBJERR',
  [BUS_MCEERR_AR]: 'BUS_MCEERR_AR',
  [BUS_MCEERR_AO]: 'BUS_MCEERR_AO',
};

/** "SIGBUS BUS_MCEERR_AR addr=0x7f… lsb=12", for logs and error messages. */
export function describeSiginfo(info: SigInfo): string {
  if (info.signo === SIGBUS) {
    const name = BUS_CODE_NAMES[info.code] ?? `si_code=${info.code}`;
    const lsb = info.code === BUS_MCEERR_AR || info.code === BUS_MCEERR_AO ? ` lsb=${info.addrLsb}` : '';
    return `SIGBUS ${name} addr=0x${info.addr.toString(16)}${lsb}`;
  }
  return `signal ${info.signo} si_code=${info.code}`;
}
