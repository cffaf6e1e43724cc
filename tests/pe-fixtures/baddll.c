/* Fixture: imports from hal.dll; a StorPort miniport may import only storport.sys. */
#include "ntdef.h"
__declspec(dllimport) VOID NTAPI KeStallExecutionProcessor(ULONG Microseconds);
NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath)
{
    (void)DriverObject; (void)RegistryPath;
    KeStallExecutionProcessor(1);
    return STATUS_SUCCESS;
}
