; bench-event: on every boot, waits a few milliseconds, prints one byte and resets at once
; through the i8042, so that a VMM without -no-reboot boots it again and again. A harness that
; reads the serial output and a QMP socket times each byte against the RESET event it causes
; (bench/qmp.ts). The byte is 0x1e (ASCII record separator), which no firmware prints. The
; wait keeps one boot's byte and event well apart from the next boot's, so that the harness
; is idle when they arrive. It is timed by the TSC, not by counting loop iterations: code
; with paging off can run a thousand times slower under some hypervisors (PVM) than on bare
; metal.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

%ifndef BENCH_EVENT_WAIT_TSC
  %define BENCH_EVENT_WAIT_TSC 10000000   ; TSC ticks: 3-5 ms at 2-3 GHz
%endif

PVH_ENTRY
    rdtsc                               ; edx:eax = now
    add eax, BENCH_EVENT_WAIT_TSC
    adc edx, 0
    mov esi, eax                        ; edi:esi = when to go on
    mov edi, edx
.wait:
    rdtsc
    cmp edx, edi
    jb .wait
    ja .go
    cmp eax, esi
    jb .wait
.go:
    PRINT 0x1e
    jmp i8042_reset
