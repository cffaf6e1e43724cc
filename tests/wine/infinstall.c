/*
 * infinstall.exe: install an INF through setupapi (run under Wine by
 * tests/checks/51a-wine-inf-install.sh). A test tool, not part of the driver package:
 * it uses mingw-w64's SDK headers and links setupapi.
 *
 *   infinstall services INF [HWID]      [Version] lines, the model of HWID (default
 *                                        PCI\VEN_1AF4&DEV_1042) in the NTamd64 models
 *                                        section, then SetupInstallServicesFromInfSection
 *                                        on <install section>.Services
 *   infinstall device INF HWID [HWID..]  phantom device with these hardware IDs,
 *                                        registered (DIF_REGISTERDEVICE), compatible-
 *                                        driver list from this INF only, best driver
 *                                        selected, SetupDiInstallDevice
 *   infinstall match INF HWID [HWID..]   the same up to the driver list, no install
 *
 * Output: "key: value" lines; a failing setupapi call prints
 *   "FAIL <call>: error 0xXXXXXXXX (<name>)"
 * and the tool exits 1. Exit 3: `match`/`device` found no compatible driver. Exit 2:
 * usage. What setupapi reports about the installed device is printed for the log only:
 * the check reads the registry itself (system.reg), setupapi's own view is not trusted.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <setupapi.h>
#include <stdio.h>
#include <wchar.h>

static const char *err_name(DWORD e)
{
    switch (e) {
    case ERROR_SUCCESS: return "ERROR_SUCCESS";
    case ERROR_FILE_NOT_FOUND: return "ERROR_FILE_NOT_FOUND";
    case ERROR_PATH_NOT_FOUND: return "ERROR_PATH_NOT_FOUND";
    case ERROR_INVALID_PARAMETER: return "ERROR_INVALID_PARAMETER";
    case ERROR_INVALID_DATA: return "ERROR_INVALID_DATA";
    case ERROR_NO_MORE_ITEMS: return "ERROR_NO_MORE_ITEMS";
    case ERROR_INSUFFICIENT_BUFFER: return "ERROR_INSUFFICIENT_BUFFER";
    case ERROR_SERVICE_EXISTS: return "ERROR_SERVICE_EXISTS";
    case ERROR_EXPECTED_SECTION_NAME: return "ERROR_EXPECTED_SECTION_NAME";
    case ERROR_BAD_SECTION_NAME_LINE: return "ERROR_BAD_SECTION_NAME_LINE";
    case ERROR_GENERAL_SYNTAX: return "ERROR_GENERAL_SYNTAX";
    case ERROR_WRONG_INF_STYLE: return "ERROR_WRONG_INF_STYLE";
    case ERROR_SECTION_NOT_FOUND: return "ERROR_SECTION_NOT_FOUND";
    case ERROR_LINE_NOT_FOUND: return "ERROR_LINE_NOT_FOUND";
    case ERROR_NO_ASSOCIATED_CLASS: return "ERROR_NO_ASSOCIATED_CLASS";
    case ERROR_CLASS_MISMATCH: return "ERROR_CLASS_MISMATCH";
    case ERROR_NO_DRIVER_SELECTED: return "ERROR_NO_DRIVER_SELECTED";
    case ERROR_INVALID_CLASS: return "ERROR_INVALID_CLASS";
    case ERROR_DEVINST_ALREADY_EXISTS: return "ERROR_DEVINST_ALREADY_EXISTS";
    case ERROR_BAD_SERVICE_INSTALLSECT: return "ERROR_BAD_SERVICE_INSTALLSECT";
    case ERROR_NO_ASSOCIATED_SERVICE: return "ERROR_NO_ASSOCIATED_SERVICE";
    case ERROR_NO_COMPAT_DRIVERS: return "ERROR_NO_COMPAT_DRIVERS";
    default: return "?";
    }
}

static int fail(const char *call)
{
    DWORD e = GetLastError();
    printf("FAIL %s: error 0x%08lX (%s)\n", call, (unsigned long)e, err_name(e));
    fflush(stdout);
    return 1;
}

/* Wide strings are printed as UTF-8 (the INF is ASCII anyway). */
static void put(const char *key, const WCHAR *val)
{
    char buf[2048];
    if (!WideCharToMultiByte(CP_UTF8, 0, val, -1, buf, sizeof(buf), NULL, NULL))
        buf[0] = 0;
    printf("%s: %s\n", key, buf);
}

