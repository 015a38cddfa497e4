/* The Docker executor's extras beyond exec.h. */
#ifndef LYCEUMD_EXEC_DOCKER_H
#define LYCEUMD_EXEC_DOCKER_H

#include <stddef.h>

/* Checks a Compose file with `docker-compose config -q` (in a scratch directory under dir):
 * 0 when it is valid, else LY_EINVAL with the first line(s) of the error in why. */
int docker_compose_check(const char *yaml, const char *dir, char *why, size_t n);
/* The NetworkMode of containers (config "docker_network", default "none"). */
void docker_set_network(const char *mode);

#endif
