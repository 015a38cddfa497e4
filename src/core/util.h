/*
 * Small helpers that know nothing of HTTP or SQL: time, randomness, identifiers, hashing,
 * and exact decimal money (integer micro-credits). All are thread-safe.
 */
#ifndef LYCEUMD_CORE_UTIL_H
#define LYCEUMD_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define MICRO 1000000LL

/* Seconds since the epoch, and a monotonic clock in microseconds. */
int64_t now_unix(void);
/* Microseconds since the epoch: the unit of every time column in the store. */
int64_t now_us(void);
int64_t now_mono_us(void);

/* ISO-8601 UTC with microseconds and "+00:00", as Lyceum emits: buf needs 40 bytes. */
void time_iso(int64_t unix_us, char *buf, size_t n);
/* Parses ISO-8601 (date, or date-time with optional fraction and Z/+hh:mm; naive = UTC). */
int time_parse_iso(const char *s, int64_t *unix_s);

/* Reads the n-byte secret key at path, or makes one from the CSPRNG and writes it there
 * (mode 0600) when the file does not exist. 0, or LY_EIO with the reason logged. */
int key_file_load(const char *path, unsigned char *key, size_t n);
/* The absolute time us microseconds from now on clock clk, for pthread_cond_timedwait. */
struct timespec;
void deadline_in(struct timespec *ts, int clk, int64_t us);

/* Fills buf from the kernel's CSPRNG; aborts if it cannot (never returns weak bytes). */
void random_bytes(void *buf, size_t n);
/* n base62 characters plus NUL into out (out needs n + 1 bytes). */
void random_base62(char *out, size_t n);

/* FNV-1a over the string s, from h (FNV1A_SEED to start): for picking a cache slot. */
#define FNV1A_SEED 2166136261u
uint32_t fnv1a(uint32_t h, const char *s);
/* A random (version 4) UUID, 36 characters plus NUL. */
void uuid_v4(char out[37]);

/* Lower-case hex SHA-256 of s: out needs 65 bytes. */
void sha256_hex(const void *data, size_t n, char out[65]);
void hex_encode(const unsigned char *in, size_t n, char *out);
/* Constant-time comparison of two equal-length buffers. */
int ct_equal(const void *a, const void *b, size_t n);

/*
 * Money. A decimal such as "12.5" or "-0.000001" (at most 6 decimals, no exponent) parses to
 * micro-credits; returns 0 or LY_EINVAL. micro_format writes the exact decimal with at least two
 * decimals ("12.50", "0.000417") into buf (32 bytes).
 */
int micro_parse(const char *s, int64_t *out);
void micro_format(int64_t micro, char *buf, size_t n);

#endif
