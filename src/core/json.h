/* JSON helpers shared by every layer (the JSON library itself is jansson). */
#ifndef LYCEUMD_CORE_JSON_H
#define LYCEUMD_CORE_JSON_H

#include <jansson.h>
#include <stdint.h>

/* How JSON goes on the wire: compact, and reals with 15 significant digits, so that numbers
 * read as people write them (0.36, not the 17-digit 0.35999999999999999 that round-trips the
 * binary double). 15 digits hold every amount of micro-credits up to 10^9 credits exactly. */
#define JSON_WIRE (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* An ISO-8601 string for a time in microseconds, or null for 0. */
json_t *json_time(int64_t us);
/* Credits as a JSON number (Lyceum shows most amounts as numbers). */
json_t *json_money(int64_t micro);
/* Credits as an exact decimal string (where Lyceum shows strings: balances, prices). */
json_t *json_money_str(int64_t micro);

#endif
