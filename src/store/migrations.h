/*
 * The schema's migrations as the binary carries them: src/store/migrations/NNN_name.sql,
 * embedded at build time by scripts/embed-sql.sh into build/gen/migrations.c, in ascending
 * order of NNN and ended by an entry whose sql is NULL. A migration is known by its number,
 * never by its position: the database records the numbers it has had applied
 * (schema_migrations), so a file may be added with any number above the others.
 */
#ifndef LYCEUMD_STORE_MIGRATIONS_H
#define LYCEUMD_STORE_MIGRATIONS_H

struct store_migration {
    int number;       /* NNN of its file name */
    const char *name; /* the file name without .sql, "001_identity" */
    const char *sql;
};

extern const struct store_migration store_migrations[];

#endif
