/* agent/identity.c: reading and creating the node key and the cluster key
 * files (formats in identity.h). Secret files are created without ever
 * being visible half-written or with loose permissions: written to a
 * private temporary file, fsynced, then linked (never replacing) or renamed
 * (replacing, only when asked) into place. */
#include "agent/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEY_FILE_MAX 256 /* larger than any valid key file: read no further */

/* mkdir -p with mode for the directories it creates. */
static int make_dirs(const char *dir, struct sh_err *err)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof path)
        return sh_err_set(err, SH_ETOOBIG, "data dir path is empty or too long");
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return sh_err_set(err, SH_EIO, "create %s: %s", path, strerror(errno));
        path[i] = i == n ? '\0' : '/';
    }
    return 0;
}

static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* the new directory entry survives a crash; best effort */
        close(fd);
    }
}

/* Creates path with data (mode 0600). overwrite=false: SH_EEXIST if it is
 * already there (atomically: link(2) never replaces). */
static int
write_secret(const char *path, const void *data, size_t len, bool overwrite, struct sh_err *err)
{
    char tmp[PATH_MAX];
    const uint8_t *p = data;
    int fd, e;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sh_err_set(err, SH_ETOOBIG, "%s: path too long", path);
    unlink(tmp); /* a leftover of a crashed earlier run of this pid */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return sh_err_set(err, SH_EIO, "create %s: %s", tmp, strerror(errno));
    /* The umask can only remove bits; make it exactly 0600 regardless. */
    if (fchmod(fd, 0600) != 0)
        goto io_fail;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto io_fail;
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0)
        goto io_fail;
    if (close(fd) != 0) {
        fd = -1;
        goto io_fail;
    }
    fd = -1;
    if (overwrite ? rename(tmp, path) != 0 : link(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return sh_err_set(err, SH_EEXIST, "%s already exists", path);
        return sh_err_set(err, SH_EIO, "create %s: %s", path, strerror(e));
    }
    if (!overwrite)
        unlink(tmp);
    sync_dir_of(path);
    return 0;
io_fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return sh_err_set(err, SH_EIO, "write %s: %s", tmp, strerror(e));
}

/* Reads a whole secret file (at most KEY_FILE_MAX bytes) after checking it is
 * a regular file that only its owner can read. */
