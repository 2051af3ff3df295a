#include "node/sessions.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"
#include "crypto/envelope.h"
#include "crypto/ratchet.h"
#include "crypto/secure.h"
#include "crypto/x3dh.h"
#include "node/msg.h"

#define MOD "sessions"

_Static_assert(MSG_WIRE_MAX <= RATCHET_PLAINTEXT_MAX,
               "a full message must fit one ratchet message");

/* The meta key of the account's prekey store. */
static const char prekey_key[] = "prekey_store";

/* Session record (value in the sessions family, key = peer account key):
 * u8 version (1), u8 flags (1: has init, 2: has second, 4: has lease), then
 * the init if any (32 + 32 + 4 + 1 + 4 bytes, integers big-endian), then the
 * lease if any (8 + 32 + 4 bytes), then u32 length and the current ratchet
 * state, then, if any, u32 length and the second one. */
#define RECORD_VERSION 1
#define FLAG_INIT 1u
#define FLAG_SECOND 2u
#define FLAG_LEASE 4u
#define INIT_BYTES (32 + 32 + 4 + 1 + 4)
#define LEASE_BYTES (8 + 32 + 4)
#define SESSIONS_RECIPIENTS_CACHED 16
/* Message numbers a lease takes past the next one to seal: how far a
 * receiver's chain may jump after a crash, and how many numbers pass between
 * two leases (each waits for a sync before its messages may leave). */
#define SESSIONS_LEASE_AHEAD 128
_Static_assert(SESSIONS_LEASE_AHEAD <= RATCHET_MAX_SKIP,
               "a receiver must accept the step past a lease");

struct sessions {
    const struct env *env;
    struct store *store;
    const struct identity *account;
    struct prekey_store *prekeys;
    uint32_t bundle_spk_id; /* of the last bundle returned, to report changes */
    /* Peers lately sealed to, with their keys in X25519 form: the checked
     * conversion costs as much as a Diffie-Hellman, once per peer instead
     * of once per seal. A miss takes the slot used longest ago. */
    struct envelope_recipient recipients[SESSIONS_RECIPIENTS_CACHED];
    uint64_t recipients_used_at[SESSIONS_RECIPIENTS_CACHED]; /* 0: empty */
    uint64_t recipients_clock;
    struct envelope_ephemeral spare; /* the next seal's, made ahead (sessions_prepare) */
    struct envelope_recipient last;  /* the last peer sealed to, if has_last: the */
    bool has_last;                   /* next spare's exchange is made with it */
    uint64_t run;                    /* this process's leases carry it (random) */
    /* The peers this run took a lease for, to hand back on release: one
     * each, so no more than the peers it sealed to (searched once a lease,
     * every SESSIONS_LEASE_AHEAD messages at most). */
    uint8_t (*leased)[IDENTITY_PUBLIC_BYTES];
    size_t leased_count, leased_cap;
};

/* Message numbers a run may have sent on a sending chain before its state
 * was saved (docs/PROTOCOL.md, "Sending ahead of the sync"): all below n on
 * chain `chain`, by the run `run`. */
struct lease {
    uint64_t run;
    uint8_t chain[RATCHET_KEY_BYTES];
    uint32_t n;
};

struct record {
    bool has_init; /* we opened this session and have not heard back yet */
    struct x3dh_init init;
    bool has_lease;
    struct lease lease;
    struct ratchet *current;
    struct ratchet *second;
};

static void record_clear(struct record *r)
{
    ratchet_free(r->current);
    ratchet_free(r->second);
    memset(r, 0, sizeof(*r));
}

/* ---- the record codec ---- */

static enum mp_err append_state(struct buf *out, const struct ratchet *r)
{
    struct buf state;
    uint8_t len[4];
    enum mp_err err = ratchet_state_encode(r, &state);
    if (err != MP_OK)
        return err;
    bytes_put_u32(len, (uint32_t)state.len);
    err = buf_append(out, len, sizeof(len));
    if (err == MP_OK)
        err = buf_append(out, state.data, state.len);
    buf_free(&state); /* wipes */
    return err;
}

static enum mp_err record_encode(const struct record *r, struct buf *out)
{
    uint8_t head[2 + INIT_BYTES + LEASE_BYTES];
    size_t n = 2;

