/*
 * Login throttling: after THROTTLE_MAX failed logins for one email within THROTTLE_WINDOW_S
 * seconds, further attempts are refused until the oldest of them leaves the window. In memory,
 * per process: a restart forgets (a deliberate trade: no write per failed login).
 */
#ifndef LYCEUMD_AUTH_THROTTLE_H
#define LYCEUMD_AUTH_THROTTLE_H

#include <stdint.h>

#define THROTTLE_MAX      5
#define THROTTLE_WINDOW_S 300

/* 0 if email may try now, else the seconds to wait. */
int64_t throttle_check(const char *email);
void throttle_fail(const char *email);
void throttle_clear(const char *email);

#endif
