/* ecg_frame: framing and CRC of the ecg-monitor wire protocol; see ecg_frame.h. */
#include "ecg_frame.h"

uint16_t ecg_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFF;
    while (len--) {
        crc ^= (uint16_t)((uint16_t)*data++ << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

size_t ecg_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t code_at = 0; /* where the code byte of the current block goes */
    size_t o = 1;
    uint8_t code = 1; /* 1 + bytes in the current block */
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = in[i];
        if (++code == 0xFF) { /* full block of 254 bytes: no zero implied after it */
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

size_t ecg_frame_encode(uint16_t seq, uint8_t status, const int16_t *samples, uint8_t count,
                        uint8_t *out) {
    uint8_t raw[ECG_RAW_MAX_BYTES];
    size_t n = 0;
    if (count == 0 || count > ECG_MAX_SAMPLES) {
        return 0;
    }
    raw[n++] = ECG_PROTOCOL_VERSION;
    raw[n++] = status;
    raw[n++] = (uint8_t)(seq & 0xFF);
    raw[n++] = (uint8_t)(seq >> 8);
    raw[n++] = count;
    for (uint8_t i = 0; i < count; i++) {
        uint16_t v = (uint16_t)samples[i];
        raw[n++] = (uint8_t)(v & 0xFF);
        raw[n++] = (uint8_t)(v >> 8);
    }
    uint16_t crc = ecg_crc16(raw, n);
    raw[n++] = (uint8_t)(crc & 0xFF);
    raw[n++] = (uint8_t)(crc >> 8);
    out[0] = 0;
    size_t m = 1 + ecg_cobs_encode(raw, n, out + 1);
    out[m++] = 0;
    return m;
}
