; acpi-sleep: ACPI S3 suspend, the wake-up at the firmware waking vector, the power button
; and S4, driven the way an OS does it through the fixed hardware registers.
;
; The 32-bit part finds the FADT (lib/acpi.inc) and the FACS, copies a real-mode wake stub
; to WAKE_VECTOR, stores the PM ports in the stub's parameter block, sets the FACS
; firmware waking vector, clears WAK_STS and writes SLP_TYP=S3|SLP_EN to PM1a_CNT.
; The stub runs at the vector after the wake-up (CS:IP = 0x0700:0000, as nodevisor and
; SeaBIOS under QEMU enter it), reports WAK_STS, enables the power button, polls for it
; with interrupts off, then asks for S4.
;
; The stub's parameters live inside the stub, not below it: SeaBIOS's POST stack grows down
; from 0x7000 (BUILD_STACK_ADDR), and firmware may run on it before it jumps to the vector.
;
; SLP_TYP for S3 and S4 is taken as 1 and 2, what the DSDT's \_S3_ and \_S4_ say on QEMU's
; PIIX4 and on nodevisor.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/acpi.inc"

%define WAKE_VECTOR         0x7000          ; physical; real-mode CS:IP = 0x0700:0000
%define WAKE_STACK_TOP      WAKE_VECTOR     ; the stub's stack grows down below it
; After a sleep request the VMM stops the vCPU asynchronously; give it this long before
; saying the request did nothing (PM timer ticks, or loop counts without a PM timer).
%define SETTLE_TICKS        PM_TIMER_HZ     ; 1 s
%define SETTLE_LOOPS        100000

; STUB(label): where a label of the wake stub sits once copied (an offset from CS = 0).
%define STUB(x)             ((x) - wake_stub + WAKE_VECTOR)

section .text

halt:
    cli
    hlt
    jmp halt

PVH_ENTRY
    call acpi_find_fadt
    test esi, esi
    jnz .have_fadt
    PRINT "sleep: no FADT", 10
    jmp halt
.have_fadt:
    call acpi_facs
    test edi, edi
    jnz .have_facs
    PRINT "sleep: no FACS", 10
    jmp halt
.have_facs:
    mov eax, [esi + FADT_PM1A_EVT_BLK]
    mov [pm1_evt], eax
    mov edx, [esi + FADT_PM1A_CNT_BLK]
    mov [pm1_cnt], edx
    mov ecx, [esi + FADT_PM_TMR_BLK]
    mov [pm_tmr], ecx
    test eax, eax
    jz .no_pm1
    test edx, edx
    jnz .have_pm1
.no_pm1:
    PRINT "sleep: no PM1a blocks", 10
    jmp halt

.have_pm1:
    ; The stub and its parameters, where the waking vector points.
    xor ecx, ecx
.copy:
    mov al, [wake_stub + ecx]
    mov [WAKE_VECTOR + ecx], al
    inc ecx
    cmp ecx, wake_stub_end - wake_stub
    jb .copy
    mov ax, [pm1_evt]
    mov [STUB(wake_pm1_evt)], ax
    mov ax, [pm1_cnt]
    mov [STUB(wake_pm1_cnt)], ax
    mov ax, [pm_tmr]
    mov [STUB(wake_pm_tmr)], ax

    ; The 32-bit vector, and no 64-bit one (the firmware would prefer it), as Linux does.
    mov dword [edi + FACS_FIRMWARE_WAKING_VECTOR], WAKE_VECTOR
    cmp dword [edi + FACS_LENGTH], FACS_X_FIRMWARE_WAKING_VECTOR + 8
    jbe .vector_set
    cmp byte [edi + FACS_VERSION], 1
    jb .vector_set
    mov dword [edi + FACS_X_FIRMWARE_WAKING_VECTOR], 0
    mov dword [edi + FACS_X_FIRMWARE_WAKING_VECTOR + 4], 0
