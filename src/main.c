/*
 * lyceumd: the server and the operator's tool in one binary. This file parses the command
 * line and wires the parts together; it holds no logic of its own.
 */
#include "admin/admin.h"
#include "admin/backup.h"
#include "admin/doctor.h"
#include "admin/reload.h"
#include "admin/service.h"
#include "api/api.h"
#include "auth/accounts.h"
#include "auth/mfa.h"
#include "auth/token.h"
#include "batch/batch.h"
#include "billing/billing.h"
#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "inference/inference.h"
#include "metrics/prom.h"
#include "metrics/sampler.h"
#include "runs/callbacks.h"
#include "runs/runs.h"
#include "secrets/secrets.h"
#include "storage/bucket.h"
#include "store/db.h" /* store_open() and store_close() only */

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define VERSION "0.1.0"

static const char usage_main[] =
    "usage: lyceumd [--data DIR] [--config FILE] COMMAND [ARGS]\n"
    "\n"
    "lyceumd serves the Lyceum Cloud REST API (v2, external) from one binary, and is the\n"
    "operator's tool for the same data directory.\n"
    "\n"
    "commands:\n"
    "  serve                        run the API server\n"
    "  user add EMAIL               create a user and its default organization\n"
    "  key add EMAIL NAME           create an API key for a user and print it\n"
    "  credits grant ORG AMOUNT     add credits to an organization's ledger\n"
    "  quota set EMAIL [PROFILE...] limit a user to hardware profiles (none: all)\n"
    "  voucher add CODE CREDITS     create a voucher (--expires DATE, --note TEXT)\n"
    "  model add ID PATH            register a model file for deployments of hf_model_id ID\n"
    "  backup FILE                  write a backup archive of the data (while serving)\n"
    "  restore FILE                 replace the data with a backup's (server stopped)\n"
    "  doctor                       check what this host offers and say what to fix\n"
    "\n"
    "options (before or after the command; each also has an environment variable):\n"
    "  --data DIR      data directory: database, keys (LYCEUMD_DATA, default ./var)\n"
    "  --config FILE   JSON config file (LYCEUMD_CONFIG)\n"
    "  -h, --help      this text; 'lyceumd COMMAND --help' for a command\n"
    "  --version       print the version\n";

static const char usage_serve[] =
    "usage: lyceumd serve [--listen HOST:PORT] [--data DIR] [--config FILE] [--threads N]\n"
    "                     [--max-body BYTES] [--no-access-log] [--demo]\n"
    "\n"
    "Serves the API under /api/v2/external (and the legacy /api/v1 paths), /health and\n"
    "/openapi.json. The data directory is created on first start; one server serves it at a\n"
    "time. SIGHUP re-reads the config file (prices, machine types, limits); SIGTERM stops.\n"
    "\n"
    "  --listen HOST:PORT   address to listen on (LYCEUMD_LISTEN, default 127.0.0.1:8000)\n"
    "  --config FILE        JSON settings: machine types and prices, the run sandbox,\n"
    "                       Docker, Slurm, metering, storage, connection limits,\n"
    "                       callbacks (README.md lists them)\n"
    "  --threads N          HTTP worker threads (LYCEUMD_THREADS, default 4)\n"
    "  --max-body BYTES     largest request body accepted (LYCEUMD_MAX_BODY_BYTES, 1 MiB)\n"
    "  --no-access-log      do not log one line per request (LYCEUMD_ACCESS_LOG=off)\n"
    "  --demo               on first start create the user " ADMIN_DEMO_EMAIL " with 100\n"
    "                       credits and an API key, and print them (kept in DATA/demo.txt)\n";

static const char usage_backup[] =
    "usage: lyceumd backup FILE\n"
    "\n"
    "Writes a backup of the data directory to FILE (a .tar.gz): a consistent copy of the\n"
    "database, taken while the server serves (SQLite's online backup), and the keys it needs\n"
    "(jwt.key, master.key, invoice.key). Buckets' files are not in it: copy <data>/buckets\n"
    "as files. Prints {\"backup\": FILE, \"bytes\": N} as JSON.\n";

