/* Unit tests for node/config.c: defaults, the file init writes, and errors
 * that point at file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/config.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/mp-config-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/merpati.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void write_file(const char *text)
{
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_default_file_round_trip(void **state)
{
    (void)state;
    struct config want, got;
    char error[CONFIG_ERROR_MAX];

    assert_int_equal(config_write_default(path), MP_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(config_write_default(path), MP_ERR_EXISTS); /* never overwritten */

    config_defaults(&want);
    memset(&got, 0x5a, sizeof(got));
    config_defaults(&got);
    got.port = 1; /* must come back from the file */
    assert_int_equal(config_load(path, &got, error), MP_OK);
    assert_string_equal(got.listen, want.listen);
    assert_int_equal(got.port, CONFIG_DEFAULT_PORT);
    assert_string_equal(got.control_socket, "");
    assert_int_equal(got.log_level, LOG_LEVEL_INFO);
}

static void test_values(void **state)
{
    (void)state;
    struct config cfg;
    char error[CONFIG_ERROR_MAX];

    write_file("listen = \"127.0.0.1\";\nport = 0;\nlog_level = \"debug\";\n"
               "control_socket = \"/tmp/x.sock\";\n");
    config_defaults(&cfg);
    assert_int_equal(config_load(path, &cfg, error), MP_OK);
    assert_string_equal(cfg.listen, "127.0.0.1");
    assert_int_equal(cfg.port, 0);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(cfg.control_socket, "/tmp/x.sock");
}

static void expect_error(const char *text, const char *want)
{
    struct config cfg;
    char error[CONFIG_ERROR_MAX];

    write_file(text);
    config_defaults(&cfg);
    assert_int_equal(config_load(path, &cfg, error), MP_ERR_CONFIG);
    if (strstr(error, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", error, want);
    if (strncmp(error, path, strlen(path)) != 0)
        fail_msg("error \"%s\" does not start with the file name", error);
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("port = 7700;\nlisten = = \"0.0.0.0\";\n", ":2: syntax error");
    expect_error("# c\n\nport = 70000;\n", ":3: port must be a number from 0 to 65535");
    expect_error("port = \"7700\";\n", ":1: port must be a number");
    expect_error("listen = \"localhost\";\n", ":1: listen must be a numeric IP");
    expect_error("listen = 5;\n", ":1: listen must be a string");
    expect_error("\nlog_level = \"loud\";\n", ":2: log_level must be");
    expect_error("prot = 5;\n", ":1: unknown setting \"prot\"");
}

static void test_bootstrap_and_limits(void **state)
{
    (void)state;
    struct config cfg;
    char error[CONFIG_ERROR_MAX];
    const char *key = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f";
    char text[512];

    snprintf(text, sizeof(text),
             "bootstrap = [\"%s@127.0.0.1:7700\", \"%s@[::1]:1\"];\n"
             "dht_ip_limit = 0;\ndht_rate_limit = 7;\n",
             key, key);
    write_file(text);
    config_defaults(&cfg);
    assert_int_equal(cfg.dht_ip_limit, 2);
    assert_int_equal(config_load(path, &cfg, error), MP_OK);
    assert_int_equal(cfg.bootstrap_count, 2);
    assert_true(strncmp(cfg.bootstrap[1], key, 64) == 0);
    assert_string_equal(strchr(cfg.bootstrap[1], '@'), "@[::1]:1");
    assert_int_equal(cfg.dht_ip_limit, 0);
    assert_int_equal(cfg.dht_rate_limit, 7);

    expect_error("bootstrap = [\"127.0.0.1:7700\"];\n",
                 ":1: bootstrap entry \"127.0.0.1:7700\" must be");
    snprintf(text, sizeof(text), "\nbootstrap = [\"%s@example.org:7700\"];\n", key);
    expect_error(text, ":2: bootstrap entry");
    expect_error("bootstrap = \"x\";\n", ":1: bootstrap must be a list");
    expect_error("dht_rate_limit = -1;\n", ":1: dht_rate_limit must be a number");

    char why[200];
    config_defaults(&cfg);
    snprintf(text, sizeof(text), "%s@127.0.0.1:1", key);
    for (int i = 0; i < CONFIG_BOOTSTRAP_MAX; i++)
        assert_int_equal(config_add_bootstrap(&cfg, text, why, sizeof(why)), MP_OK);
    assert_int_equal(config_add_bootstrap(&cfg, text, why, sizeof(why)), MP_ERR_TOO_BIG);
    assert_int_equal(config_add_bootstrap(&cfg, "zz@127.0.0.1:1", why, sizeof(why)),
                     MP_ERR_CONFIG);
}

/* The network roles: off by default (also in the written default file),
 * true or false only. */
static void test_roles(void **state)
{
    (void)state;
    struct config cfg;
    char error[CONFIG_ERROR_MAX];

    config_defaults(&cfg);
    assert_false(cfg.cluster_only);
    assert_false(cfg.bootstrap_only);
    unlink(path);
    assert_int_equal(config_write_default(path), MP_OK);
    cfg.cluster_only = true;
    assert_int_equal(config_load(path, &cfg, error), MP_OK);
    assert_false(cfg.cluster_only);
    write_file("cluster_only = true;\nbootstrap_only = true;\n");
    config_defaults(&cfg);
    assert_int_equal(config_load(path, &cfg, error), MP_OK);
    assert_true(cfg.cluster_only);
    assert_true(cfg.bootstrap_only);
    expect_error("\ncluster_only = 1;\n", ":2: cluster_only must be true or false");
    expect_error("bootstrap_only = \"yes\";\n", ":1: bootstrap_only must be true or false");
}

static void test_missing_file(void **state)
{
    (void)state;
    struct config cfg;
    char error[CONFIG_ERROR_MAX];
    unlink(path);
    config_defaults(&cfg);
    assert_int_equal(config_load(path, &cfg, error), MP_ERR_NOT_FOUND);
    assert_int_equal(cfg.port, CONFIG_DEFAULT_PORT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_file_round_trip),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_bootstrap_and_limits),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
