/*
 * bench_messaging_floor: the least CPU a 1,372-byte text can cost in direct
 * delivery as designed, both ends together, measured here with the same
 * primitives and the node's own store, leaving out all else the nodes do
 * (JSON, codecs, bookkeeping, indexes, acks, events, the network). Texts go
 * TEXTS_PER_ENVELOPE to a 64 KiB envelope, as delivery bundles them. Prints
 * "name value unit" lines, per text:
 *   floor_1372B_crypto_us_per_msg   the sender's seal (the ratchet's and
 *                                   the envelope's XChaCha20-Poly1305, an
 *                                   X25519 per envelope), the envelope's
 *                                   BLAKE2b-256 digest at both ends, the
 *                                   link's ChaCha20-Poly1305 both ways, and
 *                                   the recipient's open (the same)
 *   floor_1372B_store_us_per_msg    the text's three durable writes through
 *                                   node/store: the sender's outbox entry
 *                                   and kept envelope (deleted once acked),
 *                                   the recipient's inbox event; a sync per
 *                                   send.batch call's worth (TEXTS_PER_CALL);
 *                                   CPU of all the process's threads, so
 *                                   RocksDB's flushes and compactions too
 *   floor_1372B_cpu_us_per_msg      their sum
 *   floor_1372B_msgs_per_s_2_cores  two cores' worth of that sum: a bound no
 *                                   run of two nodes here can pass
 *                                   (bench_messaging_real), since they pay
 *                                   for what is left out as well
 * Asserts nothing; exits non-zero only if a primitive or the store fails.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/bytes.h"
#include "node/store.h"

#define TEXT_BYTES         1372
#define ENTRY_BYTES        (TEXT_BYTES + 64) /* a text's outbox entry or inbox event */
#define ENVELOPE_BYTES     (64 * 1024)
#define TEXTS_PER_ENVELOPE 46  /* 1,372-byte texts a 64 KiB envelope holds */
#define TEXTS_PER_CALL     755 /* bench_messaging_real's send.batch calls of them */
#define ENVELOPES          2000
#define STORE_TEXTS        (100 * TEXTS_PER_CALL)
#define TAG                16

static void die(const char *what)
{
    fprintf(stderr, "bench_messaging_floor: %s\n", what);
    exit(1);
}

/* CPU time of the whole process (every thread), in seconds. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One envelope from sealing to opening, ENVELOPES times: us per text. */
static double crypto_us(void)
{
    enum { INNER = ENVELOPE_BYTES - 2 * TAG - 64, OUTER = INNER + TAG };
    static uint8_t pt[INNER], inner[OUTER], env[OUTER + TAG], wire[OUTER + 2 * TAG];
    uint8_t ratchet_key[32], link_key[32], nonce[24], digest[32], shared[32];
    uint8_t eph_sk[32], eph_pk[32], rcpt_sk[32], rcpt_pk[32];
    unsigned long long len;

    randombytes_buf(pt, sizeof(pt));
    randombytes_buf(ratchet_key, sizeof(ratchet_key));
    randombytes_buf(link_key, sizeof(link_key));
    randombytes_buf(nonce, sizeof(nonce));
    randombytes_buf(rcpt_sk, sizeof(rcpt_sk));
    if (crypto_scalarmult_base(rcpt_pk, rcpt_sk) != 0)
        die("X25519 failed");
    double t0 = cpu_s();
    for (int i = 0; i < ENVELOPES; i++) {
        /* The sender seals, hashes and sends. */
        crypto_aead_xchacha20poly1305_ietf_encrypt(inner, &len, pt, sizeof(pt), NULL, 0, NULL,
                                                   nonce, ratchet_key);
        randombytes_buf(eph_sk, sizeof(eph_sk));
        if (crypto_scalarmult_base(eph_pk, eph_sk) != 0 ||
            crypto_scalarmult(shared, eph_sk, rcpt_pk) != 0)
            die("X25519 failed");
        crypto_aead_xchacha20poly1305_ietf_encrypt(env, &len, inner, sizeof(inner), NULL, 0, NULL,
                                                   nonce, shared);
        crypto_generichash(digest, sizeof(digest), env, sizeof(env), NULL, 0);
        crypto_aead_chacha20poly1305_ietf_encrypt(wire, &len, env, sizeof(env), NULL, 0, NULL,
                                                  nonce, link_key);
        /* The recipient takes it in, hashes and opens. */
        if (crypto_aead_chacha20poly1305_ietf_decrypt(env, &len, NULL, wire, sizeof(wire), NULL, 0,
                                                      nonce, link_key) != 0)
            die("the link's AEAD did not open");
        crypto_generichash(digest, sizeof(digest), env, sizeof(env), NULL, 0);
        if (crypto_scalarmult(shared, rcpt_sk, eph_pk) != 0 ||
            crypto_aead_xchacha20poly1305_ietf_decrypt(inner, &len, NULL, env, sizeof(env), NULL, 0,
                                                       nonce, shared) != 0 ||
            crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &len, NULL, inner, sizeof(inner), NULL,
                                                       0, nonce, ratchet_key) != 0)
            die("the envelope did not open");
    }
    return (cpu_s() - t0) * 1e6 / ((double)ENVELOPES * TEXTS_PER_ENVELOPE);
}

