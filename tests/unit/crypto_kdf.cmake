# HMAC-SHA256 / HKDF-SHA256 against the Wycheproof vectors in tests/vectors/.
mp_test(unit_crypto_kdf SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crypto_kdf.c
        LIBS mp_crypto PkgConfig::JANSSON LABELS unit)
target_compile_definitions(unit_crypto_kdf PRIVATE
  MP_VECTORS_DIR="${CMAKE_SOURCE_DIR}/tests/vectors")
