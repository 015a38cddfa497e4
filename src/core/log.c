/* See log.h. A line is "<ISO time> <level> <message>\n". */
#include "core/log.h"
#include "core/fbuf.h"
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
    struct fbuf b;
    va_list ap;

    if (level < min_level)
        return;
    gettimeofday(&tv, NULL);
    time_iso((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, ts, sizeof(ts));
    fbuf_init(&b, line, sizeof(line) - 1); /* the last byte is for the newline */
    fbuf_printf(&b, "%s %s ", ts, names[level]);
    va_start(ap, fmt);
    fbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    line[b.len] = '\n';
    if (write(STDERR_FILENO, line, b.len + 1) < 0)
        return;
}
