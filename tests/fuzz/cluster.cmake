# crypto/cluster: the text join token.
mp_fuzz(fuzz_cluster_token SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_cluster_token.c LIBS mp_crypto)
