/*
 * One error enum for the whole server (after libuv): functions return 0 or a negative
 * LY_E* code. err_str() names a code; err_http_status() is the one table that turns a
 * code into an HTTP status (after slurmrestd's error table).
 */
#ifndef LYCEUMD_CORE_ERR_H
#define LYCEUMD_CORE_ERR_H

enum ly_err {
    LY_OK = 0,
    LY_EINVAL = -1,      /* request validation failed: 422 */
    LY_EBADREQ = -2,     /* well-formed but refused: 400 */
    LY_EUNAUTH = -3,     /* no or bad credentials: 401 */
    LY_EPAYMENT = -4,    /* not enough credits: 402 */
    LY_EFORBIDDEN = -5,  /* authenticated but not allowed: 403 */
    LY_ENOTFOUND = -6,   /* 404 */
    LY_EMETHOD = -7,     /* 405 */
    LY_ECONFLICT = -8,   /* 409 */
    LY_EGONE = -9,       /* 410 */
    LY_ETOOLARGE = -10,  /* 413 */
    LY_ETHROTTLED = -11, /* 429 */
    LY_EINTERNAL = -12,  /* 500 */
    LY_ENOTIMPL = -13,   /* 501 */
    LY_EUNAVAIL = -14,   /* 503 */
    LY_EDB = -15,        /* the store failed: 500 */
    LY_EIO = -16,        /* a file or system call failed: 500 */
    LY_EGATEWAY = -17,   /* a server behind lyceumd failed to answer (the port proxy): 502 */
};

const char *err_str(int err);
int err_http_status(int err);

/* A per-thread mark that this thread failed for want of a descriptor (EMFILE, ENFILE: a
 * database connection or a file could not be opened): the store sets it, and the dispatcher
 * takes it after each request (returning whether it was set, and clearing it) to answer 503
 * with Retry-After rather than 500. */
void err_mark_unavailable(void);
int err_take_unavailable(void);

#endif
