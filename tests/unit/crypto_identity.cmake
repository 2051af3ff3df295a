# crypto/: account identity (Ed25519) and text addresses.
mp_test(unit_address SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_address.c
        LIBS mp_crypto mp_test_support LABELS unit)
mp_test(unit_identity SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_identity.c
        LIBS mp_crypto mp_test_support PkgConfig::JANSSON LABELS unit)
target_compile_definitions(unit_identity PRIVATE VECTORS_DIR="${CMAKE_SOURCE_DIR}/tests/vectors")
