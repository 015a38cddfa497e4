/* See log.h. A line is "<ISO time> <level> <message>\n". */
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level level)
{
    min_level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048], ts[40];
    struct timeval tv;
    va_list ap;
    int n;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    time_iso((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, ts, sizeof(ts));
    n = snprintf(line, sizeof(line), "%s %s ", ts, names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
