/*
 * The Docker executor's tables (migration 010): run_credentials, a run's registry secrets
 * sealed (this file only ever sees them sealed), and docker_pulls, which org pulled which
 * image of which repository, with its own credentials or without any (exec/images.c says
 * what that decides). Thread-safe, as every store file.
 */
#ifndef LYCEUMD_STORE_DOCKER_H
#define LYCEUMD_STORE_DOCKER_H

/* Stores the sealed secrets of run_id (its row in runs must exist). 0 or LY_EDB. */
int docker_store_creds_put(const char *run_id, const char *sealed);
/* The sealed secrets of run_id, malloc'd (the caller frees), or NULL with *err 0 when there
 * are none (never given, or dropped), LY_EDB when the store failed. */
char *docker_store_creds_get(const char *run_id, int *err);
/* Drops them. 0 or LY_EDB. */
int docker_store_creds_drop(const char *run_id);

/* Records that org_id pulled image_id of repo, privately (with its own credentials) or not.
 * 0 or LY_EDB. */
int docker_store_pull_mark(const char *org_id, const char *repo, const char *image_id,
                           int private_);
/* Removes such a record (a pending one, once its pull ended). 0 or LY_EDB. */
int docker_store_pull_unmark(const char *org_id, const char *repo, const char *image_id);
/* 1 when an org other than org_id pulled (or is pulling) repo with credentials, else 0;
 * LY_EDB. */
int docker_store_repo_private(const char *org_id, const char *repo);
/* 1 when org_id may run image_id of another org's private repository: it pulled that image
 * with its own credentials, or someone pulled it without any; else 0; LY_EDB. */
int docker_store_image_usable(const char *org_id, const char *image_id);

#endif
