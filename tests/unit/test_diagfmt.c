/*
 * Unit tests of tools/common/aerovblk_diagfmt.c (cmocka, ASan/UBSan).
 *
 * The buffers are built byte by byte at the offsets written down in docs/diagnostics.md
 * (the Expected[] table below holds literal numbers, not offsetof), so these tests pin
 * the ABI independently of include/aerovblk_ioctl.h and of the library's own table.
 * Every payload length from 0 to sizeof + 16 is decoded and formatted from an
 * exactly-sized heap buffer, so ASan reports any over-read.
 *
 * With AVDIAG_JSON_DIR set, the JSON of every length is written there for
 * tests/checks/50-diagfmt.sh to parse back with Python.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aerovblk_diagfmt.h"

#define FULL_SIZE 0x120u

typedef struct EXPECTED_FIELD {
    const char *Key;
    size_t Offset;
    size_t Size;
} EXPECTED_FIELD;

/* The documented ABI, literally. */
static const EXPECTED_FIELD Expected[] = {
    { "negotiated_features", 0x00, 8 }, { "queue_size", 0x08, 2 }, { "num_free", 0x0A, 2 },
    { "avail_idx", 0x0C, 2 }, { "used_idx", 0x0E, 2 },
    { "interrupt_mode", 0x10, 4 }, { "msix_config_vector", 0x14, 2 }, { "msix_queue0_vector", 0x16, 2 },
    { "message_count", 0x18, 4 }, { "flags", 0x1C, 4 }, { "abort_srb_count", 0x20, 4 },
    { "reset_device_srb_count", 0x24, 4 }, { "reset_bus_srb_count", 0x28, 4 },
    { "pnp_srb_count", 0x2C, 4 }, { "ioctl_reset_count", 0x30, 4 },
    { "capacity_change_events", 0x34, 4 }, { "reset_detected_count", 0x38, 4 },
    { "hw_reset_bus_count", 0x3C, 4 },
    { "layout_version", 0x40, 4 }, { "struct_size", 0x44, 4 }, { "capacity_sectors", 0x48, 8 },
    { "logical_block_size", 0x50, 4 }, { "seg_max", 0x54, 4 }, { "size_max", 0x58, 4 },
    { "maximum_transfer_length", 0x5C, 4 },
    { "submitted_read", 0x60, 8 }, { "submitted_write", 0x68, 8 }, { "submitted_flush", 0x70, 8 },
    { "submitted_discard", 0x78, 8 }, { "submitted_write_zeroes", 0x80, 8 }, { "submitted_get_id", 0x88, 8 },
    { "completed_read", 0x90, 8 }, { "completed_write", 0x98, 8 }, { "completed_flush", 0xA0, 8 },
    { "completed_discard", 0xA8, 8 }, { "completed_write_zeroes", 0xB0, 8 }, { "completed_get_id", 0xB8, 8 },
    { "bytes_read", 0xC0, 8 }, { "bytes_written", 0xC8, 8 },
    { "doorbells_written", 0xD0, 8 }, { "doorbells_suppressed", 0xD8, 8 },
    { "interrupts_queue", 0xE0, 8 }, { "interrupts_config", 0xE8, 8 }, { "interrupts_spurious", 0xF0, 8 },
    { "completions_in_interrupts", 0xF8, 8 }, { "max_completions_per_interrupt", 0x100, 4 },
    { "busy_completions", 0x104, 4 }, { "errors_ioerr", 0x108, 4 }, { "errors_unsupported", 0x10C, 4 },
    { "errors_invalid_request", 0x110, 4 }, { "errors_out_of_range", 0x114, 4 },
    { "max_in_flight", 0x118, 4 }, { "current_in_flight", 0x11C, 4 },
};
#define EXPECTED_COUNT (sizeof(Expected) / sizeof(Expected[0]))