static const char usage_restore[] =
    "usage: lyceumd restore FILE\n"
    "\n"
    "Replaces the data directory's database and keys with those of the backup FILE, after\n"
    "checking it whole. What was there is moved to <data>/pre-restore-<time>/. Refused\n"
    "while a server serves the data directory: stop it first.\n";

static const char usage_doctor[] =
    "usage: lyceumd doctor [--config FILE] [--data DIR]\n"
    "\n"
    "Checks what this host offers lyceumd with the config given: the data directory's disk,\n"
    "the listen address, the sandbox (bubblewrap, namespaces, slirp4netns), cgroups, Python,\n"
    "Docker, NVML and the GPUs, KVM, Slurm, the clock. Prints one line each (ok, warn or\n"
    "FAIL, with what to do) and exits 1 when any failed.\n";

static const char usage_user_add[] =
    "usage: lyceumd user add EMAIL [--password-stdin] [--name NAME] [--credits N] [--admin]\n"
    "\n"
    "Creates a user and its default organization (the user is its owner) and prints\n"
    "{\"user_id\", \"org_id\", \"org_slug\"} as JSON. Without --password-stdin a random\n"
    "password is generated and printed as \"password\".\n"
    "\n"
    "  --password-stdin   read the password (8 to 1024 characters) from standard input\n"
    "  --name NAME        the user's full name\n"
    "  --credits N        grant N credits (a decimal, e.g. 25.50) to the new organization\n"
    "  --admin            make the user a server administrator\n";

static const char usage_key_add[] =
    "usage: lyceumd key add EMAIL NAME\n"
    "\n"
    "Creates a user API key called NAME for the user EMAIL and prints it (lk_...). The key\n"
    "is shown only this once.\n";

static const char usage_credits_grant[] =
    "usage: lyceumd credits grant ORG_SLUG AMOUNT [--note TEXT]\n"
    "\n"
    "Appends a grant of AMOUNT credits (a decimal with at most 6 places) to the ledger of\n"
    "the organization ORG_SLUG and prints the new balance as JSON.\n";

static const char usage_voucher_add[] =
    "usage: lyceumd voucher add CODE CREDITS [--expires DATE] [--note TEXT]\n"
    "\n"
    "Creates a voucher worth CREDITS (a decimal) that each organization can redeem once with\n"
    "POST /billing/vouchers/redeem {\"code\"}. --expires takes an ISO-8601 date or time\n"
    "(e.g. 2026-12-31 or 2026-12-31T23:59:59Z); without it the voucher never expires.\n";

static const char usage_model_add[] =
    "usage: lyceumd model add ID PATH\n"
    "\n"
    "Registers PATH (a GGUF file for llama-server, or a model directory for vLLM) in the data\n"
    "directory's model directory under ID: a deployment whose hf_model_id is ID serves it.\n"
    "Adding an ID again replaces it.\n";

static const char usage_quota_set[] =
    "usage: lyceumd quota set EMAIL [PROFILE...]\n"
    "\n"
    "Limits the user EMAIL to the hardware profiles listed (e.g. cpu gpu.a100): runs on any\n"
    "other profile answer 403. With no PROFILE the user may use every profile again. Prints\n"
    "the user's allowed profiles as JSON.\n";

struct cli {
    struct config cfg;
    const char *config_file;
    int demo;
    int password_stdin, admin;
    const char *name, *credits, *note, *expires;
    unsigned long long nofile; /* serve: the descriptor limit in force */
    int argc;
    char **argv; /* positional arguments */
};

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

