/*
 * pe_export_gate: the generic export gate (see export_gate.h). A per-import stub puts the
 * import's pe_export_desc in r11 (x64) / eax (x86) and jumps here; the return address
 * and the arguments are the driver's, on its kernel stack. The gate
 *   1. saves what the Windows convention calls nonvolatile and it uses, on the kernel
 *      stack (x64: rbp rbx r12 = 24 bytes + the home area the caller provided;
 *      x86: ebp ebx esi edi = 16 bytes);
 *   2. asks pe_gate_state_get() (NTAPI, so it clobbers nothing the gate needs) for the
 *      thread's host-stack top and the end of the kernel stack;
 *   3. switches to the host stack and copies the arguments into PE_GATE_SLOTS slots
 *      there: x64 rcx rdx r8 r9 and a fixed window of stack slots; x86 the stdcall
 *      argument bytes, or a fixed window for cdecl. Never reading past the end of the
 *      kernel stack; what is cut off reads as 0;
 *   4. x64 only: saves rsi, rdi, xmm6-xmm15 (nonvolatile for Windows, volatile for the
 *      SysV C code called next) on the host stack;
 *   5. calls pe_export_host_call(desc, slots, kernel_sp) (host C convention);
 *   6. returns to the driver on its kernel stack with EDX:EAX / RAX, popping the
 *      descriptor's pop_bytes (x86 stdcall: `ret N`).
 * When the thread is not on its kernel stack (state 0) the same happens below the
 * current stack pointer.
 * Offsets: PE_DESC_* and PE_GATE_* of export_gate.h (checked by _Static_assert there).
 */
#if defined(__x86_64__)
#define DESC_COPY	0
#define DESC_POP	8
#define ST_HOST_TOP	0
#define ST_STACK_HI	8
#define NSLOTS		16
#define REGSLOTS	4
#define SAVE_RSI	(NSLOTS * 8)		/* 128 */
#define SAVE_RDI	(SAVE_RSI + 8)
#define SAVE_XMM	(SAVE_RSI + 16)		/* 144: 16-aligned */
#define HOST_FRAME	(SAVE_XMM + 10 * 16)	/* 304: a multiple of 16 */
	.text
	.globl	pe_export_gate
	.type	pe_export_gate, @function
pe_export_gate:			/* r11 = desc; rcx rdx r8 r9; 8(%rsp) home area; 40(%rsp) stack args */
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	movq	%rcx, 16(%rbp)		/* the home area is the callee's (Microsoft x64 ABI) */
	movq	%rdx, 24(%rbp)
	movq	%r8, 32(%rbp)
	movq	%r9, 40(%rbp)
	pushq	%rbx
	.cfi_rel_offset %rbx, -8
	pushq	%r12
	.cfi_rel_offset %r12, -16
	movq	%r11, %rbx		/* desc */
	subq	$32, %rsp		/* home area of the NTAPI call; rsp 16-aligned */
	call	pe_gate_state_get@PLT
	addq	$32, %rsp
	movq	ST_HOST_TOP(%rax), %r12
	movq	ST_STACK_HI(%rax), %r10
	testq	%r12, %r12
	jnz	1f
	leaq	-128(%rsp), %r12	/* not on a kernel stack: stay, below this frame */
1:	andq	$-16, %r12
	leaq	-HOST_FRAME(%r12), %rsp	/* on the host stack now */
	movq	%rsi, SAVE_RSI(%rsp)
	movq	%rdi, SAVE_RDI(%rsp)
	movaps	%xmm6, SAVE_XMM+0(%rsp)
	movaps	%xmm7, SAVE_XMM+16(%rsp)
	movaps	%xmm8, SAVE_XMM+32(%rsp)
	movaps	%xmm9, SAVE_XMM+48(%rsp)
	movaps	%xmm10, SAVE_XMM+64(%rsp)
	movaps	%xmm11, SAVE_XMM+80(%rsp)
	movaps	%xmm12, SAVE_XMM+96(%rsp)
	movaps	%xmm13, SAVE_XMM+112(%rsp)
	movaps	%xmm14, SAVE_XMM+128(%rsp)
	movaps	%xmm15, SAVE_XMM+144(%rsp)
	movq	16(%rbp), %rax		/* slots 0-3: rcx rdx r8 r9 */
	movq	%rax, 0(%rsp)
	movq	24(%rbp), %rax
	movq	%rax, 8(%rsp)
	movq	32(%rbp), %rax
	movq	%rax, 16(%rsp)
	movq	40(%rbp), %rax
	movq	%rax, 24(%rsp)
	/* slots 4..: copy_bytes from 48(%rbp), not past the end of the kernel stack (r10) */
	movq	DESC_COPY(%rbx), %rcx
	leaq	48(%rbp), %rsi
	testq	%r10, %r10
	jz	3f
	movq	%r10, %rax
	subq	%rsi, %rax		/* bytes left above the arguments */
	jae	2f
	xorl	%eax, %eax
2:	andq	$-8, %rax
	cmpq	%rax, %rcx
	jbe	3f
	movq	%rax, %rcx
3:	xorl	%edx, %edx
4:	cmpq	%rcx, %rdx
	jae	5f
	movq	(%rsi,%rdx), %rax
	movq	%rax, REGSLOTS*8(%rsp,%rdx)
	addq	$8, %rdx
	jmp	4b
