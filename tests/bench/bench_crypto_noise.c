/*
 * bench_crypto_noise: full Noise handshakes per second on one core, both
 * sides in this process (every message written and read), then transport
 * throughput. Prints "name value unit" lines only:
 *   noise_ik_handshakes_per_s, noise_xx_handshakes_per_s,
 *   noise_transport_1KiB_msgs_per_s (encrypt + decrypt of 1 KiB frames).
 * Each figure runs for about BENCH_SECONDS.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/noise.h"
#include "crypto/noise_testing.h"

#define BENCH_SECONDS 2.0
#define FRAME_BYTES   1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void random_cb(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

static uint64_t zero_clock_cb(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct env env = {.random = random_cb, .now_ms = zero_clock_cb};
static uint8_t s_init[32], s_resp[32], pub_resp[32];
static uint8_t prologue[NOISE_MERPATI_PROLOGUE_MAX];
static size_t prologue_len;

static void check(enum mp_err err, const char *what)
{
    if (err != MP_OK) {
        fprintf(stderr, "bench_crypto_noise: %s: %s\n", what, mp_strerror(err));
        exit(1);
    }
}

/* One complete handshake, both sides; returns the two split cipher pairs
 * freed (the work of a real link setup). */
static void handshake(enum noise_pattern p)
{
    static uint8_t msg[512], got[512];
    size_t len = 0, gl = 0;
    struct noise_handshake *hs[2] = {NULL, NULL};
    struct noise_cipher *c[4] = {NULL};
    struct noise_config ci = {.pattern = p,
                              .initiator = true,
                              .prologue = prologue,
                              .prologue_len = prologue_len,
                              .s = s_init,
                              .rs = p == NOISE_PATTERN_IK ? pub_resp : NULL};
    struct noise_config cr = {.pattern = p,
                              .initiator = false,
                              .prologue = prologue,
                              .prologue_len = prologue_len,
                              .s = s_resp};

    check(noise_handshake_new(&env, &ci, &hs[0]), "new");
    check(noise_handshake_new(&env, &cr, &hs[1]), "new");
    for (int from = 0; noise_handshake_next(hs[from]) == NOISE_STEP_WRITE; from = 1 - from) {
        check(noise_handshake_write(hs[from], NULL, 0, msg, sizeof(msg), &len), "write");
        check(noise_handshake_read(hs[1 - from], msg, len, got, sizeof(got), &gl), "read");
    }
    check(noise_handshake_split(hs[0], &c[0], &c[1]), "split");
    check(noise_handshake_split(hs[1], &c[2], &c[3]), "split");
    for (int i = 0; i < 4; i++)
        noise_cipher_free(c[i]);
    noise_handshake_free(hs[0]);
    noise_handshake_free(hs[1]);
}

static double handshakes_per_s(enum noise_pattern p)
{
    unsigned long n = 0;
    double start = now_s(), t;

    do {
        for (int i = 0; i < 16; i++)
            handshake(p);
        n += 16;
        t = now_s() - start;
    } while (t < BENCH_SECONDS);
    return (double)n / t;
}

static double transport_per_s(void)
{
    static uint8_t frame[FRAME_BYTES + NOISE_TAG_BYTES], out[FRAME_BYTES];
    uint8_t key[32];
    struct noise_cipher *tx = NULL, *rx = NULL;
    size_t len = 0, ol = 0;
    unsigned long n = 0;
    double start = now_s(), t;

    randombytes_buf(key, sizeof(key));
    check(noise_cipher_new(key, &tx), "cipher");
    check(noise_cipher_new(key, &rx), "cipher");
    randombytes_buf(frame, FRAME_BYTES);
    do {
        for (int i = 0; i < 1024; i++) {
            check(noise_cipher_encrypt(tx, frame, FRAME_BYTES, frame, sizeof(frame), &len),
                  "encrypt");
            check(noise_cipher_decrypt(rx, frame, len, out, sizeof(out), &ol), "decrypt");
            memcpy(frame, out, ol);
        }
        n += 1024;
        t = now_s() - start;
    } while (t < BENCH_SECONDS / 2);
    noise_cipher_free(tx);
    noise_cipher_free(rx);
    return (double)n / t;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(s_init, sizeof(s_init));
    randombytes_buf(s_resp, sizeof(s_resp));
    crypto_scalarmult_base(pub_resp, s_resp);
    check(noise_prologue(NOISE_PROTOCOL_VERSION, (const uint8_t *)"bench", 5, prologue,
                         &prologue_len),
          "prologue");
    printf("noise_ik_handshakes_per_s %.0f handshakes/s\n", handshakes_per_s(NOISE_PATTERN_IK));
    printf("noise_xx_handshakes_per_s %.0f handshakes/s\n", handshakes_per_s(NOISE_PATTERN_XX));
    printf("noise_transport_1KiB_msgs_per_s %.0f msgs/s\n", transport_per_s());
    return 0;
}
