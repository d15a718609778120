; hello: the smallest useful guest. Prints one line and resets.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

PVH_ENTRY
    PRINT "Hello from a nodevisor test guest", 10
    jmp i8042_reset
