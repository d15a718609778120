; acpi: finds the ACPI tables the way an OS does (scan the BIOS area for the RSDP, follow
; the XSDT or RSDT, check every checksum), prints what it finds, then asks for S5 (soft off)
; through PM1a_CNT. A VMM that implements it powers off; otherwise the guest says so and
; resets.
;
; SLP_TYP for S5 is taken as 0, what the DSDT's \_S5_ says on both QEMU's PIIX4 and
; nodevisor (reading it would need an AML interpreter).
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"
%include "lib/acpi.inc"

%define SIG_APIC            'APIC'

; MADT
%define MADT_ENTRIES        44
%define MADT_LOCAL_APIC     0
%define MADT_LAPIC_FLAGS    4
%define LAPIC_ENABLED       1

%define POWER_OFF_WAIT      100000

section .text

; print_table: ESI = table. Prints "ACPI: SIG" and " bad checksum" if it does not sum to
; zero; no newline. ZF as check_table.
print_table:
    push eax
    push ecx
    push esi
    PRINT "ACPI: "
    mov ecx, 4
.sig:
    mov al, [esi]
    call serial_putc
    inc esi
    dec ecx
    jnz .sig
    pop esi
    call check_table
    jz .ok
    PRINT " bad checksum"
    or ecx, 1                       ; PRINT does not keep flags
    jmp .out
.ok:
    xor ecx, ecx                    ; sets ZF
.out:
    pop ecx
    pop eax
    ret

; count_cpus: ESI = MADT. EAX = enabled local APIC entries.
count_cpus:
    push ebx
    push ecx
    push edx
    xor eax, eax
    lea ebx, [esi + MADT_ENTRIES]
    mov edx, esi
    add edx, [esi + SDT_LENGTH]
.entry:
    cmp ebx, edx
    jae .done
    movzx ecx, byte [ebx + 1]       ; entry length
    test ecx, ecx
    jz .done                        ; malformed: stop rather than loop
    cmp byte [ebx], MADT_LOCAL_APIC
    jne .next
    test dword [ebx + MADT_LAPIC_FLAGS], LAPIC_ENABLED
    jz .next
    inc eax
.next:
    add ebx, ecx
    jmp .entry
.done:
    pop edx
    pop ecx
    pop ebx
    ret

; show_fadt: ESI = FADT. Remembers it and prints the DSDT it points to (X_DSDT if present).
show_fadt:
    push esi
    mov [fadt], esi
    cmp dword [esi + SDT_LENGTH], FADT_X_DSDT_END
    jb .legacy
    cmp dword [esi + FADT_X_DSDT + 4], 0
    jne .legacy                     ; above 4 GiB: unreachable without paging
    cmp dword [esi + FADT_X_DSDT], 0
    je .legacy
    mov esi, [esi + FADT_X_DSDT]
    jmp .print
.legacy:
    mov esi, [esi + FADT_DSDT]
.print:
    call print_table
    PRINT 10
    pop esi
    ret

; show_entry: ESI = a table listed by the root table.
show_entry:
    push eax
    call print_table
    jnz .newline                    ; do not trust a table with a bad checksum
    cmp dword [esi], SIG_APIC
    jne .not_apic
    PRINT " cpus="
    call count_cpus
    call print_dec
    jmp .newline
.not_apic:
    cmp dword [esi], SIG_FACP
    jne .newline
    PRINT 10
    call show_fadt
    jmp .out
.newline:
    PRINT 10
.out:
    pop eax
    ret

PVH_ENTRY
    mov dword [fadt], 0
    call find_rsdp
    test esi, esi
    jnz rsdp_found
    PRINT "ACPI: no RSDP", 10
    jmp i8042_reset

rsdp_found:
    ; ACPI 2.0+: the whole structure sums to zero too, and the XSDT is preferred.
    call acpi_root
    jnc have_root
    PRINT "ACPI: RSDP bad extended checksum", 10
    jmp i8042_reset
have_root:
    PRINT "ACPI: RSDP ok", 10
    mov esi, ebx
    cmp [esi], eax
    je .sig_ok
    PRINT "ACPI: root table has a wrong signature", 10
    jmp i8042_reset
.sig_ok:
    call print_table
    PRINT 10
    call check_table
    jnz i8042_reset

    ; Walk the entries: EBX = next entry, EDI = end of the root table.
    mov edi, [esi + SDT_LENGTH]
    add edi, esi
    lea ebx, [esi + SDT_HEADER_SIZE]
next_entry:
    lea eax, [ebx + ebp]
    cmp eax, edi
    ja entries_done
    call acpi_entry
    jnc .low
    PRINT "ACPI: table above 4G", 10
    jmp .skip
.low:
    call show_entry
.skip:
    add ebx, ebp
    jmp next_entry

entries_done:
    mov esi, [fadt]
    test esi, esi
    jnz .have_fadt
    PRINT "ACPI: no FADT", 10
    jmp i8042_reset
.have_fadt:
    mov edx, [esi + FADT_PM1A_CNT_BLK]
    PRINT "ACPI: PM1a_CNT_BLK "
    mov eax, edx
    call print_hex32
    PRINT 10
    call enable_acpi

    PRINT "ACPI: entering S5", 10
    in ax, dx
    and ax, ~(SLP_TYP_MASK | SLP_EN)
    or ax, (SLP_TYP_S5 << SLP_TYP_SHIFT) | SLP_EN
    out dx, ax

    ; Powered off by now on a VMM that implements S5.
    mov ecx, POWER_OFF_WAIT
.wait:
    dec ecx
    jnz .wait
    PRINT "ACPI: still running after S5", 10
    jmp i8042_reset

section .bss
alignb 4
fadt: resd 1
