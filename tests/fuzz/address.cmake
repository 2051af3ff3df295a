# Decoders of crypto/: text addresses and key-file bytes.
mp_fuzz(fuzz_address SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_address.c LIBS mp_crypto)
mp_fuzz(fuzz_identity SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_identity.c LIBS mp_crypto)
