/*
 * What the executors need of the domain (struct exec_host in exec/exec.h), implemented over
 * the storage buckets, the secrets and the store's Docker tables (host.c). It is set as the
 * program starts (a constructor in host.c), before main(): the start path stores a run's
 * registry secrets through it (docker_creds_save) in programs that never start the runs
 * machinery too (the fuzzer), and so does a program that drives an executor alone.
 */
#ifndef LYCEUMD_RUNS_HOST_H
#define LYCEUMD_RUNS_HOST_H

#include "exec/exec.h"

extern const struct exec_host runs_exec_host;

#endif