    buf_init(out, sizeof(head) + 2 * (4 + RATCHET_STATE_WIRE_MAX));
    head[0] = RECORD_VERSION;
    head[1] = (uint8_t)((r->has_init ? FLAG_INIT : 0) | (r->second ? FLAG_SECOND : 0) |
                        (r->has_lease ? FLAG_LEASE : 0));
    if (r->has_init) {
        memcpy(head + n, r->init.initiator, 32);
        memcpy(head + n + 32, r->init.ephemeral, 32);
        bytes_put_u32(head + n + 64, r->init.spk_id);
        head[n + 68] = r->init.has_opk;
        bytes_put_u32(head + n + 69, r->init.opk_id);
        n += INIT_BYTES;
    }
    if (r->has_lease) {
        bytes_put_u64(head + n, r->lease.run);
        memcpy(head + n + 8, r->lease.chain, RATCHET_KEY_BYTES);
        bytes_put_u32(head + n + 40, r->lease.n);
        n += LEASE_BYTES;
    }
    enum mp_err err = buf_append(out, head, n);
    if (err == MP_OK)
        err = append_state(out, r->current);
    if (err == MP_OK && r->second != NULL)
        err = append_state(out, r->second);
    if (err != MP_OK)
        buf_free(out);
    return err;
}

static enum mp_err take_state(const struct env *env, const uint8_t **p, size_t *left,
                              struct ratchet **r_out)
{
    if (*left < 4)
        return MP_ERR_MALFORMED;
    uint32_t len = bytes_get_u32(*p);
    if (len > *left - 4)
        return MP_ERR_MALFORMED;
    enum mp_err err = ratchet_state_decode(env, *p + 4, len, r_out);
    *p += 4 + len;
    *left -= 4 + len;
    return err;
}

static enum mp_err record_decode(const struct env *env, const uint8_t *data, size_t len,
                                 struct record *r_out)
{
    struct record r;
    enum mp_err err;

    memset(&r, 0, sizeof(r));
    if (len < 2 || data[0] != RECORD_VERSION ||
        (data[1] & ~(FLAG_INIT | FLAG_SECOND | FLAG_LEASE)) != 0)
        return len >= 1 && data[0] != RECORD_VERSION ? MP_ERR_WIRE_VERSION : MP_ERR_MALFORMED;
    const uint8_t *p = data + 2;
    size_t left = len - 2;
    if (data[1] & FLAG_INIT) {
        if (left < INIT_BYTES || p[68] > 1)
            return MP_ERR_MALFORMED;
        r.has_init = true;
        memcpy(r.init.initiator, p, 32);
        memcpy(r.init.ephemeral, p + 32, 32);
        r.init.spk_id = bytes_get_u32(p + 64);
        r.init.has_opk = p[68];
        r.init.opk_id = bytes_get_u32(p + 69);
        p += INIT_BYTES;
        left -= INIT_BYTES;
    }
    if (data[1] & FLAG_LEASE) {
        if (left < LEASE_BYTES)
            return MP_ERR_MALFORMED;
        r.has_lease = true;
        r.lease.run = bytes_get_u64(p);
        memcpy(r.lease.chain, p + 8, RATCHET_KEY_BYTES);
        r.lease.n = bytes_get_u32(p + 40);
        p += LEASE_BYTES;
        left -= LEASE_BYTES;
    }
    err = take_state(env, &p, &left, &r.current);
    if (err == MP_OK && (data[1] & FLAG_SECOND))
        err = take_state(env, &p, &left, &r.second);
    if (err == MP_OK && left != 0)
        err = MP_ERR_MALFORMED;
    if (err != MP_OK) {
        record_clear(&r);
        return err == MP_ERR_NOMEM ? err : MP_ERR_MALFORMED;
    }
    *r_out = r;
    return MP_OK;
}

enum mp_err sessions_record_recode(const struct env *env, const uint8_t *data, size_t len,
                                   struct buf *out)
{
    struct record r;
    enum mp_err err = record_decode(env, data, len, &r);
    if (err != MP_OK)
        return err;
    err = record_encode(&r, out);
    record_clear(&r);
    return err;
}

