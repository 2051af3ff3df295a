# Noise link handshake: published vectors (tests/vectors/noise-vectors.json,
# Wycheproof X25519) and the failure cases.
mp_test(unit_noise SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_noise.c
        LIBS mp_crypto mp_test_support PkgConfig::JANSSON PkgConfig::SODIUM LABELS unit)
target_compile_definitions(unit_noise PRIVATE
        NOISE_VECTORS_DIR="${CMAKE_SOURCE_DIR}/tests/vectors")
