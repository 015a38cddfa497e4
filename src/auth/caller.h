/*
 * Who is calling: the user (or API key) behind a request and the org it acts in, with the
 * caller's role there. The dispatcher (api/dispatch.c) resolves one per request through
 * identity.h and hangs it off the request (req->caller), so that HTTP knows nothing of it.
 */
#ifndef LYCEUMD_AUTH_CALLER_H
#define LYCEUMD_AUTH_CALLER_H

enum role { ROLE_NONE = 0, ROLE_MEMBER = 1, ROLE_ADMIN = 2, ROLE_OWNER = 3 };
/* "owner", "admin", "member" and back (ROLE_NONE for anything else). */
const char *role_name(enum role r);
enum role role_parse(const char *s);

enum via { VIA_NONE = 0, VIA_JWT, VIA_USER_KEY, VIA_ORG_KEY };

/* Who is calling, resolved once per request before the handler runs. An anonymous request
 * (a public route, or an optional one without credentials) has a zeroed caller. */
struct caller {
    enum via via;
    char user_id[40];
    char *email;
    int is_admin;
    char org_id[40];
    char *org_slug;
    enum role role;
    char key_id[40]; /* the API key used, if any */
};

#endif
