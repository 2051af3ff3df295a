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
 *                                   and its share of a kept envelope
 *                                   (deleted once acked), the recipient's
 *                                   inbox event; a sync per send.batch
 *                                   call's worth (as bench_messaging_real
 *                                   sends them); CPU of all the process's
 *                                   threads up to the store's close, so
 *                                   RocksDB's flushes and compactions too
 *                                   (but for the memtables left at the end)
 *   floor_1372B_cpu_us_per_msg      their sum
 *   floor_1372B_msgs_per_s_2_cores  two cores' worth of that sum: on a
 *                                   machine of two cores, as the project's
 *                                   are, a bound that no run of two nodes
 *                                   (bench_messaging_real) can pass, since
 *                                   they pay for what is left out as well
 * Asserts nothing; exits 1, saying why, if a primitive or the store fails.
 */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/bytes.h"
#include "node/outbox.h"
#include "node/store.h"
#include "tests/bench/bench_nodes.h"
#include "tests/node/harness.h"

#define TEXT_BYTES         1372
#define ENTRY_BYTES        (TEXT_BYTES + 64) /* a text's outbox entry or inbox event */
#define ENVELOPE_BYTES     (64 * 1024)
#define TEXTS_PER_ENVELOPE 46 /* 1,372-byte texts a 64 KiB envelope holds */
#define ENVELOPES          2000
#define CALLS              100 /* send.batch calls' worth of texts written */
#define TAG                crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(TAG == crypto_aead_chacha20poly1305_ietf_ABYTES, "both AEADs' tags");

static char store_dir[] = "/tmp/merpati-floor-XXXXXX";
static bool store_dir_made;

/* Remove the store's dir if made, then say why and exit 1. */
__attribute__((noreturn)) static void die(const char *why)
{
    if (store_dir_made)
        harness_rmtree(store_dir);
    bench_die(why);
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
        randombytes_buf(eph_sk, sizeof(eph_sk));
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(inner, &len, pt, sizeof(pt), NULL, 0, NULL,
                                                       nonce, ratchet_key) != 0 ||
            crypto_scalarmult_base(eph_pk, eph_sk) != 0 ||
            crypto_scalarmult(shared, eph_sk, rcpt_pk) != 0 ||
            crypto_aead_xchacha20poly1305_ietf_encrypt(env, &len, inner, sizeof(inner), NULL, 0,
                                                       NULL, nonce, shared) != 0 ||
            crypto_generichash(digest, sizeof(digest), env, sizeof(env), NULL, 0) != 0 ||
            crypto_aead_chacha20poly1305_ietf_encrypt(wire, &len, env, sizeof(env), NULL, 0, NULL,
                                                      nonce, link_key) != 0)
            die("the seal failed");
        /* The recipient takes it in, hashes and opens. */
        if (crypto_aead_chacha20poly1305_ietf_decrypt(env, &len, NULL, wire, sizeof(wire), NULL, 0,
                                                      nonce, link_key) != 0)
            die("the link's AEAD did not open");
        if (crypto_generichash(digest, sizeof(digest), env, sizeof(env), NULL, 0) != 0 ||
            crypto_scalarmult(shared, rcpt_sk, eph_pk) != 0 ||
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

/* CALLS send.batch calls' worth of texts, each text's three writes: us per
 * text. The last envelope of a call holds fewer texts: it is written at
 * their share of a full one (the node pads it to a size bucket: more). */
static double store_us(void)
{
    static uint8_t entry[ENTRY_BYTES], envelope[ENVELOPE_BYTES];
    const int texts = bench_batch_for(TEXT_BYTES);
    struct store *st = NULL;
    pid_t holder = 0;
    uint64_t seq = 1, envelope_seq = 1;

    randombytes_buf(entry, sizeof(entry));
    randombytes_buf(envelope, sizeof(envelope));
    if (mkdtemp(store_dir) == NULL)
        die("cannot make a dir in /tmp");
    store_dir_made = true;
    if (store_open(store_dir, &st, &holder) != MP_OK)
        die("cannot open a store");
    double t0 = cpu_s();
    for (int call = 0; call < CALLS; call++, seq += (uint64_t)texts) {
        struct store_batch *b = store_batch_new(); /* the sender takes the call's texts */
        for (int i = 0; i < texts; i++)
            put_seq(b, STORE_CF_OUTBOX, OUTBOX_KEY_ENTRY, seq + (uint64_t)i, entry, sizeof(entry));
        write_synced(st, b);
        uint64_t first = envelope_seq; /* seals them */
        b = store_batch_new();
        for (int i = 0; i < texts; i += TEXTS_PER_ENVELOPE) {
            int in = texts - i < TEXTS_PER_ENVELOPE ? texts - i : TEXTS_PER_ENVELOPE;
            put_seq(b, STORE_CF_OUTBOX_SEALED, OUTBOX_KEY_ENTRY, envelope_seq++, envelope,
                    sizeof(envelope) / TEXTS_PER_ENVELOPE * (size_t)in);
        }
        write_synced(st, b);
        b = store_batch_new(); /* the recipient stores them */
        for (int i = 0; i < texts; i++)
            put_seq(b, STORE_CF_INBOX, OUTBOX_KEY_EVENT, seq + (uint64_t)i, entry, sizeof(entry));
        write_synced(st, b);
        b = store_batch_new(); /* the sender's envelopes go once acked */
        for (uint64_t k = first; k < envelope_seq; k++) {
            uint8_t key[9] = {OUTBOX_KEY_ENTRY};
            bytes_put_u64(key + 1, k);
            store_batch_delete(b, STORE_CF_OUTBOX_SEALED, key, sizeof(key));
        }
        if (store_batch_write(st, b, false) != MP_OK)
            die("the store failed");
        store_batch_free(b);
    }
    store_close(st); /* waits for the flushes and compactions under way */
    double us = (cpu_s() - t0) * 1e6 / ((double)CALLS * texts);
    harness_rmtree(store_dir);
    store_dir_made = false;
    return us;
}

int main(void)
{
    bench_init("bench_messaging_floor");
    if (sodium_init() < 0)
        die("libsodium did not start");
    double crypto = crypto_us(), store = store_us(), sum = crypto + store;
    printf("floor_1372B_crypto_us_per_msg %.1f us\n", crypto);
    printf("floor_1372B_store_us_per_msg %.1f us\n", store);
    printf("floor_1372B_cpu_us_per_msg %.1f us\n", sum);
    printf("floor_1372B_msgs_per_s_2_cores %.0f msgs/s\n", 2e6 / sum);
    return 0;
}
