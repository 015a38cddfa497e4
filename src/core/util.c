/* See util.h. Hashing uses OpenSSL's EVP interface; randomness is getrandom(2). */
#include "core/util.h"
#include "core/err.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t now_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void time_iso(int64_t unix_us, char *buf, size_t n)
{
    time_t s = (time_t)(unix_us / 1000000);
    struct tm tm;

    gmtime_r(&s, &tm);
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_us % 1000000));
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

/* Refusing 2023-02-30 here matters: timegm() would quietly roll it over to March 2. */
static int days_in_month(int y, int mo)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return mo == 2 && leap ? 29 : days[mo - 1];
}

int time_parse_iso(const char *s, int64_t *unix_s)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
    const char *p = s;

    if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &mo) || *p++ != '-' ||
        parse_digits(&p, 2, &d))
        return LY_EINVAL;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
            return LY_EINVAL;
        if (*p == ':') {
            p++;
            if (parse_digits(&p, 2, &sec))
                return LY_EINVAL;
            if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return LY_EINVAL;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;

            if (parse_digits(&p, 2, &oh))
                return LY_EINVAL;
            if (*p == ':')
                p++;
            if (parse_digits(&p, 2, &om))
                return LY_EINVAL;
            if (oh > 23 || om > 59)
                return LY_EINVAL;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60 || y < 1970)
        return LY_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *unix_s = (int64_t)timegm(&tm) - off;
    return 0;
}

void random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n) {
        ssize_t r = getrandom(p, n, 0);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("lyceumd: getrandom");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void random_base62(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t i = 0;

    while (i < n) {
        unsigned char b[64];

        random_bytes(b, sizeof(b));
        /* Rejection sampling: 248 = 4 * 62 keeps the distribution uniform. */
        for (size_t j = 0; j < sizeof(b) && i < n; j++)
            if (b[j] < 248)
                out[i++] = alphabet[b[j] % 62];
    }
    out[n] = '\0';
}

void uuid_v4(char out[37])
{
    unsigned char b[16];

    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

uint32_t fnv1a(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The digest fetched once: EVP_sha256() makes EVP_Digest() look it up in OpenSSL 3's provider
 * tables on every call, which costs more than hashing an API key. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    pthread_once(&sha256_once, sha256_fetch);
    if (!sha256_md || !EVP_Digest(data, n, md, &len, sha256_md, NULL) || len != 32) {
        fprintf(stderr, "lyceumd: SHA-256 failed\n");
        abort();
    }
    hex_encode(md, 32, out);
}

int ct_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = 0;

    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

int micro_parse(const char *s, int64_t *out)
{
    int neg = 0, digits = 0, frac = 0;
    int64_t whole = 0, part = 0;

    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    while (isdigit((unsigned char)*s)) {
        if (whole > (INT64_MAX / MICRO - 9) / 10)
            return LY_EINVAL;
        whole = whole * 10 + (*s++ - '0');
        digits++;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            if (++frac > 6)
                return LY_EINVAL;
            part = part * 10 + (*s++ - '0');
        }
        for (int i = frac; i < 6; i++)
            part *= 10;
    }
    if (*s || (!digits && !frac))
        return LY_EINVAL;
    *out = (whole * MICRO + part) * (neg ? -1 : 1);
    return 0;
}

void micro_format(int64_t micro, char *buf, size_t n)
{
    uint64_t a = micro < 0 ? (uint64_t)0 - (uint64_t)micro : (uint64_t)micro;
    char frac[8];
    int len = 6;

    snprintf(frac, sizeof(frac), "%06" PRIu64, a % (uint64_t)MICRO);
    while (len > 2 && frac[len - 1] == '0')
        len--;
    frac[len] = '\0';
    snprintf(buf, n, "%s%" PRIu64 ".%s", micro < 0 ? "-" : "", a / (uint64_t)MICRO, frac);
}

int key_file_load(const char *path, unsigned char *key, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ssize_t r = read(fd, key, n);

        close(fd);
        if (r == (ssize_t)n)
            return 0;
        log_error("%s is shorter than %zu bytes: refusing to replace a key", path, n);
        return LY_EIO;
    }
    random_bytes(key, n);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, n) != (ssize_t)n || fsync(fd) != 0) {
        log_error("cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return LY_EIO;
    }
    close(fd);
    return 0;
}

void deadline_in(struct timespec *ts, int clk, int64_t us)
{
    clock_gettime((clockid_t)clk, ts);
    ts->tv_sec += (time_t)(us / 1000000);
    ts->tv_nsec += (long)(us % 1000000) * 1000;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
