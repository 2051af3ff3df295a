mp_test(unit_base SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_base.c LIBS mp_base LABELS unit)
