/* agent/meminfo.c: RAM figures from the text of /proc/meminfo (pure: the
 * caller reads the file; cluster_info.c does). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent/cluster.h"
#include "common/util.h"

/* "Key:   1234 kB" -> bytes. */
static int meminfo_field(const char *text, const char *key, uint64_t *out, struct sh_err *err)
{
    size_t klen = strlen(key);
    const char *p = text;
    uint64_t kb;
    char num[32];
    size_t n = 0;

    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
            p += klen + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            while (n + 1 < sizeof num && p[n] >= '0' && p[n] <= '9') {
                num[n] = p[n];
                n++;
            }
            num[n] = '\0';
            if (n == 0 || !sh_parse_u64(num, UINT64_MAX, &kb) || strncmp(p + n, " kB", 3) != 0 ||
                !sh_mul_u64(kb, 1024, out))
                return sh_err_set(err, SH_EMALFORMED, "meminfo: %s: expected 'N kB'", key);
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return sh_err_set(err, SH_EMALFORMED, "meminfo: no %s line", key);
}

int cluster_meminfo_parse(const char *text, uint64_t *total, uint64_t *avail, struct sh_err *err)
{
    uint64_t t = 0, a = 0;
    int rc;

    if ((rc = meminfo_field(text, "MemTotal", &t, err)) ||
        (rc = meminfo_field(text, "MemAvailable", &a, err)))
        return rc;
    if (t > (uint64_t)STATE_JSON_INT_MAX)
        return sh_err_set(err, SH_EMALFORMED, "meminfo: MemTotal %" PRIu64 " bytes is too large",
                          t);
    *total = t;
    *avail = a > t ? t : a; /* never more free than there is */
    return 0;
}
