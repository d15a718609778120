/**
 * One client's protocol state: whether it has negotiated capabilities, and which.
 */

/** QEMU's QMPCapability values. */
export const QMP_CAPABILITIES = ['oob'] as const;
export type QmpCapability = (typeof QMP_CAPABILITIES)[number];

export class QmpSession {
  /** `qmp_capabilities` has succeeded: all commands are available and events are sent. */
  negotiated = false;
  /** Out-of-band execution (`exec-oob`) was enabled at negotiation. */
  oob = false;

  /**
   * QEMU offers `oob` on socket monitors only (those with an I/O thread), not on stdio.
   */
  constructor(readonly offered: readonly QmpCapability[] = ['oob']) {}
}
