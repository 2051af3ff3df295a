# Decoders of the end-to-end layer: prekey bundle and store, ratchet header,
# state and decrypt, sealed envelope.
mp_fuzz(fuzz_prekey SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_prekey.c LIBS mp_crypto mp_test_support)
mp_fuzz(fuzz_ratchet SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_ratchet.c LIBS mp_crypto mp_test_support)
mp_fuzz(fuzz_envelope SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_envelope.c LIBS mp_crypto mp_test_support)
