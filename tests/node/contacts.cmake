# Contacts through the CLI and the control API, with real daemons.
mp_test(node_contacts SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_contacts.c
        LIBS mp_harness mp_node PkgConfig::JANSSON LABELS node TIMEOUT 300)
