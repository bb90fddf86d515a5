/*
 * Just enough of the Arduino API to build ecg_firmware.ino on the host (see sketch_host.cpp).
 * Serial output goes to stdout; the "hardware" (clock, ADC, lead-off pins) is sketch_host.cpp's.
 */
#ifndef ARDUINO_SHIM_H
#define ARDUINO_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIGH 1
#define LOW 0
#define INPUT 0
#define A0 14

uint32_t micros(void);
uint32_t millis(void);
int analogRead(int pin);
int digitalRead(int pin);
inline void pinMode(int, int) {}

struct HostSerial {
    void begin(long) {}
    size_t write(const uint8_t *data, size_t len) { return fwrite(data, 1, len, stdout); }
    void print(unsigned long v) { printf("%lu", v); }
    void print(unsigned int v) { printf("%u", v); }
    void print(int v) { printf("%d", v); }
    void print(char c) { putchar(c); }
    void print(const char *s) { fputs(s, stdout); }
    template <typename T> void println(T v) {
        print(v);
        fputs("\r\n", stdout);
    }
};
extern HostSerial Serial;

#endif /* ARDUINO_SHIM_H */
