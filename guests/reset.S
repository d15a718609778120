; reset: counts boots in CMOS byte 0x40 (CMOS survives a reset), prints, resets.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

%define RTC_PORT_INDEX 0x70
%define RTC_PORT_DATA  0x71
%define CMOS_BOOT_COUNT 0x40        ; first byte past the standard RTC/BIOS area

PVH_ENTRY
    mov al, CMOS_BOOT_COUNT
    out RTC_PORT_INDEX, al
    in al, RTC_PORT_DATA
    inc al
    mov bl, al
    mov al, CMOS_BOOT_COUNT
    out RTC_PORT_INDEX, al
    mov al, bl
    out RTC_PORT_DATA, al
    PRINT "reset: boot "
    movzx eax, bl
    call print_dec
    PRINT 10
    jmp i8042_reset
