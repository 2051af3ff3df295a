# bench_crypto_ratchet: Double Ratchet and X3DH throughput (scripts/bench crypto).
add_executable(bench_crypto_ratchet ${CMAKE_CURRENT_LIST_DIR}/bench_crypto_ratchet.c)
target_link_libraries(bench_crypto_ratchet PRIVATE mp_crypto)
target_include_directories(bench_crypto_ratchet PRIVATE ${CMAKE_SOURCE_DIR})
