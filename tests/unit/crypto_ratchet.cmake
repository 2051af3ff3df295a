# End-to-end crypto: prekeys and X3DH, the Double Ratchet, sealed envelopes.
mp_test(unit_crypto_prekey SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_prekey.c
        LIBS mp_crypto mp_test_support LABELS unit)
mp_test(unit_crypto_ratchet SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_ratchet.c
        LIBS mp_crypto mp_test_support LABELS unit)
mp_test(unit_crypto_envelope SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_envelope.c
        LIBS mp_crypto mp_test_support LABELS unit)
