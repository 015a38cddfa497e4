/*
 * See formdata.h. The body is read as if it started with "\r\n", so that every boundary,
 * the first one too, is the same delimiter "\r\n--boundary". Data is scanned with memmem();
 * the bytes at the end of a piece that could begin a delimiter are held back until the next.
 */
#include "storage/formdata.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { S_PREAMBLE, S_AFTER, S_HEADERS, S_DATA, S_DONE };

int formdata_init(struct formdata *f, const char *content_type)
{
    const char *b;
    size_t n;

    f->state = S_PREAMBLE;
    if (!content_type || strncasecmp(content_type, "multipart/form-data", 19) != 0)
        return LY_EINVAL;
    b = strcasestr(content_type, "boundary=");
    if (!b)
        return LY_EINVAL;
    b += 9;
    if (*b == '"') {
        const char *end = strchr(++b, '"');

        n = end ? (size_t)(end - b) : 0;
    } else {
        n = strcspn(b, "; \t");
    }
    if (n == 0 || n > 70)
        return LY_EINVAL;
    f->dlen = (size_t)snprintf(f->delim, sizeof(f->delim), "\r\n--%.*s", (int)n, b);
    memcpy(f->keep, "\r\n", 2);
    f->klen = 2;
    f->hlen = f->alen = 0;
    return 0;
}

static int emit(struct formdata *f, const char *buf, size_t n)
{
    if (f->state == S_DATA && n)
        return f->part_data(f->ctx, buf, n);
    return 0;
}

/* Copies the value of param (name= or filename=) of a Content-Disposition line into out. */
static int disposition_param(const char *line, const char *param, char *out, size_t n)
{
    const char *p = line;
    size_t pl = strlen(param);

    while ((p = strcasestr(p, param))) {
        if (p > line && (p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t')) {
            const char *v = p + pl;
            size_t i = 0;

            if (*v == '"') {
                for (v++; *v && *v != '"' && i + 1 < n; v++) {
                    if (*v == '\\' && v[1])
                        v++;
                    out[i++] = *v;
                }
            } else {
                while (*v && *v != ';' && *v != '\r' && i + 1 < n)
                    out[i++] = *v++;
            }
            out[i] = '\0';
            return 1;
        }
        p += pl;
    }
    return 0;
}

static int headers_done(struct formdata *f)
{
    char name[256] = "", filename[1100] = "";
    const char *line = f->hdr;
    int has_file = 0;

    f->hdr[f->hlen] = '\0';
    while (line && *line) {
        if (strncasecmp(line, "Content-Disposition:", 20) == 0) {
            const char *eol = strstr(line, "\r\n");
            char cd[FORMDATA_HDR_MAX];
            size_t n = eol ? (size_t)(eol - line) : strlen(line);

            memcpy(cd, line, n);
            cd[n] = '\0';
            disposition_param(cd, "name=", name, sizeof(name));
            has_file = disposition_param(cd, "filename=", filename, sizeof(filename));
        }
        line = strstr(line, "\r\n");
        if (line)
            line += 2;
    }
    f->state = S_DATA;
    return f->part_begin(f->ctx, name, has_file ? filename : NULL);
}

int formdata_feed(struct formdata *f, const char *buf, size_t n)
{
    int err;

    while (n) {
        switch (f->state) {
        case S_DONE:
            return 0; /* the epilogue is ignored */
        case S_AFTER:
            /* "--" ends the body, "\r\n" starts a part; transport padding is skipped. */
            if (f->alen == 0 && (*buf == ' ' || *buf == '\t')) {
                buf++, n--;
                continue;
            }
            f->after[f->alen++] = *buf++;
            n--;
            if (f->alen < 2)
                continue;
            f->alen = 0;
            if (f->after[0] == '-' && f->after[1] == '-') {
                f->state = S_DONE;
            } else if (f->after[0] == '\r' && f->after[1] == '\n') {
                f->state = S_HEADERS;
                f->hlen = 0;
            } else {
                return LY_EINVAL;
            }
            continue;
        case S_HEADERS: {
            if (f->hlen + 1 >= sizeof(f->hdr))
                return LY_EINVAL;
            f->hdr[f->hlen++] = *buf++;
            n--;
            if (f->hlen == 2 && memcmp(f->hdr, "\r\n", 2) == 0) {
                f->hlen = 0; /* a part without headers */
                err = headers_done(f);
                if (err)
                    return err;
            } else if (f->hlen >= 4 && memcmp(f->hdr + f->hlen - 4, "\r\n\r\n", 4) == 0) {
                f->hlen -= 2;
                err = headers_done(f);
                if (err)
                    return err;
            }
            continue;
        }
        case S_PREAMBLE:
        case S_DATA:
            break;
        }
        if (f->klen) {
            size_t need = f->dlen - f->klen, take = need < n ? need : n;

            if (memcmp(buf, f->delim + f->klen, take) == 0) {
                memcpy(f->keep + f->klen, buf, take);
                f->klen += take;
                buf += take;
                n -= take;
                if (f->klen == f->dlen) {
                    f->klen = 0;
                    if (f->state == S_DATA && (err = f->part_end(f->ctx)) != 0)
                        return err;
                    f->state = S_AFTER;
                }
                continue;
            }
            /* Not a delimiter after all: its first byte is data; look again from the next. */
            do {
                err = emit(f, f->keep, 1);
                if (err)
                    return err;
                memmove(f->keep, f->keep + 1, --f->klen);
            } while (f->klen && memcmp(f->keep, f->delim, f->klen) != 0);
            continue;
        }
        {
            const char *p = memmem(buf, n, f->delim, f->dlen);
            size_t k;

            if (p) {
                err = emit(f, buf, (size_t)(p - buf));
                if (err)
                    return err;
                n -= (size_t)(p - buf) + f->dlen;
                buf = p + f->dlen;
                if (f->state == S_DATA && (err = f->part_end(f->ctx)) != 0)
                    return err;
                f->state = S_AFTER;
                continue;
            }
            k = n < f->dlen - 1 ? n : f->dlen - 1;
            while (k && memcmp(buf + n - k, f->delim, k) != 0)
                k--;
            err = emit(f, buf, n - k);
            if (err)
                return err;
            memcpy(f->keep, buf + n - k, k);
            f->klen = k;
            return 0;
        }
    }
    return 0;
}

int formdata_finish(struct formdata *f)
{
    return f->state == S_DONE ? 0 : LY_EINVAL;
}
