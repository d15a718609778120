// The PC's legacy devices, for the machine builder.
export { Serial8250 } from './serial-8250.js';
export { I8042 } from './i8042.js';
export { CmosRtc, type CmosRtcOptions } from './cmos-rtc.js';
export {
  PostPort,
  SystemControlPortA,
  SystemControlPortB,
  Dma8237,
  DmaPageRegisters,
  PciConfigStub,
  PC_LEGACY_PORTS,
  type PitChannel2,
} from './legacy-ports.js';
