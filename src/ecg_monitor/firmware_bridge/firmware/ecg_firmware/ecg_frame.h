/*
 * ecg_frame: the framed wire protocol of ecg-monitor (docs/wire_protocol.md).
 *
 * Shared, unchanged, by the Arduino sketch and the host test harness, so the bytes the
 * tests check are the bytes a board sends. Plain C99, no allocation, no Arduino headers.
 *
 * Frame on the wire: 0x00 | COBS(version, status, seq:u16le, count, count x int16le, crc16le) | 0x00
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over everything before the CRC.
 */
#ifndef ECG_FRAME_H
#define ECG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ECG_PROTOCOL_VERSION 1
#define ECG_MAX_SAMPLES 120

#define ECG_STATUS_LEAD_OFF_PLUS 0x01  /* AD8232 LO+ */
#define ECG_STATUS_LEAD_OFF_MINUS 0x02 /* AD8232 LO- */
#define ECG_STATUS_SATURATED 0x04      /* a sample hit the ADC rails */

/* Raw packet: 5 header bytes, the samples, 2 CRC bytes. */
#define ECG_RAW_MAX_BYTES (5 + 2 * ECG_MAX_SAMPLES + 2)
/* On the wire: leading delimiter, one COBS code byte per 254 raw bytes (one here), trailing delimiter. */
#define ECG_FRAME_MAX_BYTES (ECG_RAW_MAX_BYTES + 3)

/* CRC-16/CCITT-FALSE of len bytes (Python: binascii.crc_hqx(data, 0xFFFF)). */
uint16_t ecg_crc16(const uint8_t *data, size_t len);

/* COBS-encode len bytes into out (room for len + len / 254 + 1 bytes); returns the length. */
size_t ecg_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);

/*
 * Build one frame, delimiters included, into out (ECG_FRAME_MAX_BYTES of room).
 * Returns its length, or 0 when count is not 1..ECG_MAX_SAMPLES.
 */
size_t ecg_frame_encode(uint16_t seq, uint8_t status, const int16_t *samples, uint8_t count,
                        uint8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* ECG_FRAME_H */
