# Link frames from an untrusted peer, after decryption: fragments,
# reassembly and credit (node/link_frame.c, compiled in alone: no libuv).
mp_fuzz(fuzz_link_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_link_frame.c
        ${CMAKE_SOURCE_DIR}/node/link_frame.c LIBS mp_crypto)
