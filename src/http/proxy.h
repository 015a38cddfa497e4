/*
 * A reverse proxy for single requests (the port proxy of api/ports.c): the request is sent to
 * an HTTP server at the other end of a socket the caller made, and its answer streamed back;
 * an answer of 101 to a request that asked to switch protocols (a WebSocket) turns the client's
 * connection into a byte relay to that server, both ways, until either side closes.
 *
 * Everything runs on the HTTP thread that took the request, as one source of its loop: no
 * call blocks. Each exchange holds at most two buffers of PROXY_BUF bytes (the request's own
 * body aside: it is the one the server read, capped by max_body), and ends after
 * PROXY_IDLE_S seconds in which no byte moved either way.
 */
#ifndef LYCEUMD_HTTP_PROXY_H
#define LYCEUMD_HTTP_PROXY_H

struct req;

#define PROXY_IDLE_S 300

struct proxy_opts {
    /* Request headers not to forward (NULL-ended; may be NULL), besides the hop-by-hop ones
     * (Connection and what it names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
     * Proxy-*), Content-Length and Expect, which the proxy sets itself. */
    const char *const *drop;
    const char
        *what; /* names the server in error details: "port 8888 in run ...'s container" (copied) */
    /* Called once, on the request's loop, when the answer's status is known (or the error's). */
    void (*answered)(void *arg, int status);
    /* Called once when the exchange has ended and its socket is closed (on the loop, or in
     * proxy_shutdown). */
    void (*done)(void *arg);
    void *arg;
};

/*
 * Answers req through the server at fd: a non-blocking stream socket on which connect() was
 * called (connected, or still connecting), which the proxy owns from here, also on failure.
 * The request goes out as HTTP/1.1 with its method, target as sent, headers (less the ones
 * above) and body; the answer's status and headers come back as they are, less the hop-by-hop
 * ones. Sets req's streamed response and returns 0, or a LY_E* code recorded on req (no HTTP
 * loop on this thread, a target that is not a path); done() is then called before it returns.
 * Must be called from a handler on an HTTP thread.
 */
int proxy_start(struct req *req, int fd, const struct proxy_opts *o);

/* After the HTTP server stopped: ends the relays still open and frees what the loops held. */
void proxy_shutdown(void);

#endif
