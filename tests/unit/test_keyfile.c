/*
 * Unit tests for node/keyfile: the secret key on disk, in a fresh temporary
 * directory per test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "crypto/identity.h"
#include "node/keyfile.h"
#include "tests/support/test_env.h"

#define PATH_CAP 512
#define LOG_CAP  4096

struct fixture {
    char dir[PATH_CAP];
    char key[PATH_CAP + 32];
    char log[PATH_CAP + 32]; /* stderr is captured here while a test asks for it */
    struct identity *id;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct test_env te;
    const char *tmpdir = getenv("TMPDIR");

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/merpati-keyfile-XXXXXX",
             tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->key, sizeof(f->key), "%s/identity.key", f->dir);
    snprintf(f->log, sizeof(f->log), "%s/stderr.log", f->dir);
    test_env_init(&te, 99);
    if (identity_generate(&te.env, &f->id) != MP_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[PATH_CAP * 2];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    identity_free(f->id);
    free(f);
    return 0;
}

static void write_raw(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

/* Number of directory entries other than . and .. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Run keyfile_read with stderr sent to f->log; returns the result, log in out. */
static enum mp_err read_capturing_log(struct fixture *f, struct identity **id_out, char *out,
                                      size_t cap)
{
    int saved = dup(STDERR_FILENO);
    int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(saved >= 0 && fd >= 0);
    fflush(stderr);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    enum mp_err err = keyfile_read(f->key, id_out);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fd);

    FILE *in = fopen(f->log, "r");
    assert_non_null(in);
    size_t n = fread(out, 1, cap - 1, in);
    out[n] = '\0';
    fclose(in);
    unlink(f->log);
    return err;
}

static void test_write_read_round_trip(void **state)
{
    struct fixture *f = *state;
    struct identity *back = NULL;
    struct stat st;

    assert_int_equal(keyfile_write(f->key, f->id), MP_OK);
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, IDENTITY_ENCODED_BYTES);
    /* No temporary file left behind. */
    assert_int_equal(entries(f->dir), 1);

    assert_int_equal(keyfile_read(f->key, &back), MP_OK);
    assert_memory_equal(identity_public_key(back), identity_public_key(f->id),
                        IDENTITY_PUBLIC_BYTES);
    identity_free(back);
}

static void test_mode_is_0600_whatever_the_umask(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    mode_t old = umask(0);

    assert_int_equal(keyfile_write(f->key, f->id), MP_OK);
    umask(old);
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_second_write_is_refused(void **state)
{
    struct fixture *f = *state;
    struct test_env te;
    struct identity *other = NULL, *back = NULL;

    test_env_init(&te, 100);
    assert_int_equal(identity_generate(&te.env, &other), MP_OK);
    assert_int_equal(keyfile_write(f->key, f->id), MP_OK);
    assert_int_equal(keyfile_write(f->key, other), MP_ERR_EXISTS);
    assert_int_equal(keyfile_write(f->key, f->id), MP_ERR_EXISTS);
    /* The first key is still there, and no temporary file is left. */
    assert_int_equal(keyfile_read(f->key, &back), MP_OK);
    assert_memory_equal(identity_public_key(back), identity_public_key(f->id),
                        IDENTITY_PUBLIC_BYTES);
    assert_int_equal(entries(f->dir), 1);
    identity_free(back);
    identity_free(other);
}

static void test_existing_foreign_file_is_not_overwritten(void **state)
{
    struct fixture *f = *state;
    struct stat st;

    write_raw(f->key, "notes", 5, 0644);
    assert_int_equal(keyfile_write(f->key, f->id), MP_ERR_EXISTS);
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_size, 5);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(entries(f->dir), 1);
}

static void test_open_mode_is_refused_with_a_hint(void **state)
{
    struct fixture *f = *state;
    static const mode_t open_modes[] = {0644, 0640, 0604, 0620, 0660, 0666};
    struct identity *back = NULL;
    char log[LOG_CAP], want[PATH_CAP + 64];

    assert_int_equal(keyfile_write(f->key, f->id), MP_OK);
    snprintf(want, sizeof(want), "chmod 600 %s", f->key);
    for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
        assert_int_equal(chmod(f->key, open_modes[i]), 0);
        assert_int_equal(read_capturing_log(f, &back, log, sizeof(log)), MP_ERR_PERM);
        assert_null(back);
        /* One line, and it says how to fix it. */
        assert_non_null(strstr(log, want));
        assert_ptr_equal(strchr(log, '\n'), log + strlen(log) - 1);
    }
    assert_int_equal(chmod(f->key, 0600), 0);
    assert_int_equal(keyfile_read(f->key, &back), MP_OK);
    identity_free(back);
    /* Read-only for the owner is fine too. */
    assert_int_equal(chmod(f->key, 0400), 0);
    assert_int_equal(keyfile_read(f->key, &back), MP_OK);
    identity_free(back);
}

static void test_damaged_file_is_refused(void **state)
{
    struct fixture *f = *state;
    uint8_t enc[IDENTITY_ENCODED_BYTES];
    static uint8_t big[64 * 1024];
    struct identity *back = NULL;

    identity_encode(f->id, enc);
    /* Truncated at several points, empty, one byte long, much too long. */
    const size_t lengths[] = {0, 1, 8, 40, IDENTITY_ENCODED_BYTES - 1};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        unlink(f->key);
        write_raw(f->key, enc, lengths[i], 0600);
        assert_int_equal(keyfile_read(f->key, &back), MP_ERR_KEYFILE);
    }
    unlink(f->key);
    memcpy(big, enc, sizeof(enc));
    write_raw(f->key, big, sizeof(big), 0600);
    assert_int_equal(keyfile_read(f->key, &back), MP_ERR_KEYFILE);
    /* A flipped seed bit. */
    unlink(f->key);
    enc[20] ^= 0x10;
    write_raw(f->key, enc, sizeof(enc), 0600);
    assert_int_equal(keyfile_read(f->key, &back), MP_ERR_KEYFILE);
    assert_null(back);
    /* A directory where the file should be. */
    unlink(f->key);
    assert_int_equal(mkdir(f->key, 0700), 0);
    assert_int_equal(keyfile_read(f->key, &back), MP_ERR_KEYFILE);
    assert_int_equal(keyfile_write(f->key, f->id), MP_ERR_EXISTS);
    rmdir(f->key);
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    struct identity *back = NULL;
    char path[PATH_CAP * 2];

    assert_int_equal(keyfile_read(f->key, &back), MP_ERR_NOT_FOUND);
    assert_null(back);
    /* Writing into a directory that does not exist fails and creates nothing. */
    snprintf(path, sizeof(path), "%s/missing/identity.key", f->dir);
    assert_int_equal(keyfile_write(path, f->id), MP_ERR_NOT_FOUND);
    assert_int_equal(entries(f->dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_is_0600_whatever_the_umask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_write_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_foreign_file_is_not_overwritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_mode_is_refused_with_a_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
    };
    log_set_level(LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
