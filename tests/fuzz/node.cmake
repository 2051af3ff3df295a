mp_fuzz(fuzz_rpc SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_rpc.c LIBS mp_node)
mp_fuzz(fuzz_jread SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_jread.c LIBS mp_node)
mp_fuzz(fuzz_msg SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_msg.c LIBS mp_node)
