/*
 * The Docker executor's extras beyond exec.h (exec_docker, docker_available and
 * docker_configure are declared there).
 */
#ifndef LYCEUMD_EXEC_DOCKER_H
#define LYCEUMD_EXEC_DOCKER_H

#include <jansson.h>
#include <stddef.h>

/* Checks a Compose file as a run would use it (compose.c): normalised by `docker-compose
 * config` (clean environment, a scratch directory under dir that it removes again), then held
 * against the allowlist. 0 when it may run; LY_EINVAL when it uses a key this server refuses
 * (why names it); LY_EBADREQ when it is not a valid Compose file (why has docker-compose's
 * error, the scratch path left out); LY_EUNAVAIL when docker-compose is not installed; LY_EIO
 * when the scratch file cannot be written. It blocks for as long as docker-compose takes
 * (about a second); thread-safe; no engine needed. */
int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n);

/* The NetworkMode of image-run containers (config "docker_network", default "none"). Set at
 * start-up, before any run. While it is "none", Compose projects get internal networks with
 * no address on the host. */
void docker_set_network(const char *mode);

/* The registry secrets of a start request (docker_registry_credentials, docker_password,
 * aws_secret_access_key, aws_session_token): taken out of body, so that they never reach the
 * stored spec, and returned as JSON text (malloc'd), or NULL when there are none. */
char *docker_creds_take(json_t *body);
/* Stores them sealed for run_id, in the caller's transaction (after the run's row): 0, or
 * LY_E*. text NULL: nothing to store. */
int docker_creds_save(const char *run_id, const char *text);

/* Removes the containers, and Compose networks and volumes, that run run_id left (after a
 * restart): blocks for the Engine calls; nothing when no engine answers. */
void docker_forget(const char *run_id);

#endif
