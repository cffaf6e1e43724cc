/*
 * catlist.exe: lists a security catalog's members through wintrust, the API Windows'
 * own code uses (CryptCATOpen / CryptCATEnumerateMember), for
 * tests/checks/19a-catalog-wine.sh. A test tool run under Wine (mk/wine.mk), not part of
 * the package.
 *
 *   catlist.exe CATALOG [FILE...]
 *
 * Output, one line each:
 *   member <reference tag> subject <SIP GUID> version <cert version> data <subject OID>
 *          algo <digest OID> digest <HEX>
 *   calchash <FILE> <HEX>      CryptCATAdminCalcHashFromFileHandle of FILE (Wine 8 returns
 *                              a flat SHA-1 even for PE images: informational only)
 *   members <N>
 * Exit: 0 listed (N may be 0), 1 CryptCATOpen failed (FAIL line with the error).
 */
#include <windows.h>
#include <wincrypt.h>
#include <wintrust.h>
#include <mscat.h>
#include <stdio.h>

static void PrintHex(const BYTE *p, DWORD n)
{
    DWORD i;
    for (i = 0; i < n; i++)
        printf("%02X", p[i]);
}

int wmain(int argc, wchar_t **argv)
{
    HANDLE cat;
    CRYPTCATMEMBER *m = NULL;
    unsigned count = 0;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: catlist.exe CATALOG [FILE...]\n");
        return 2;
    }
    cat = CryptCATOpen(argv[1], CRYPTCAT_OPEN_EXISTING, 0, 0, 0);
    if (cat == INVALID_HANDLE_VALUE || cat == NULL) {
        printf("FAIL CryptCATOpen: error 0x%08lX\n", (unsigned long)GetLastError());
        return 1;
    }
    while ((m = CryptCATEnumerateMember(cat, m)) != NULL) {
        const GUID *g = &m->gSubjectType;
        printf("member %ls subject {%08lX-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X} version %lu",
               m->pwszReferenceTag ? m->pwszReferenceTag : L"(none)", (unsigned long)g->Data1,
               g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3],
               g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7], (unsigned long)m->dwCertVersion);
        if (m->pIndirectData) {
            printf(" data %s algo %s digest ",
                   m->pIndirectData->Data.pszObjId ? m->pIndirectData->Data.pszObjId : "(none)",
                   m->pIndirectData->DigestAlgorithm.pszObjId ? m->pIndirectData->DigestAlgorithm.pszObjId : "(none)");
            PrintHex(m->pIndirectData->Digest.pbData, m->pIndirectData->Digest.cbData);
        } else {
            printf(" data (none)");
        }
        printf("\n");
        count++;
    }
    for (i = 2; i < argc; i++) {
        BYTE hash[64];
        DWORD n = sizeof(hash);
        HANDLE f = CreateFileW(argv[i], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
        if (f == INVALID_HANDLE_VALUE) {
            printf("FAIL open %ls: error 0x%08lX\n", argv[i], (unsigned long)GetLastError());
            continue;
        }
        if (CryptCATAdminCalcHashFromFileHandle(f, &n, hash, 0)) {
            printf("calchash %ls ", argv[i]);
            PrintHex(hash, n);
            printf("\n");
        } else {
            printf("FAIL CryptCATAdminCalcHashFromFileHandle %ls: error 0x%08lX\n", argv[i],
                   (unsigned long)GetLastError());
        }
        CloseHandle(f);
    }
    printf("members %u\n", count);
    CryptCATClose(cat);
    return 0;
}
