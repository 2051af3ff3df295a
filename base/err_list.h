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
    X(DHT_BUSY, "too many DHT operations in progress; retry shortly")                              \
    X(DHT_NO_PEERS, "the DHT routing table is empty; add a bootstrap node")                        \
    X(RECORD_FORGED, "DHT record signature does not verify for its owner")                         \
    X(RECORD_EXPIRED, "DHT record has expired or expires too far in the future")
