# The daemon and CLI as a user meets them: real processes, temp data dirs.
add_library(mp_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/harness.c ${CMAKE_CURRENT_LIST_DIR}/node_util.c)
target_include_directories(mp_harness PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(mp_harness PUBLIC PkgConfig::CMOCKA PkgConfig::JANSSON)
target_compile_definitions(mp_harness PRIVATE MERPATI_BIN="$<TARGET_FILE:merpati>")
add_dependencies(mp_harness merpati)

mp_test(node_daemon SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_daemon.c
        LIBS mp_harness PkgConfig::JANSSON LABELS node TIMEOUT 300)

mp_test(node_overlay SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_overlay.c
        LIBS mp_harness PkgConfig::JANSSON LABELS node TIMEOUT 600)

mp_test(node_messaging SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_messaging.c
        ${CMAKE_SOURCE_DIR}/tests/support/outbox_v3_wire.c
        LIBS mp_harness mp_node PkgConfig::JANSSON LABELS node TIMEOUT 600)

mp_test(node_mailbox SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mailbox.c
        LIBS mp_harness mp_node PkgConfig::JANSSON LABELS node TIMEOUT 600)