static enum mp_err record_load(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                               struct record *r_out)
{
    uint8_t *val = NULL;
    size_t len = 0;
    enum mp_err err =
        store_get(s->store, STORE_CF_SESSIONS, peer, IDENTITY_PUBLIC_BYTES, &val, &len);
    if (err != MP_OK)
        return err;
    err = record_decode(s->env, val, len, r_out);
    secure_wipe(val, len);
    free(val);
    if (err != MP_OK)
        log_error(MOD, "a stored session is damaged (%s)", mp_strerror(err));
    return err;
}

static enum mp_err record_save(const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                               const struct record *r, struct store_batch *batch)
{
    struct buf enc;
    enum mp_err err = record_encode(r, &enc);
    if (err != MP_OK)
        return err;
    store_batch_put(batch, STORE_CF_SESSIONS, peer, IDENTITY_PUBLIC_BYTES, enc.data, enc.len);
    buf_free(&enc);
    return MP_OK;
}

static enum mp_err prekeys_save(struct sessions *s, struct store_batch *batch)
{
    struct buf enc;
    enum mp_err err = prekey_store_encode(s->prekeys, &enc);
    if (err != MP_OK)
        return err;
    store_batch_put(batch, STORE_CF_META, prekey_key, strlen(prekey_key), enc.data, enc.len);
    buf_free(&enc);
    return MP_OK;
}

static enum mp_err prekeys_save_now(struct sessions *s)
{
    struct store_batch *batch = store_batch_new();
    enum mp_err err = prekeys_save(s, batch);
    if (err == MP_OK)
        err = store_batch_write(s->store, batch, true);
    store_batch_free(batch);
    return err;
}

/* ---- life ---- */

/* The prekeys as stored. */
static enum mp_err prekeys_load(struct sessions *s, struct prekey_store **prekeys_out)
{
    uint8_t *val = NULL;
    size_t len = 0;
    enum mp_err err =
        store_get(s->store, STORE_CF_META, prekey_key, strlen(prekey_key), &val, &len);
    if (err == MP_OK) {
        err = prekey_store_decode(s->account, val, len, prekeys_out);
        secure_wipe(val, len);
        free(val);
    }
    return err;
}

enum mp_err sessions_new(const struct env *env, struct store *store,
                         const struct identity *account, uint64_t now_ms,
                         struct sessions **sessions_out)
{
    struct sessions *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MP_ERR_NOMEM;
    s->env = env;
    s->store = store;
    s->account = account;
    env_random(env, &s->run, sizeof(s->run));
    enum mp_err err = prekeys_load(s, &s->prekeys);
    if (err == MP_ERR_NOT_FOUND) {
        err = prekey_store_new(env, account, now_ms, &s->prekeys);
        if (err == MP_OK)
            err = prekeys_save_now(s);
    }
    if (err != MP_OK) {
        log_error(MOD, "cannot load or create the prekeys: %s", mp_strerror(err));
        sessions_free(s);
        return err;
    }
    *sessions_out = s;
    return MP_OK;
}

enum mp_err sessions_discard(struct sessions *s)
{
    struct prekey_store *fresh = NULL;
    enum mp_err err = prekeys_load(s, &fresh);
    if (err != MP_OK) {
        log_error(MOD, "cannot reload the prekeys: %s", mp_strerror(err));
        return err;
    }
    prekey_store_free(s->prekeys);
    s->prekeys = fresh;
    return MP_OK;
}

void sessions_free(struct sessions *s)
{
    if (s == NULL)
        return;
    prekey_store_free(s->prekeys);
    envelope_ephemeral_wipe(&s->spare);
    free(s->leased);
    free(s);
}

void sessions_prepare(struct sessions *s)
{
    if (!s->spare.ready &&
        envelope_ephemeral_make(s->env, s->has_last ? &s->last : NULL, &s->spare) != MP_OK)
        log_warn(MOD, "cannot make a seal's key pair ahead; seals make their own");
}

