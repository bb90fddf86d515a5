/*
 * Host harness for the tests: the firmware's framing code, compiled with gcc, fed from stdin.
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -I../ecg_firmware ecg_frame_host.c ../ecg_firmware/ecg_frame.c
 *
 * Input: one frame per line, "seq status count s1 s2 ... s_count" (decimal).
 * Output: the frames on stdout, binary, exactly as the board would write them.
 * Exit status 2 on a line that is not a valid frame description.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ecg_frame.h"

int main(void) {
    unsigned seq, status, count;
    int16_t samples[ECG_MAX_SAMPLES];
    uint8_t frame[ECG_FRAME_MAX_BYTES];
    int got;
    while ((got = scanf("%u %u %u", &seq, &status, &count)) == 3) {
        if (seq > 0xFFFF || status > 0xFF || count == 0 || count > ECG_MAX_SAMPLES) {
            fprintf(stderr, "bad frame header: %u %u %u\n", seq, status, count);
            return 2;
        }
        for (unsigned i = 0; i < count; i++) {
            int v;
            if (scanf("%d", &v) != 1 || v < -32768 || v > 32767) {
                fprintf(stderr, "bad sample %u of frame %u\n", i, seq);
                return 2;
            }
            samples[i] = (int16_t)v;
        }
        size_t n = ecg_frame_encode((uint16_t)seq, (uint8_t)status, samples, (uint8_t)count, frame);
        fwrite(frame, 1, n, stdout);
    }
    if (got != EOF) {
        fprintf(stderr, "bad input\n");
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
