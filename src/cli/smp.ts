/**
 * `-smp`: QEMU 7.2's topology arithmetic (machine_parse_smp_config) for the `pc` machine, which
 * knows dies but not clusters, prefers cores over sockets, and allows 255 CPUs.
 * The arithmetic is on C `unsigned`, so products wrap at 2^32 as in QEMU.
 */
import { OptsSyntaxError } from './opts-error.js';

export const MAX_CPUS = 255;

export interface SmpTopology {
  cpus: number;
  maxCpus: number;
  sockets: number;
  dies: number;
  cores: number;
  threads: number;
}

/** The QAPI members of SMPConfiguration, in the order QEMU visits them. */
const SMP_KEYS = ['cpus', 'sockets', 'dies', 'clusters', 'cores', 'threads', 'maxcpus'] as const;
type SmpKey = (typeof SMP_KEYS)[number];

/** QEMU's qemu_strtoi64 with base 0 (so `0x10` and `010` work), the whole string. */
function parseQapiInt(key: string, text: string): bigint {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (m === null || m[2] === undefined) throw new OptsSyntaxError(`Parameter 'smp.${key}' expects integer`);
  const digits = m[2];
  const magnitude = /^0[0-7]+$/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const value = m[1] === '-' ? -magnitude : magnitude;
  if (value < -(1n << 63n) || value >= 1n << 63n) {
    throw new OptsSyntaxError(`Parameter 'smp.${key}' expects integer`);
  }
  return value;
}

const u32 = (v: number): number => v >>> 0;
const mul = (...xs: number[]): number => xs.reduce((a, b) => Math.imul(a, b) >>> 0, 1);
/** C unsigned division; a zero divisor (only from wrapped products) gives 0 instead of SIGFPE. */
const div = (a: number, b: number): number => (b === 0 ? 0 : Math.floor(a / b));

/**
 * The merged `-smp` keyval values → topology. Throws OptsSyntaxError with QEMU's message
 * (QEMU prints these without the option's location). Warnings are returned without prefix.
 */
export function resolveSmp(values: ReadonlyMap<string, string>): { topology: SmpTopology; warnings: string[] } {
  const given = new Map<SmpKey, number>();
  for (const key of SMP_KEYS) {
    const text = values.get(key);
    if (text !== undefined) given.set(key, u32(Number(BigInt.asUintN(32, parseQapiInt(key, text)))));
  }
  for (const key of values.keys()) {
    if (!(SMP_KEYS as readonly string[]).includes(key)) {
      throw new OptsSyntaxError(`Parameter 'smp.${key}' is unexpected`);
    }
  }
  const warnings: string[] = [];
  if ([...given.values()].some((v) => v === 0)) {
    warnings.push(
      'warning: Deprecated CPU topology (considered invalid): CPU topology parameters must be greater than zero',
    );
  }
  let cpus = given.get('cpus') ?? 0;
  let sockets = given.get('sockets') ?? 0;
  let dies = given.get('dies') ?? 0;
  const clusters = given.get('clusters') ?? 0;
  let cores = given.get('cores') ?? 0;
  let threads = given.get('threads') ?? 0;
  let maxCpus = given.get('maxcpus') ?? 0;

  if (clusters > 1) throw new OptsSyntaxError("clusters not supported by this machine's CPU topology");
  dies = dies > 0 ? dies : 1;

  if (cpus === 0 && maxCpus === 0) {
    sockets = sockets > 0 ? sockets : 1;
    cores = cores > 0 ? cores : 1;
    threads = threads > 0 ? threads : 1;
  } else {
    maxCpus = maxCpus > 0 ? maxCpus : cpus;
    if (cores === 0) {
      sockets = sockets > 0 ? sockets : 1;
      threads = threads > 0 ? threads : 1;
      cores = div(maxCpus, mul(sockets, dies, threads));
    } else if (sockets === 0) {
      threads = threads > 0 ? threads : 1;
      sockets = div(maxCpus, mul(dies, cores, threads));
    }
    if (threads === 0) threads = div(maxCpus, mul(sockets, dies, cores));
  }
  maxCpus = maxCpus > 0 ? maxCpus : mul(sockets, dies, cores, threads);
  cpus = cpus > 0 ? cpus : maxCpus;

  const hierarchy = `sockets (${sockets}) * dies (${dies}) * cores (${cores}) * threads (${threads})`;
  if (mul(sockets, dies, cores, threads) !== maxCpus) {
    throw new OptsSyntaxError(
      `Invalid CPU topology: product of the hierarchy must match maxcpus: ${hierarchy} != maxcpus (${maxCpus})`,
    );
  }
  if (maxCpus < cpus) {
    throw new OptsSyntaxError(
      'Invalid CPU topology: maxcpus must be equal to or greater than smp: ' +
        `${hierarchy} == maxcpus (${maxCpus}) < smp_cpus (${cpus})`,
    );
  }
  if (maxCpus > MAX_CPUS) {
    // QEMU prints the unsigned count with %d.
    throw new OptsSyntaxError(
      `Invalid SMP CPUs ${maxCpus | 0}. The max CPUs supported by machine 'pc' is ${MAX_CPUS}`,
    );
  }
  return { topology: { cpus, maxCpus, sockets, dies, cores, threads }, warnings };
}

/** `-smp help`: the keys, as QEMU lists them. */
export function smpHelpText(): string {
  return `smp-opts options:\n${[...SMP_KEYS].sort().map((k) => `  ${k}=<num>\n`).join('')}`;
}
