; memsize: prints the PVH memory map and command line, sums RAM below 4 GiB and
; checks that the last word of the highest RAM range below 4 GiB holds a pattern.
bits 32
%include "lib/pvh.inc"
%include "lib/serial.inc"
%include "lib/reset.inc"

%define E820_RAM      1
%define PROBE_PATTERN 0x5aa5c33c

PVH_ENTRY
    mov ebp, ebx                    ; hvm_start_info
    cmp dword [ebp + HVM_START_INFO_MAGIC], HVM_START_MAGIC
    je .magic_ok
    PRINT "memsize: bad start_info magic", 10
    jmp i8042_reset
.magic_ok:
    xor eax, eax
    mov [ram_below_4g], eax
    mov [ram_below_4g + 4], eax
    mov [top_below_4g], eax
    mov [top_below_4g + 4], eax

    ; memmap_paddr is a u64; it sits below 4 GiB in practice and must here (paging off).
    mov esi, [ebp + HVM_START_INFO_MEMMAP]
    mov ecx, [ebp + HVM_START_INFO_MEMMAP_COUNT]
    cmp dword [ebp + HVM_START_INFO_VERSION], 1
    jae .entry
    xor ecx, ecx                    ; version 0 has no memmap
.entry:
    test ecx, ecx
    jz .entries_done
    PRINT "memmap: "
    mov eax, [esi]
    mov edx, [esi + 4]
    call print_hex64
    PRINT " "
    mov eax, [esi + 8]
    mov edx, [esi + 12]
    call print_hex64
    PRINT " "
    mov eax, [esi + 16]
    call print_dec
    PRINT 10
    cmp dword [esi + 16], E820_RAM
    jne .next
    cmp dword [esi + 4], 0
    jne .next                       ; starts at or above 4 GiB
    ; end = addr + size, clipped to 4 GiB; EDX:EAX
    mov eax, [esi]
    mov edx, [esi + 4]
    add eax, [esi + 8]
    adc edx, [esi + 12]
    test edx, edx
    jz .end_ok
    mov eax, 0                      ; clip: end = 1_0000_0000
    mov edx, 1
.end_ok:
    ; track the highest end
    cmp edx, [top_below_4g + 4]
    jb .add
    ja .new_top
    cmp eax, [top_below_4g]
    jbe .add
.new_top:
    mov [top_below_4g], eax
    mov [top_below_4g + 4], edx
.add:
    sub eax, [esi]
    sbb edx, 0
    add [ram_below_4g], eax
    adc [ram_below_4g + 4], edx
.next:
    add esi, HVM_MEMMAP_ENTRY_SIZE
    dec ecx
    jmp .entry

.entries_done:
    PRINT "memsize: ram below 4G = "
    mov eax, [ram_below_4g]
    mov edx, [ram_below_4g + 4]
    call print_hex64
    PRINT 10

    PRINT "cmdline: "
    mov esi, [ebp + HVM_START_INFO_CMDLINE]
    test esi, esi
    jz .no_cmdline
    call serial_puts
.no_cmdline:
    PRINT 10

    mov eax, [top_below_4g]
    mov edx, [top_below_4g + 4]
    or edx, eax
    jz .bad                         ; no RAM at all
    sub eax, 4                      ; last word (end 4 GiB wraps to 0xfffffffc)
    mov ebx, [eax]                  ; keep the old contents
    mov dword [eax], PROBE_PATTERN
    cmp dword [eax], PROBE_PATTERN
    jne .bad
    not dword [eax]
    cmp dword [eax], ~PROBE_PATTERN
    jne .bad
    mov [eax], ebx
    PRINT "memsize: top of ram ok", 10
    jmp i8042_reset
.bad:
    PRINT "memsize: top of ram bad", 10
    jmp i8042_reset

section .bss
alignb 8
ram_below_4g: resq 1
top_below_4g: resq 1
