# Private clusters and several networks in one node: real processes on loopback.
mp_test(node_cluster SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cluster.c
        LIBS mp_harness PkgConfig::JANSSON LABELS node TIMEOUT 300)
