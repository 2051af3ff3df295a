# crypto/seqid: message ids from seqs and back.
mp_test(unit_crypto_seqid SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_seqid.c
        LIBS mp_crypto LABELS unit)
