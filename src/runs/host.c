/*
 * The executors' window on the domain (runs/host.h): a bucket's directory from storage/, and
 * the Docker executor's registry secrets and image records from the store. The secrets are
 * sealed here (secrets.h, "run_credentials:<run id>" as AAD), so the store and the executor
 * see them only sealed and only open, respectively.
 */
#include "runs/host.h"
#include "core/err.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "store/docker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void aad_of(const char *run_id, char *aad, size_t n)
{
    snprintf(aad, n, "run_credentials:%s", run_id);
}

static int creds_put(const char *run_id, const char *text)
{
    char aad[96], *sealed;
    int err;

    aad_of(run_id, aad, sizeof(aad));
    sealed = secrets_seal(aad, text, strlen(text));
    if (!sealed)
        return LY_EINTERNAL;
    err = docker_store_creds_put(run_id, sealed);
    free(sealed);
    return err;
}

static char *creds_get(const char *run_id, int *err, char *why, size_t n)
{
    char aad[96], *sealed, *plain;

    sealed = docker_store_creds_get(run_id, err);
    if (*err) {
        snprintf(why, n, "cannot read the run's registry credentials");
        return NULL;
    }
    if (!sealed)
        return NULL;
    aad_of(run_id, aad, sizeof(aad));
    plain = secrets_open(aad, sealed, NULL);
    free(sealed);
    if (!plain) {
        *err = LY_EINTERNAL;
        snprintf(why, n, "the run's registry credentials do not open (another master key?)");
    }
    return plain;
}

const struct exec_host runs_exec_host = {
    .bucket_dir = bucket_objects_dir,
    .bucket_mount = bucket_prepare_mount,
    .creds_put = creds_put,
    .creds_get = creds_get,
    .creds_drop = docker_store_creds_drop,
    .pull_mark = docker_store_pull_mark,
    .pull_unmark = docker_store_pull_unmark,
    .repo_private = docker_store_repo_private,
    .image_usable = docker_store_image_usable,
};

__attribute__((constructor)) static void host_set(void)
{
    exec_set_host(&runs_exec_host);
}
