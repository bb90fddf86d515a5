/*
 * Runs the Arduino sketch itself on the host, on simulated hardware, for the tests:
 *
 *   g++ -std=c++11 -I. -I../ecg_firmware sketch_host.cpp ../ecg_firmware/ecg_frame.c -o sketch_host
 *   ./sketch_host SECONDS > frames.bin
 *
 * The clock starts 0.5 s before micros() wraps, loop() is called every 50 us of simulated time,
 * sample k of the ADC reads ecg_host_adc(k), LO+ is high for samples 1000..1099 and the ADC sits
 * at its rail for samples 2000..2009 (constants shared with the test through this file).
 */
#include "arduino_shim.h"

#include <stdlib.h>

#include "ecg_firmware.ino"

HostSerial Serial;

static uint64_t elapsed_us;
static const uint32_t CLOCK_START_US = 0xFFFFFFFFu - 500000u;
static long adc_reads;

uint32_t micros(void) { return (uint32_t)(CLOCK_START_US + elapsed_us); }
uint32_t millis(void) { return (uint32_t)(elapsed_us / 1000u); }

static int ecg_host_adc(long k) {
    if (k >= 2000 && k < 2010) return ADC_MAX;
    return ADC_MAX / 2 + (int)((k * 37) % 600) - 300;
}

int analogRead(int) { return ecg_host_adc(adc_reads++); }

int digitalRead(int pin) {
    long k = adc_reads - 1; /* the sketch reads the lead-off pins right after the sample */
    return (pin == LO_PLUS_PIN && k >= 1000 && k < 1100) ? HIGH : LOW;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    setup();
    while (elapsed_us < (uint64_t)(seconds * 1e6)) {
        loop();
        elapsed_us += 50;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
