/**
 * Why the VM shut down or reset: the `reason` of the SHUTDOWN and RESET events.
 */

/** QEMU's ShutdownCause, in QEMU's order: isGuestCause depends on it, as QEMU's does. */
export const SHUTDOWN_CAUSES = [
  'none',
  'host-error',
  'host-qmp-quit',
  'host-qmp-system-reset',
  'host-signal',
  'host-ui',
  'guest-shutdown',
  'guest-reset',
  'guest-panic',
  'subsystem-reset',
  'snapshot-load',
] as const;

export type ShutdownCause = (typeof SHUTDOWN_CAUSES)[number];

/**
 * The `guest` flag of SHUTDOWN and RESET: every cause from `guest-shutdown` on except
 * `subsystem-reset` (QEMU's shutdown_caused_by_guest). That includes `snapshot-load`, as in QEMU.
 */
export function isGuestCause(cause: ShutdownCause): boolean {
  return SHUTDOWN_CAUSES.indexOf(cause) >= SHUTDOWN_CAUSES.indexOf('guest-shutdown') && cause !== 'subsystem-reset';
}
