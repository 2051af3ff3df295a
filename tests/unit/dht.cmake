# Unit tests for crypto/box and dht/: codecs, routing math, records, one node's
# datagram handling. The many-node behaviour is tested in tests/sim.
mp_test(unit_box SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_box.c
        LIBS mp_crypto mp_test_support LABELS unit)
mp_test(unit_dht_wire SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dht_wire.c
        LIBS mp_dht mp_test_support LABELS unit)
mp_test(unit_dht_routing SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dht_routing.c
        LIBS mp_dht mp_test_support LABELS unit)
# One node driven by hand-made datagrams (the sim's attacker helpers).
mp_test(unit_dht_node SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dht_node.c
        LIBS mp_sim LABELS unit)
mp_test(unit_dht_tables SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_dht_tables.c
        LIBS mp_dht mp_test_support LABELS unit)
