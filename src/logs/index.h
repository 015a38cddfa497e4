/*
 * The line index of a run's output: <run dir>/lines.idx, beside output.log, holds one fixed
 * 24-byte entry per complete line of stdout or stderr, in the order the lines completed, so
 * that the newest lines of a run with millions of them are found without reading its log.
 *
 * An entry names where the line starts (the offset of its first record in output.log and the
 * offset inside that record's payload), its length in bytes (without the '\n') and the time
 * of the record that completed it. A line that spans records continues in the following
 * records of the same stream; records of other streams in between are not part of it.
 * lyceumd's own lines (OUT_SYSTEM) are not indexed: the logs API shows what the program wrote.
 *
 * The writer side is driven by output.c under the output's lock (one writer per run); the
 * index only ever grows, and an entry is written after the bytes it points at, so a reader
 * that takes floor(size / 24) entries sees only lines whose bytes are in output.log.
 */
#ifndef LYCEUMD_LOGS_INDEX_H
#define LYCEUMD_LOGS_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct out_record;

struct line_entry {
    int64_t ts_us;
    uint64_t pos; /* bits 0..55: offset of the first record; bits 56..63: the stream */
    uint32_t off; /* where the line starts in that record's payload */
    uint32_t len; /* bytes of the line, without its '\n' (capped at UINT32_MAX) */
};

#define LINE_POS(e)    ((e)->pos & ((1ULL << 56) - 1))
#define LINE_STREAM(e) ((int)((e)->pos >> 56))

/* A run's index writer: fd -1 when closed. */
struct logidx_writer {
    int fd;
    int failed;
    int uncounted; /* a rebuild: its bytes are not new bytes stored */
    struct {
        int open;     /* a line of this stream has begun and not ended */
        uint64_t pos; /* its first record */
        uint32_t off; /* its start in that record */
        uint64_t len; /* bytes so far */
    } part[4];
    struct line_entry *buf; /* entries not yet written (malloc'd while open) */
    size_t nbuf;
    char path[1200];
};

/* Opens (creating) the run's index for appending, when output.log is opened with log_len
 * bytes in it. A log that has bytes but no index (written by an older lyceumd) gets none
 * here: readers rebuild it once the run is over. */
void logidx_open(struct logidx_writer *w, const char *run_id, uint64_t log_len);
/* Indexes the lines ended by one record just written at pos of output.log. */
void logidx_record(struct logidx_writer *w, uint64_t pos, const struct out_record *h,
                   const char *payload);
/* The run wrote its last byte: unfinished lines become lines (at time ts_us). */
void logidx_finish(struct logidx_writer *w, int64_t ts_us);
void logidx_close(struct logidx_writer *w);

/* Bytes appended to every run's output.log and lines.idx since start-up (for /metrics). */
uint64_t logidx_bytes_written(void);
void logidx_count_bytes(uint64_t n);

#endif
