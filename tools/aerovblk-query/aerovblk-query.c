/*
 * aerovblk-query: Windows console tool that asks aerovblk adapters for their
 * diagnostics (IOCTL_SCSI_MINIPORT, signature "AEROVBLK", QUERY 0x8000A001) and prints
 * the report, or JSON with --json. Windows 7 SP1 and later, x86 and x64; imports only
 * kernel32 and msvcrt. Building, checking and formatting of the buffers is the shared
 * tools/common/aerovblk_diagfmt.c; this file is discovery, DeviceIoControl and exit codes.
 *
 * Usage and exit codes: see Usage() below and docs/diagnostics.md.
 */
#include <windows.h>
#include <winioctl.h>
#include <ntddscsi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aerovblk_diagfmt.h"

/* The library declares SRB_IO_CONTROL by byte offsets; hold it to the SDK's layout. */
typedef char AssertMiniportIoctl[(IOCTL_SCSI_MINIPORT == AVDIAG_IOCTL_SCSI_MINIPORT) ? 1 : -1];
typedef char AssertSrbIoSize[(sizeof(SRB_IO_CONTROL) == AVDIAG_SRBIO_SIZE) ? 1 : -1];
typedef char AssertSrbIoReturnCode[(offsetof(SRB_IO_CONTROL, ReturnCode) == AVDIAG_SRBIO_OFF_RETURNCODE) ? 1 : -1];
typedef char AssertSrbIoLength[(offsetof(SRB_IO_CONTROL, Length) == AVDIAG_SRBIO_OFF_LENGTH) ? 1 : -1];

/* Exit codes (documented in docs/diagnostics.md and by --help). */
enum {
    EXIT_QUERY_OK = 0,        /* every disk answered with the full aerovblk layout */
    EXIT_QUERY_ERROR = 1,     /* I/O error, or an aerovblk driver rejected the query */
    EXIT_QUERY_USAGE = 2,     /* bad command line */
    EXIT_QUERY_NO_DISK = 3,   /* no aerovblk disk found (--device: missing or not aerovblk) */
    EXIT_QUERY_DENIED = 4,    /* access denied: run from an elevated prompt */
    EXIT_QUERY_OLD_DRIVER = 5 /* an older driver returned the short structure (printed) */
};

#define MAX_INDEX 64u                 /* \\.\Scsi0: .. 63:, \\.\PhysicalDrive0 .. 63 */
#define REQUEST_SIZE (AVDIAG_SRBIO_SIZE + AVDIAG_QUERY_PAYLOAD_LENGTH)

typedef enum QUERY_OUTCOME {
    QUERY_FOUND,          /* an aerovblk reply, decoded into Info */
    QUERY_NO_DEVICE,      /* the path does not exist */
    QUERY_DENIED,         /* open or IOCTL refused: not elevated */
    QUERY_NOT_AEROVBLK,   /* the device did not answer the AEROVBLK query */
    QUERY_FAILED          /* an aerovblk driver rejected the query, or another error */
} QUERY_OUTCOME;

typedef struct QUERY_RESULT {
    QUERY_OUTCOME Outcome;
    DWORD Win32Error;             /* when the outcome came from a failed Win32 call */
    AVDIAG_REPLY Reply;
    AVDIAG_INFO Info;
    char Message[512];            /* why, for NOT_AEROVBLK / FAILED / DENIED */
} QUERY_RESULT;

typedef struct OPTIONS {
    int Json;
    const char *Device;
} OPTIONS;

typedef struct RUN_STATE {
    const OPTIONS *Options;
    unsigned Found;
    unsigned OldDrivers;
    unsigned Errors;
    unsigned Denied;
    BOOL PortReported[MAX_INDEX];
} RUN_STATE;

static void Usage(FILE *out)
{
    fputs("usage: aerovblk-query [--device PATH] [--json] [--help]\n"
          "\n"
          "Prints the diagnostics of every aerovblk virtio-blk disk (run elevated).\n"
          "Without --device it tries \\\\.\\Scsi0: .. \\\\.\\Scsi63: and\n"
          "\\\\.\\PhysicalDrive0 .. \\\\.\\PhysicalDrive63 (each adapter once).\n"
          "\n"
          "  --device PATH  query only PATH, e.g. \\\\.\\Scsi1: or \\\\.\\PhysicalDrive0\n"
          "  --json         one JSON document on stdout (messages still on stderr)\n"
          "  --help         this text\n"
          "\n"
          "Exit codes: 0 ok; 1 error; 2 usage; 3 no aerovblk disk found;\n"
          "            4 access denied (use an elevated prompt);\n"
          "            5 older driver returned the short structure (report printed).\n", out);
}

