/**
 * What every test on real KVM starts with: the test guests built, /dev/kvm usable. When the
 * machine lacks either, the test fails and says why (it is never skipped silently).
 */
import { accessSync, constants } from 'node:fs';
import { buildGuests, guestPath } from './guests.js';

let built: string | null = null;

export function requireKvmGuests(): void {
  if (built === null) {
    const r = buildGuests();
    built = r.ok ? '' : r.reason;
  }
  if (built !== '') throw new Error(`cannot build the test guests: ${built}`);
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    throw new Error('/dev/kvm is missing or not accessible: these tests need KVM (see README, "Requirements")');
  }
}

export function guest(name: string): string {
  requireKvmGuests();
  return guestPath(name);
}
