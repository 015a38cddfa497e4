/*
 * lyceumd doctor: checks what the host offers lyceumd and says, line by line, what works and
 * what to fix: the data directory's disk, the listen address, the sandbox (bubblewrap,
 * namespaces, slirp4netns), cgroups, Python with venv, the Docker engine, NVIDIA's NVML, KVM,
 * slurmrestd, the clock. Each line is "ok", "warn" (a feature is off or slower) or "FAIL"
 * (something lyceumd is configured to use does not work). Safe beside a running server: it
 * only reads, and makes and removes the control groups one run would get.
 */
#ifndef LYCEUMD_ADMIN_DOCTOR_H
#define LYCEUMD_ADMIN_DOCTOR_H

#include <stdio.h>

struct config;

/* Prints the checks to out; 1 when any failed, else 0. */
int doctor_run(const struct config *cfg, FILE *out);

#endif