.vector_set:

    mov edx, [pm1_cnt]
    call enable_acpi                ; ESI = FADT
    PRINT "sleep: entering S3", 10
    push edx
    mov edx, [pm1_evt]              ; PM1_STS
    mov ax, WAK_STS                 ; write 1 to clear
    out dx, ax
    pop edx
    in ax, dx
    and ax, ~(SLP_TYP_MASK | SLP_EN)
    or ax, (SLP_TYP_S3 << SLP_TYP_SHIFT) | SLP_EN
    out dx, ax

    ; Suspended by now on a VMM that implements S3; the wake-up starts over at the vector.
    PM_TIMER_WAIT [pm_tmr], SETTLE_TICKS, SETTLE_LOOPS
    PRINT "sleep: S3 did not suspend", 10
    jmp halt

; The wake stub: real mode, copied to WAKE_VECTOR. Position-dependent through STUB() only
; after the far jump that makes CS = 0; jumps and calls inside it are relative.
section .rodata.wake progbits alloc noexec nowrite align=16
bits 16
wake_stub:
    cli
    cld
    jmp 0:STUB(.flat)               ; CS = 0: offsets are physical addresses below 64 KiB
.flat:
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, WAKE_STACK_TOP
    mov si, STUB(str_woke)
    call puts16

    mov dx, [STUB(wake_pm1_evt)]    ; PM1_STS
    in ax, dx
    mov si, STUB(str_wak_0)
    test ax, WAK_STS
    jz .wak
    mov si, STUB(str_wak_1)
.wak:
    call puts16
    mov ax, 0xffff                  ; clear every status bit
    out dx, ax
    add dx, PM1_EN - PM1_STS
    in ax, dx
    or ax, PWRBTN_EN
    out dx, ax
    sub dx, PM1_EN - PM1_STS
    mov si, STUB(str_waiting)
    call puts16

.poll:                              ; interrupts stay off: the SCI is never taken
    in ax, dx
    test ax, PWRBTN_STS
    jz .poll
    mov si, STUB(str_button)
    call puts16
    mov ax, PWRBTN_STS
    out dx, ax

    mov si, STUB(str_s4)
    call puts16
    mov dx, [STUB(wake_pm1_cnt)]
    in ax, dx
    and ax, ~(SLP_TYP_MASK | SLP_EN)
    or ax, (SLP_TYP_S4 << SLP_TYP_SHIFT) | SLP_EN
    out dx, ax

    PM_TIMER_WAIT [STUB(wake_pm_tmr)], SETTLE_TICKS, SETTLE_LOOPS
    mov si, STUB(str_s4_failed)
    call puts16
.halt:
    cli
    hlt
    jmp .halt

; puts16: DS:SI = NUL-terminated string, out over COM1 polling LSR.THRE before each byte.
puts16:
    push ax
    push dx
    push si
.next:
    lodsb
    test al, al
    jz .done
    mov ah, al
    mov dx, COM1_BASE + UART_LSR
.wait:
    in al, dx
    test al, UART_LSR_THRE
    jz .wait
    mov al, ah
    mov dx, COM1_BASE + UART_TX
    out dx, al
    jmp .next
.done:
    pop si
    pop dx
    pop ax
    ret

str_woke:       db "sleep: woke", 10, 0
str_wak_0:      db "sleep: WAK_STS 0", 10, 0
str_wak_1:      db "sleep: WAK_STS 1", 10, 0
str_waiting:    db "sleep: waiting for the power button", 10, 0
str_button:     db "sleep: power button", 10, 0
str_s4:         db "sleep: entering S4", 10, 0
str_s4_failed:  db "sleep: S4 did not power off", 10, 0

; Parameters, filled in by the 32-bit part after the copy (I/O port numbers, 0 = none).
align 2
wake_pm1_evt:   dw 0
wake_pm1_cnt:   dw 0
wake_pm_tmr:    dw 0
wake_stub_end:
bits 32

section .bss
alignb 4
pm1_evt: resd 1
pm1_cnt: resd 1
pm_tmr: resd 1
