/* tests/state/mklog.c: writes the crafted story (story.h) into DIR/events.db
 * through the store API, truncation and all, for the replay CLI test.
 * Usage: state_mklog DIR */
#include <stdio.h>

#include "tests/state/story.h"

static int
append(struct state_store *s, const struct story_row *r, uint64_t index, struct sh_err *err)
{
    struct state_row row = story_row(r, index);
    return state_store_append(s, &row, 1, err);
}

int main(int argc, char **argv)
{
    const struct state_persist p = {
        2, UINT64_C(0x77b2000000000001), 1, UINT64_C(0x3fa1c2d4e5f60718), 0, false};
    struct state_store *s = NULL;
    struct sh_err err;
    int rc = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: state_mklog DIR\n");
        return 2;
    }
    sh_err_clear(&err);
    rc = state_store_open(argv[1], STATE_STORE_WRITE, &s, &err);
    for (uint64_t i = 1; !rc && i < STORY_ARCHIVED_FROM; i++)
        rc = append(s, &story_log[i - 1], i, &err);
    for (uint64_t k = 0; !rc && k < STORY_ARCHIVED_N; k++)
        rc = append(s, &story_archived[k], STORY_ARCHIVED_FROM + k, &err);
    if (!rc)
        rc = state_store_truncate(s, STORY_ARCHIVED_FROM, STORY_ARCHIVE_REASON,
                                  STORY_ARCHIVED_AT_MS, NULL, &err);
    for (uint64_t i = STORY_ARCHIVED_FROM; !rc && i <= STORY_N; i++)
        rc = append(s, &story_log[i - 1], i, &err);
    if (!rc)
        rc = state_store_set_persist(s, &p, &err);
    if (!rc)
        rc = state_store_set_commit(s, STORY_COMMIT_INDEX, &err);
    state_store_close(s);
    if (rc) {
        fprintf(stderr, "state_mklog: %s\n", sh_err_msg(&err));
        return 1;
    }
    return 0;
}
