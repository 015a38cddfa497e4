/* See json.h. */
#include "core/json.h"
#include "core/util.h"

json_t *json_time(int64_t us)
{
    char buf[40];

    if (!us)
        return json_null();
    time_iso(us, buf, sizeof(buf));
    return json_string(buf);
}

json_t *json_money(int64_t micro)
{
    return json_real((double)micro / (double)MICRO);
}

json_t *json_money_str(int64_t micro)
{
    char buf[32];

    micro_format(micro, buf, sizeof(buf));
    return json_string(buf);
}
