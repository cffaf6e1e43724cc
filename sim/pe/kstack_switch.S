/*
 * pe_stack_switch_call(stack_top, fn, arg): calls fn(arg, old_sp) (host C convention)
 * with the stack pointer set to stack_top (16-byte aligned), then restores the caller's
 * stack. old_sp is the caller's stack pointer at the switch: everything below it on the
 * old stack is free while fn runs (used to switch back temporarily).
 * The frame pointer keeps the caller's stack, and the CFI below lets debuggers and
 * sanitizer unwinders walk from the driver's stack back into the simulator.
 * Used by kstack.c to run driver code on a Windows-sized kernel stack.
 */
#if defined(__x86_64__)
	.text
	.globl	pe_stack_switch_call
	.type	pe_stack_switch_call, @function
pe_stack_switch_call:			/* rdi = stack_top, rsi = fn, rdx = arg */
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	movq	%rdi, %rsp		/* SysV: rsp 16-aligned before the call */
	movq	%rsi, %rax
	movq	%rdx, %rdi		/* arg */
	movq	%rbp, %rsi		/* old_sp */
	callq	*%rax
	movq	%rbp, %rsp
	popq	%rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
	.size	pe_stack_switch_call, .-pe_stack_switch_call
#elif defined(__i386__)
	.text
	.globl	pe_stack_switch_call
	.type	pe_stack_switch_call, @function
pe_stack_switch_call:			/* cdecl: 4(%esp) stack_top, 8 fn, 12 arg */
	.cfi_startproc
	pushl	%ebp
	.cfi_adjust_cfa_offset 4
	.cfi_rel_offset %ebp, 0
	movl	%esp, %ebp
	.cfi_def_cfa_register %ebp
	movl	8(%ebp), %eax
	movl	12(%ebp), %ecx
	movl	16(%ebp), %edx
	movl	%eax, %esp
	subl	$8, %esp		/* i386 SysV: esp 16-aligned at the call */
	pushl	%ebp			/* old_sp */
	pushl	%edx			/* arg */
	calll	*%ecx
	movl	%ebp, %esp
	popl	%ebp
	.cfi_def_cfa %esp, 4
	ret
	.cfi_endproc
	.size	pe_stack_switch_call, .-pe_stack_switch_call
#else
#error "unsupported architecture"
#endif
	.section .note.GNU-stack,"",@progbits