static void put_multisz(const char *key, const WCHAR *val)
{
    for (; val && *val; val += wcslen(val) + 1)
        put(key, val);
}

static int open_inf(const WCHAR *path, HINF *out)
{
    UINT errline = 0;
    HINF h = SetupOpenInfFileW(path, NULL, INF_STYLE_WIN4, &errline);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        printf("inf-error-line: %u\n", errline);
        SetLastError(e);
        return fail("SetupOpenInfFile");
    }
    *out = h;
    return 0;
}

/* [Version] as setupapi reads it (strings substituted). */
static void print_version(HINF h)
{
    static const WCHAR *const keys[] = { L"Signature", L"Class", L"ClassGUID", L"Provider",
                                         L"CatalogFile", L"DriverVer" };
    WCHAR val[512];
    unsigned i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "version-%ls", keys[i]);
        if (SetupGetLineTextW(NULL, h, L"Version", keys[i], val, 512, NULL))
            put(key, val);
        else
            printf("%s: <missing, error 0x%08lX>\n", key, (unsigned long)GetLastError());
    }
}

/* The install section of HWID: [Manufacturer] -> models section decorated NTamd64 ->
 * the line whose hardware ID field matches; setupapi then picks the decorated install
 * section (aerovblk_Inst.NTamd64 if it existed). */
static int find_install_section(HINF h, const WCHAR *hwid, WCHAR *inst, DWORD inst_len)
{
    INFCONTEXT mfg, mdl;
    WCHAR models[256], field[256], section[256];
    DWORD n, i;
    int found = 0;

    if (!SetupFindFirstLineW(h, L"Manufacturer", NULL, &mfg))
        return fail("SetupFindFirstLine([Manufacturer])");
    if (!SetupGetStringFieldW(&mfg, 1, models, 256, NULL))
        return fail("SetupGetStringField(models)");
    n = SetupGetFieldCount(&mfg);
    for (i = 2; i <= n; i++) {
        if (SetupGetStringFieldW(&mfg, i, field, 256, NULL) && _wcsnicmp(field, L"NTamd64", 7) == 0) {
            _snwprintf(section, 256, L"%ls.%ls", models, field);
            section[255] = 0;
            found = 1;
            break;
        }
    }
    if (!found) {
        printf("FAIL [Manufacturer]: no NTamd64 decoration\n");
        return 1;
    }
    put("models-section", section);
    if (!SetupFindFirstLineW(h, section, NULL, &mdl))
        return fail("SetupFindFirstLine(models section)");
    do {
        n = SetupGetFieldCount(&mdl);
        for (i = 2; i <= n; i++) {
            if (SetupGetStringFieldW(&mdl, i, field, 256, NULL) && _wcsicmp(field, hwid) == 0) {
                if (!SetupGetStringFieldW(&mdl, 0, field, 256, NULL))
                    return fail("SetupGetStringField(model description)");
                put("model-description", field);
                if (!SetupGetStringFieldW(&mdl, 1, field, 256, NULL))
                    return fail("SetupGetStringField(install section)");
                if (!SetupDiGetActualSectionToInstallW(h, field, inst, inst_len, NULL, NULL))
                    return fail("SetupDiGetActualSectionForDriver");
                put("install-section", inst);
                return 0;
            }
        }
    } while (SetupFindNextLine(&mdl, &mdl));
    put("FAIL no model line for", hwid);
    return 1;
}