static void PutLe(uint8_t *p, uint64_t v, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A distinct value per field, with different bytes inside each value so a byte-order
 * or offset slip cannot go unnoticed. LayoutVersion/StructSize stay meaningful. */
static uint64_t PatternValue(size_t index, size_t size)
{
    uint64_t v = 0x1122334455667788ull ^ ((uint64_t)(index + 1) * 0x0101010101010101ull);
    if (strcmp(Expected[index].Key, "layout_version") == 0)
        return 1;
    if (strcmp(Expected[index].Key, "struct_size") == 0)
        return FULL_SIZE;
    return size == 8 ? v : v & ((1ull << (8 * size)) - 1);
}

static void FillPattern(uint8_t *full)
{
    size_t i;
    memset(full, 0, FULL_SIZE);
    for (i = 0; i < EXPECTED_COUNT; i++)
        PutLe(full + Expected[i].Offset, PatternValue(i, Expected[i].Size), Expected[i].Size);
}

/* Decodes `length` bytes of `source` from an exactly-sized heap copy. */
static void DecodeExact(const uint8_t *source, size_t length, AVDIAG_INFO *info)
{
    uint8_t *copy = length ? malloc(length) : NULL;
    if (length)
        assert_non_null(copy);
    if (length)
        memcpy(copy, source, length);
    AvDiagDecode(copy, length, info);
    free(copy);
}

static char *FormatAlloc(const AVDIAG_INFO *info, int json, const char *source)
{
    size_t need = json ? AvDiagFormatJson(info, source, NULL, 0) : AvDiagFormatText(info, source, NULL, 0);
    char *text = malloc(need + 1);
    size_t again;
    assert_non_null(text);
    again = json ? AvDiagFormatJson(info, source, text, need + 1) : AvDiagFormatText(info, source, text, need + 1);
    assert_int_equal(again, need);
    assert_int_equal(strlen(text), need);
    return text;
}

static uint64_t FieldValue(const AVDIAG_INFO *info, const char *key, int *present)
{
    uint64_t v;
    const AVDIAG_FIELD *f = AvDiagFindField(key);
    assert_non_null(f);
    *present = AvDiagGetField(info, f, &v);
    return v;
}

/* ---- the library's table matches the documented ABI --------------------------- */
static void test_table_matches_abi(void **state)
{
    size_t i, end = 0;
    (void)state;
    assert_int_equal(AvDiagFieldCount, EXPECTED_COUNT);
    for (i = 0; i < EXPECTED_COUNT; i++) {
        const AVDIAG_FIELD *f = &AvDiagFields[i];
        assert_string_equal(f->Key, Expected[i].Key);
        assert_int_equal(f->Offset, Expected[i].Offset);
        assert_int_equal(f->Size, Expected[i].Size);
        assert_int_equal(f->Offset, end);               /* contiguous: every byte covered */
        end = f->Offset + f->Size;
        assert_ptr_equal(AvDiagFindField(f->Key), f);
        assert_ptr_equal(AvDiagFindField(f->Name), f);
    }
    assert_int_equal(end, FULL_SIZE);
    assert_int_equal(sizeof(AEROVBLK_QUERY_INFO), FULL_SIZE);
    assert_null(AvDiagFindField("no_such_field"));
    assert_null(AvDiagFindField(NULL));
}

/* ---- request building ----------------------------------------------------------- */
static void test_build_query_request(void **state)
{
    static const uint8_t header[28] = {
        28, 0, 0, 0, 'A', 'E', 'R', 'O', 'V', 'B', 'L', 'K', 10, 0, 0, 0,
        0x01, 0xA0, 0x00, 0x80, 0, 0, 0, 0, 40, 0, 0, 0
    };
    uint8_t buf[68];
    size_t i;
    AVDIAG_SRBIO h;
    (void)state;

    memset(buf, 0xEE, sizeof(buf));
    assert_int_equal(AvDiagBuildQueryRequest(buf, 67, 40), 0);      /* too small: untouched */
    for (i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xEE);
    assert_int_equal(AvDiagBuildQueryRequest(NULL, 68, 40), 0);
    assert_int_equal(AvDiagBuildQueryRequest(buf, sizeof(buf), 40), 68);
    assert_memory_equal(buf, header, sizeof(header));
    for (i = 28; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);

    assert_int_equal(AvDiagSrbIoLoad(buf, 27, &h), 0);
    assert_int_equal(AvDiagSrbIoLoad(buf, 28, &h), 1);
    assert_int_equal(h.HeaderLength, 28);
    assert_int_equal(h.ControlCode, AEROVBLK_IOCTL_QUERY);
    assert_int_equal(h.Length, 40);
    h.ControlCode = 0x12345678;                                   /* malformed requests */
    memcpy(h.Signature, "AEROVBLX", 8);
    assert_int_equal(AvDiagSrbIoStore(&h, buf, 27), 0);
    assert_int_equal(AvDiagSrbIoStore(&h, buf, 28), 28);
    assert_int_equal(buf[16], 0x78);
    assert_int_equal(buf[19], 0x12);
    assert_int_equal(buf[11], 'X');
}

/* ---- reply checking --------------------------------------------------------------- */
static uint8_t *MakeReply(size_t total, uint32_t headerLength, uint32_t returnCode, uint32_t length,
                          size_t payloadFill)
{
    AVDIAG_SRBIO h;
    uint8_t *buf = malloc(total ? total : 1);
    assert_non_null(buf);
    memset(buf, 0, total);
    AvDiagSrbIoInitQuery(&h, length);
    h.HeaderLength = headerLength;
    h.ReturnCode = returnCode;
    if (total >= 28)
        AvDiagSrbIoStore(&h, buf, total);
    if (total > 28)
        memset(buf + 28, 0x5A, payloadFill < total - 28 ? payloadFill : total - 28);
    return buf;
}

static void test_parse_reply(void **state)
{
    AVDIAG_REPLY r;
    uint8_t *buf;
    size_t n;
    (void)state;

    for (n = 0; n < 28; n++) {                   /* every header-less length, exact size */
        buf = MakeReply(n, 28, 0, 0, 0);
        assert_int_equal(AvDiagParseReply(n ? buf : NULL, n, &r), AVDIAG_REPLY_NO_HEADER);
        assert_null(r.Payload);
        free(buf);
    }

    buf = MakeReply(28 + 0x120, 28, 0, 0x120, 0x120);
    assert_int_equal(AvDiagParseReply(buf, 28 + 0x120, &r), AVDIAG_REPLY_OK);
    assert_ptr_equal(r.Payload, buf + 28);
    assert_int_equal(r.PayloadLength, 0x120);
    assert_false(r.LengthClamped);
    /* Length larger than what came back: clamped to the returned bytes. */
    assert_int_equal(AvDiagParseReply(buf, 28 + 0x40, &r), AVDIAG_REPLY_OK);
    assert_int_equal(r.PayloadLength, 0x40);
    assert_true(r.LengthClamped);
    free(buf);

    buf = MakeReply(28 + 64, 20, 0, 16, 64);     /* HeaderLength lies low */
    assert_int_equal(AvDiagParseReply(buf, 28 + 64, &r), AVDIAG_REPLY_BAD_HEADER_LENGTH);
    free(buf);
    buf = MakeReply(28 + 64, 28 + 65, 0, 16, 64); /* ... and past the end */
    assert_int_equal(AvDiagParseReply(buf, 28 + 64, &r), AVDIAG_REPLY_BAD_HEADER_LENGTH);
    free(buf);

    buf = MakeReply(28 + 64, 28, 0, 64, 64);
    buf[4 + 7] = 'X';                             /* signature */
    assert_int_equal(AvDiagParseReply(buf, 28 + 64, &r), AVDIAG_REPLY_BAD_SIGNATURE);
    free(buf);

    buf = MakeReply(28 + 8, 28, AVDIAG_STATUS_BUFFER_TOO_SMALL, 0, 8);
    assert_int_equal(AvDiagParseReply(buf, 28 + 8, &r), AVDIAG_REPLY_DRIVER_STATUS);
    assert_int_equal(r.Header.ReturnCode, AVDIAG_STATUS_BUFFER_TOO_SMALL);
    assert_string_equal(AvDiagNtStatusName(r.Header.ReturnCode), "STATUS_BUFFER_TOO_SMALL");
    free(buf);
    assert_string_equal(AvDiagNtStatusName(AVDIAG_STATUS_NOT_SUPPORTED), "STATUS_NOT_SUPPORTED");
    assert_null(AvDiagNtStatusName(0xC0001234u));

    buf = MakeReply(28 + 15, 28, 0, 15, 15);
    assert_int_equal(AvDiagParseReply(buf, 28 + 15, &r), AVDIAG_REPLY_TOO_SHORT);
    free(buf);

    buf = MakeReply(28 + 64, 28, 0, 64, 0);      /* untouched zero payload */
    assert_int_equal(AvDiagParseReply(buf, 28 + 64, &r), AVDIAG_REPLY_EMPTY);
    free(buf);

    for (n = AVDIAG_REPLY_OK; n <= AVDIAG_REPLY_EMPTY; n++)
        assert_non_null(AvDiagReplyStatusText((AVDIAG_REPLY_STATUS)n));
}

/* ---- decoding the three layouts -------------------------------------------------- */
static void test_decode_original_16(void **state)
{
    uint8_t b[16];
    AVDIAG_INFO info;
    char *text, *json;
    int present;
    (void)state;

    memset(b, 0, sizeof(b));
    PutLe(b + 0x00, (1ull << 32) | (1ull << 9) | (1ull << 1), 8);
    PutLe(b + 0x08, 128, 2);
    PutLe(b + 0x0A, 120, 2);
    PutLe(b + 0x0C, 0x0003, 2);
    PutLe(b + 0x0E, 0xFFFE, 2);                  /* wrapped: gap 5 */
    DecodeExact(b, sizeof(b), &info);

    assert_int_equal(info.Layout, AVDIAG_LAYOUT_ORIGINAL);
    assert_int_equal(info.Valid, 16);
    assert_true(info.Info.NegotiatedFeatures == ((1ull << 32) | (1ull << 9) | (1ull << 1)));
    assert_int_equal(info.Info.QueueSize, 128);
    assert_int_equal(info.Info.NumFree, 120);
    assert_int_equal(info.Info.AvailIdx, 3);
    assert_int_equal(info.Info.UsedIdx, 0xFFFE);
    assert_int_equal(info.Info.InterruptMode, 0);
    assert_int_equal(FieldValue(&info, "used_idx", &present), 0xFFFE);
    assert_true(present);
    FieldValue(&info, "interrupt_mode", &present);
    assert_false(present);

    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "original 16-byte layout"));
    assert_non_null(strstr(text, "SIZE_MAX FLUSH VERSION_1"));
    assert_non_null(strstr(text, "Avail - used index (mod 65536)           5"));
    assert_non_null(strstr(text, "Descriptors in use (size - free)         8"));
    assert_non_null(strstr(text, "Not returned by this driver: 48 field(s)"));
    assert_null(strstr(text, "Interrupt mode"));
    free(text);

    json = FormatAlloc(&info, 1, NULL);
    assert_non_null(strstr(json, "\"layout\": \"original\""));
    assert_non_null(strstr(json, "\"queue_size\": 128,"));
    assert_non_null(strstr(json, "\"interrupt_mode\": null,"));
    assert_non_null(strstr(json, "\"names\": [\"SIZE_MAX\", \"FLUSH\", \"VERSION_1\"]"));
    assert_non_null(strstr(json, "\"complete\": false"));
    assert_non_null(strstr(json, "\"avail_used_gap\": 5,"));
    assert_non_null(strstr(json, "\"interrupt_mode_name\": null"));
    free(json);
}

