/*
 * Backups of a lyceumd's state, taken while it serves, and their restore.
 *
 * A backup is one gzip'd tar archive (libarchive) of what the state is: MANIFEST.json (the
 * format, when, the migrations of the database), lyceumd.db (a consistent copy taken with
 * SQLite's online backup: store_backup()), and the keys that give the database its meaning:
 * jwt.key (sessions), master.key (secrets at rest) and invoice.key (invoice numbers). Without
 * the master key, restored secrets would not open. The buckets' files are not in it: they are
 * files under <data>/buckets, copied as files are (rsync, snapshots).
 *
 * A serving lyceumd holds <data>/lyceumd.lock (an exclusive flock, for its life), so that a
 * restore, which replaces the database under it, refuses to run beside it; the operator's CLI
 * does not take it (it writes through SQLite, beside the server, by design).
 *
 * The periodic backup (config backup_interval_hours, backup_dir, backup_keep) is a thread of
 * the server that writes lyceumd-<UTC time>.tar.gz every so many hours and removes the oldest
 * beyond backup_keep. Call the functions from one thread (the CLI, or the server's start-up).
 */
#ifndef LYCEUMD_ADMIN_BACKUP_H
#define LYCEUMD_ADMIN_BACKUP_H

#include <stddef.h>

struct config;

/* Takes data_dir's server lock (non-blocking; makes data_dir when missing): a descriptor to
 * keep open for as long as the lock is to be held, or LY_ECONFLICT (another process holds it:
 * why names its pid) or LY_EIO. */
int backup_lock_data(const char *data_dir, char *why, size_t n);
/* Writes the backup archive of data_dir (whose database the store has open) to out, made
 * whole under a temporary name and renamed into place. 0, or LY_E* with why set. */
int backup_create(const char *data_dir, const char *out, char *why, size_t n);
/* Replaces data_dir's database and keys with the archive's, after checking it whole (the
 * names it may hold, the database's integrity). What was there is moved to
 * data_dir/pre-restore-<time>/, not deleted. Refused (LY_ECONFLICT) while a server holds
 * data_dir's lock. 0, or LY_E* with why set. */
int backup_restore(const char *archive, const char *data_dir, char *why, size_t n);

/* The periodic backup's thread (nothing when backup_interval_hours is 0). */
int backup_periodic_start(const struct config *cfg);
void backup_periodic_stop(void);

#endif
