# node/store: store_iter_new_at, prefix iteration from a start key.
mp_test(unit_store_iter_at SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_store_iter_at.c LIBS mp_node
        LABELS unit)
