/*
 * ecg_firmware: AD8232 single-lead ECG front-end -> ecg-monitor over USB serial.
 *
 * Board: ESP32 (12-bit ADC) or an AVR Arduino (10-bit ADC). Wiring of the AD8232 breakout:
 *   OUTPUT -> ECG_PIN, LO+ -> LO_PLUS_PIN, LO- -> LO_MINUS_PIN, 3.3V, GND (SDN unused).
 * Samples at FS_HZ on a drift-free micros() schedule, packs FRAME_SAMPLES samples per frame
 * with ecg_frame_encode() (COBS framing, sequence number, lead-off bits, CRC-16) and writes
 * them at 115200 baud. Host side:
 *   ecg-monitor --serial /dev/ttyUSB0 --profile ad8232-esp32
 * Set ECG_ASCII to 1 for the plain "millis,value" line mode instead:
 *   ecg-monitor --serial /dev/ttyUSB0 --protocol ascii --profile ad8232-esp32
 * The sketch folder must hold ecg_frame.h and ecg_frame.c next to this file.
 */
#include "ecg_frame.h"

#ifndef ECG_ASCII
#define ECG_ASCII 0
#endif

#if defined(ESP32)
static const int ECG_PIN = 36;      /* ADC1_CH0 (VP) */
static const int LO_PLUS_PIN = 32;
static const int LO_MINUS_PIN = 33;
static const int ADC_MAX = 4095;
#else
static const int ECG_PIN = A0;
static const int LO_PLUS_PIN = 10;
static const int LO_MINUS_PIN = 11;
static const int ADC_MAX = 1023;
#endif

static const uint32_t FS_HZ = 360;
static const uint8_t FRAME_SAMPLES = 10;
static const uint32_t PERIOD_US = 1000000UL / FS_HZ;
static const uint32_t PERIOD_REM = 1000000UL % FS_HZ; /* carried so the rate is exact */

static uint32_t next_due_us;
static uint32_t remainder_acc;
#if !ECG_ASCII
static int16_t samples[FRAME_SAMPLES];
static uint8_t n_samples;
static uint8_t status_bits;
static uint16_t seq;
static uint8_t frame[ECG_FRAME_MAX_BYTES];
#endif

void setup() {
    Serial.begin(115200);
    pinMode(LO_PLUS_PIN, INPUT);
    pinMode(LO_MINUS_PIN, INPUT);
#if defined(ESP32)
    analogReadResolution(12);
    analogSetAttenuation(ADC_11db); /* about 0-3.1 V full scale */
#endif
    next_due_us = micros();
}

static void sample_once(void) {
    int value = analogRead(ECG_PIN);
    uint8_t bits = 0;
    if (digitalRead(LO_PLUS_PIN) == HIGH) bits |= ECG_STATUS_LEAD_OFF_PLUS;
    if (digitalRead(LO_MINUS_PIN) == HIGH) bits |= ECG_STATUS_LEAD_OFF_MINUS;
    if (value <= 0 || value >= ADC_MAX) bits |= ECG_STATUS_SATURATED;
#if ECG_ASCII
    if (bits & (ECG_STATUS_LEAD_OFF_PLUS | ECG_STATUS_LEAD_OFF_MINUS)) {
        Serial.println("!"); /* the host counts it as a bad line; time stamps show the gap */
        return;
    }
    Serial.print(millis());
    Serial.print(',');
    Serial.println(value);
#else
    samples[n_samples++] = (int16_t)value;
    status_bits |= bits;
    if (n_samples == FRAME_SAMPLES) {
        size_t len = ecg_frame_encode(seq++, status_bits, samples, n_samples, frame);
        Serial.write(frame, len);
        n_samples = 0;
        status_bits = 0;
    }
#endif
}

void loop() {
    /* Signed difference survives the micros() wrap every 71 minutes. */
    if ((int32_t)(micros() - next_due_us) < 0) {
        return;
    }
    next_due_us += PERIOD_US;
    remainder_acc += PERIOD_REM;
    if (remainder_acc >= FS_HZ) {
        remainder_acc -= FS_HZ;
        next_due_us += 1;
    }
    sample_once();
}