static void test_decode_aero_64(void **state)
{
    uint8_t b[0x40];
    AVDIAG_INFO info;
    char *text, *json;
    (void)state;

    memset(b, 0, sizeof(b));
    PutLe(b + 0x08, 256, 2);
    PutLe(b + 0x10, 1, 4);                       /* MSI */
    PutLe(b + 0x14, 0, 2);
    PutLe(b + 0x16, 0xFFFF, 2);                  /* queue vector: none */
    PutLe(b + 0x18, 2, 4);
    PutLe(b + 0x1C, 0x5 | 0x100, 4);             /* removed, reset in progress, unknown bit 8 */
    PutLe(b + 0x20, 11, 4);
    PutLe(b + 0x3C, 0x3C3C, 4);
    DecodeExact(b, sizeof(b), &info);

    assert_int_equal(info.Layout, AVDIAG_LAYOUT_AERO);
    assert_int_equal(info.Valid, 0x40);
    assert_int_equal(info.Info.InterruptMode, 1);
    assert_int_equal(info.Info.MsixQueue0Vector, 0xFFFF);
    assert_int_equal(info.Info.MessageCount, 2);
    assert_int_equal(info.Info.Flags, 0x105);
    assert_int_equal(info.Info.AbortSrbCount, 11);
    assert_int_equal(info.Info.HwResetBusCount, 0x3C3C);
    assert_int_equal(info.Info.LayoutVersion, 0);

    text = FormatAlloc(&info, 0, "\\\\.\\Scsi2:");
    assert_non_null(strstr(text, "aerovblk diagnostics: \\\\.\\Scsi2:"));
    assert_non_null(strstr(text, "Aero 64-byte layout"));
    assert_non_null(strstr(text, "MSI/MSI-X (1)"));
    assert_non_null(strstr(text, "none (0xFFFF)"));
    assert_non_null(strstr(text, "0x00000105 (removed reset-in-progress unknown bits 8)"));
    assert_non_null(strstr(text, "HwResetBus calls                 15420"));
    assert_non_null(strstr(text, "sections: Layout, Disk and limits"));
    free(text);

    json = FormatAlloc(&info, 1, "\\\\.\\Scsi2:");
    assert_non_null(strstr(json, "\"device\": \"\\\\\\\\.\\\\Scsi2:\""));
    assert_non_null(strstr(json, "\"flags_names\": [\"removed\", \"reset-in-progress\"]"));
    assert_non_null(strstr(json, "\"interrupt_mode_name\": \"MSI/MSI-X\""));
    assert_non_null(strstr(json, "\"layout_version\": null"));
    free(json);

    /* 0x40..0x47 bytes: a partial extension header is no extension. */
    {
        uint8_t c[0x47];
        memset(c, 0, sizeof(c));
        memcpy(c, b, sizeof(b));
        PutLe(c + 0x40, 1, 4);
        DecodeExact(c, sizeof(c), &info);
        assert_int_equal(info.Layout, AVDIAG_LAYOUT_AERO);
        assert_int_equal(info.Valid, 0x40);
    }
}

