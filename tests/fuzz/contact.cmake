# node/contact_wire: a contact as stored in the contacts family.
mp_fuzz(fuzz_contact SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_contact.c LIBS mp_node)