enum mp_err sessions_bundle(struct sessions *s, uint64_t now_ms, struct prekey_bundle *bundle_out,
                            bool *changed_out)
{
    enum mp_err err = MP_OK;

    if (prekey_store_rotation_due(s->prekeys, now_ms)) {
        err = prekey_store_rotate(s->prekeys, s->env, s->account, now_ms);
        if (err == MP_OK)
            err = prekeys_save_now(s);
        if (err != MP_OK)
            return err;
        log_info(MOD, "rotated the signed prekey");
    }
    prekey_store_bundle(s->prekeys, 0, bundle_out);
    *changed_out = bundle_out->spk.id != s->bundle_spk_id;
    s->bundle_spk_id = bundle_out->spk.id;
    return MP_OK;
}

bool sessions_has(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES])
{
    uint8_t *val = NULL;
    size_t len = 0;
    if (store_get(s->store, STORE_CF_SESSIONS, peer, IDENTITY_PUBLIC_BYTES, &val, &len) != MP_OK)
        return false;
    secure_wipe(val, len);
    free(val);
    return true;
}

/* ---- sending ---- */

static enum mp_err open_as_initiator(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                                     const struct prekey_bundle *bundle, uint64_t now_ms,
                                     struct record *r_out)
{
    struct x3dh_keys keys;
    enum mp_err err = x3dh_initiate(s->env, s->account, bundle, peer, now_ms, &r_out->init, &keys);
    if (err == MP_OK)
        err = ratchet_new_initiator(s->env, keys.root, keys.ad, keys.spk_pub, &r_out->current);
    x3dh_keys_wipe(&keys);
    r_out->has_init = err == MP_OK;
    return err;
}

/* Encrypt and seal one plaintext under r (advancing it). */
static enum mp_err seal_one(struct sessions *s, const struct envelope_recipient *peer,
                            struct record *r, const uint8_t *pt, size_t len,
                            struct buf *envelope_out)
{
    struct envelope_content c;

    if (len > RATCHET_PLAINTEXT_MAX)
        return MP_ERR_TOO_BIG;
    memset(&c, 0, sizeof(c));
    uint8_t *ct = malloc(len + RATCHET_OVERHEAD);
    if (ct == NULL)
        return MP_ERR_NOMEM;
    enum mp_err err = ratchet_encrypt(r->current, pt, len, &c.header, ct);
    if (err == MP_OK) {
        /* The peer needs the X3DH part until it has answered once. */
        if (ratchet_has_received(r->current))
            r->has_init = false;
        memcpy(c.sender, identity_public_key(s->account), IDENTITY_PUBLIC_BYTES);
        c.has_init = r->has_init;
        c.init = r->init;
        c.ct = ct;
        c.ct_len = len + RATCHET_OVERHEAD;
        err = envelope_seal_to(s->env, peer, &c, &s->spare, envelope_out);
    }
    free(ct);
    return err;
}

/* Peer's sealing key from the cache, converted and cached on a miss. */
static enum mp_err recipient(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                             struct envelope_recipient *r_out)
{
    size_t oldest = 0;
    for (size_t i = 0; i < SESSIONS_RECIPIENTS_CACHED; i++) {
        if (s->recipients_used_at[i] != 0 &&
            memcmp(s->recipients[i].account, peer, IDENTITY_PUBLIC_BYTES) == 0) {
            s->recipients_used_at[i] = ++s->recipients_clock;
            *r_out = s->recipients[i];
            return MP_OK;
        }
        if (s->recipients_used_at[i] < s->recipients_used_at[oldest])
            oldest = i;
    }
    enum mp_err err = envelope_recipient_init(peer, r_out);
    if (err != MP_OK)
        return err;
    s->recipients[oldest] = *r_out;
    s->recipients_used_at[oldest] = ++s->recipients_clock;
    return MP_OK;
}

/* A record saved by another run (before a restart) may have sent past its
 * saved state, under that run's lease: its sending chain steps past what the
 * lease covered, as far as a receiver accepts. */
static enum mp_err lease_apply(const struct sessions *s, struct record *r)
{
    uint8_t chain[RATCHET_KEY_BYTES];
    uint32_t n;

    if (!r->has_lease || r->lease.run == s->run || !ratchet_send_position(r->current, chain, &n) ||
        memcmp(chain, r->lease.chain, sizeof(chain)) != 0 || n >= r->lease.n)
        return MP_OK;
    /* Farther only in a damaged record: as far as a receiver accepts. */
    uint32_t to = r->lease.n - n > RATCHET_MAX_SKIP ? n + RATCHET_MAX_SKIP : r->lease.n;
    return ratchet_skip_sends(r->current, to);
}

