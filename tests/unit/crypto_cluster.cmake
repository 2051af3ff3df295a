# crypto/cluster: join tokens and the keys derived from a cluster secret.
mp_test(unit_crypto_cluster SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_cluster.c
        LIBS mp_crypto mp_test_support LABELS unit)