static int read_secret(const char *path, uint8_t *buf, size_t *len, struct sh_err *err)
{
    struct stat st;
    size_t got = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_err_set(err, errno == ENOENT ? SH_ENOTFOUND : SH_EIO, "%s: %s", path,
                          strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sh_err_set(err, SH_EIO, "%s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return sh_err_set(err, SH_EUNAUTH,
                          "%s: mode %04o lets group or others read a secret key "
                          "(fix with: chmod 600 %s)",
                          path, (unsigned)(st.st_mode & 07777), path);
    }
    for (;;) {
        ssize_t r = read(fd, buf + got, KEY_FILE_MAX - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return sh_err_set(err, SH_EIO, "%s: read: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == KEY_FILE_MAX) {
            close(fd);
            return sh_err_set(err, SH_EMALFORMED, "%s: too large for a key file", path);
        }
    }
    close(fd);
    *len = got;
    return 0;
}

static void fill_id(struct agent_identity *id)
{
    id->node_id = disc_node_id(id->pk);
    disc_node_id_str(id->node_id, id->node_hex);
}

int agent_identity_load(const char *data_dir,
                        struct agent_identity *id,
                        bool *created,
                        struct sh_err *err)
{
    char path[PATH_MAX];
    uint8_t buf[KEY_FILE_MAX], pk[DISC_PUBKEY_BYTES], sk[DISC_SECKEY_BYTES];
    size_t len = 0;
    int rc;

    if (created)
        *created = false;
    if (sodium_init() < 0)
        return sh_err_set(err, SH_EINTERNAL, "libsodium failed to initialize");
    if (snprintf(path, sizeof path, "%s/%s", data_dir, AGENT_NODE_KEY_FILE) >= (int)sizeof path)
        return sh_err_set(err, SH_ETOOBIG, "data dir path too long");
    rc = read_secret(path, buf, &len, err);
    if (rc == SH_ENOTFOUND) {
        sh_err_clear(err);
        if ((rc = make_dirs(data_dir, err)) != 0)
            return rc;
        crypto_sign_keypair(pk, sk);
        rc = write_secret(path, sk, sizeof sk, false, err);
        sodium_memzero(sk, sizeof sk);
        if (rc == 0 && created)
            *created = true;
        if (rc == SH_EEXIST) /* another agent just made it: use theirs */
            sh_err_clear(err);
        else if (rc)
            return rc;
        rc = read_secret(path, buf, &len, err);
    }
    if (rc)
        return rc;
    if (len != DISC_SECKEY_BYTES) {
        sodium_memzero(buf, sizeof buf);
        return sh_err_set(err, SH_EMALFORMED, "%s: %zu bytes, a node key has %d", path, len,
                          DISC_SECKEY_BYTES);
    }
    /* The second half must be the public key of the first (the seed): this
     * catches truncation, corruption and files that are not ours. */
    crypto_sign_seed_keypair(pk, sk, buf);
    if (sodium_memcmp(pk, buf + 32, sizeof pk) != 0) {
        sodium_memzero(buf, sizeof buf);
        sodium_memzero(sk, sizeof sk);
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: corrupted (its public half does not match its seed)", path);
    }
    memcpy(id->pk, pk, sizeof id->pk);
    memcpy(id->sk, sk, sizeof id->sk);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(sk, sizeof sk);
    fill_id(id);
    return 0;
}

void agent_identity_wipe(struct agent_identity *id)
{
    if (id)
        sodium_memzero(id->sk, sizeof id->sk);
}

int agent_cluster_key_create(const char *path,
                             bool overwrite,
                             char fingerprint[17],
                             struct sh_err *err)
{
    uint8_t key[DISC_CLUSTER_KEY_BYTES];
    char hex[2 * DISC_CLUSTER_KEY_BYTES + 2];
    int rc;

    if (sodium_init() < 0)
        return sh_err_set(err, SH_EINTERNAL, "libsodium failed to initialize");
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex - 1, key, sizeof key);
    hex[2 * DISC_CLUSTER_KEY_BYTES] = '\n';
    hex[2 * DISC_CLUSTER_KEY_BYTES + 1] = '\0';
    rc = write_secret(path, hex, 2 * DISC_CLUSTER_KEY_BYTES + 1, overwrite, err);
    if (rc == 0 && fingerprint)
        disc_cluster_fingerprint(key, fingerprint);
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

int agent_cluster_key_load(const char *path,
                           uint8_t key[DISC_CLUSTER_KEY_BYTES],
                           struct sh_err *err)
{
    uint8_t buf[KEY_FILE_MAX];
    size_t len = 0, bin_len = 0;
    const char *end = NULL;
    int rc;

    if (sodium_init() < 0)
        return sh_err_set(err, SH_EINTERNAL, "libsodium failed to initialize");
    if ((rc = read_secret(path, buf, &len, err)) != 0)
        return rc;
    if (len == 2 * DISC_CLUSTER_KEY_BYTES + 1 && buf[len - 1] == '\n')
        len--;
    if (len != 2 * DISC_CLUSTER_KEY_BYTES ||
        sodium_hex2bin(key, DISC_CLUSTER_KEY_BYTES, (const char *)buf, len, NULL, &bin_len, &end) !=
            0 ||
        bin_len != DISC_CLUSTER_KEY_BYTES || end != (const char *)buf + len) {
        sodium_memzero(buf, sizeof buf);
        sodium_memzero(key, DISC_CLUSTER_KEY_BYTES);
        return sh_err_set(err, SH_EMALFORMED,
                          "%s: not a cluster key (want 64 hex digits, as `shoal keygen` writes)",
                          path);
    }
    sodium_memzero(buf, sizeof buf);
    return 0;
}
