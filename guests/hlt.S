; hlt: a vCPU asleep in the kernel for good (interrupts off), for kick/pause tests.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"

PVH_ENTRY
    PRINT "hlt: halting", 10
.sleep:
    cli
    hlt
    jmp .sleep