static void test_decode_full(void **state)
{
    uint8_t full[FULL_SIZE];
    AVDIAG_INFO info;
    size_t i;
    int present;
    char *json;
    (void)state;

    FillPattern(full);
    DecodeExact(full, sizeof(full), &info);
    assert_int_equal(info.Layout, AVDIAG_LAYOUT_EXTENDED);
    assert_int_equal(info.Valid, FULL_SIZE);
    assert_int_equal(info.NewerBytes, 0);
    for (i = 0; i < EXPECTED_COUNT; i++) {
        uint64_t v = FieldValue(&info, Expected[i].Key, &present);
        assert_true(present);
        assert_true(v == PatternValue(i, Expected[i].Size));
    }
    /* The struct view agrees with the literal offsets (pins include/aerovblk_ioctl.h). */
    assert_true(info.Info.NegotiatedFeatures == PatternValue(0, 8));
    assert_int_equal(info.Info.UsedIdx, PatternValue(4, 2));
    assert_int_equal(info.Info.HwResetBusCount, PatternValue(17, 4));
    assert_int_equal(info.Info.LayoutVersion, 1);
    assert_int_equal(info.Info.StructSize, FULL_SIZE);
    assert_true(info.Info.CapacitySectors == PatternValue(20, 8));
    assert_int_equal(info.Info.MaximumTransferLength, PatternValue(24, 4));
    assert_true(info.Info.Submitted[AEROVBLK_REQ_READ] == PatternValue(25, 8));
    assert_true(info.Info.Submitted[AEROVBLK_REQ_GET_ID] == PatternValue(30, 8));
    assert_true(info.Info.Completed[AEROVBLK_REQ_READ] == PatternValue(31, 8));
    assert_true(info.Info.Completed[AEROVBLK_REQ_GET_ID] == PatternValue(36, 8));
    assert_true(info.Info.BytesRead == PatternValue(37, 8));
    assert_true(info.Info.DoorbellsSuppressed == PatternValue(40, 8));
    assert_true(info.Info.CompletionsInInterrupts == PatternValue(44, 8));
    assert_int_equal(info.Info.MaxCompletionsPerInterrupt, PatternValue(45, 4));
    assert_int_equal(info.Info.ErrorsOutOfRange, PatternValue(50, 4));
    assert_int_equal(info.Info.CurrentInFlight, PatternValue(52, 4));

    json = FormatAlloc(&info, 1, NULL);
    assert_non_null(strstr(json, "\"layout\": \"extended\""));
    assert_non_null(strstr(json, "\"complete\": true"));
    assert_non_null(strstr(json, "\"absent_fields\": []"));
    free(json);
}