/* Parses every option wherever it stands; positional arguments are left in cli->argv. */
static int parse_args(struct cli *cli, int argc, char **argv)
{
    enum {
        O_LISTEN = 256,
        O_DATA,
        O_CONFIG,
        O_THREADS,
        O_MAXBODY,
        O_NOLOG,
        O_DEMO,
        O_PWSTDIN,
        O_NAME,
        O_CREDITS,
        O_ADMIN,
        O_NOTE,
        O_EXPIRES,
        O_VERSION
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
        {"config", required_argument, NULL, O_CONFIG},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"no-access-log", no_argument, NULL, O_NOLOG},
        {"demo", no_argument, NULL, O_DEMO},
        {"password-stdin", no_argument, NULL, O_PWSTDIN},
        {"name", required_argument, NULL, O_NAME},
        {"credits", required_argument, NULL, O_CREDITS},
        {"admin", no_argument, NULL, O_ADMIN},
        {"note", required_argument, NULL, O_NOTE},
        {"expires", required_argument, NULL, O_EXPIRES},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *listen = NULL, *data = NULL, *threads = NULL, *maxbody = NULL;
    int nolog = 0, c;

    cli->config_file = getenv("LYCEUMD_CONFIG");
    opterr = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1 || optind < argc) {
        if (c == -1) {
            /* A positional argument: keep it and go on parsing after it. */
            cli->argv[cli->argc++] = argv[optind++];
            continue;
        }
        switch (c) {
        case O_LISTEN:
            listen = optarg;
            break;
        case O_DATA:
            data = optarg;
            break;
        case O_CONFIG:
            cli->config_file = optarg;
            break;
        case O_THREADS:
            threads = optarg;
            break;
        case O_MAXBODY:
            maxbody = optarg;
            break;
        case O_NOLOG:
            nolog = 1;
            break;
        case O_DEMO:
            cli->demo = 1;
            break;
        case O_PWSTDIN:
            cli->password_stdin = 1;
            break;
        case O_NAME:
            cli->name = optarg;
            break;
        case O_CREDITS:
            cli->credits = optarg;
            break;
        case O_ADMIN:
            cli->admin = 1;
            break;
        case O_NOTE:
            cli->note = optarg;
            break;
        case O_EXPIRES:
            cli->expires = optarg;
            break;
        case O_VERSION:
            printf("lyceumd %s\n", VERSION);
            exit(0);
        case 'h':
            break;
        default:
            return LY_EINVAL;
        }
    }
    config_defaults(&cli->cfg);
    if (cli->config_file && config_load_file(&cli->cfg, cli->config_file))
        return LY_EINVAL;
    config_load_env(&cli->cfg);
    if (listen)
        snprintf(cli->cfg.listen, sizeof(cli->cfg.listen), "%s", listen);
    if (data)
        snprintf(cli->cfg.data_dir, sizeof(cli->cfg.data_dir), "%s", data);
    if (threads) {
        if (atoi(threads) <= 0)
            return LY_EINVAL;
        cli->cfg.threads = (unsigned)atoi(threads);
    }
    if (maxbody) {
        if (atol(maxbody) <= 0)
            return LY_EINVAL;
        cli->cfg.max_body = (size_t)atol(maxbody);
    }
    if (nolog)
        cli->cfg.access_log = 0;
    if (cli->cfg.data_dir[0] != '/') {
        /* Absolute from here on: a run's sandbox binds paths under it, which must be. */
        char cwd[PATH_MAX], abs[sizeof(cli->cfg.data_dir)];

        if (!getcwd(cwd, sizeof(cwd)) ||
            (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, cli->cfg.data_dir) >= sizeof(abs))
            return LY_EINVAL;
        memcpy(cli->cfg.data_dir, abs, sizeof(abs));
    }
    return 0;
}

/* Opens the data directory (creating it), the store and the keys. */
static int open_data(struct cli *cli)
{
    char path[1100];

    if (mkdir(cli->cfg.data_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "lyceumd: cannot create %s: %s\n", cli->cfg.data_dir, strerror(errno));
        return LY_EIO;
    }
    /* The database, the keys and the buckets are lyceumd's alone: no one else on the host may
     * even traverse the data directory (tenants' code runs as other users of the host). */
    if (chmod(cli->cfg.data_dir, 0700)) {
        fprintf(stderr, "lyceumd: cannot make %s private: %s\n", cli->cfg.data_dir,
                strerror(errno));
        return LY_EIO;
    }
    snprintf(path, sizeof(path), "%s/lyceumd.db", cli->cfg.data_dir);
    if (store_open(path) || token_init(cli->cfg.data_dir) || mfa_init())
        return LY_EIO;
    api_settings.data_dir = cli->cfg.data_dir;
    api_settings.version = VERSION;
    return 0;
}

