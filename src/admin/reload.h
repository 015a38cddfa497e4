/*
 * Reloading the config while serving (SIGHUP, `systemctl reload lyceumd`): the config file is
 * read again and, when it parses whole, what can change without a restart takes effect:
 * machine types (prices, capacity, limits, new types: runs/profiles.c), the price book (a run
 * is billed at the price in effect when it was submitted), monthly_free_credits,
 * storage_quota_bytes, run_output_max_bytes, run_dir_max_bytes, log_retention_hours and
 * log_retention_bytes. A setting that only a restart changes (the sandbox, Docker, Slurm,
 * metering window, inference, connections, ...) is named in the log and keeps its value. A
 * file that does not parse, or holds a bad value, is refused with the reason in the log, and
 * nothing changes. Runs going keep their slot and their price.
 *
 * Called from the main thread (its signal loop), never from a signal handler.
 */
#ifndef LYCEUMD_ADMIN_RELOAD_H
#define LYCEUMD_ADMIN_RELOAD_H

struct config;

/* Re-reads path (NULL: lyceumd was started without a config file) into cur. 0, or LY_EINVAL
 * when the file was refused. */
int admin_reload(struct config *cur, const char *path);

#endif
