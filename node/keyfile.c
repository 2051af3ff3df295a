#include "node/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include "crypto/secure.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

/* Longest path handled, temporary suffix included. */
#define KEYFILE_PATH_MAX 4096
/* A key file is IDENTITY_ENCODED_BYTES long; anything past this cap is not
 * read at all (a huge file is no key file, whatever it holds). */
#define KEYFILE_READ_MAX 1024

static enum mp_err from_errno(const char *what, const char *path, int errnum)
{
    log_error("keyfile", "%s %s: %s", what, path, strerror(errnum));
    return mp_err_from_errno(errnum);
}

static enum mp_err write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? mp_err_from_errno(errno) : MP_ERR_IO;
        data += n;
        len -= (size_t)n;
    }
    return MP_OK;
}

/* fsync the directory that holds path, so that a new name in it survives a crash. */
static enum mp_err sync_parent(const char *path)
{
    char dir[KEYFILE_PATH_MAX];
    const char *slash = strrchr(path, '/');
    int n = slash == NULL   ? snprintf(dir, sizeof(dir), ".")
            : slash == path ? snprintf(dir, sizeof(dir), "/")
                            : snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

    if (n < 0 || (size_t)n >= sizeof(dir))
        return MP_ERR_TOO_BIG;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return from_errno("cannot open directory", dir, errno);
    enum mp_err err = fsync(fd) == 0 ? MP_OK : from_errno("cannot sync directory", dir, errno);
    close(fd);
    return err;
}

/*
 * Put the finished temporary file at path without ever replacing a file that
 * is there. link() fails with EEXIST atomically; on a file system without
 * hard links we fall back to a check and rename(), which leaves only a race
 * with a second writer of the same data dir (which the store lock prevents).
 */
static enum mp_err publish(const char *tmp, const char *path)
{
    struct stat st;

    if (link(tmp, path) == 0) {
        unlink(tmp);
        return MP_OK;
    }
    if (errno == EEXIST)
        return MP_ERR_EXISTS;
    if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != EMLINK)
        return from_errno("cannot create", path, errno);
    if (lstat(path, &st) == 0)
        return MP_ERR_EXISTS;
    if (rename(tmp, path) != 0)
        return from_errno("cannot create", path, errno);
    return MP_OK;
}

enum mp_err keyfile_write(const char *path, const struct identity *id)
{
    uint8_t enc[IDENTITY_ENCODED_BYTES];
    char tmp[KEYFILE_PATH_MAX];
    struct stat st;
    enum mp_err err = MP_OK;
    int fd = -1;
    int n;

    if (lstat(path, &st) == 0)
        return MP_ERR_EXISTS;
    n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return MP_ERR_TOO_BIG;
    /* mkstemp opens with O_CREAT | O_EXCL and mode 0600, in path's directory
     * so that the final link or rename stays within one file system. */
    fd = mkstemp(tmp);
    if (fd < 0) {
        tmp[0] = '\0';
        err = from_errno("cannot create a file next to", path, errno);
        goto cleanup;
    }
    if (fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
        err = from_errno("cannot set the mode of", tmp, errno);
        goto cleanup;
    }
    identity_encode(id, enc);
    err = write_all(fd, enc, sizeof(enc));
    if (err != MP_OK) {
        log_error("keyfile", "cannot write %s: %s", tmp, mp_strerror(err));
        goto cleanup;
    }
    if (fsync(fd) != 0) {
        err = from_errno("cannot sync", tmp, errno);
        goto cleanup;
    }
    if (close(fd) != 0) {
        fd = -1;
        err = from_errno("cannot close", tmp, errno);
        goto cleanup;
    }
    fd = -1;
    err = publish(tmp, path);
    if (err != MP_OK)
        goto cleanup;
    tmp[0] = '\0'; /* published: nothing to remove */
    err = sync_parent(path);

cleanup:
    secure_wipe(enc, sizeof(enc));
    if (fd >= 0)
        close(fd);
    if (tmp[0] != '\0')
        unlink(tmp);
    return err;
}

enum mp_err keyfile_read(const char *path, struct identity **id_out)
{
    uint8_t data[KEYFILE_READ_MAX + 1];
    size_t len = 0;
    struct stat st;
    enum mp_err err = MP_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        if (errno == ENOENT)
            return MP_ERR_NOT_FOUND;
        return from_errno("cannot open", path, errno);
    }
    /* Check the file we opened, not the name (which could change between);
     * O_NONBLOCK keeps a FIFO planted at path from hanging the open. */
    if (fstat(fd, &st) != 0) {
        err = from_errno("cannot stat", path, errno);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        log_error("keyfile", "%s is not a regular file", path);
        err = MP_ERR_KEYFILE;
        goto cleanup;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        log_error("keyfile",
                  "%s holds a secret key but group or others have access (mode %03o); "
                  "fix with: chmod 600 %s",
                  path, (unsigned)(st.st_mode & 0777), path);
        err = MP_ERR_PERM;
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(fd, data + len, sizeof(data) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = from_errno("cannot read", path, errno);
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof(data))
            break;
    }
    err = identity_decode(data, len, id_out);
    if (err == MP_ERR_KEYFILE && len > KEYFILE_READ_MAX)
        log_error("keyfile", "%s is not a Merpati key file (larger than %d bytes)", path,
                  KEYFILE_READ_MAX);
    else if (err == MP_ERR_KEYFILE)
        log_error("keyfile", "%s is damaged or not a Merpati key file (%zu bytes, want %d)", path,
                  len, IDENTITY_ENCODED_BYTES);

cleanup:
    secure_wipe(data, sizeof(data));
    close(fd);
    return err;
}
