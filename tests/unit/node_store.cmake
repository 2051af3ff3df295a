# node/store: RocksDB open/reopen, format version, data-dir lock, batches,
# prefix iteration, disk full (a tmpfs mount; skipped when not root).
mp_test(unit_store SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_store.c
        ${CMAKE_SOURCE_DIR}/tests/support/outbox_v3_wire.c LIBS mp_node LABELS unit
        TIMEOUT 60)
