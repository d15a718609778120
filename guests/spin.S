; spin: a vCPU busy forever without exits, for pause tests.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"

PVH_ENTRY
    PRINT "spin: spinning", 10
    jmp $
