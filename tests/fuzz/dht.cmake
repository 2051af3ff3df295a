# Fuzz targets for the DHT decoders: a datagram (body codec and the node's
# handlers behind it) and a record.
mp_fuzz(fuzz_dht_datagram SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dht_datagram.c
        LIBS mp_dht mp_test_support)
mp_fuzz(fuzz_dht_record SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_dht_record.c
        LIBS mp_dht mp_test_support)