/* "Windows error 5: Access is denied." into out. */
static void DescribeWin32Error(DWORD error, char *out, size_t outSize)
{
    char text[256];
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                             error, 0, text, sizeof(text), NULL);
    while (n > 0 && (text[n - 1] == '\r' || text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    if (n == 0)
        snprintf(out, outSize, "Windows error %lu", (unsigned long)error);
    else
        snprintf(out, outSize, "Windows error %lu: %s", (unsigned long)error, text);
}

static BOOL IsMissingDeviceError(DWORD error)
{
    return error == ERROR_FILE_NOT_FOUND || error == ERROR_PATH_NOT_FOUND
        || error == ERROR_INVALID_NAME || error == ERROR_BAD_PATHNAME
        || error == ERROR_NOT_READY || error == ERROR_DEV_NOT_EXIST;
}

static HANDLE OpenDevice(const char *path, QUERY_RESULT *result)
{
    char why[300];
    /* IOCTL_SCSI_MINIPORT requires read and write access (FILE_READ|WRITE_ACCESS). */
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                           NULL, OPEN_EXISTING, 0, NULL);
    if (h != INVALID_HANDLE_VALUE)
        return h;
    result->Win32Error = GetLastError();
    DescribeWin32Error(result->Win32Error, why, sizeof(why));
    snprintf(result->Message, sizeof(result->Message), "cannot open %s: %s", path, why);
    if (result->Win32Error == ERROR_ACCESS_DENIED)
        result->Outcome = QUERY_DENIED;
    else if (IsMissingDeviceError(result->Win32Error))
        result->Outcome = QUERY_NO_DEVICE;
    else
        result->Outcome = QUERY_FAILED;
    return INVALID_HANDLE_VALUE;
}

/* The SCSI port number of a disk (= N of \\.\ScsiN:), to report each adapter once. */
static BOOL GetPortNumber(HANDLE h, unsigned *port)
{
    SCSI_ADDRESS address;
    DWORD returned = 0;
    memset(&address, 0, sizeof(address));
    if (!DeviceIoControl(h, IOCTL_SCSI_GET_ADDRESS, NULL, 0, &address, sizeof(address), &returned, NULL)
        || returned < sizeof(address))
        return FALSE;
    *port = address.PortNumber;
    return TRUE;
}

/* Sends QUERY on an open handle and classifies the reply (never reads past what came back). */
static void QueryHandle(HANDLE h, const char *path, QUERY_RESULT *result)
{
    static uint8_t buffer[REQUEST_SIZE];
    DWORD returned = 0;
    size_t size = AvDiagBuildQueryRequest(buffer, sizeof(buffer), AVDIAG_QUERY_PAYLOAD_LENGTH);
    char why[300];
    const char *statusName;

    if (!DeviceIoControl(h, IOCTL_SCSI_MINIPORT, buffer, (DWORD)size, buffer, (DWORD)size,
                         &returned, NULL)) {
        result->Win32Error = GetLastError();
        DescribeWin32Error(result->Win32Error, why, sizeof(why));
        snprintf(result->Message, sizeof(result->Message),
                 "%s did not answer the AEROVBLK query (%s)", path, why);
        result->Outcome = result->Win32Error == ERROR_ACCESS_DENIED ? QUERY_DENIED : QUERY_NOT_AEROVBLK;
        return;
    }
    /* Defensive: if a port reports no byte count, the header's Length still bounds the
     * payload and the zero-filled request makes an ignored request show as EMPTY. */
    if (returned < AVDIAG_SRBIO_SIZE)
        returned = (DWORD)size;
    if (returned > size)
        returned = (DWORD)size;

    switch (AvDiagParseReply(buffer, returned, &result->Reply)) {
    case AVDIAG_REPLY_OK:
        AvDiagDecode(result->Reply.Payload, result->Reply.PayloadLength, &result->Info);
        result->Outcome = QUERY_FOUND;
        return;
    case AVDIAG_REPLY_DRIVER_STATUS:
        statusName = AvDiagNtStatusName(result->Reply.Header.ReturnCode);
        snprintf(result->Message, sizeof(result->Message),
                 "%s: the aerovblk driver rejected the query: ReturnCode 0x%08lX%s%s", path,
                 (unsigned long)result->Reply.Header.ReturnCode, statusName ? " " : "",
                 statusName ? statusName : "");
        result->Outcome = QUERY_FAILED;
        return;
    case AVDIAG_REPLY_TOO_SHORT:
        snprintf(result->Message, sizeof(result->Message),
                 "%s: the aerovblk driver returned only %lu bytes (at least 16 expected)", path,
                 (unsigned long)result->Reply.PayloadLength);
        result->Outcome = QUERY_FAILED;
        return;
    default:
        snprintf(result->Message, sizeof(result->Message), "%s did not answer the AEROVBLK query (%s)",
                 path, AvDiagReplyStatusText(result->Reply.Status));
        result->Outcome = QUERY_NOT_AEROVBLK;
        return;
    }
}