static int cmd_services(const WCHAR *inf, const WCHAR *hwid)
{
    HINF h = INVALID_HANDLE_VALUE;
    WCHAR inst[256], svc[300];
    int rc;

    if ((rc = open_inf(inf, &h)))
        return rc;
    print_version(h);
    if ((rc = find_install_section(h, hwid, inst, 256)))
        return rc;
    _snwprintf(svc, 300, L"%ls.Services", inst);
    svc[299] = 0;
    put("services-section", svc);
    if (!SetupInstallServicesFromInfSectionW(h, svc, 0))
        return fail("SetupInstallServicesFromInfSection");
    printf("result: services installed\n");
    SetupCloseInfFile(h);
    return 0;
}

static void print_driver(HDEVINFO set, SP_DEVINFO_DATA *dev, SP_DRVINFO_DATA_W *drv, const char *prefix)
{
    union { SP_DRVINFO_DETAIL_DATA_W d; BYTE raw[8192]; } det;
    char key[64];
    DWORD need = 0;

    snprintf(key, sizeof(key), "%s-description", prefix); put(key, drv->Description);
    snprintf(key, sizeof(key), "%s-manufacturer", prefix); put(key, drv->MfgName);
    snprintf(key, sizeof(key), "%s-provider", prefix); put(key, drv->ProviderName);
    printf("%s-version: 0x%016llx\n", prefix, (unsigned long long)drv->DriverVersion);
    det.d.cbSize = sizeof(det.d);
    if (SetupDiGetDriverInfoDetailW(set, dev, drv, &det.d, sizeof(det), &need)) {
        snprintf(key, sizeof(key), "%s-section", prefix); put(key, det.d.SectionName);
        snprintf(key, sizeof(key), "%s-inf", prefix); put(key, det.d.InfFileName);
        snprintf(key, sizeof(key), "%s-hardware-id", prefix); put(key, det.d.HardwareID);
    } else {
        printf("%s-detail: <error 0x%08lX>\n", prefix, (unsigned long)GetLastError());
    }
}

