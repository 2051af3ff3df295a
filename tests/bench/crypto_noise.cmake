# bench_crypto_noise: Noise link handshakes per second (part of scripts/bench crypto).
add_executable(bench_crypto_noise ${CMAKE_CURRENT_LIST_DIR}/bench_crypto_noise.c)
target_link_libraries(bench_crypto_noise PRIVATE mp_crypto PkgConfig::SODIUM)
target_include_directories(bench_crypto_noise PRIVATE ${CMAKE_SOURCE_DIR})
