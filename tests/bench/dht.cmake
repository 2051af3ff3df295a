# bench_dht_sim: DHT figures from the simulator (1,000 and 10,000 nodes).
add_executable(bench_dht_sim ${CMAKE_CURRENT_LIST_DIR}/bench_dht_sim.c)
target_link_libraries(bench_dht_sim PRIVATE mp_sim)
target_include_directories(bench_dht_sim PRIVATE ${CMAKE_SOURCE_DIR})

# bench_dht_real: figures from 20 real merpati processes on loopback.
add_library(mp_bench_nodes STATIC ${CMAKE_CURRENT_LIST_DIR}/bench_nodes.c)
target_link_libraries(mp_bench_nodes PUBLIC mp_harness PkgConfig::JANSSON)
add_executable(bench_dht_real ${CMAKE_CURRENT_LIST_DIR}/bench_dht_real.c)
target_link_libraries(bench_dht_real PRIVATE mp_bench_nodes)
