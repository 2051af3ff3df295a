/*
 * keyfile: an identity's secret key on disk, <data dir>/identity.key.
 *
 * Written once, atomically (temporary file, fsync, rename, fsync of the
 * directory), mode 0600, never overwritten. Reading refuses a file that group
 * or others can read, as ssh does, with a message that says how to fix it.
 */
#ifndef MP_NODE_KEYFILE_H
#define MP_NODE_KEYFILE_H

#include "base/err.h"
#include "crypto/identity.h"

/* MP_ERR_EXISTS if path exists; MP_ERR_IO / MP_ERR_PERM / MP_ERR_DISK_FULL otherwise. */
enum mp_err keyfile_write(const char *path, const struct identity *id);

/* MP_ERR_NOT_FOUND, MP_ERR_PERM (mode too open, or unreadable), MP_ERR_KEYFILE (damaged). */
enum mp_err keyfile_read(const char *path, struct identity **id_out);

#endif