static int read_password(char *buf, size_t n)
{
    size_t len;

    if (!fgets(buf, (int)n, stdin))
        return LY_EINVAL;
    len = strlen(buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return 0;
}

/* Prints o (which it takes) on one line, as the API would answer it. */
static void print_json(json_t *o)
{
    char *out = json_dumps(o, JSON_WIRE);

    printf("%s\n", out ? out : "null");
    free(out);
    json_decref(o);
}

static int cmd_user_add(struct cli *cli)
{
    struct new_account acct;
    struct arena a;
    char password[1100] = "";
    int64_t credits = 0;
    const char *why = NULL;
    json_t *o;
    int err, generated = 0;

    if (cli->argc != 3) {
        fputs(usage_user_add, stderr);
        return 2;
    }
    if (cli->credits && (micro_parse(cli->credits, &credits) || credits < 0)) {
        fprintf(stderr, "lyceumd: --credits wants a non-negative decimal\n");
        return 2;
    }
    if (cli->password_stdin) {
        if (read_password(password, sizeof(password))) {
            fprintf(stderr, "lyceumd: no password on standard input\n");
            return 2;
        }
    } else {
        random_base62(password, 20);
        generated = 1;
    }
    if (open_data(cli))
        return 1;
    arena_init(&a);
    err =
        accounts_create(&a, cli->argv[2], password, cli->name, cli->admin, credits, 0, &acct, &why);
    if (err) {
        fprintf(stderr, "lyceumd: cannot create user: %s\n", why ? why : err_str(err));
        arena_release(&a);
        return 1;
    }
    o = json_pack("{s:s,s:s,s:s}", "user_id", acct.user_id, "org_id", acct.org_id, "org_slug",
                  acct.org_slug);
    if (generated)
        json_object_set_new(o, "password", json_string(password));
    print_json(o);
    arena_release(&a);
    return 0;
}

static int cmd_key_add(struct cli *cli)
{
    struct new_key k;
    int err;

    if (cli->argc != 4) {
        fputs(usage_key_add, stderr);
        return 2;
    }
    if (open_data(cli))
        return 1;
    err = admin_key_add(cli->argv[2], cli->argv[3], &k);
    if (err) {
        fprintf(stderr, "lyceumd: cannot create key: %s\n",
                err == LY_ENOTFOUND ? "no such user" : err_str(err));
        return 1;
    }
    printf("%s\n", k.key);
    return 0;
}

static int cmd_voucher_add(struct cli *cli)
{
    int64_t credits, expires = 0;
    const char *code;
    int err;

    if (cli->argc != 4) {
        fputs(usage_voucher_add, stderr);
        return 2;
    }
    code = cli->argv[2];
    if (!*code || strlen(code) > 128) {
        fprintf(stderr, "lyceumd: CODE must be 1 to 128 characters\n");
        return 2;
    }
    if (micro_parse(cli->argv[3], &credits) || credits <= 0) {
        fprintf(stderr, "lyceumd: CREDITS must be a positive decimal with at most 6 places\n");
        return 2;
    }
    if (cli->expires) {
        char buf[64];

        snprintf(buf, sizeof(buf), "%s%s", cli->expires,
                 strlen(cli->expires) == 10 ? "T23:59:59Z" : "");
        if (time_parse_iso(buf, &expires)) {
            fprintf(stderr, "lyceumd: --expires wants a date like 2026-12-31\n");
            return 2;
        }
        expires *= 1000000; /* seconds to microseconds */
    }
    if (open_data(cli))
        return 1;
    err = admin_voucher_add(code, credits, expires, cli->note);
    if (err) {
        fprintf(stderr, "lyceumd: cannot create the voucher: %s\n",
                err == LY_ECONFLICT ? "a voucher with that code exists" : err_str(err));
        return 1;
    }
    print_json(json_pack("{s:s,s:o,s:o}", "code", code, "credits", json_money(credits),
                         "expires_at", expires ? json_time(expires) : json_null()));
    return 0;
}

static int cmd_quota_set(struct cli *cli)
{
    json_t *list = json_array(), *now = json_array();
    int err;

    if (cli->argc < 3) {
        fputs(usage_quota_set, stderr);
        return 2;
    }
    for (int i = 3; i < cli->argc; i++) {
        const char *p = cli->argv[i];

        for (const char *c = p; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.')) {
                fprintf(stderr, "lyceumd: '%s' is not a hardware profile name\n", p);
                json_decref(list);
                json_decref(now);
                return 2;
            }
        json_array_append_new(list, json_string(p));
    }
    if (open_data(cli))
        return 1;
    err = admin_quota_set(cli->argv[2], list, now);
    json_decref(list);
    if (err) {
        json_decref(now);
        fprintf(stderr, "lyceumd: cannot set the quota: %s\n",
                err == LY_ENOTFOUND ? "no such user" : err_str(err));
        return 1;
    }
    /* An empty list means every profile. */
    print_json(json_pack("{s:s,s:O,s:b}", "email", cli->argv[2], "allowed_profiles", now,
                         "all_profiles", json_array_size(now) == 0));
    json_decref(now);
    return 0;
}

static int cmd_model_add(struct cli *cli)
{
    if (cli->argc != 4) {
        fputs(usage_model_add, stderr);
        return 2;
    }
    if (open_data(cli))
        return 1;
    if (inference_model_add(cli->cfg.data_dir, cli->argv[2], cli->argv[3]))
        return 1;
    print_json(json_pack("{s:s}", "model", cli->argv[2]));
    return 0;
}

static int cmd_credits_grant(struct cli *cli)
{
    char bal[32];
    int64_t amount, balance;
    int err;

    if (cli->argc != 4) {
        fputs(usage_credits_grant, stderr);
        return 2;
    }
    if (micro_parse(cli->argv[3], &amount) || amount <= 0) {
        fprintf(stderr, "lyceumd: AMOUNT must be a positive decimal with at most 6 places\n");
        return 2;
    }
    if (open_data(cli))
        return 1;
    err = admin_credits_grant(cli->argv[2], amount, cli->note, &balance);
    if (err) {
        fprintf(stderr, "lyceumd: cannot grant: %s\n",
                err == LY_ENOTFOUND ? "no such organization" : err_str(err));
        return 1;
    }
    micro_format(balance, bal, sizeof(bal));
    print_json(json_pack("{s:s,s:s}", "org_slug", cli->argv[2], "balance", bal));
    return 0;
}

/* RLIMIT_NOFILE raised to its hard limit (every connection, every run's pipes, every file
 * served takes a descriptor, and a default soft limit of 1,024 runs out first); logged.
 * Returns the soft limit now in force. */
static rlim_t raise_nofile(void)
{
    struct rlimit rl;
    rlim_t was;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return 1024;
    was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            log_info("descriptor limit (RLIMIT_NOFILE) raised from %llu to %llu",
                     (unsigned long long)was, (unsigned long long)rl.rlim_cur);
            return rl.rlim_cur;
        }
        log_warn("cannot raise the descriptor limit from %llu: %s", (unsigned long long)was,
                 strerror(errno));
        return was;
    }
    log_info("descriptor limit (RLIMIT_NOFILE) %llu, its hard limit", (unsigned long long)was);
    return was;
}

