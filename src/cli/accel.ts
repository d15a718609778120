/**
 * The KVM accelerator's properties, `-accel kvm,prop=value,...`, read into an AccelConfig the
 * way QEMU 7.2 sets them on its kvm-accel object: one at a time in command-line order, the
 * first bad one ending the run. What needs the host (a dirty ring no bigger than KVM allows,
 * notify VM exits being available) is the machine's to check when it creates the VM.
 */
import { DEFAULT_ACCEL, type AccelConfig } from '../machine/config.js';
import { OptsSyntaxError } from './opts-error.js';
import { propertyLine } from './property-help.js';
import { parseEnumProperty, parseUintProperty } from './qemu-values.js';

const NOTIFY_VMEXIT = ['run', 'internal-error', 'disable'] as const;
const KERNEL_IRQCHIP = ['on', 'off', 'split'] as const;

/** kvm-accel properties of QEMU's that nodevisor does not implement. */
const QEMU_ONLY: ReadonlySet<string> = new Set(['kvm-shadow-mem']);

/** What an `introspection=` id names, if anything: `introspection`, `secret`, ... */
export type ObjectTypeOf = (id: string) => string | undefined;

/** QEMU's defaults, in an AccelConfig of its own to set properties on. */
export function defaultAccel(): AccelConfig {
  return { ...DEFAULT_ACCEL };
}

/**
 * Sets one property of `accel`, with QEMU's message when it is wrong. `introspection=` is a
 * link, resolved as it is set (as QEMU resolves links), against the `-object`s given.
 */
export function setKvmAccelProperty(accel: AccelConfig, name: string, value: string, typeOf: ObjectTypeOf): void {
  switch (name) {
    case 'notify-vmexit':
      accel.notifyVmexit = parseEnumProperty(name, value, NOTIFY_VMEXIT);
      accel.notifyVmexitRequested = true;
      return;
    case 'notify-window':
      accel.notifyWindow = parseUintProperty(name, value, 32, 'accel');
      accel.notifyVmexitRequested = true;
      return;
    case 'kernel-irqchip':
      accel.kernelIrqchip = parseEnumProperty(name, value, KERNEL_IRQCHIP);
      return;
    case 'dirty-ring-size': {
      const entries = parseUintProperty(name, value, 32, 'accel');
      // Bitwise on a uint32 is exact: ToInt32 keeps all 32 bits.
      if ((entries & (entries - 1)) !== 0) throw new OptsSyntaxError('dirty-ring-size must be a power of two.');
      accel.dirtyRingSize = entries;
      return;
    }
    case 'introspection': {
      const type = typeOf(value);
      if (type === undefined) throw new OptsSyntaxError(`Property 'kvm-accel.introspection' can't find value '${value}'`);
      if (type !== 'introspection') {
        throw new OptsSyntaxError("Invalid parameter type for 'introspection', expected: introspection");
      }
      accel.introspection = value;
      return;
    }
  }
  if (QEMU_ONLY.has(name)) throw new OptsSyntaxError(`property '${name}' is not supported by nodevisor`);
  throw new OptsSyntaxError(`Property 'kvm-accel.${name}' not found`);
}

/**
 * `-machine kernel-irqchip=`: QEMU turns it into a global property of kvm-accel, applied when
 * the accelerator object is made, so before (and under) any `-accel kvm,kernel-irqchip=`.
 */
export function applyKernelIrqchipGlobal(accel: AccelConfig, value: string): void {
  try {
    accel.kernelIrqchip = parseEnumProperty('kernel-irqchip', value, KERNEL_IRQCHIP);
  } catch (e) {
    if (!(e instanceof OptsSyntaxError)) throw e;
    throw new OptsSyntaxError(`can't apply global kvm-accel.kernel-irqchip=${value}: ${e.message}`);
  }
}

/**
 * `-accel kvm,help`: the properties nodevisor implements, laid out as QEMU lists an object's
 * properties (`-object TYPE,help`). QEMU 7.2 itself has no such list (it fails with
 * "Property 'kvm-accel.help' not found"); main.ts adds this host's capabilities after it.
 */
export function kvmAccelHelpText(): string {
  return (
    'kvm-accel options:\n' +
    propertyLine('dirty-ring-size', 'uint32', 'entries in each vCPU\'s dirty page ring, a power of two (default: 0, the dirty bitmap)') +
    propertyLine('introspection', 'string', 'id of the -object introspection that inspects the guest') +
    propertyLine('kernel-irqchip', 'on|off|split', 'interrupt controllers in KVM (on), absent (off), or split (default: on)') +
    propertyLine('notify-vmexit', 'NotifyVMexitOption', 'on a notify VM exit: run, internal-error, or disable the exit (default: run)') +
    propertyLine('notify-window', 'uint32', 'cycles without an interrupt window before a notify VM exit (default: 0)')
  );
}
