/*
 * sessions: this account's end-to-end sessions with other accounts, kept in
 * the store: the Double Ratchet state per peer (column family sessions) and
 * the account's own prekeys (meta "prekey_store").
 *
 * It turns plaintexts into sealed envelopes for a peer and envelopes back
 * into (sender, plaintext), and never writes the store itself: every state
 * change goes into the caller's batch, so the caller commits it in one synced
 * write together with what the message did (outbox or inbox), and a crash
 * leaves both or neither. Two sessions per peer at most: the current one,
 * used to send, and a second one kept to read a peer's messages when both
 * sides opened a session at once (the one opened by the lower account key
 * wins as current; docs/PROTOCOL.md, "Messages and delivery").
 */
#ifndef MP_NODE_SESSIONS_H
#define MP_NODE_SESSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/env.h"
#include "crypto/identity.h"
#include "crypto/prekey.h"
#include "node/store.h"

struct sessions;

/* Load the account's prekeys from the store, or make and store (synced) a
 * first set. env, store and account are borrowed for the sessions' life;
 * now_ms is Unix time. */
enum mp_err sessions_new(const struct env *env, struct store *store,
                         const struct identity *account, uint64_t now_ms,
                         struct sessions **sessions_out);
void sessions_free(struct sessions *s);

/* The public bundle to publish (no one-time prekeys: see docs). Rotates the
 * signed prekey first when due and stores the change (synced); *changed_out
 * says whether the bundle differs from the last one returned. */
enum mp_err sessions_bundle(struct sessions *s, uint64_t now_ms, struct prekey_bundle *bundle_out,
                            bool *changed_out);

/* True when a session with peer exists. */
bool sessions_has(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES]);

/* Encrypt pt for peer and seal it into envelope_out (initialised here; the
 * caller buf_frees it). Without a session, bundle (the peer's, as fetched
 * from the DHT; may be NULL) opens one: MP_ERR_NOT_FOUND when there is no
 * session and no bundle, the bundle's verification errors when it is bad.
 * The new session state goes into batch. */
enum mp_err sessions_seal(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                          const struct prekey_bundle *bundle, uint64_t now_ms, const uint8_t *pt,
                          size_t len, struct store_batch *batch, struct buf *envelope_out);

/* sessions_seal for count plaintexts to one peer at once, in order: one
 * session state change in batch for all of them, so a caller commits many
 * messages with one synced write. On error no envelope is left (all freed).
 *
 * Leases (docs/PROTOCOL.md, "Sending ahead of the sync"): *leased_out (if not
 * NULL) is true when the envelopes' message numbers lie under a lease this
 * run (this sessions object) took in an earlier seal; if that seal's batch is
 * durable, they may leave before this batch is. Otherwise the state in batch
 * takes a new lease, and they must wait for batch to be durable. A state
 * saved by an earlier run steps past that run's lease before it seals, so
 * numbers sent ahead of a save that a crash lost are not used again. */
enum mp_err sessions_seal_many(struct sessions *s, const uint8_t peer[IDENTITY_PUBLIC_BYTES],
                               const struct prekey_bundle *bundle, uint64_t now_ms,
                               const struct buf *pts, size_t count, struct store_batch *batch,
                               struct buf *envelopes_out, bool *leased_out);

/* Hand back the leases this run took (into batch), for a clean stop: with its
 * states saved, the next run need not step past them. Call once nothing
 * seals any more, then make batch durable. */
enum mp_err sessions_release(struct sessions *s, struct store_batch *batch);

/* Make the next seal's ephemeral key pair now, if none waits, and its
 * exchange with the peer last sealed to: call when the node has just sent,
 * so that the next message's seal (to the same peer) skips that work. */
void sessions_prepare(struct sessions *s);

/* Open an envelope for this account: the sender's account key and the
 * plaintext (pt_out initialised here; the caller buf_frees it). State changes
 * go into batch. Errors: envelope_open's, the ratchet's (RATCHET_REPLAY for
 * a message already read), MP_ERR_NOT_FOUND when no session fits and the
 * envelope opens none. sender_out is set once the seal opens, so also with
 * the ratchet's errors. */
enum mp_err sessions_open(struct sessions *s, const uint8_t *envelope, size_t len,
                          uint64_t now_ms, struct store_batch *batch,
                          uint8_t sender_out[IDENTITY_PUBLIC_BYTES], struct buf *pt_out);

/* The caller dropped the batch of a successful sessions_open instead of
 * writing it (the message was refused, or the write failed): forget the
 * in-memory part of it too, by reloading the prekeys from the store, so the
 * same envelope opens again when it is resent. */
enum mp_err sessions_discard(struct sessions *s);

/* The stored session record codec (the sessions family's values), for its
 * fuzz target: decode data as a record and encode what it holds again into
 * out (initialised here; the caller buf_frees). MP_ERR_WIRE_VERSION or
 * MP_ERR_MALFORMED for bytes that are not a record, MP_ERR_NOMEM. */
enum mp_err sessions_record_recode(const struct env *env, const uint8_t *data, size_t len,
                                   struct buf *out);

#endif