/* Realistic counters: derived ratios and their text. */
static void test_derived_values(void **state)
{
    uint8_t b[FULL_SIZE];
    AVDIAG_INFO info;
    AVDIAG_DERIVED d[AVDIAG_DERIVED_MAX];
    size_t n, i;
    char *json, *text;
    (void)state;

    memset(b, 0, sizeof(b));
    PutLe(b + 0x40, 1, 4);
    PutLe(b + 0x44, FULL_SIZE, 4);
    PutLe(b + 0x48, 2097152, 8);                 /* 1 GiB */
    PutLe(b + 0x60, 1000, 8);                    /* submitted read */
    PutLe(b + 0x68, 500, 8);
    PutLe(b + 0x90, 1000, 8);                    /* completed read */
    PutLe(b + 0x98, 499, 8);
    PutLe(b + 0xC0, 1000 * 4096ull, 8);
    PutLe(b + 0xC8, 499 * 65536ull, 8);       /* bytes count on OK completion */
    PutLe(b + 0xD0, 400, 8);                     /* doorbells */
    PutLe(b + 0xD8, 100, 8);
    PutLe(b + 0xE0, 300, 8);                     /* queue interrupts */
    PutLe(b + 0xF0, 3, 8);                       /* spurious */
    PutLe(b + 0xF8, 1499, 8);
    PutLe(b + 0x104, 3, 4);                      /* busy */
    PutLe(b + 0x108, 1, 4);
    PutLe(b + 0x110, 2, 4);
    DecodeExact(b, sizeof(b), &info);

    n = AvDiagComputeDerived(&info, d, AVDIAG_DERIVED_MAX);
    assert_true(n > 10 && n <= AVDIAG_DERIVED_MAX);
    for (i = 0; i < n; i++)
        assert_true(d[i].Present);               /* all inputs present, denominators set */
    assert_int_equal(AvDiagComputeDerived(&info, d, 3), 3);

    json = FormatAlloc(&info, 1, NULL);
    assert_non_null(strstr(json, "\"completions_per_interrupt\": 4.99,"));
    assert_non_null(strstr(json, "\"requests_per_doorbell\": 3.75,"));
    assert_non_null(strstr(json, "\"doorbells_suppressed_percent\": 20.00,"));
    assert_non_null(strstr(json, "\"spurious_interrupts_percent\": 0.99,"));
    assert_non_null(strstr(json, "\"average_read_bytes\": 4096.00,"));
    assert_non_null(strstr(json, "\"average_write_bytes\": 65536.00,"));
    assert_non_null(strstr(json, "\"submitted_total\": 1500,"));
    assert_non_null(strstr(json, "\"outstanding\": 1,"));
    assert_non_null(strstr(json, "\"capacity_bytes\": 1073741824,"));
    assert_non_null(strstr(json, "\"errors_total\": 3,"));
    assert_non_null(strstr(json, "\"errors_percent\": 0.06,"));   /* device errors only: 1 IOERR / 1499, truncated */
    assert_non_null(strstr(json, "\"busy_percent\": 0.20\n"));
    free(json);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "2097152 sectors (1.00 GiB)"));
    assert_non_null(strstr(text, "Completions per queue interrupt (avg)    4.99"));
    free(text);

    /* No interrupts yet: ratio is absent (null), not a division by zero. */
    PutLe(b + 0xE0, 0, 8);
    DecodeExact(b, sizeof(b), &info);
    json = FormatAlloc(&info, 1, NULL);
    assert_non_null(strstr(json, "\"completions_per_interrupt\": null,"));
    free(json);
}