static int cmd_device(const WCHAR *inf, WCHAR **hwids, int nhwids, int install)
{
    WCHAR full[MAX_PATH], cls[64], multi[2048], buf[1024];
    GUID guid;
    HDEVINFO set;
    SP_DEVINFO_DATA dev;
    SP_DEVINSTALL_PARAMS_W params;
    SP_DRVINFO_DATA_W drv;
    DWORD i, count = 0, len = 0, type;
    HINF h = INVALID_HANDLE_VALUE;
    int k, rc;

    if (!GetFullPathNameW(inf, MAX_PATH, full, NULL))
        return fail("GetFullPathName");
    /* Parse errors first: SetupDiGetINFClass fails on them without setting an error
     * code (Wine 8), and SetupDiBuildDriverInfoList just skips an unreadable INF. */
    if ((rc = open_inf(full, &h)))
        return rc;
    SetupCloseInfFile(h);
    if (!SetupDiGetINFClassW(full, &guid, cls, 64, NULL))
        return fail("SetupDiGetINFClass");
    put("inf-class", cls);
    set = SetupDiCreateDeviceInfoList(&guid, NULL);
    if (set == INVALID_HANDLE_VALUE)
        return fail("SetupDiCreateDeviceInfoList");
    dev.cbSize = sizeof(dev);
    if (!SetupDiCreateDeviceInfoW(set, cls, &guid, NULL, NULL, DICD_GENERATE_ID, &dev))
        return fail("SetupDiCreateDeviceInfo");
    for (k = 0; k < nhwids; k++) {
        size_t l = wcslen(hwids[k]) + 1;
        if (len + l + 1 > sizeof(multi) / sizeof(multi[0])) {
            printf("FAIL too many hardware IDs\n");
            return 2;
        }
        memcpy(multi + len, hwids[k], l * sizeof(WCHAR));
        len += l;
        put("device-hardware-id", hwids[k]);
    }
    multi[len++] = 0;
    if (!SetupDiSetDeviceRegistryPropertyW(set, &dev, SPDRP_HARDWAREID, (BYTE *)multi, len * sizeof(WCHAR)))
        return fail("SetupDiSetDeviceRegistryProperty(SPDRP_HARDWAREID)");
    if (install && !SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, &dev))
        return fail("SetupDiCallClassInstaller(DIF_REGISTERDEVICE)");
    if (SetupDiGetDeviceInstanceIdW(set, &dev, buf, 1024, NULL))
        put("device-instance-id", buf);

    /* Only this INF: DriverPath names the file, DI_ENUMSINGLEINF. */
    params.cbSize = sizeof(params);
    if (!SetupDiGetDeviceInstallParamsW(set, &dev, &params))
        return fail("SetupDiGetDeviceInstallParams");
    params.Flags |= DI_ENUMSINGLEINF;
    wcsncpy(params.DriverPath, full, MAX_PATH - 1);
    params.DriverPath[MAX_PATH - 1] = 0;
    if (!SetupDiSetDeviceInstallParamsW(set, &dev, &params))
        return fail("SetupDiSetDeviceInstallParams");
    if (!SetupDiBuildDriverInfoList(set, &dev, SPDIT_COMPATDRIVER))
        return fail("SetupDiBuildDriverInfoList(SPDIT_COMPATDRIVER)");
    for (i = 0;; i++) {
        char prefix[32];
        drv.cbSize = sizeof(drv);
        if (!SetupDiEnumDriverInfoW(set, &dev, SPDIT_COMPATDRIVER, i, &drv))
            break;
        snprintf(prefix, sizeof(prefix), "candidate%lu", (unsigned long)i);
        print_driver(set, &dev, &drv, prefix);
        count++;
    }
    printf("compatible-drivers: %lu\n", (unsigned long)count);
    if (count == 0) {
        printf("result: no compatible driver\n");
        if (install)
            SetupDiRemoveDevice(set, &dev);
        SetupDiDestroyDeviceInfoList(set);
        return 3;
    }
    if (!install) {
        printf("result: matched\n");
        SetupDiDestroyDeviceInfoList(set);
        return 0;
    }
    if (!SetupDiSelectBestCompatDrv(set, &dev))
        return fail("SetupDiSelectBestCompatDrv");
    /* (SetupDiSetSelectedDriver is not implemented by Wine 8: never call it.) */
    drv.cbSize = sizeof(drv);
    if (!SetupDiGetSelectedDriverW(set, &dev, &drv))
        return fail("SetupDiGetSelectedDriver");
    print_driver(set, &dev, &drv, "selected");
    if (!SetupDiInstallDevice(set, &dev))
        return fail("SetupDiInstallDevice");
    printf("result: device installed\n");
    /* For locating the keys; the check verifies them in the registry itself. */
    if (SetupDiGetDeviceRegistryPropertyW(set, &dev, SPDRP_SERVICE, &type, (BYTE *)buf, sizeof(buf), NULL))
        put("device-service", buf);
    if (SetupDiGetDeviceRegistryPropertyW(set, &dev, SPDRP_DRIVER, &type, (BYTE *)buf, sizeof(buf), NULL))
        put("device-driver-key", buf);
    if (SetupDiGetDeviceRegistryPropertyW(set, &dev, SPDRP_HARDWAREID, &type, (BYTE *)buf, sizeof(buf), NULL))
        put_multisz("device-hardware-id-readback", buf);
    SetupDiDestroyDeviceInfoList(set);
    return 0;
}

int wmain(int argc, WCHAR **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && wcscmp(argv[1], L"services") == 0 && argc <= 4)
        return cmd_services(argv[2], argc == 4 ? argv[3] : L"PCI\\VEN_1AF4&DEV_1042");
    if (argc >= 4 && wcscmp(argv[1], L"device") == 0)
        return cmd_device(argv[2], argv + 3, argc - 3, 1);
    if (argc >= 4 && wcscmp(argv[1], L"match") == 0)
        return cmd_device(argv[2], argv + 3, argc - 3, 0);
    fprintf(stderr, "usage: infinstall services INF [HWID]\n"
                    "       infinstall device INF HWID [HWID...]\n"
                    "       infinstall match INF HWID [HWID...]\n");
    return 2;
}
