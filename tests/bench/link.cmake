# bench_messaging_link: 1 KiB messages over one Noise link on loopback
# (link_loopback_msgs_per_s, link_loopback_MiB_per_s; part of scripts/bench messaging).
add_executable(bench_messaging_link ${CMAKE_CURRENT_LIST_DIR}/bench_messaging_link.c)
target_link_libraries(bench_messaging_link PRIVATE mp_node PkgConfig::SODIUM)
target_include_directories(bench_messaging_link PRIVATE ${CMAKE_SOURCE_DIR})

# bench_messaging_floor: the least CPU a 1,372-byte text costs both ends as designed
# (its cryptography and durable writes alone), set against bench_messaging_real's figures.
add_executable(bench_messaging_floor ${CMAKE_CURRENT_LIST_DIR}/bench_messaging_floor.c)
target_link_libraries(bench_messaging_floor PRIVATE mp_bench_nodes mp_node PkgConfig::SODIUM)
target_include_directories(bench_messaging_floor PRIVATE ${CMAKE_SOURCE_DIR})

# bench_messaging_real: two real nodes on loopback, the issue's figures.
add_executable(bench_messaging_real ${CMAKE_CURRENT_LIST_DIR}/bench_messaging_real.c)
target_link_libraries(bench_messaging_real PRIVATE mp_bench_nodes)

# bench_mailbox: 10,000 messages through mailboxes (mailbox_drain_10k_s, mailbox_bytes_per_msg).
add_executable(bench_mailbox ${CMAKE_CURRENT_LIST_DIR}/bench_mailbox.c)
target_link_libraries(bench_mailbox PRIVATE mp_bench_nodes)
