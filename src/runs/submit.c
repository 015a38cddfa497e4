/*
 * Submitting a run: a pending row in the store, with the hash of its streaming_url's
 * capability token (the token itself is only ever in the answer). The scheduler takes it from
 * the queue once the caller's transaction committed and runs_kick() woke it.
 */
#include "runs/submit.h"
#include "core/util.h"
#include "store/runs.h"

#include <stdlib.h>
#include <string.h>

void run_token_hash(const char *token, char out[65])
{
    sha256_hex(token, strlen(token), out);
}

int runs_submit(struct run_submit *s, int in_tx)
{
    struct run_new r = {0};
    char hash[65], *spec, *cbs = NULL;
    int err;

    uuid_v4(s->id);
    random_base62(s->token, 40);
    run_token_hash(s->token, hash);
    spec = json_dumps(s->spec, JSON_COMPACT);
    if (s->callback_urls)
        cbs = json_dumps(s->callback_urls, JSON_COMPACT);
    r.id = s->id;
    r.org_id = s->org_id;
    r.user_id = s->user_id;
    r.kind = s->kind;
    r.profile = s->profile;
    r.priority = s->priority;
    r.spec = spec;
    r.file_name = s->file_name;
    r.timeout_s = s->timeout_s;
    r.graceful_s = s->graceful_s;
    r.parent_id = s->parent_id;
    r.stream_token_hash = hash;
    r.callback_urls = cbs;
    r.bucket = s->bucket;
    r.created_at = now_us();
    (void)in_tx;
    err = db_runs_insert(&r);
    free(spec);
    free(cbs);
    return err;
}