static void test_format_ratio(void **state)
{
    char out[64];
    (void)state;
    AvDiagFormatRatio(out, sizeof(out), 10, 4, 0);   assert_string_equal(out, "2.50");
    AvDiagFormatRatio(out, sizeof(out), 1, 3, 0);    assert_string_equal(out, "0.33");
    AvDiagFormatRatio(out, sizeof(out), 1, 8, 1);    assert_string_equal(out, "12.50");
    AvDiagFormatRatio(out, sizeof(out), 0, 5, 1);    assert_string_equal(out, "0.00");
    AvDiagFormatRatio(out, sizeof(out), 3, 2, 1);    assert_string_equal(out, "150.00");
    AvDiagFormatRatio(out, sizeof(out), 5, 0, 0);    assert_string_equal(out, "null");
    AvDiagFormatRatio(out, sizeof(out), UINT64_MAX, 1, 0);
    assert_string_equal(out, "18446744073709551615.00");
    AvDiagFormatRatio(out, sizeof(out), UINT64_MAX, UINT64_MAX, 1);
    assert_string_equal(out, "100.00");
    AvDiagFormatRatio(out, sizeof(out), 1, UINT64_MAX, 0);
    assert_string_equal(out, "0.00");
    AvDiagFormatRatio(out, 3, 10, 4, 0);             assert_string_equal(out, "2.");
}