/* Prints one decoded report (text, or a JSON array element) and tallies the outcome. */
static void Report(RUN_STATE *state, const char *path, const QUERY_RESULT *result)
{
    size_t need;
    char *text;

    need = state->Options->Json ? AvDiagFormatJson(&result->Info, path, NULL, 0)
                                : AvDiagFormatText(&result->Info, path, NULL, 0);
    text = (char *)malloc(need + 1);
    if (text == NULL) {
        fprintf(stderr, "aerovblk-query: out of memory\n");
        state->Errors++;
        return;
    }
    if (state->Options->Json) {
        AvDiagFormatJson(&result->Info, path, text, need + 1);
        fputs(state->Found ? ",\n" : "\n", stdout);
    } else {
        AvDiagFormatText(&result->Info, path, text, need + 1);
        if (state->Found)
            fputs("\n", stdout);
    }
    fputs(text, stdout);
    free(text);
    state->Found++;

    if (result->Info.Layout != AVDIAG_LAYOUT_EXTENDED) {
        state->OldDrivers++;
        fprintf(stderr, "aerovblk-query: %s runs an older aerovblk driver that returned the %s "
                "(%lu bytes); fields it does not have are shown as not returned.\n", path,
                result->Info.Layout == AVDIAG_LAYOUT_AERO ? "64-byte Aero structure"
                                                           : "short 16-byte structure",
                (unsigned long)result->Info.Returned);
    }
    if (result->Reply.LengthClamped)
        fprintf(stderr, "aerovblk-query: %s: the reply's Length exceeded the bytes returned; "
                "only the returned bytes were decoded.\n", path);
}

/* One path in discovery mode (portHint >= 0: \\.\ScsiN:, else a physical drive). */
static void Probe(RUN_STATE *state, const char *path, int portHint)
{
    static QUERY_RESULT result;
    unsigned port = 0;
    BOOL havePort;
    HANDLE h;

    memset(&result, 0, sizeof(result));
    h = OpenDevice(path, &result);
    if (h == INVALID_HANDLE_VALUE) {
        if (result.Outcome == QUERY_DENIED)
            state->Denied++;
        return;
    }
    havePort = portHint >= 0 ? (port = (unsigned)portHint, TRUE) : GetPortNumber(h, &port);
    if (havePort && port < MAX_INDEX && state->PortReported[port]) {
        CloseHandle(h);           /* a disk of an adapter already reported */
        return;
    }
    QueryHandle(h, path, &result);
    CloseHandle(h);
    switch (result.Outcome) {
    case QUERY_FOUND:
        if (havePort && port < MAX_INDEX)
            state->PortReported[port] = TRUE;
        Report(state, path, &result);
        break;
    case QUERY_DENIED:
        state->Denied++;
        break;
    case QUERY_FAILED:
        state->Errors++;
        fprintf(stderr, "aerovblk-query: %s\n", result.Message);
        break;
    default:
        break;                    /* not ours: other adapters and disks are normal */
    }
}

