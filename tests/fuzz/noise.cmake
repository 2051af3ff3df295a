# Noise handshake and transport messages from an untrusted peer.
mp_fuzz(fuzz_noise SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_noise.c LIBS mp_crypto PkgConfig::SODIUM)