5:	cmpq	$((NSLOTS - REGSLOTS) * 8), %rdx
	jae	6f
	movq	$0, REGSLOTS*8(%rsp,%rdx)
	addq	$8, %rdx
	jmp	5b
6:	movq	%rbx, %rdi		/* desc */
	movq	%rsp, %rsi		/* slots */
	leaq	-16(%rbp), %rdx		/* kernel_sp: our saved rbx/r12 are the lowest live bytes */
	call	pe_export_host_call@PLT	/* rax = result */
	movq	SAVE_RSI(%rsp), %rsi
	movq	SAVE_RDI(%rsp), %rdi
	movaps	SAVE_XMM+0(%rsp), %xmm6
	movaps	SAVE_XMM+16(%rsp), %xmm7
	movaps	SAVE_XMM+32(%rsp), %xmm8
	movaps	SAVE_XMM+48(%rsp), %xmm9
	movaps	SAVE_XMM+64(%rsp), %xmm10
	movaps	SAVE_XMM+80(%rsp), %xmm11
	movaps	SAVE_XMM+96(%rsp), %xmm12
	movaps	SAVE_XMM+112(%rsp), %xmm13
	movaps	SAVE_XMM+128(%rsp), %xmm14
	movaps	SAVE_XMM+144(%rsp), %xmm15
	leaq	-16(%rbp), %rsp		/* back on the kernel stack */
	popq	%r12
	.cfi_restore %r12
	popq	%rbx
	.cfi_restore %rbx
	popq	%rbp
	.cfi_restore %rbp
	.cfi_def_cfa %rsp, 8
	ret				/* Microsoft x64: the caller pops */
	.cfi_endproc
	.size	pe_export_gate, .-pe_export_gate

#elif defined(__i386__)
#define DESC_COPY	0
#define DESC_POP	4
#define ST_HOST_TOP	0
#define ST_STACK_HI	4
#define NSLOTS		16
#define HOST_FRAME	(NSLOTS * 4 + 16)	/* slots + 4 argument words: 80, 16-aligned */
	.text
	.globl	pe_export_gate
	.type	pe_export_gate, @function
pe_export_gate:			/* eax = desc; 4(%esp) arguments; ESP only 4-aligned */
	.cfi_startproc
	pushl	%ebp
	.cfi_adjust_cfa_offset 4
	.cfi_rel_offset %ebp, 0
	movl	%esp, %ebp
	.cfi_def_cfa_register %ebp
	pushl	%ebx
	.cfi_rel_offset %ebx, -4
	pushl	%esi
	.cfi_rel_offset %esi, -8
	pushl	%edi
	.cfi_rel_offset %edi, -12
	movl	%eax, %ebx		/* desc */
	call	pe_gate_state_get	/* stdcall, no arguments: eax; clobbers ecx edx */
	movl	ST_HOST_TOP(%eax), %edi
	movl	ST_STACK_HI(%eax), %esi
	testl	%edi, %edi
	jnz	1f
	leal	-64(%esp), %edi		/* not on a kernel stack: stay, below this frame */
1:	andl	$-16, %edi
	leal	-HOST_FRAME(%edi), %esp	/* on the host stack now; 16-aligned */
	/* 16(%esp): copy_bytes from 8(%ebp), not past the end of the kernel stack (esi) */
	movl	DESC_COPY(%ebx), %ecx
	leal	8(%ebp), %eax
	testl	%esi, %esi
	jz	3f
	movl	%esi, %edx
	subl	%eax, %edx		/* bytes left above the arguments */
	jae	2f
	xorl	%edx, %edx
2:	andl	$-4, %edx
	cmpl	%edx, %ecx
	jbe	3f
	movl	%edx, %ecx
3:	xorl	%edx, %edx
4:	cmpl	%ecx, %edx
	jae	5f
	movl	(%eax,%edx), %esi
	movl	%esi, 16(%esp,%edx)
	addl	$4, %edx
	jmp	4b
5:	cmpl	$(NSLOTS * 4), %edx
	jae	6f
	movl	$0, 16(%esp,%edx)
	addl	$4, %edx
	jmp	5b
6:	movl	%ebx, 0(%esp)		/* desc */
	leal	16(%esp), %eax
	movl	%eax, 4(%esp)		/* slots */
	leal	-12(%ebp), %eax
	movl	%eax, 8(%esp)		/* kernel_sp: our saved registers are the lowest live bytes */
	call	pe_export_host_call	/* edx:eax = result */
	/* Return popping pop_bytes (stdcall `ret N`): the return address moves up over
	 * the argument bytes, then the saved registers come back. */
	movl	DESC_POP(%ebx), %ecx
	addl	%ebp, %ecx		/* the return address goes to 4(%ecx) */
	movl	4(%ebp), %esi
	movl	%esi, 4(%ecx)
	movl	-4(%ebp), %ebx
	.cfi_restore %ebx
	movl	-8(%ebp), %esi
	.cfi_restore %esi
	movl	-12(%ebp), %edi
	.cfi_restore %edi
	movl	0(%ebp), %ebp
	.cfi_restore %ebp
	.cfi_def_cfa %ecx, 8
	leal	4(%ecx), %esp		/* back on the kernel stack */
	.cfi_def_cfa %esp, 4
	ret
	.cfi_endproc
	.size	pe_export_gate, .-pe_export_gate
#else
#error "unsupported architecture"
#endif
	.section .note.GNU-stack,"",@progbits
