/* common/file.h: reading whole files with a size cap, and read-only mmaps.
 *
 * Errors carry the path and the strerror text of the failing syscall.
 */
#ifndef SH_FILE_H
#define SH_FILE_H

#include <stddef.h>

#include "common/err.h"

/* Reads the whole file into a NUL-terminated buffer (returned in *out, caller
 * frees with free(); *len excludes the NUL). Errors: SH_ENOTFOUND (no such
 * file), SH_EIO, SH_ETOOBIG (larger than max), SH_ENOMEM. */
int sh_read_file(const char *path, size_t max, char **out, size_t *len, struct sh_err *err);

/* Writes data to path atomically (temp file + fsync + rename). mode as for
 * open(2). Errors: SH_EIO. */
int sh_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                         struct sh_err *err);

struct sh_map {
    const void *data; /* NULL for an empty file */
    size_t size;
};

/* Maps a file read-only. Release with sh_unmap (accepts a zeroed map).
 * Errors: SH_ENOTFOUND, SH_EIO. */
int sh_map_file(const char *path, struct sh_map *map, struct sh_err *err);
void sh_unmap(struct sh_map *map);

/* Joins dir and name into out (cap bytes). Errors: SH_ETOOBIG. */
int sh_path_join(char *out, size_t cap, const char *dir, const char *name, struct sh_err *err);

/* True if path exists (any type). */
int sh_path_exists(const char *path);

#endif
