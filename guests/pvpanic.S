; pvpanic: plays a guest kernel's pvpanic driver on the ISA device (port 0x505): reads the
; events the device supports, reports "crash kernel loaded", then "panicked". The last line
; only appears when the VMM lets a panicked guest run on (panic action `none`).
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"

%define PVPANIC_PORT         0x505
%define PVPANIC_PANICKED     0x01
%define PVPANIC_CRASH_LOADED 0x02

PVH_ENTRY
    mov dx, PVPANIC_PORT
    in al, dx
    movzx ebx, al
    PRINT "pvpanic: events "
    mov eax, ebx
    call print_dec
    PRINT 10

    mov dx, PVPANIC_PORT
    mov al, PVPANIC_CRASH_LOADED
    out dx, al
    PRINT "pvpanic: crash loaded sent", 10

    mov dx, PVPANIC_PORT
    mov al, PVPANIC_PANICKED
    out dx, al
    PRINT "pvpanic: running after panic", 10
.sleep:
    cli
    hlt
    jmp .sleep
