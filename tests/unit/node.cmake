mp_test(unit_rpc SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_rpc.c LIBS mp_node LABELS unit)
mp_test(unit_jread SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_jread.c LIBS mp_node LABELS unit)
mp_test(unit_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_config.c LIBS mp_node LABELS unit)
mp_test(unit_msg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_msg.c
        ${CMAKE_SOURCE_DIR}/tests/support/outbox_v3_wire.c LIBS mp_node LABELS unit)
mp_test(unit_session SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_session.c LIBS mp_node mp_test_support LABELS unit)
mp_test(unit_u64set SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_u64set.c LIBS mp_node LABELS unit)
