/*
 * err: the single error enum of Merpati and its messages.
 *
 * Every layer returns `enum mp_err`; MP_OK is 0 and every failure is positive.
 * Foreign errors (errno, libuv status, RocksDB messages) are logged and
 * translated into this enum once, in the wrapper that met them. This module is
 * not a logger and keeps no state.
 */
#ifndef MP_BASE_ERR_H
#define MP_BASE_ERR_H

#include "base/err_list.h"

enum mp_err {
#define MP_ERR_ENUM_(name, msg) MP_ERR_##name,
    MP_ERR_LIST(MP_ERR_ENUM_)
#undef MP_ERR_ENUM_
        MP_ERR_COUNT_
};

/* MP_ERR_OK reads oddly at call sites; MP_OK is the same value. */
#define MP_OK MP_ERR_OK

/* A static, human-readable message; never NULL (unknown codes get a generic one). */
const char *mp_strerror(enum mp_err err);

/* The identifier without prefix, e.g. "ADDR_CHECKSUM", for logs and the API. */
const char *mp_errname(enum mp_err err);

/* errno value -> error, for the wrappers around system calls. */
enum mp_err mp_err_from_errno(int errnum);

#endif
