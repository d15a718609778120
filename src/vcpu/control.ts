/**
 * The words a vCPU thread and the main thread share. The main thread writes REQ and rings
 * DOORBELL; the worker writes STATE. Both sides use Atomics, so neither ever misses a change:
 * a worker inside KVM_RUN is also sent KICK_SIGNAL, which makes KVM_RUN return EINTR.
 */
export const REQ = 0; //      requested: RUN, PAUSE, QUIT
export const STATE = 1; //    actual: STARTING, RUNNING, PAUSED, EXITED
export const DOORBELL = 2; // bumped after REQ changes or a command is posted
export const TID = 3; //      the worker's kernel thread id (for tgkill)
export const EXITS = 4; //    exits handled since start (statistics)
export const KICKS = 5; //    EINTR returns from KVM_RUN
export const NMI = 6; //      1: inject an NMI before running again (set by main, then a kick)
export const CONTROL_WORDS = 8;

export const RUN = 0;
export const PAUSE = 1;
export const QUIT = 2;

export const STARTING = 0;
export const RUNNING = 1;
export const PAUSED = 2;
export const EXITED = 3;

/** SIGRTMIN on glibc: unused by Node and libuv, blocked in vCPU threads outside KVM_RUN. */
export const KICK_SIGNAL = 34;