/* Signals reach the main loop through a pipe: the handler, on whichever thread the kernel
 * picked (not always this one: a thread that does not block the signal may take it), writes
 * the signal's number, and the loop reads it. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    if (write(sig_pipe[1], &b, 1) < 0) {
        /* full: signals enough are waiting already */
    }
    errno = saved;
}

/* SIGTERM/SIGINT stop, SIGHUP reloads, SIGPIPE is ignored; from the start, so that a signal
 * that comes while the server starts is kept for when it serves. */
static int signals_catch(void)
{
    struct sigaction sa = {0};

    if (pipe2(sig_pipe, O_CLOEXEC) || fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK))
        return LY_EIO;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits for signals: reloads on SIGHUP, returns on SIGTERM or SIGINT. */
static void signals_wait(struct cli *cli)
{
    for (;;) {
        unsigned char b;
        ssize_t n = read(sig_pipe[0], &b, 1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1)
            return;
        if (b != SIGHUP)
            return;
        admin_reload(&cli->cfg, cli->config_file);
    }
}

/* ---- serving: the subsystems ---- */

static int start_prom(struct cli *cli)
{
    prom_set_enabled(cli->cfg.metrics_endpoint);
    return 0;
}

static int start_callbacks(struct cli *cli)
{
    return callbacks_allow(cli->cfg.callback_allow);
}

static int start_secrets(struct cli *cli)
{
    return secrets_init(cli->cfg.data_dir);
}

