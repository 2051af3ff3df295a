#include "node/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static enum mp_err fits(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? MP_ERR_TOO_BIG : MP_OK;
}

enum mp_err paths_data_dir(const char *flag, char *out, size_t size)
{
    const char *env;

    if (flag != NULL && flag[0] != '\0')
        return fits(snprintf(out, size, "%s", flag), size);
    if ((env = getenv("MERPATI_DATA_DIR")) != NULL && env[0] != '\0')
        return fits(snprintf(out, size, "%s", env), size);
    if ((env = getenv("XDG_DATA_HOME")) != NULL && env[0] == '/')
        return fits(snprintf(out, size, "%s/merpati", env), size);
    if ((env = getenv("HOME")) != NULL && env[0] != '\0')
        return fits(snprintf(out, size, "%s/.local/share/merpati", env), size);
    return MP_ERR_CONFIG;
}

enum mp_err paths_join(const char *dir, const char *name, char *out, size_t size)
{
    return fits(snprintf(out, size, "%s/%s", dir, name), size);
}

enum mp_err paths_mkdir_private(const char *dir)
{
    char path[PATHS_MAX];

    if (fits(snprintf(path, sizeof(path), "%s", dir), sizeof(path)) != MP_OK)
        return MP_ERR_TOO_BIG;
    /* Create each missing component from the root down. */
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return mp_err_from_errno(errno);
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return mp_err_from_errno(errno);
    return S_ISDIR(st.st_mode) ? MP_OK : MP_ERR_EXISTS;
}
