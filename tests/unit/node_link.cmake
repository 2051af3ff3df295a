# node/link: Noise links over real TCP on 127.0.0.1 (several `struct links`
# on one loop), and the frame codec.
mp_test(unit_link SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_link.c
        LIBS mp_node mp_test_support PkgConfig::SODIUM LABELS unit TIMEOUT 60)