/* After sealing under r: true when this run's lease in r, as loaded, covers
 * every number used; else r takes a new one, SESSIONS_LEASE_AHEAD past them,
 * and peer is remembered for sessions_release. */
static bool lease_take(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                       struct record *r)
{
    uint8_t chain[RATCHET_KEY_BYTES];
    uint32_t n;

    if (!ratchet_send_position(r->current, chain, &n))
        return false;
    if (r->has_lease && r->lease.run == s->run &&
        memcmp(chain, r->lease.chain, sizeof(chain)) == 0 && n <= r->lease.n)
        return true;
    r->has_lease = true;
    r->lease.run = s->run;
    memcpy(r->lease.chain, chain, sizeof(chain));
    r->lease.n = n < UINT32_MAX - SESSIONS_LEASE_AHEAD ? n + SESSIONS_LEASE_AHEAD : UINT32_MAX - 1;
    for (size_t i = 0; i < s->leased_count; i++) {
        if (memcmp(s->leased[i], peer, IDENTITY_PUBLIC_BYTES) == 0)
            return false;
    }
    if (s->leased_count == s->leased_cap) {
        size_t cap = s->leased_cap ? 2 * s->leased_cap : 16;
        void *grown = realloc(s->leased, cap * sizeof(*s->leased));
        if (grown == NULL)
            return false; /* not handed back: a restart skips its numbers */
        s->leased = grown;
        s->leased_cap = cap;
    }
    memcpy(s->leased[s->leased_count++], peer, IDENTITY_PUBLIC_BYTES);
    return false;
}

enum mp_err sessions_release(struct sessions *s, struct store_batch *batch)
{
    enum mp_err err = MP_OK;

    for (size_t i = 0; i < s->leased_count && err == MP_OK; i++) {
        struct record r;
        if (record_load(s, s->leased[i], &r) != MP_OK)
            continue; /* damaged (logged) or gone: nothing to hand back */
        if (r.has_lease && r.lease.run == s->run) {
            r.has_lease = false;
            err = record_save(s->leased[i], &r, batch);
        }
        record_clear(&r);
    }
    if (err == MP_OK)
        s->leased_count = 0;
    return err;
}

enum mp_err sessions_seal_many(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                               const struct prekey_bundle *bundle, uint64_t now_ms,
                               const struct buf *pts, size_t count, struct store_batch *batch,
                               struct buf *envelopes_out, bool *leased_out)
{
    struct record r;
    struct envelope_recipient to;
    size_t done = 0;

    for (size_t k = 0; k < count; k++)
        buf_init(&envelopes_out[k], 0);
    enum mp_err err = recipient(s, peer, &to);
    if (err != MP_OK)
        return err;
    err = record_load(s, peer, &r);
    if (err == MP_ERR_NOT_FOUND) {
        memset(&r, 0, sizeof(r));
        err = bundle != NULL ? open_as_initiator(s, peer, bundle, now_ms, &r) : MP_ERR_NOT_FOUND;
    }
    if (err == MP_OK)
        err = lease_apply(s, &r);
    for (; err == MP_OK && done < count; done++)
        err = seal_one(s, &to, &r, pts[done].data, pts[done].len, &envelopes_out[done]);
    bool leased = err == MP_OK && lease_take(s, peer, &r);
    if (err == MP_OK)
        err = record_save(peer, &r, batch);
    if (leased_out != NULL)
        *leased_out = err == MP_OK && leased;
    if (err == MP_OK) {
        s->last = to;
        s->has_last = true;
    } else {
        for (size_t k = 0; k < count; k++)
            buf_free(&envelopes_out[k]);
    }
    record_clear(&r);
    return err;
}

enum mp_err sessions_seal(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                          const struct prekey_bundle *bundle, uint64_t now_ms, const uint8_t *pt,
                          size_t len, struct store_batch *batch, struct buf *envelope_out)
{
    struct buf one = {.data = (uint8_t *)pt, .len = len, .cap = len, .max = len};
    return sessions_seal_many(s, peer, bundle, now_ms, &one, 1, batch, envelope_out, NULL);
}

