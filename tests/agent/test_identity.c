/* tests/agent/test_identity.c: the node key in the data dir (created once,
 * stable, refused when loose or malformed) and cluster key files. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/identity.h"
#include "lib/test.h"

static char dir[256];

static int each_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/shoal-test-identity-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int each_teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void created_once_and_stable(void **state)
{
    struct agent_identity a, b;
    char data[300], key[320];
    struct stat st;
    bool created = false;
    struct sh_err err;

    (void)state;
    snprintf(data, sizeof data, "%s/nested/data", dir);
    sh_err_clear(&err);
    assert_int_equal(agent_identity_load(data, &a, &created, &err), 0);
    assert_true(created);
    snprintf(key, sizeof key, "%s/node.key", data);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 64);
    assert_int_equal(stat(data, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(strlen(a.node_hex), 16);
    assert_int_equal(a.node_id, disc_node_id(a.pk));
    /* a restart reads the same identity */
    assert_int_equal(agent_identity_load(data, &b, &created, NULL), 0);
    assert_false(created);
    assert_int_equal(a.node_id, b.node_id);
    assert_memory_equal(a.sk, b.sk, sizeof a.sk);
    assert_string_equal(a.node_hex, b.node_hex);
    agent_identity_wipe(&a);
    agent_identity_wipe(&b);
}

static void loose_or_malformed_refused(void **state)
{
    struct agent_identity a;
    char key[300];
    uint8_t raw[64];
    struct sh_err err;
    struct stat st;

    (void)state;
    assert_int_equal(agent_identity_load(dir, &a, NULL, NULL), 0);
    snprintf(key, sizeof key, "%s/node.key", dir);
    /* group/world readable */
    chmod(key, 0644);
    sh_err_clear(&err);
    assert_int_equal(agent_identity_load(dir, &a, NULL, &err), SH_EUNAUTH);
    assert_non_null(strstr(err.msg, "chmod 600"));
    chmod(key, 0640);
    assert_int_equal(agent_identity_load(dir, &a, NULL, NULL), SH_EUNAUTH);
    chmod(key, 0600);
    /* wrong size, corrupted halves, empty: refused and left as they are */
    write_file(key, "short", 5, 0600);
    sh_err_clear(&err);
    assert_int_equal(agent_identity_load(dir, &a, NULL, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "5 bytes"));
    memset(raw, 7, sizeof raw);
    write_file(key, raw, sizeof raw, 0600);
    assert_int_equal(agent_identity_load(dir, &a, NULL, &err), SH_EMALFORMED);
    assert_non_null(strstr(err.msg, "corrupted"));
    write_file(key, "", 0, 0600);
    assert_int_equal(agent_identity_load(dir, &a, NULL, NULL), SH_EMALFORMED);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_size, 0); /* not replaced behind the user's back */
    /* a directory where the key should be */
    unlink(key);
    mkdir(key, 0700);
    assert_int_not_equal(agent_identity_load(dir, &a, NULL, NULL), 0);
    rmdir(key);
}

static void cluster_key_files(void **state)
{
    char path[300], fp[17], fp2[17];
    uint8_t k1[32], k2[32];
    struct sh_err err;
    struct stat st;

    (void)state;
    snprintf(path, sizeof path, "%s/cluster.key", dir);
    assert_int_equal(agent_cluster_key_create(path, false, fp, NULL), 0);
    assert_int_equal(strlen(fp), 16);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 65);
    assert_int_equal(agent_cluster_key_load(path, k1, NULL), 0);
    disc_cluster_fingerprint(k1, fp2);
    assert_string_equal(fp, fp2);
    /* no overwrite without asking */
    sh_err_clear(&err);
    assert_int_equal(agent_cluster_key_create(path, false, NULL, &err), SH_EEXIST);
    assert_int_equal(agent_cluster_key_load(path, k2, NULL), 0);
    assert_memory_equal(k1, k2, 32);
    assert_int_equal(agent_cluster_key_create(path, true, NULL, NULL), 0);
    assert_int_equal(agent_cluster_key_load(path, k2, NULL), 0);
    assert_memory_not_equal(k1, k2, 32);
    /* bad contents */
    static const char *bad[] = {
        "",
        "00",
        "zz00000000000000000000000000000000000000000000000000000000000000\n",
        "000000000000000000000000000000000000000000000000000000000000000\n",
        "0000000000000000000000000000000000000000000000000000000000000000\n\n",
        " 0000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i], strlen(bad[i]), 0600);
        sh_err_clear(&err);
        assert_int_equal(agent_cluster_key_load(path, k1, &err), SH_EMALFORMED);
        assert_non_null(strstr(err.msg, "64 hex"));
    }
    /* upper case hex without a newline is fine */
    write_file(path, "ABCDEF0000000000000000000000000000000000000000000000000000000000", 64, 0600);
    assert_int_equal(agent_cluster_key_load(path, k1, NULL), 0);
    assert_int_equal(k1[0], 0xab);
    chmod(path, 0604);
    assert_int_equal(agent_cluster_key_load(path, k1, NULL), SH_EUNAUTH);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(agent_cluster_key_load(path, k1, NULL), SH_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(created_once_and_stable, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(loose_or_malformed_refused, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(cluster_key_files, each_setup, each_teardown),
    };
    umask(022);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
