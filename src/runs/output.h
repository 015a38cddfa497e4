/*
 * A run's output: every byte it writes, kept in <run dir>/output.log as framed records
 * (time, stream, bytes), and followed live by SSE readers.
 *
 * The log file is written only by the run's executor (through output_append) and read by
 * anyone. While the run is going, a struct output in a registry keyed by run id holds the
 * committed length and the readers waiting for more; it is reference counted, so a reader
 * can hold it after the run ended. Thread-safe throughout.
 */
#ifndef LYCEUMD_RUNS_OUTPUT_H
#define LYCEUMD_RUNS_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Someone waiting for output: fn(arg) is called once, under the output's lock, when more
 * output or the end arrives. It must not call back into the output. */
struct waker {
    void (*fn)(void *arg);
    void *arg;
    struct waker *next;
    int queued;
};

struct out_record {
    int64_t ts_us;
    uint32_t len;
    uint8_t stream; /* OUT_STDOUT, OUT_STDERR, OUT_SYSTEM */
    uint8_t pad[3];
};

struct output;

/* Where the runs' directories live: <data>/runs. Call once at start-up. */
void output_init(const char *runs_dir);
/* Caps each run's output.log at about max_bytes (0: no cap): past it, the run's output is
 * dropped after one line that says so (lyceumd's own lines are still written). At start-up. */
void output_limit(uint64_t max_bytes);
/* The path of a run's file in its directory: out must hold 1100 bytes. */
void output_path(const char *run_id, const char *file, char *out, size_t n);

/* The live output of run_id, created if needed (done = 0); the caller holds a reference. */
struct output *output_get(const char *run_id);
/* The live output of run_id if one exists (with a reference), else NULL. */
struct output *output_find(const char *run_id);
void output_put(struct output *o);

/* Writer side: opens the log for appending (creating it). */
int output_open_writer(struct output *o);
/* Appends a chunk as records (split at 64 KiB and at UTF-8 character boundaries). */
void output_append(struct output *o, int stream, const char *buf, size_t n);
/* The run will write no more: wakes every reader and leaves the registry. */
void output_end(struct output *o);

/* Reader side: the committed length of the log; when pos has reached it and the run is not
 * over, w is queued to be woken. *done says the run is over (no more will come). */
uint64_t output_wait(struct output *o, uint64_t pos, struct waker *w, int *done);
/* Removes w if it is still queued. */
void output_unwait(struct output *o, struct waker *w);

/* Reads the record at *pos of an open log file: fills hdr and up to cap bytes of payload
 * (the rest skipped); advances *pos. Returns the payload length, 0 at the end, -1 on error. */
long output_read_record(int fd, uint64_t *pos, uint64_t limit, struct out_record *hdr, char *buf,
                        size_t cap);

/* Appends valid UTF-8 (invalid bytes become U+FFFD) of buf to a JSON string. */
json_t *json_string_lossy(const char *buf, size_t n);

#endif
