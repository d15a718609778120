/**
 * `-device DRIVER[,prop=value,...]`: the devices nodevisor adds to its PC on request, pvpanic
 * and ib700, both on the ISA bus. As in QEMU 7.2, the option is read when it is met (its id is
 * checked then), help is given after all options are read, and each device is created in
 * command-line order once the machine exists: driver, bus, properties in order, then realize.
 */
import type { DeviceConfig } from '../machine/config.js';
import { OptsSyntaxError } from './opts-error.js';
import { propertyLine } from './property-help.js';
import { checkId, firstId } from './qemu-id.js';
import { isHelpOption, parseQemuOpts } from './qemu-opts.js';
import { parseUintProperty } from './qemu-values.js';

/** QEMU's default pvpanic port. */
export const PVPANIC_IOPORT = 0x505;

/** Drivers QEMU puts on a PCI bus, which nodevisor does not have. */
const PCI_DRIVERS: ReadonlySet<string> = new Set(['i6300esb', 'pvpanic-pci']);

/** The name of nodevisor's (and QEMU's pc) only ISA bus, which `bus=` may name. */
const ISA_BUS = 'isa.0';

/** Properties of QEMU's that nodevisor does not implement, by driver. */
const QEMU_ONLY: Readonly<Record<string, readonly string[]>> = { pvpanic: ['events'], ib700: [] };

/** A `-device` as read, before the machine exists. */
export interface PendingDevice {
  /** `driver` and the properties, in order, the last value of each kept. */
  values: Map<string, string>;
  id: string | undefined;
  loc: string;
}

/**
 * Reads a `-device` argument. `ids`: the ids of the `-device`s before it. `warnings` gets
 * QEMU's short-form boolean warnings.
 */
export function parseDeviceOption(text: string, loc: string, ids: ReadonlySet<string>, warnings: string[]): PendingDevice {
  const id = firstId(text);
  checkId(id);
  if (id !== undefined && ids.has(id)) throw new OptsSyntaxError(`Duplicate ID '${id}' for device`);
  // Without a description QemuOpts drops `id` and keeps any key, `help` included.
  const { values } = parseQemuOpts(text, 'driver', undefined, warnings);
  return { values, id, loc };
}

export type DeviceHelp =
  | { kind: 'text'; text: string }
  /** QEMU prints this on stderr and still exits 0. */
  | { kind: 'not-found'; message: string };

/** `-device help` or `-device DRIVER,help`, when this device asks for help. */
export function deviceHelp(d: PendingDevice): DeviceHelp | undefined {
  const driver = d.values.get('driver');
  if (driver === undefined) return undefined;
  if (isHelpOption(driver)) return { kind: 'text', text: deviceListText() };
  if (!d.values.has('help') && !d.values.has('?')) return undefined;
  switch (driver) {
    case 'pvpanic':
      return { kind: 'text', text: `pvpanic options:\n${propertyLine('ioport', 'uint16', ` (default: ${PVPANIC_IOPORT})`)}` };
    case 'ib700':
      return { kind: 'text', text: 'There are no options for ib700.\n' };
  }
  if (PCI_DRIVERS.has(driver)) throw noPciBus(driver);
  return { kind: 'not-found', message: `Device '${driver}' not found` };
}

/** `-device help`: nodevisor's devices, by category, in QEMU's layout. */
function deviceListText(): string {
  return 'Misc devices:\nname "pvpanic", bus ISA\n\nWatchdog devices:\nname "ib700", bus ISA, desc "iBASE 700"\n';
}

function noPciBus(driver: string): OptsSyntaxError {
  return new OptsSyntaxError(`No 'PCI' bus found for device '${driver}' (nodevisor has no PCI bus)`);
}

/** Creates one device after those already made, with QEMU's error when it cannot be. */
export function createDevice(d: PendingDevice, made: readonly DeviceConfig[]): DeviceConfig {
  const driver = d.values.get('driver');
  if (driver === undefined) throw new OptsSyntaxError("Parameter 'driver' is missing");
  if (driver !== 'pvpanic' && driver !== 'ib700' && !PCI_DRIVERS.has(driver)) {
    throw new OptsSyntaxError(`'${driver}' is not a valid device model name`);
  }
  const bus = d.values.get('bus');
  if (bus !== undefined && bus !== ISA_BUS) throw new OptsSyntaxError(`Bus '${bus}' not found`);
  if (driver !== 'pvpanic' && driver !== 'ib700') throw noPciBus(driver);

  let ioport = PVPANIC_IOPORT;
  for (const [name, value] of d.values) {
    if (name === 'driver' || name === 'bus') continue;
    if (driver === 'pvpanic' && name === 'ioport') {
      ioport = parseUintProperty(name, value, 16, 'device');
      continue;
    }
    if (QEMU_ONLY[driver]?.includes(name) === true) {
      throw new OptsSyntaxError(`property '${name}' is not supported by nodevisor`);
    }
    throw new OptsSyntaxError(`Property '${driver}.${name}' not found`);
  }

  if (driver === 'ib700') return { driver };
  // QEMU's pvpanic publishes its port in fw_cfg under one fixed name, so a second one fails.
  if (made.some((m) => m.driver === 'pvpanic')) {
    throw new OptsSyntaxError('duplicate fw_cfg file name: etc/pvpanic-port');
  }
  return { driver, ioport };
}
