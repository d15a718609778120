/** Resolves once a machine's serial output (from now on) contains `text`; rejects after `ms`. */
import type { Machine } from '../machine/machine.js';

export function waitForSerial(m: Machine, text: string, ms = 10_000): Promise<void> {
  let out = '';
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      m.events.off('serial', onSerial);
      reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(out)}`));
    }, ms);
    const onSerial = (b: Uint8Array): void => {
      out += Buffer.from(b).toString('latin1');
      if (!out.includes(text)) return;
      clearTimeout(timer);
      m.events.off('serial', onSerial);
      resolve();
    };
    m.events.on('serial', onSerial);
  });
}