static int RunOne(RUN_STATE *state, const char *path)
{
    static QUERY_RESULT result;
    HANDLE h;

    memset(&result, 0, sizeof(result));
    h = OpenDevice(path, &result);
    if (h != INVALID_HANDLE_VALUE) {
        QueryHandle(h, path, &result);
        CloseHandle(h);
    }
    switch (result.Outcome) {
    case QUERY_FOUND:
        Report(state, path, &result);
        return state->Errors ? EXIT_QUERY_ERROR
             : state->OldDrivers ? EXIT_QUERY_OLD_DRIVER : EXIT_QUERY_OK;
    case QUERY_DENIED:
        fprintf(stderr, "aerovblk-query: %s\naerovblk-query: access denied: run this tool from an "
                "elevated (Run as administrator) command prompt.\n", result.Message);
        return EXIT_QUERY_DENIED;
    case QUERY_NOT_AEROVBLK:
    case QUERY_NO_DEVICE:
        fprintf(stderr, "aerovblk-query: %s\naerovblk-query: no aerovblk disk at %s.\n",
                result.Message, path);
        return EXIT_QUERY_NO_DISK;
    default:
        fprintf(stderr, "aerovblk-query: %s\n", result.Message);
        return EXIT_QUERY_ERROR;
    }
}

static int RunDiscovery(RUN_STATE *state)
{
    char path[64];
    unsigned n;

    for (n = 0; n < MAX_INDEX; n++) {
        snprintf(path, sizeof(path), "\\\\.\\Scsi%u:", n);
        Probe(state, path, (int)n);
    }
    for (n = 0; n < MAX_INDEX; n++) {
        snprintf(path, sizeof(path), "\\\\.\\PhysicalDrive%u", n);
        Probe(state, path, -1);
    }
    if (state->Found == 0 && state->Errors == 0) {
        if (state->Denied > 0) {
            fprintf(stderr, "aerovblk-query: access denied to %u storage device(s): run this tool "
                    "from an elevated (Run as administrator) command prompt.\n", state->Denied);
            return EXIT_QUERY_DENIED;
        }
        fprintf(stderr, "aerovblk-query: no aerovblk disk found (tried \\\\.\\Scsi0:-63: and "
                "\\\\.\\PhysicalDrive0-63).\n");
        return EXIT_QUERY_NO_DISK;
    }
    if (state->Denied > 0)
        fprintf(stderr, "aerovblk-query: warning: access denied to %u device(s); an elevated "
                "prompt may show more disks.\n", state->Denied);
    if (state->Errors > 0)
        return EXIT_QUERY_ERROR;
    return state->OldDrivers > 0 ? EXIT_QUERY_OLD_DRIVER : EXIT_QUERY_OK;
}

static const char *ExitStatusName(int code)
{
    switch (code) {
    case EXIT_QUERY_OK:         return "ok";
    case EXIT_QUERY_NO_DISK:    return "no_aerovblk_disk";
    case EXIT_QUERY_DENIED:     return "access_denied";
    case EXIT_QUERY_OLD_DRIVER: return "older_driver";
    default:                    return "error";
    }
}

int main(int argc, char **argv)
{
    OPTIONS options;
    RUN_STATE state;
    int i, code;

    memset(&options, 0, sizeof(options));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            options.Json = 1;
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc && argv[i + 1][0] != '\0') {
            options.Device = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0
                   || strcmp(argv[i], "/?") == 0) {
            Usage(stdout);
            return EXIT_QUERY_OK;
        } else {
            fprintf(stderr, "aerovblk-query: unknown or incomplete option '%s'\n", argv[i]);
            Usage(stderr);
            return EXIT_QUERY_USAGE;
        }
    }

    memset(&state, 0, sizeof(state));
    state.Options = &options;
    if (options.Json)
        fputs("{\n\"tool\": \"aerovblk-query\",\n\"devices\": [", stdout);
    code = options.Device != NULL ? RunOne(&state, options.Device) : RunDiscovery(&state);
    if (options.Json)
        printf("%s],\n\"exit_code\": %d,\n\"status\": \"%s\"\n}\n", state.Found ? "\n" : "",
               code, ExitStatusName(code));
    fflush(stdout);
    return code;
}
