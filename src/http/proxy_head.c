/*
 * The answer's status line and headers (see proxy_int.h): http-parser's callbacks gather the
 * headers into pc->hbuf (at most PROXY_HEAD_MAX bytes, PROXY_MAX_HEADERS of them) and its
 * body into pc->out; what cannot be parsed fails the exchange with a 502.
 */
#include "core/log.h"
#include "core/util.h"
#include "http/proxy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int head_add(struct pconn *pc, const char *at, size_t n)
{
    if (pc->hlen + n + 1 > PROXY_HEAD_MAX) {
        pc->head_over = 1;
        return 1;
    }
    memcpy(pc->hbuf + pc->hlen, at, n);
    pc->hlen += n;
    return 0;
}

static int on_field(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    if (pc->in_value || pc->nh == 0) {
        if (pc->nh && head_add(pc, "", 1)) /* ends the value before */
            return 1;
        if (pc->nh == PROXY_MAX_HEADERS) {
            pc->head_over = 1;
            return 1;
        }
        pc->hname[pc->nh] = pc->hlen;
        pc->hvalue[pc->nh] = (size_t)-1;
        pc->nh++;
        pc->in_value = 0;
    }
    return head_add(pc, at, n);
}

static int on_value(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    if (!pc->nh)
        return 1;
    if (!pc->in_value) {
        if (head_add(pc, "", 1)) /* ends the name */
            return 1;
        pc->hvalue[pc->nh - 1] = pc->hlen;
        pc->in_value = 1;
    }
    return head_add(pc, at, n);
}

static int on_headers(http_parser *hp)
{
    struct pconn *pc = hp->data;
    int st = hp->status_code;

    if (pc->nh && (pc->in_value || pc->hvalue[pc->nh - 1] == (size_t)-1)) {
        if (!pc->in_value) { /* a name without a value */
            if (head_add(pc, "", 1))
                return 1;
            pc->hvalue[pc->nh - 1] = pc->hlen;
        }
        if (head_add(pc, "", 1))
            return 1;
    }
    if (st >= 100 && st < 200 && st != 101) {
        /* An interim answer (100 Continue): the real one follows. */
        pc->nh = 0;
        pc->hlen = 0;
        pc->in_value = 0;
        return 0;
    }
    pc->status = st;
    return pc->head_req ? 1 : 0; /* an answer to HEAD has no body whatever it says */
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    struct pconn *pc = hp->data;

    /* Never more than was read, and a read never exceeds the room left. */
    proxy_buf_add(&pc->out, at, n);
    return 0;
}

static int on_complete(http_parser *hp)
{
    struct pconn *pc = hp->data;

    if (pc->status && pc->status != 101)
        pc->complete = 1;
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* Feeds n bytes of the answer (0: its end) to the parser. */
void proxy_parse(struct pconn *pc, const char *p, size_t n)
{
    size_t k;

    if (pc->complete)
        return; /* anything after the answer is ignored */
    k = http_parser_execute(&pc->hp, &settings, p, n);
    if (pc->hp.upgrade && pc->status == 101) {
        if (!pc->upgrade_req) {
            proxy_fail(pc, "The server at %s switched protocols for a request that did not ask to",
                       pc->what);
            return;
        }
        /* What follows the 101's head is the new protocol's: the client's first bytes. */
        proxy_buf_add(&pc->out, p + k, n - k);
        return;
    }
    if (HTTP_PARSER_ERRNO(&pc->hp) != HPE_OK) {
        if (pc->head_over)
            proxy_fail(pc, "The server at %s answered with headers over %u bytes or %d lines",
                       pc->what, PROXY_HEAD_MAX, PROXY_MAX_HEADERS);
        else if (n == 0 && !pc->status)
            proxy_fail(pc, "The server at %s closed the connection without answering", pc->what);
        else
            proxy_fail(pc, "The server at %s answered with something that is not HTTP (%s)",
                       pc->what, http_errno_description(HTTP_PARSER_ERRNO(&pc->hp)));
        return;
    }
    if (n == 0 && !pc->complete) {
        if (pc->status)
            pc->broken = pc->complete = 1;
        else
            proxy_fail(pc, "The server at %s closed the connection without answering", pc->what);
    }
}
