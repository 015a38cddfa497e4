/*
 * An event loop (h2o's lib/common, below the HTTP server): an epoll set of sources, each a
 * descriptor with a callback and, optionally, a timer, and a wake-up that any thread may
 * pull. One thread runs a loop (loop_run) until loop_stop(); everything added to it runs on
 * that thread. The HTTP server runs one per HTTP thread, with libmicrohttpd as the loop's
 * turn hook; inference's upstream transfers and the port proxy add their epoll sets to the
 * loop of the thread that took their request; a domain module never sees the HTTP server.
 *
 * A turn: wait (no longer than the nearest timer, not at all after a wake from the loop's
 * own thread) for a source's descriptor, a timer or a wake; run, in the order they were
 * added, the sources whose descriptor was ready or whose timer is due; then the turn hook.
 *
 * Thread-safety: loop_wake() and loop_stop() may be called from any thread; everything else
 * from the loop's own thread (or before it runs, or after it returned).
 */
#ifndef LYCEUMD_CORE_LOOP_H
#define LYCEUMD_CORE_LOOP_H

#include <stdint.h>

struct loop;
struct loop_src;

/* A new loop, not running; NULL (errno set) when its epoll set or eventfd cannot be made. */
struct loop *loop_new(void);
/* Frees lp and its sources (their descriptors stay open). After loop_run() returned. */
void loop_free(struct loop *lp);

/* Runs lp's turns on the calling thread until loop_stop(lp). */
void loop_run(struct loop *lp);
/* Asks lp to return from loop_run() (from any thread; at the end of the current turn). */
void loop_stop(struct loop *lp);
/* Makes lp start a turn at once (from any thread: by its eventfd; from its own, by not
 * waiting in the next one). */
void loop_wake(struct loop *lp);
/* The loop that loop_run() runs on the calling thread; NULL on any other thread. */
struct loop *loop_self(void);

/*
 * Adds a source: run(arg) is called on the loop's thread when fd is ready for events (EPOLL*
 * bits; EPOLLIN when 0), and when its timer passes: timeout(arg), asked before each wait,
 * says in how many milliseconds (0: now, -1: no timer; timeout may be NULL). run may be NULL
 * for a descriptor that only needs to wake the loop. Returns the source, or NULL (errno set)
 * when fd cannot be watched.
 */
struct loop_src *loop_add(struct loop *lp, int fd, uint32_t events, void (*run)(void *arg),
                          int (*timeout)(void *arg), void *arg);
/* Removes a source (its descriptor stays open, and must still be open here); run is not
 * called for it again, even later in the current turn. */
void loop_del(struct loop_src *src);

/* The turn hook: turn(arg) at the end of every turn, after the sources; timeout(arg) bounds
 * the wait as a source's timer does (NULL: no bound). One per loop. */
void loop_set_turn(struct loop *lp, void (*turn)(void *arg), int (*timeout)(void *arg), void *arg);

#endif
