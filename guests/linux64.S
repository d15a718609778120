; linux64: a minimal kernel image in the Linux x86 boot protocol (bzImage) format.
; Assembled as a flat binary: [boot sector][SETUP_SECTS setup sectors][protected-mode part].
; Entries (the protected-mode part is loaded at 0x100000):
;   0x100200  64-bit boot protocol: long mode, identity paging, RSI = boot_params
;   0x100000  32-bit boot protocol (code32_start): flat protected mode, ESI = boot_params;
;             builds its own page tables and enters long mode
;   setup+0x200  real mode (what QEMU's option ROM runs): builds a zero page with the
;             BIOS e820 map and enters the 32-bit entry
; Prints "linux64: cmdline=<cmdline>", the e820 table, then resets through the i8042.

%define TEXT_SECTION pmlib                 ; library code, after the entry points
%define RODATA_SECTION pmdata

%define LOAD_ADDRESS    0x100000
%define SETUP_SECTS     1
%define LOADED_HIGH     0x01
%define XLF_KERNEL_64   0x0001
%define COMMAND_LINE_SIZE 2047
%define ZERO_PAGE       0x1000          ; real-mode path: zero page at setup base + this
%define SMAP            0x534d4150      ; "SMAP"
%define BP_E820_ENTRIES 0x1e8
%define BP_E820_TABLE   0x2d0
%define BOOT_CS32       0x10            ; same selectors as Linux's boot GDT
%define BOOT_DS         0x18
%define BOOT_CS64       0x08
%define MSR_EFER        0xc0000080
%define EFER_LME        0x100

; ---- boot sector and setup sectors ----
section setup start=0 vstart=0
bits 16
    times 0x1f1 - ($ - $$) db 0
setup_header:
    db SETUP_SECTS                      ; 0x1f1 setup_sects
    dw 0                                ; 0x1f2 root_flags
    dd ((pm_end - pm_start) + (pmlib_end - pmlib_start) + (pmdata_end - pmdata_start) + 15) / 16 ; 0x1f4 syssize
    dw 0                                ; 0x1f8 ram_size
    dw 0xffff                           ; 0x1fa vid_mode (normal)
    dw 0                                ; 0x1fc root_dev
    dw 0xaa55                           ; 0x1fe boot_flag
    jmp short realmode_entry            ; 0x200 jump
    db "HdrS"                           ; 0x202 header
    dw 0x020f                           ; 0x206 version 2.15
    dd 0                                ; 0x208 realmode_swtch
    dw 0x1000                           ; 0x20c start_sys_seg (obsolete)
    dw kernel_version - 0x200           ; 0x20e kernel_version
    db 0                                ; 0x210 type_of_loader
    db LOADED_HIGH                      ; 0x211 loadflags
    dw 0                                ; 0x212 setup_move_size
    dd LOAD_ADDRESS                     ; 0x214 code32_start
    dd 0                                ; 0x218 ramdisk_image
    dd 0                                ; 0x21c ramdisk_size
    dd 0                                ; 0x220 bootsect_kludge
    dw 0                                ; 0x224 heap_end_ptr
    db 0                                ; 0x226 ext_loader_ver
    db 0                                ; 0x227 ext_loader_type
    dd 0                                ; 0x228 cmd_line_ptr
    dd 0x7fffffff                       ; 0x22c initrd_addr_max
    dd 0x100000                         ; 0x230 kernel_alignment
    db 0                                ; 0x234 relocatable_kernel
    db 20                               ; 0x235 min_alignment (log2)
    dw XLF_KERNEL_64                    ; 0x236 xloadflags
    dd COMMAND_LINE_SIZE                ; 0x238 cmdline_size
    dd 0                                ; 0x23c hardware_subarch
    dq 0                                ; 0x240 hardware_subarch_data
    dd 0                                ; 0x248 payload_offset
    dd 0                                ; 0x24c payload_length
    dq 0                                ; 0x250 setup_data
    dq LOAD_ADDRESS                     ; 0x258 pref_address
    dd pm_bss_end - LOAD_ADDRESS        ; 0x260 init_size
    dd 0                                ; 0x264 handover_offset
    dd 0                                ; 0x268 kernel_info_offset
setup_header_end:
    times setup_header_end - setup_header - (0x26c - 0x1f1) db 0  ; fails if the header grew

; Real-mode entry: CS = setup segment + 0x20, DS = ES = SS = setup segment.
; Addresses below are offsets from the setup base, so data goes through DS.
realmode_entry:
    cli
    cld
    mov ax, ds
    mov es, ax
    mov ss, ax
    mov sp, 0xe000
    mov di, ZERO_PAGE                   ; a clean zero page beside the setup code
    mov cx, 2048
    xor ax, ax
    rep stosw
    mov si, setup_header
    mov di, ZERO_PAGE + setup_header
    mov cx, setup_header_end - setup_header
    rep movsb

    xor ebx, ebx                        ; BIOS e820: int 15h, ax = e820h
    mov di, ZERO_PAGE + BP_E820_TABLE
    xor bp, bp
.e820:
    mov eax, 0xe820
    mov edx, SMAP
    mov ecx, 20
    int 0x15
    jc .e820_done
    cmp eax, SMAP
    jne .e820_done
    inc bp
    add di, 20
    cmp bp, 128
    jae .e820_done
    test ebx, ebx
    jnz .e820
.e820_done:
    mov ax, bp
    mov [ZERO_PAGE + BP_E820_ENTRIES], al

    cli
    xor eax, eax
    mov ax, ds
    shl eax, 4
    lea esi, [eax + ZERO_PAGE]          ; boot_params for the 32-bit entry
    add eax, rm_gdt
    mov [rm_gdtr + 2], eax
    o32 lgdt [rm_gdtr]
    mov eax, cr0
    or al, 1                            ; CR0.PE
    mov cr0, eax
    mov ax, BOOT_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    jmp dword BOOT_CS32:LOAD_ADDRESS

align 8
rm_gdt:
    dq 0
    dq 0
    dq 0x00cf9b000000ffff               ; 0x10: 32-bit code, flat
    dq 0x00cf93000000ffff               ; 0x18: data, flat
rm_gdtr:
    dw 4 * 8 - 1
    dd 0                                ; filled in: linear address of rm_gdt

kernel_version:
    db "nodevisor linux64 test kernel", 0

    times (SETUP_SECTS + 1) * 512 - ($ - $$) db 0

; ---- protected-mode part, loaded at LOAD_ADDRESS ----
section pm follows=setup vstart=LOAD_ADDRESS
section pmlib follows=pm vfollows=pm align=16
section pmdata follows=pmlib vfollows=pmlib align=16
section pmbss nobits follows=pmdata align=16
section pmlib
pmlib_start:
section pmdata
pmdata_start:

bits 64
%include "lib/serial.inc"
%include "lib/reset.inc"

section pm
bits 32
pm_start:
startup_32:                             ; code32_start: 32-bit boot protocol
    jmp startup_32_body
    times 0x200 - ($ - pm_start) db 0

bits 64
startup_64:                             ; LOAD_ADDRESS + 0x200: 64-bit boot protocol
    cli
    cld
    mov rsp, pm_stack_top
    mov rbx, rsi
    PRINT "linux64: cmdline="
    call print_boot_params
    jmp i8042_reset

%include "lib/bootparams.inc"

section pm
bits 32
; 32-bit entry: own GDT, identity-map the first 4 GiB with 2 MiB pages, enter long mode.
startup_32_body:
    cli
    cld
    lgdt [pm_gdtr]
    jmp BOOT_CS32:.flat
.flat:
    mov ax, BOOT_DS
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, pm_stack_top
    push esi

    mov edi, pml4                       ; zero PML4, PDPT and four PDs
    mov ecx, 6 * 4096 / 4
    xor eax, eax
    rep stosd
    mov dword [pml4], pdpt + 0x3        ; present, writable
    mov dword [pdpt + 0], pd + 0x0000 + 0x3
    mov dword [pdpt + 8], pd + 0x1000 + 0x3
    mov dword [pdpt + 16], pd + 0x2000 + 0x3
    mov dword [pdpt + 24], pd + 0x3000 + 0x3
    mov edi, pd
    mov eax, 0x83                       ; present, writable, 2 MiB page
    xor edx, edx                        ; high dword (4 GiB = 0x1_0000_0000 needs none)
    mov ecx, 2048
.pde:
    mov [edi], eax
    mov [edi + 4], edx
    add eax, 0x200000
    add edi, 8
    dec ecx
    jnz .pde

    mov eax, cr4
    or eax, 0x20                        ; CR4.PAE
    mov cr4, eax
    mov eax, pml4
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME
    wrmsr
    mov eax, cr0
    or eax, 0x80000001                  ; CR0.PG | CR0.PE
    mov cr0, eax
    pop esi
    jmp BOOT_CS64:.long
bits 64
.long:
    mov esi, esi                        ; upper halves are undefined after the switch
    jmp startup_64
align 16
pm_end:

section pmlib
align 16
pmlib_end:

section pmdata
align 8
pm_gdt:
    dq 0
    dq 0x00af9b000000ffff               ; 0x08: 64-bit code
    dq 0x00cf9b000000ffff               ; 0x10: 32-bit code
    dq 0x00cf93000000ffff               ; 0x18: data
pm_gdtr:
    dw 4 * 8 - 1
    dd pm_gdt
align 16
pmdata_end:

section pmbss
alignb 4096
pml4: resb 4096
pdpt: resb 4096
pd:   resb 4 * 4096
pm_stack:
    resb 8192
pm_stack_top:
pm_bss_end:
