#include "base/err.h"

#include <errno.h>
#include <stddef.h>

static const char *const messages[] = {
#define MP_ERR_MSG_(name, msg) msg,
    MP_ERR_LIST(MP_ERR_MSG_)
#undef MP_ERR_MSG_
};

static const char *const names[] = {
#define MP_ERR_NAME_(name, msg) #name,
    MP_ERR_LIST(MP_ERR_NAME_)
#undef MP_ERR_NAME_
};

const char *mp_strerror(enum mp_err err)
{
    if ((unsigned)err >= MP_ERR_COUNT_)
        return "unknown error";
    return messages[err];
}

const char *mp_errname(enum mp_err err)
{
    if ((unsigned)err >= MP_ERR_COUNT_)
        return "UNKNOWN";
    return names[err];
}

enum mp_err mp_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return MP_OK;
    case ENOMEM:
        return MP_ERR_NOMEM;
    case EEXIST:
        return MP_ERR_EXISTS;
    case ENOENT:
    case ENOTDIR:
        return MP_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return MP_ERR_PERM;
    case ENOSPC:
    case EDQUOT:
        return MP_ERR_DISK_FULL;
    case EINVAL:
        return MP_ERR_INVAL;
    case EAGAIN:
    case EBUSY:
    case EADDRINUSE:
        return MP_ERR_BUSY;
    case ETIMEDOUT:
        return MP_ERR_TIMEOUT;
    default:
        return MP_ERR_IO;
    }
}