static void put_seq(struct store_batch *b, enum store_cf cf, uint8_t prefix, uint64_t seq,
                    const uint8_t *val, size_t len)
{
    uint8_t key[9] = {prefix};
    bytes_put_u64(key + 1, seq);
    store_batch_put(b, cf, key, sizeof(key), val, len);
}

/* b written and synced, then freed. */
static void write_synced(struct store *st, struct store_batch *b)
{
    if (store_batch_write(st, b, false) != MP_OK || store_sync(st) != MP_OK)
        die("the store failed");
    store_batch_free(b);
}

static int remove_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* STORE_TEXTS texts' three writes, a send.batch call's worth at a time: us
 * per text. */
static double store_us(void)
{
    static uint8_t entry[ENTRY_BYTES], envelope[ENVELOPE_BYTES];
    char dir[] = "/tmp/merpati-floor-XXXXXX";
    struct store *st = NULL;
    pid_t holder = 0;
    uint64_t seq = 1, envelope_seq = 1;

    randombytes_buf(entry, sizeof(entry));
    randombytes_buf(envelope, sizeof(envelope));
    if (mkdtemp(dir) == NULL || store_open(dir, &st, &holder) != MP_OK)
        die("cannot open a store in /tmp");
    double t0 = cpu_s();
    for (int call = 0; call < STORE_TEXTS / TEXTS_PER_CALL; call++, seq += TEXTS_PER_CALL) {
        struct store_batch *b = store_batch_new(); /* the sender takes the call's texts */
        for (uint64_t i = 0; i < TEXTS_PER_CALL; i++)
            put_seq(b, STORE_CF_OUTBOX, 'o', seq + i, entry, sizeof(entry));
        write_synced(st, b);
        uint64_t first = envelope_seq; /* seals them */
        b = store_batch_new();
        for (int i = 0; i < TEXTS_PER_CALL; i += TEXTS_PER_ENVELOPE)
            put_seq(b, STORE_CF_OUTBOX_SEALED, 'o', envelope_seq++, envelope, sizeof(envelope));
        write_synced(st, b);
        b = store_batch_new(); /* the recipient stores them */
        for (uint64_t i = 0; i < TEXTS_PER_CALL; i++)
            put_seq(b, STORE_CF_INBOX, 'e', seq + i, entry, sizeof(entry));
        write_synced(st, b);
        b = store_batch_new(); /* the sender's envelopes go once acked */
        for (uint64_t k = first; k < envelope_seq; k++) {
            uint8_t key[9] = {'o'};
            bytes_put_u64(key + 1, k);
            store_batch_delete(b, STORE_CF_OUTBOX_SEALED, key, sizeof(key));
        }
        if (store_batch_write(st, b, false) != MP_OK)
            die("the store failed");
        store_batch_free(b);
    }
    double us = (cpu_s() - t0) * 1e6 / STORE_TEXTS;
    store_close(st);
    nftw(dir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
    return us;
}

int main(void)
{
    if (sodium_init() < 0)
        die("libsodium did not start");
    double crypto = crypto_us(), store = store_us(), sum = crypto + store;
    printf("floor_1372B_crypto_us_per_msg %.1f us\n", crypto);
    printf("floor_1372B_store_us_per_msg %.1f us\n", store);
    printf("floor_1372B_cpu_us_per_msg %.1f us\n", sum);
    printf("floor_1372B_msgs_per_s_2_cores %.0f msgs/s\n", 2e6 / sum);
    return 0;
}
