mp_fuzz(fuzz_rpc SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_rpc.c LIBS mp_node)
