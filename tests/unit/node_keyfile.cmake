# node/keyfile: the identity's secret key on disk.
mp_test(unit_keyfile SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_keyfile.c
        LIBS mp_node mp_test_support LABELS unit)