/* ---- receiving ---- */

/* A first message's X3DH part opens a responder session; on success the
 * session ends up current or second (see the header) and the prekeys record
 * the first message as seen. */
static enum mp_err open_as_responder(struct sessions *s, const struct envelope_content *c,
                                     uint64_t now_ms, struct record *r, uint8_t *pt,
                                     struct store_batch *batch)
{
    struct x3dh_keys keys;
    struct ratchet *fresh = NULL;

    enum mp_err err = x3dh_respond(s->prekeys, &c->init, now_ms, &keys);
    if (err == MP_OK)
        err = ratchet_new_responder(s->env, keys.root, keys.ad, keys.spk_sk, keys.spk_pub, &fresh);
    x3dh_keys_wipe(&keys);
    if (err == MP_OK)
        err = ratchet_decrypt(fresh, &c->header, c->ct, c->ct_len, pt);
    if (err == MP_OK)
        err = x3dh_accept(s->prekeys, &c->init);
    if (err == MP_OK)
        err = prekeys_save(s, batch);
    if (err != MP_OK) {
        ratchet_free(fresh);
        return err;
    }
    /* Both sides opened a session at once: the lower account key's wins. */
    bool ours_pending = r->current != NULL && r->has_init;
    bool adopt = !ours_pending || memcmp(c->sender, identity_public_key(s->account),
                                         IDENTITY_PUBLIC_BYTES) < 0;
    if (adopt) {
        ratchet_free(r->second);
        r->second = r->current; /* still reads the peer's late messages */
        r->current = fresh;
        r->has_init = false;
    } else {
        ratchet_free(r->second);
        r->second = fresh;
    }
    return MP_OK;
}

enum mp_err sessions_open(struct sessions *s, const uint8_t *envelope, size_t len,
                          uint64_t now_ms, struct store_batch *batch,
                          uint8_t sender_out[IDENTITY_PUBLIC_BYTES], struct buf *pt_out)
{
    struct envelope_content c;
    struct record r;
    uint8_t *pt = NULL;

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    enum mp_err err = envelope_open(s->account, envelope, len, &c);
    if (err != MP_OK)
        return err;
    memcpy(sender_out, c.sender, IDENTITY_PUBLIC_BYTES);
    size_t pt_len = c.ct_len - RATCHET_OVERHEAD; /* envelope_open checked ct_len */
    pt = malloc(pt_len ? pt_len : 1);
    if (pt == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    err = record_load(s, c.sender, &r);
    if (err != MP_OK && err != MP_ERR_NOT_FOUND)
        goto cleanup;
    err = MP_ERR_NOT_FOUND;
    if (r.current != NULL)
        err = ratchet_decrypt(r.current, &c.header, c.ct, c.ct_len, pt);
    if (err != MP_OK && r.second != NULL) {
        enum mp_err second = ratchet_decrypt(r.second, &c.header, c.ct, c.ct_len, pt);
        err = second == MP_OK || err == MP_ERR_NOT_FOUND ? second : err;
    }
    if (err != MP_OK && c.has_init &&
        memcmp(c.init.initiator, c.sender, IDENTITY_PUBLIC_BYTES) == 0) {
        enum mp_err fresh = open_as_responder(s, &c, now_ms, &r, pt, batch);
        /* A replayed first message is reported as the ratchet saw it, if it did. */
        err = fresh == MP_OK || err == MP_ERR_NOT_FOUND ? fresh : err;
    }
    if (err != MP_OK)
        goto cleanup;
    if (r.has_init && ratchet_has_received(r.current))
        r.has_init = false;
    if ((err = record_save(c.sender, &r, batch)) != MP_OK)
        goto cleanup;
    buf_init(pt_out, RATCHET_PLAINTEXT_MAX);
    if ((err = buf_append(pt_out, pt, pt_len)) != MP_OK) {
        buf_free(pt_out);
        goto cleanup;
    }
cleanup:
    if (pt != NULL) {
        secure_wipe(pt, pt_len);
        free(pt);
    }
    record_clear(&r);
    envelope_content_clear(&c);
    return err;
}
