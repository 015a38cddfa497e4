/*
 * See throttle.h. A fixed table of slots keyed by the SHA-256 of the lower-cased email; when
 * full, the slot whose last failure is oldest is reused, so memory stays bounded whatever an
 * attacker sends.
 */
#include "auth/throttle.h"
#include "core/util.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

#define SLOTS 4096

struct slot {
    char key[65];
    int64_t fails[THROTTLE_MAX]; /* ring of failure times (seconds) */
    int next;
    int64_t last;
};

static struct slot slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void key_of(const char *email, char key[65])
{
    char low[320];
    size_t n = 0;

    for (; *email && n < sizeof(low) - 1; email++)
        low[n++] = (char)tolower((unsigned char)*email);
    sha256_hex(low, n, key);
}

static struct slot *find(const char *key, int create)
{
    struct slot *oldest = &slots[0];

    for (int i = 0; i < SLOTS; i++) {
        if (strcmp(slots[i].key, key) == 0)
            return &slots[i];
        if (slots[i].last < oldest->last)
            oldest = &slots[i];
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    memcpy(oldest->key, key, sizeof(oldest->key));
    return oldest;
}

int64_t throttle_check(const char *email)
{
    char key[65];
    struct slot *s;
    int64_t wait = 0, now = now_unix();

    key_of(email, key);
    pthread_mutex_lock(&lock);
    s = find(key, 0);
    if (s) {
        /* The ring is full of recent failures when its oldest one is still in the window. */
        int64_t oldest = s->fails[s->next];

        if (oldest && now - oldest < THROTTLE_WINDOW_S)
            wait = THROTTLE_WINDOW_S - (now - oldest);
    }
    pthread_mutex_unlock(&lock);
    return wait;
}

void throttle_fail(const char *email)
{
    char key[65];
    struct slot *s;

    key_of(email, key);
    pthread_mutex_lock(&lock);
    s = find(key, 1);
    s->last = now_unix();
    s->fails[s->next] = s->last;
    s->next = (s->next + 1) % THROTTLE_MAX;
    pthread_mutex_unlock(&lock);
}

void throttle_clear(const char *email)
{
    char key[65];
    struct slot *s;

    key_of(email, key);
    pthread_mutex_lock(&lock);
    s = find(key, 0);
    if (s)
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&lock);
}
