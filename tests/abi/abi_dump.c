/* Emits each item of abi_items.h as `const unsigned int abi_<key> = value;` so that
 * compare.py can read the values from the compiler's assembly output (-S), for any
 * target, without running the program. See abi_items.h. */
#if defined(ABI_OURS)
#  include <storport.h>
#  include <scsi.h>
#  include <ntddscsi.h>
#elif defined(ABI_MINGW_KERNEL)
#  include <ntddk.h>
#  include <srb.h>
#  include <scsi.h>
#elif defined(ABI_MINGW_USER)
#  include <windows.h>
#  include <ntddscsi.h>
#  ifndef FIELD_OFFSET
#    define FIELD_OFFSET(T, F) ((long)__builtin_offsetof(T, F))
#  endif
#else
#  error "define ABI_OURS, ABI_MINGW_KERNEL or ABI_MINGW_USER"
#endif
#if defined(ABI_OURS)
#  define ITEM(key, ours, theirs) const unsigned int abi_##key = (unsigned int)(ours);
#else
#  define ITEM(key, ours, theirs) const unsigned int abi_##key = (unsigned int)(theirs);
#endif
#include "abi_items.h"
