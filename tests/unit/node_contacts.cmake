# node/contact, node/contacts: names, the stored value's codec, and the
# contacts book over a real store in a temp dir.
mp_test(unit_contacts SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_contacts.c LIBS mp_node LABELS unit)
# crypto/safety: safety numbers (both sides agree, a known answer).
mp_test(unit_safety SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_safety.c LIBS mp_crypto LABELS unit)
