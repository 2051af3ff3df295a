# crypto/seqid: message ids back to their seqs.
mp_fuzz(fuzz_seqid SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_seqid.c LIBS mp_crypto)
