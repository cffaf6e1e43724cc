/* Fixture: imports storport.sys!StorPortFoo, which Windows 7 SP1 does not export;
 * the loader must refuse it by name (Windows: Code 39). */
#include "ntdef.h"
__declspec(dllimport) ULONG NTAPI StorPortFoo(PVOID Ext);
NTSTATUS NTAPI DriverEntry(PVOID DriverObject, PVOID RegistryPath)
{
    (void)RegistryPath;
    return (NTSTATUS)StorPortFoo(DriverObject);
}
