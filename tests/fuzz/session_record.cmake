# The session record wrapper that node/sessions.c stores per peer.
mp_fuzz(fuzz_session_record SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_session_record.c
        LIBS mp_node mp_test_support)