static void test_feature_names(void **state)
{
    static const struct { unsigned Bit; const char *Name; } names[] = {
        { 1, "SIZE_MAX" }, { 2, "SEG_MAX" }, { 4, "GEOMETRY" }, { 5, "RO" }, { 6, "BLK_SIZE" },
        { 9, "FLUSH" }, { 10, "TOPOLOGY" }, { 11, "CONFIG_WCE" }, { 12, "MQ" }, { 13, "DISCARD" },
        { 14, "WRITE_ZEROES" }, { 28, "INDIRECT_DESC" }, { 29, "EVENT_IDX" }, { 32, "VERSION_1" },
        { 33, "ACCESS_PLATFORM" }, { 34, "RING_PACKED" }, { 35, "IN_ORDER" },
    };
    uint8_t b[16];
    AVDIAG_INFO info;
    char *text, *json;
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(AvDiagFeatureName(names[i].Bit), names[i].Name);
    assert_null(AvDiagFeatureName(3));
    assert_null(AvDiagFeatureName(63));
    assert_null(AvDiagFeatureName(64));

    memset(b, 0, sizeof(b));
    PutLe(b, (1ull << 63) | (1ull << 34) | (1ull << 14) | (1ull << 3), 8);
    DecodeExact(b, sizeof(b), &info);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "0x8000000400004008"));
    assert_non_null(strstr(text, "WRITE_ZEROES RING_PACKED"));
    assert_non_null(strstr(text, "unknown bits: 3 63"));
    free(text);
    json = FormatAlloc(&info, 1, NULL);
    assert_non_null(strstr(json, "\"negotiated_features\": 9223372054034661384,"));
    assert_non_null(strstr(json, "\"names\": [\"WRITE_ZEROES\", \"RING_PACKED\"], \"unknown_bits\": [3, 63]"));
    free(json);

    memset(b, 0, sizeof(b));                     /* no features at all */
    PutLe(b + 8, 1, 2);
    DecodeExact(b, sizeof(b), &info);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "(none)"));
    free(text);
}

/* StructSize handling: invalid, smaller than returned, newer driver. */
static void test_struct_size_rules(void **state)
{
    uint8_t big[FULL_SIZE + 0x40];
    AVDIAG_INFO info;
    char *text;
    int present;
    (void)state;

    memset(big, 0, sizeof(big));
    FillPattern(big);
    memset(big + FULL_SIZE, 0x77, 0x40);

    PutLe(big + 0x44, 0x20, 4);                  /* invalid: below 0x48 */
    DecodeExact(big, FULL_SIZE, &info);
    assert_int_equal(info.Layout, AVDIAG_LAYOUT_AERO);
    assert_true(info.StructSizeInvalid);
    assert_int_equal(info.Valid, 0x40);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "StructSize is below 72 bytes"));
    free(text);

    PutLe(big + 0x44, 0x90, 4);                  /* a driver with a smaller (v1-prefix) struct */
    DecodeExact(big, FULL_SIZE, &info);
    assert_int_equal(info.Layout, AVDIAG_LAYOUT_EXTENDED);
    assert_int_equal(info.Valid, 0x90);
    FieldValue(&info, "submitted_get_id", &present);
    assert_true(present);
    FieldValue(&info, "completed_read", &present);
    assert_false(present);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "144 of 288 returned bytes are outside the driver's layout"));
    free(text);

    PutLe(big + 0x44, FULL_SIZE + 0x40, 4);      /* a newer driver */
    DecodeExact(big, sizeof(big), &info);
    assert_int_equal(info.Valid, FULL_SIZE);
    assert_int_equal(info.NewerBytes, 0x40);
    DecodeExact(big, FULL_SIZE + 0x10, &info);   /* ... that we asked too little of */
    assert_int_equal(info.NewerBytes, 0x10);
    text = FormatAlloc(&info, 0, NULL);
    assert_non_null(strstr(text, "16 bytes of a newer driver's structure are not decoded"));
    free(text);

    PutLe(big + 0x40, 0, 4);                     /* LayoutVersion 0: extension absent */
    DecodeExact(big, FULL_SIZE, &info);
    assert_int_equal(info.Layout, AVDIAG_LAYOUT_AERO);
    assert_int_equal(info.Valid, 0x40);
}

