/*
 * The one list of Merpati errors. err.h turns it into `enum mp_err` and err.c
 * into mp_strerror(). Append only: the numbers are stable and appear in the
 * control API ("data": {"code": N}), so an entry is never removed or moved.
 *
 * Each message says what went wrong in words a user can act on; callers add
 * the specifics (which file, which peer) around it.
 */
#define MP_ERR_LIST(X)                                                                             \
    X(OK, "success")                                                                               \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(MALFORMED, "malformed input")                                                                \
    X(TOO_BIG, "input exceeds its size limit")                                                     \
    X(IO, "input/output error")                                                                    \
    X(EXISTS, "already exists")                                                                    \
    X(NOT_FOUND, "not found")                                                                      \
    X(BUSY, "in use by another process")                                                           \
    X(PERM, "permission denied")                                                                   \
    X(DISK_FULL, "no space left on device")                                                        \
    X(CONFIG, "invalid configuration")                                                             \
    X(CRYPTO, "cryptographic operation failed")                                                    \
    X(ADDR_PREFIX, "address does not start with \"mp1\"")                                          \
    X(ADDR_LENGTH, "address has the wrong length")                                                 \
    X(ADDR_ALPHABET, "address contains a character that is not in its alphabet")                   \
    X(ADDR_CHECKSUM, "address checksum does not match (a typo?)")                                  \
    X(ADDR_VERSION, "address has an unknown version")                                              \
    X(ADDR_KEY, "address does not hold a valid public key")                                        \
    X(STORE_VERSION, "data has an unsupported format version")                                     \
    X(STORE, "database error")                                                                     \
    X(KEYFILE, "key file is damaged or not a Merpati key")                                         \
    X(NET_ADDR, "not a valid network address (want host:port)")                                    \
    X(UNAVAILABLE, "service not available")                                                        \
    X(TIMEOUT, "timed out")                                                                        \
    X(ADDR_CASE, "address mixes upper- and lowercase letters")                                     \
    X(NOISE_STATE, "Noise handshake or link used out of order, or after it failed")                \
    X(NOISE_DECRYPT, "Noise message failed authentication (altered or corrupted in transit)")      \
    X(NOISE_LOW_ORDER, "peer sent a low-order Curve25519 key (broken or hostile peer)")            \
    X(NOISE_NONCE, "Noise link used up its nonces; reconnect to get fresh keys")                   \
    X(NOISE_PROLOGUE, "Noise handshake failed: peer runs another protocol version or network "     \
                      "id, or the message was altered")                                            \
    X(NOISE_PEER_KEY, "Noise handshake failed: peer key is not the expected one (it dialed "       \
                      "another key for us or is not the node dialed), or the message was altered") \
    X(NOISE_PSK, "Noise handshake failed: wrong private-cluster secret (PSK), or the message "     \
                 "was altered")                                                                    \
    X(WIRE_VERSION, "message has an unsupported protocol version (is the peer newer?)")            \
    X(WEAK_KEY, "public key is a low-order point (refused)")                                       \
    X(PREKEY_SIGNATURE, "signed prekey signature does not verify")                                 \
    X(PREKEY_OWNER, "prekey bundle belongs to a different account")                                \
    X(PREKEY_EXPIRED, "signed prekey has expired (fetch a fresh bundle)")                          \
    X(PREKEY_UNKNOWN, "message uses a prekey this account no longer has")                          \
    X(SESSION_REPLAY, "first message of a session seen before (replayed)")                         \
    X(RATCHET_REPLAY, "message already received (duplicate or replay)")                            \
    X(RATCHET_TAMPERED, "message failed authentication (tampered or not for this session)")        \
    X(RATCHET_TOO_FAR, "message is outside the skipped-message window (too far ahead or too old)") \
    X(ENVELOPE_OPEN, "envelope cannot be opened with this key (not for us, or tampered)")          \
    X(DHT_BUSY, "too many DHT operations in progress; retry shortly")                              \
    X(DHT_NO_PEERS, "the DHT routing table is empty; add a bootstrap node")                        \
    X(RECORD_FORGED, "DHT record signature does not verify for its owner")                         \
    X(RECORD_EXPIRED, "DHT record has expired or expires too far in the future")                   \
    X(RATCHET_CHAIN_FULL, "session sent 2^32-1 messages without an answer; wait for a reply or "   \
                          "start a new session")                                                   \
    X(PREKEY_FULL, "signed prekey accepted its maximum of new sessions; retry with a freshly "     \
                   "fetched prekey bundle")                                                        \
    X(CONTACT_AMBIGUOUS, "more than one contact matches; give more of the address, or the name")   \
    X(KEY_CHANGED,                                                                                 \
      "the contact's node key changed; compare safety numbers, then `merpati contacts trust`")     \
    X(CLUSTER_TOKEN, "not a cluster join token (it starts with mpc1; copy the whole token)")       \
    X(CLUSTER_TOKEN_CHECKSUM,                                                                      \
      "cluster token checksum does not match (a typo or a cut-off token?)")                        \
    X(CLUSTER_TOKEN_VERSION, "cluster token of an unknown version (made by a newer merpati?)")     \
    X(CLUSTER_UNKNOWN, "no such cluster joined (see `merpati cluster list`)")
