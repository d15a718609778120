/**
 * `-cpu MODEL[,+feat][,-feat][,feat=on|off][,feat]`, as QEMU 7.2 reads an x86 CPU string
 * (x86_cpu_parse_featurestr): no `,,` escape; `feat` alone means on; `_` in a `feat=` name is
 * `-`; and the legacy `+feat`/`-feat` win over `feat=`, with `-feat` winning over `+feat`.
 * Feature names are not checked here: that needs the CPUID table. `hv-crash` is taken out:
 * in QEMU it is a property of the CPU, not a CPUID feature bit (the crash MSRs a guest reports
 * a panic through), so it goes to CpuConfig.hvCrash.
 */
import type { CpuConfig } from '../machine/config.js';
import { OptsSyntaxError } from './opts-error.js';
import { isHelpOption, parseBool } from './qemu-opts.js';

/**
 * Models nodevisor accepts. Under KVM, QEMU's `max` takes the host's CPUID just as `host`
 * does, so both mean the same here.
 */
const MODELS: ReadonlySet<string> = new Set(['host', 'max']);

/** The Hyper-V crash MSRs: a CPU property in QEMU (exactly this name, also after `+`/`-`). */
const HV_CRASH = 'hv-crash';

export type CpuOption = { kind: 'help' } | { kind: 'cpu'; cpu: CpuConfig; warnings: string[] };

export function parseCpuOption(text: string): CpuOption {
  if (text === '') throw new OptsSyntaxError('-cpu option cannot be empty');
  // Only the whole argument asks for help: `-cpu help,x` looks for a model named "help".
  if (isHelpOption(text)) return { kind: 'help' };
  const [model = '', ...items] = text.split(',');
  if (!MODELS.has(model)) throw new OptsSyntaxError(`unable to find CPU model '${model}'`);

  const assigned: Array<{ name: string; enabled: boolean }> = [];
  const plus: string[] = [];
  const minus: string[] = [];
  const warnings: string[] = [];
  let ambiguous = false;
  for (const item of items) {
    if (item === '') continue; // strtok skips empty fields
    if (item.startsWith('+')) {
      plus.push(item.slice(1));
      continue;
    }
    if (item.startsWith('-')) {
      minus.push(item.slice(1));
      continue;
    }
    const eq = item.indexOf('=');
    const name = (eq === -1 ? item : item.slice(0, eq)).replaceAll('_', '-');
    const value = eq === -1 ? 'on' : item.slice(eq + 1);
    for (const [sign, list] of [['+', plus], ['-', minus]] as const) {
      if (list.includes(name)) {
        warnings.push(`warning: Ambiguous CPU model string. Don't mix both "${sign}${name}" and "${name}=${value}"`);
        ambiguous = true;
      }
    }
    let enabled: boolean;
    try {
      enabled = parseBool(name, value);
    } catch (e) {
      // QEMU reports a bad value when it applies the feature as a global property.
      if (!(e instanceof OptsSyntaxError)) throw e;
      throw new OptsSyntaxError(`can't apply global host-x86_64-cpu.${name}=${value}: ${e.message}`);
    }
    assigned.push({ name, enabled });
  }
  if (ambiguous) {
    warnings.push("warning: Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions");
  }
  // In order, so that applying the list front to back (last wins) gives QEMU's precedence.
  const edits = [
    ...assigned,
    ...plus.map((name) => ({ name, enabled: true })),
    ...minus.map((name) => ({ name, enabled: false })),
  ];
  const cpu: CpuConfig = { model: 'host', features: edits.filter((f) => f.name !== HV_CRASH) };
  const hvCrash = edits.findLast((f) => f.name === HV_CRASH);
  if (hvCrash !== undefined) cpu.hvCrash = hvCrash.enabled;
  return { kind: 'cpu', cpu, warnings };
}

export function cpuHelpText(): string {
  return (
    'Available CPUs:\n' +
    'x86 host                  processor with all supported host features\n' +
    'x86 max                   the same as host under KVM\n'
  );
}