/* Every length 0..sizeof+16 from exactly-sized buffers: presence rule, no over-read,
 * bounded output at tiny buffer sizes; JSON dumped for the Python check. */
static size_t ExpectedValid(size_t length)
{
    if (length < 16)
        return 0;
    if (length < 0x40)
        return length;
    if (length < 0x48)
        return 0x40;
    return length < FULL_SIZE ? length : FULL_SIZE;
}

static void test_every_length(void **state)
{
    uint8_t full[FULL_SIZE + 16];
    const char *dir = getenv("AVDIAG_JSON_DIR");
    size_t length, i;
    (void)state;

    FillPattern(full);
    memset(full + FULL_SIZE, 0xA5, 16);
    for (length = 0; length <= sizeof(full); length++) {
        AVDIAG_INFO info;
        size_t valid = ExpectedValid(length), k;
        char *text, *json;
        char tiny[17];

        DecodeExact(full, length, &info);
        assert_int_equal(info.Returned, length);
        assert_int_equal(info.Valid, valid);
        for (i = 0; i < EXPECTED_COUNT; i++) {
            int present;
            uint64_t v = FieldValue(&info, Expected[i].Key, &present);
            assert_int_equal(present, Expected[i].Offset + Expected[i].Size <= valid);
            assert_true(present ? v == PatternValue(i, Expected[i].Size) : v == 0);
        }
        for (i = valid; i < sizeof(info.Raw); i++)
            assert_int_equal(info.Raw[i], 0);   /* nothing beyond the valid bytes */

        text = FormatAlloc(&info, 0, "disk");
        json = FormatAlloc(&info, 1, "disk");
        for (k = 0; k < sizeof(tiny); k++) {     /* truncation keeps a terminated prefix */
            memset(tiny, 'x', sizeof(tiny));
            assert_int_equal(AvDiagFormatJson(&info, "disk", tiny, k), strlen(json));
            if (k > 0) {
                assert_int_equal(strlen(tiny), k - 1);
                assert_memory_equal(tiny, json, k - 1);
            } else {
                assert_int_equal(tiny[0], 'x');
            }
            assert_int_equal(AvDiagFormatText(&info, "disk", tiny, k), strlen(text));
        }
        if (dir != NULL) {
            char path[512];
            FILE *f;
            snprintf(path, sizeof(path), "%s/len-%03zu.json", dir, length);
            f = fopen(path, "w");
            assert_non_null(f);
            fputs(json, f);
            fclose(f);
        }
        free(text);
        free(json);
    }
}

static void test_json_string_escape(void **state)
{
    char out[64], longSource[600], *json;
    uint8_t b[16] = { 0 };
    AVDIAG_INFO info;
    size_t i;
    (void)state;

    assert_int_equal(AvDiagJsonString("a\"b\\c\n\x01", out, sizeof(out)), strlen("\"a\\\"b\\\\c\\u000a\\u0001\""));
    assert_string_equal(out, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    assert_int_equal(AvDiagJsonString(NULL, out, sizeof(out)), 4);
    assert_string_equal(out, "null");

    for (i = 0; i + 1 < sizeof(longSource); i++)
        longSource[i] = (i % 7 == 0) ? '\\' : (i % 11 == 0 ? '"' : 'a');
    longSource[sizeof(longSource) - 1] = '\0';
    b[8] = 1;
    DecodeExact(b, sizeof(b), &info);
    json = FormatAlloc(&info, 1, longSource);
    {
        size_t need = AvDiagJsonString(longSource, NULL, 0);
        char *expect = malloc(need + 1);
        assert_non_null(expect);
        AvDiagJsonString(longSource, expect, need + 1);
        assert_non_null(strstr(json, expect));
        free(expect);
    }
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_abi),
        cmocka_unit_test(test_build_query_request),
        cmocka_unit_test(test_parse_reply),
        cmocka_unit_test(test_decode_original_16),
        cmocka_unit_test(test_decode_aero_64),
        cmocka_unit_test(test_decode_full),
        cmocka_unit_test(test_derived_values),
        cmocka_unit_test(test_format_ratio),
        cmocka_unit_test(test_feature_names),
        cmocka_unit_test(test_struct_size_rules),
        cmocka_unit_test(test_every_length),
        cmocka_unit_test(test_json_string_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
