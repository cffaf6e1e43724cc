/*
 * aerovblk-diagfmt: host (Linux) front end of the shared decoder, for tests and for
 * decoding a reply captured elsewhere (e.g. the simulator's `ioctl` command).
 *
 *   aerovblk-diagfmt [--json] [--reply] [--source NAME] FILE|-
 *
 * FILE holds the AEROVBLK_QUERY_INFO payload bytes exactly as returned, or with
 * --reply the whole SRB_IO_CONTROL reply (header + payload), which is then checked
 * with AvDiagParseReply first. Exit: 0 decoded (extended layout), 5 decoded but an
 * older layout, 1 reply rejected or I/O error, 2 usage — the same meanings as
 * aerovblk-query.exe (docs/diagnostics.md).
 */
#include "aerovblk_diagfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (64u * 1024u)

static int Usage(FILE *out)
{
    fputs("usage: aerovblk-diagfmt [--json] [--reply] [--source NAME] FILE|-\n", out);
    return 2;
}

int main(int argc, char **argv)
{
    int json = 0, reply = 0, i, rc;
    const char *path = NULL, *source = NULL;
    static uint8_t data[MAX_INPUT];
    size_t length, need;
    FILE *in;
    char *text;
    AVDIAG_INFO *info;
    const uint8_t *payload = data;
    size_t payloadLength;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--reply") == 0)
            reply = 1;
        else if (strcmp(argv[i], "--source") == 0 && i + 1 < argc)
            source = argv[++i];
        else if (strcmp(argv[i], "--help") == 0)
            return Usage(stdout), 0;
        else if (path == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
            path = argv[i];
        else
            return Usage(stderr);
    }
    if (path == NULL)
        return Usage(stderr);

    in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (in == NULL) {
        perror(path);
        return 1;
    }
    length = fread(data, 1, sizeof(data), in);
    if (in != stdin)
        fclose(in);

    payloadLength = length;
    if (reply) {
        AVDIAG_REPLY r;
        if (AvDiagParseReply(data, length, &r) != AVDIAG_REPLY_OK) {
            const char *name = AvDiagNtStatusName(r.Header.ReturnCode);
            fprintf(stderr, "aerovblk-diagfmt: %s (ReturnCode 0x%08X%s%s)\n",
                    AvDiagReplyStatusText(r.Status), (unsigned)r.Header.ReturnCode,
                    name ? " " : "", name ? name : "");
            return 1;
        }
        payload = r.Payload;
        payloadLength = r.PayloadLength;
    }

    info = malloc(sizeof(*info));
    if (info == NULL)
        return 1;
    AvDiagDecode(payload, payloadLength, info);
    need = json ? AvDiagFormatJson(info, source, NULL, 0) : AvDiagFormatText(info, source, NULL, 0);
    text = malloc(need + 1);
    if (text == NULL) {
        free(info);
        return 1;
    }
    if (json)
        AvDiagFormatJson(info, source, text, need + 1);
    else
        AvDiagFormatText(info, source, text, need + 1);
    fputs(text, stdout);
    rc = info->Layout == AVDIAG_LAYOUT_EXTENDED ? 0 : (info->Layout == AVDIAG_LAYOUT_NONE ? 1 : 5);
    free(text);
    free(info);
    return rc;
}
