/*
 * The executors' registry: backends by name. The built-in ones (local, docker, slurm) are
 * there from the start; exec_register() adds one or replaces one of the same name (a test's
 * fake executor), at start-up before the scheduler runs. Read-only afterwards, so lookups
 * take no lock.
 */
#include "exec/exec.h"

#include <string.h>

#define EXEC_MAX 8

static const struct exec_ops *ops_tab[EXEC_MAX] = {&exec_local, &exec_docker, &exec_slurm};
static int nops = 3;

void exec_register(const struct exec_ops *ops)
{
    for (int i = 0; i < nops; i++)
        if (strcmp(ops_tab[i]->name, ops->name) == 0) {
            ops_tab[i] = ops;
            return;
        }
    if (nops < EXEC_MAX)
        ops_tab[nops++] = ops;
}

const struct exec_ops *exec_lookup(const char *name)
{
    for (int i = 0; name && i < nops; i++)
        if (strcmp(ops_tab[i]->name, name) == 0)
            return ops_tab[i];
    return NULL;
}

void exec_capacity_of(const struct exec_ops *ops, struct exec_capacity *cap)
{
    memset(cap, 0, sizeof(*cap));
    cap->kinds = 1 << RUN_PYTHON;
    if (ops && ops->capacity)
        ops->capacity(cap);
}

static int runs_kind(const struct exec_ops *ops, int kind)
{
    struct exec_capacity cap;

    exec_capacity_of(ops, &cap);
    return kind >= 0 && kind < 31 && (cap.kinds & (1 << kind));
}

const struct exec_ops *exec_for(const char *name, int kind)
{
    const struct exec_ops *ops = exec_lookup(name);

    if (ops && runs_kind(ops, kind))
        return ops;
    for (int i = 0; i < nops; i++)
        if (runs_kind(ops_tab[i], kind))
            return ops_tab[i];
    return NULL;
}

int exec_count(void)
{
    return nops;
}

const struct exec_ops *exec_at(int i)
{
    return i >= 0 && i < nops ? ops_tab[i] : NULL;
}
