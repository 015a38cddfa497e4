/*
 * The table of what executors need of the domain (struct exec_host in exec.h): set once at
 * start-up by the domain, before any run, and read-only afterwards.
 */
#include "exec/exec.h"

const struct exec_host *exec_host;

void exec_set_host(const struct exec_host *host)
{
    exec_host = host;
}