static int start_buckets(struct cli *cli)
{
    return bucket_init(cli->cfg.data_dir, (int64_t)cli->cfg.storage_quota_bytes);
}

static int start_curl(struct cli *cli)
{
    (void)cli;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int start_billing(struct cli *cli)
{
    return billing_init(cli->cfg.data_dir, cli->cfg.monthly_free_micro, cli->cfg.meter_window_s);
}

static int start_runs(struct cli *cli)
{
    return runs_init(&cli->cfg);
}

static int start_prices(struct cli *cli)
{
    (void)cli;
    return billing_prices_record(0);
}

static int start_sampler(struct cli *cli)
{
    return sampler_start(&cli->cfg);
}

static int start_inference(struct cli *cli)
{
    return inference_init(&cli->cfg);
}

static int start_batch(struct cli *cli)
{
    return batch_init(cli->cfg.data_dir, inference_batch_concurrency(&cli->cfg));
}

static int start_http(struct cli *cli)
{
    return api_serve_start(&cli->cfg, cli->nofile);
}

static int start_backups(struct cli *cli)
{
    return backup_periodic_start(&cli->cfg);
}

/*
 * The server's parts, started in this order and stopped in the reverse one, at shutdown and
 * when a later part refuses to start (a bad config section). start NULL: nothing to start,
 * the entry only places its stop; stop NULL: nothing to stop. The order of the stops is the
 * point of the entries without a start: the HTTP server (then the port proxy's relays) first,
 * so that no request comes in; the batch runner is told to stop before inference shuts its
 * replicas down and the upstream transfers end, and waited for after, when its lines in
 * flight end quickly; then the sampler, then the scheduler.
 */
static const struct subsystem {
    const char *name;
    int (*start)(struct cli *cli);
    void (*stop)(void);
} subsystems[] = {
    {"metrics endpoint", start_prom, NULL},
    {"callbacks", start_callbacks, NULL},
    {"secrets", start_secrets, NULL},
    {"buckets", start_buckets, NULL},
    {"libcurl", start_curl, curl_global_cleanup},
    {"billing", start_billing, NULL},
    {"runs", start_runs, runs_shutdown},
    {"price book", start_prices, NULL},
    {"sampler", start_sampler, sampler_stop},
    {"batch lines", NULL, batch_shutdown},
    {"upstreams", NULL, upstream_shutdown},
    {"inference", start_inference, inference_shutdown},
    {"batch runner", start_batch, batch_stop},
    {"http", start_http, api_serve_stop},
    {"periodic backups", start_backups, backup_periodic_stop},
};

#define NSUBSYSTEMS (sizeof(subsystems) / sizeof(subsystems[0]))

/* Stops the first n subsystems, the last one first. */
static void subsystems_stop(size_t n)
{
    while (n--) {
        if (subsystems[n].stop) {
            log_debug("stopping %s", subsystems[n].name);
            subsystems[n].stop();
        }
    }
}

/* Starts every subsystem in order; when one refuses, stops those before it and returns its
 * error. */
static int subsystems_start(struct cli *cli)
{
    for (size_t i = 0; i < NSUBSYSTEMS; i++) {
        int err;

        if (!subsystems[i].start)
            continue;
        log_debug("starting %s", subsystems[i].name);
        err = subsystems[i].start(cli);
        if (err) {
            subsystems_stop(i);
            return err;
        }
    }
    return 0;
}

static int cmd_serve(struct cli *cli)
{
    if (cli->argc != 1) {
        fputs(usage_serve, stderr);
        return 2;
    }
    cli->nofile = raise_nofile();
    if (signals_catch())
        return 1;
    /* One server per data directory, held for its life (a restore waits for it to stop). */
    char why[600];
    int lock = backup_lock_data(cli->cfg.data_dir, why, sizeof(why));
    if (lock < 0) {
        fprintf(stderr, "lyceumd: %s\n", why);
        return 1;
    }
    if (open_data(cli))
        return 1;
    if (subsystems_start(cli))
        return 1;
    log_info("lyceumd %s serving on %s (data %s, %u threads)", VERSION, cli->cfg.listen,
             cli->cfg.data_dir, cli->cfg.threads);
    if (cli->demo)
        admin_demo_account(cli->cfg.data_dir, cli->cfg.listen);
    service_ready(cli->cfg.listen);
    signals_wait(cli);
    log_info("shutting down");
    service_stopping();
    subsystems_stop(NSUBSYSTEMS);
    store_close();
    config_release(&cli->cfg);
    close(lock);
    return 0;
}

static int cmd_backup(struct cli *cli)
{
    char why[600];
    struct stat sb;

    if (cli->argc != 2) {
        fputs(usage_backup, stderr);
        return 2;
    }
    if (open_data(cli))
        return 1;
    if (backup_create(cli->cfg.data_dir, cli->argv[1], why, sizeof(why))) {
        fprintf(stderr, "lyceumd: backup: %s\n", why);
        return 1;
    }
    print_json(json_pack("{s:s, s:I}", "backup", cli->argv[1], "bytes",
                         (json_int_t)(stat(cli->argv[1], &sb) == 0 ? sb.st_size : 0)));
    return 0;
}

static int cmd_restore(struct cli *cli)
{
    char why[600];

    if (cli->argc != 2) {
        fputs(usage_restore, stderr);
        return 2;
    }
    if (backup_restore(cli->argv[1], cli->cfg.data_dir, why, sizeof(why))) {
        fprintf(stderr, "lyceumd: restore: %s\n", why);
        return 1;
    }
    printf("restored %s into %s\n", cli->argv[1], cli->cfg.data_dir);
    return 0;
}

static int run(struct cli *cli, int argc, char **argv)
{
    const char *cmd = cli->argc ? cli->argv[0] : NULL;
    const char *sub = cli->argc > 1 ? cli->argv[1] : "";
    int help = wants_help(argc, argv);

    if (!cmd) {
        fputs(usage_main, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (strcmp(cmd, "serve") == 0)
        return help ? fputs(usage_serve, stdout) < 0 : cmd_serve(cli);
    if (strcmp(cmd, "user") == 0 && strcmp(sub, "add") == 0)
        return help ? fputs(usage_user_add, stdout) < 0 : cmd_user_add(cli);
    if (strcmp(cmd, "key") == 0 && strcmp(sub, "add") == 0)
        return help ? fputs(usage_key_add, stdout) < 0 : cmd_key_add(cli);
    if (strcmp(cmd, "credits") == 0 && strcmp(sub, "grant") == 0)
        return help ? fputs(usage_credits_grant, stdout) < 0 : cmd_credits_grant(cli);
    if (strcmp(cmd, "voucher") == 0 && strcmp(sub, "add") == 0)
        return help ? fputs(usage_voucher_add, stdout) < 0 : cmd_voucher_add(cli);
    if (strcmp(cmd, "model") == 0 && strcmp(sub, "add") == 0)
        return help ? fputs(usage_model_add, stdout) < 0 : cmd_model_add(cli);
    if (strcmp(cmd, "backup") == 0)
        return help ? fputs(usage_backup, stdout) < 0 : cmd_backup(cli);
    if (strcmp(cmd, "doctor") == 0)
        return help             ? fputs(usage_doctor, stdout) < 0
               : cli->argc != 1 ? (fputs(usage_doctor, stderr), 2)
                                : doctor_run(&cli->cfg, stdout);
    if (strcmp(cmd, "restore") == 0)
        return help ? fputs(usage_restore, stdout) < 0 : cmd_restore(cli);
    if (strcmp(cmd, "quota") == 0 && strcmp(sub, "set") == 0)
        return help ? fputs(usage_quota_set, stdout) < 0 : cmd_quota_set(cli);
    if (help) {
        fputs(usage_main, stdout);
        return 0;
    }
    fprintf(stderr, "lyceumd: unknown command '%s%s%s'\n\n%s", cmd, *sub ? " " : "", sub,
            usage_main);
    return 2;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int rc;

    cli.argv = xcalloc((size_t)argc + 1, sizeof(char *));
    if (parse_args(&cli, argc, argv)) {
        fputs(usage_main, stderr);
        rc = 2;
    } else {
        rc = run(&cli, argc, argv);
    }
    config_release(&cli.cfg); /* however the command ended */
    free(cli.argv);
    return rc;
}
