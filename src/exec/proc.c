/*
 * What /proc says of a process that the executors and the sampler need: its start time, which
 * tells a pid from a later process that reuses the number.
 */
#include "exec/exec.h"

#include <stdio.h>
#include <string.h>

int64_t exec_proc_start(int64_t pid)
{
    char path[64], buf[1024], *p;
    FILE *f;
    long long v = -1;

    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))) {
        /* Field 22 (starttime); p points at the end of field 2. */
        int field = 2;

        for (p++; *p && field < 21; p++)
            if (*p == ' ')
                field++;
        sscanf(p, " %lld", &v);
    }
    fclose(f);
    return v;
}
