/* common/file.c: bounded whole-file reads, atomic writes, read-only mmaps. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int sh_read_file(const char *path, size_t max, char **out, size_t *len, struct sh_err *err)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_err_set(err, errno == ENOENT ? SH_ENOTFOUND : SH_EIO, "%s: %s", path,
                          strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sh_err_set(err, SH_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sh_err_set(err, SH_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return sh_err_set(err, SH_ETOOBIG, "%s: %lld bytes, limit %zu", path,
                          (long long)st.st_size, max);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return sh_err_set(err, SH_ENOMEM, "%s: out of memory", path);
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return sh_err_set(err, SH_EIO, "%s: read: %s", path, strerror(e));
        }
        if (r == 0)
            break; /* shrank while reading: take what is there */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    if (len)
        *len = got;
    return 0;
}

int sh_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                         struct sh_err *err)
{
    char tmp[4096];
    const char *p = data;
    int fd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sh_err_set(err, SH_ETOOBIG, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return sh_err_set(err, SH_EIO, "%s: %s", tmp, strerror(errno));
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return sh_err_set(err, SH_EIO, "%s: write: %s", tmp, strerror(e));
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return sh_err_set(err, SH_EIO, "%s: fsync: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sh_err_set(err, SH_EIO, "rename %s: %s", path, strerror(e));
    }
    return 0;
}

int sh_map_file(const char *path, struct sh_map *map, struct sh_err *err)
{
    struct stat st;
    void *p;
    int fd;

    map->data = NULL;
    map->size = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_err_set(err, errno == ENOENT ? SH_ENOTFOUND : SH_EIO, "%s: %s", path,
                          strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sh_err_set(err, SH_EIO, "%s: not a readable regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return sh_err_set(err, SH_EIO, "%s: mmap: %s", path, strerror(errno));
    map->data = p;
    map->size = (size_t)st.st_size;
    return 0;
}

void sh_unmap(struct sh_map *map)
{
    if (map && map->data)
        munmap((void *)map->data, map->size);
    if (map) {
        map->data = NULL;
        map->size = 0;
    }
}

int sh_path_join(char *out, size_t cap, const char *dir, const char *name, struct sh_err *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sh_err_set(err, SH_ETOOBIG, "path too long: %s/%s", dir, name);
    return 0;
}

int sh_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}
