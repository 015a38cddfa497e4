/* The error table: every LY_E* code with its name, its HTTP status and a default detail. */
#include "core/err.h"

static const struct {
    int code;
    int status;
    const char *text;
} errs[] = {
    {LY_OK, 200, "OK"},
    {LY_EINVAL, 422, "Unprocessable Entity"},
    {LY_EBADREQ, 400, "Bad Request"},
    {LY_EUNAUTH, 401, "Not authenticated"},
    {LY_EPAYMENT, 402, "Insufficient credits"},
    {LY_EFORBIDDEN, 403, "Forbidden"},
    {LY_ENOTFOUND, 404, "Not Found"},
    {LY_EMETHOD, 405, "Method Not Allowed"},
    {LY_ECONFLICT, 409, "Conflict"},
    {LY_EGONE, 410, "Gone"},
    {LY_ETOOLARGE, 413, "Request body too large"},
    {LY_ETHROTTLED, 429, "Too many requests"},
    {LY_EINTERNAL, 500, "Internal Server Error"},
    {LY_ENOTIMPL, 501, "Not Implemented"},
    {LY_EUNAVAIL, 503, "Service Unavailable"},
    {LY_EDB, 500, "Internal Server Error (database)"},
    {LY_EIO, 500, "Internal Server Error (I/O)"},
    {LY_EGATEWAY, 502, "Bad Gateway"},
};

const char *err_str(int err)
{
    for (unsigned i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        if (errs[i].code == err)
            return errs[i].text;
    return "Unknown error";
}

int err_http_status(int err)
{
    for (unsigned i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        if (errs[i].code == err)
            return errs[i].status;
    return 500;
}

static _Thread_local int unavailable;

void err_mark_unavailable(void)
{
    unavailable = 1;
}

int err_take_unavailable(void)
{
    int was = unavailable;

    unavailable = 0;
    return was;
}
