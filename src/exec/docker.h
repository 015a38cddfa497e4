/*
 * The Docker executor's extras beyond exec.h (exec_docker, docker_available and
 * docker_configure are declared there).
 */
#ifndef LYCEUMD_EXEC_DOCKER_H
#define LYCEUMD_EXEC_DOCKER_H

#include <stddef.h>

/* Checks a Compose file with `docker-compose config -q`, in a scratch directory under dir
 * that it removes again. 0 when the file is valid; LY_EINVAL with the first line(s) of
 * docker-compose's error in why (the scratch path left out) when it is not; LY_EUNAVAIL when
 * docker-compose is not installed; LY_EIO when the scratch file cannot be written. It blocks
 * for as long as docker-compose takes (about a second); thread-safe; no engine needed. */
int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n);

/* The NetworkMode of image-run containers (config "docker_network", default "none"). Set at
 * start-up, before any run; Compose services choose their own network_mode. */
void docker_set_network(const char *mode);

#endif
