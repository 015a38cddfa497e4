/*
 * The Slurm executor: runs Python runs as batch jobs of a Slurm cluster.
 *
 * start() writes the run's files into <shared_dir>/<run id>/ (a directory the cluster's nodes
 * see too), with a job script, and queues the submission. One thread does all the talking to
 * Slurm, so slurmctld is never flooded: it submits queued jobs (at most submit_per_second),
 * reads the state of every job it follows with ONE call per poll (GET /jobs of slurmrestd, or
 * `scontrol show job -o`), cancels what was asked, and tails each job's stdout and stderr
 * files into the run's output. Through slurmrestd it authenticates with a JWT it mints from
 * the cluster's jwt_key (HS256 over {iat, exp, sun}); without rest_url it uses sbatch,
 * scontrol and scancel.
 *
 * The job id is reported through live_reference() (the scheduler stores it); after a restart
 * adopt() follows the run by it again, its output files read on from the bytes of each stream
 * that output.log already holds (exec_prior.logged).
 *
 * A job is named after its run, which is how a run whose job id was never stored is found: a
 * crash between the submission and the store, or a submission whose answer was lost (a
 * timeout), may have left a job in Slurm. Such a run (its directory already there when it
 * starts, or its last submission failed) is looked for by name before it is submitted; a job
 * found is followed, never submitted again.
 */
#include "core/worker.h"
#include "core/buf.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define API "/slurm/v0.0.38"

struct sjob {
    struct live *l;
    char dir[PATH_MAX];
    char job_id[32]; /* "" until submitted */
    int running, done;
    int cancel_sig; /* 0, SIGTERM or SIGKILL: asked for, not yet sent */
    int cancelled;  /* a cancel was sent */
    int64_t off[3]; /* bytes of stdout (1) and stderr (2) already copied */
    int64_t submit_after_us;
    int told_down;
    int lookup;  /* Slurm may hold a job of this run already: look for it before submitting */
    int missing; /* polls in a row whose answer did not know its job */
    struct sjob *next;
};

/* Polls in a row that must not know a job before its run is ended as lost (one answer could
 * come from a controller still loading its state). */
#define LOST_POLLS 3

static const struct config *cfg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct worker_pool *poller; /* the poller: a pool of one */
static int running, stopping;
static struct sjob *jobs;
static unsigned char key[512];
static size_t key_len;
static char python[PATH_MAX] = "/usr/bin/python3";
static char down_why[256];

/* ---- talking to Slurm ---- */

static char *mint_token(void)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;
    long now = (long)(now_us() / 1000000);

    if (jwt_new(&jwt) || jwt_add_grant(jwt, "sun", cfg->slurm_user) ||
        jwt_add_grant_int(jwt, "iat", now) || jwt_add_grant_int(jwt, "exp", now + 600) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)key_len) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

/* One slurmrestd call (taking body's reference); returns the parsed JSON answer or NULL with
 * why set. */
static json_t *rest(CURL *c, const char *method, const char *path, json_t *body, char *why,
                    size_t wn)
{
    char url[600], h1[128], *h2 = NULL, *tok = mint_token(), *text = NULL;
    struct curl_slist *h = NULL;
    struct buf b = BUF_INIT(64u << 20);
    long status = 0;
    json_t *out = NULL;
    CURLcode rc;

    if (!tok) {
        snprintf(why, wn, "cannot mint a Slurm token");
        return NULL;
    }
    snprintf(url, sizeof(url), "%s%s", cfg->slurm_rest_url, path);
    snprintf(h1, sizeof(h1), "X-SLURM-USER-NAME: %s", cfg->slurm_user);
    h2 = xmalloc(strlen(tok) + 32);
    sprintf(h2, "X-SLURM-USER-TOKEN: %s", tok);
    h = curl_slist_append(h, h1);
    h = curl_slist_append(h, h2);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    }
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        snprintf(why, wn, "slurmrestd at %.120s: %s", cfg->slurm_rest_url, curl_easy_strerror(rc));
    else if (!(out = json_loadb(b.p ? b.p : "", b.len, 0, NULL)))
        snprintf(why, wn, "slurmrestd answered HTTP %ld without JSON", status);
    else if (json_array_size(json_object_get(out, "errors"))) {
        json_t *e = json_array_get(json_object_get(out, "errors"), 0);

        snprintf(why, wn, "Slurm: %s",
                 json_string_value(json_object_get(e, "error"))
                     ?: json_string_value(json_object_get(e, "description")) ?: "error");
        if (status >= 400 || !json_object_get(out, "jobs")) {
            json_decref(out);
            out = NULL;
        }
    }
    curl_slist_free_all(h);
    json_decref(body);
    free(text);
    free(h2);
    free(tok);
    buf_free(&b);
    return out;
}

/* Runs a Slurm command; its stdout into out (capped). Returns the exit status, -1 if it did
 * not run. The command gets an environment of its own, not lyceumd's: sbatch hands the one it
 * runs in to the job (--export=ALL), and a tenant's job must not read the operator's
 * settings or credentials there (its own variables are exported by its script). */
static int run_cmd(char *const argv[], char *out, size_t n)
{
    char conf[PATH_MAX + 16];
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", conf, NULL};
    int p[2], st = 0;
    size_t k = 0;
    ssize_t r;
    pid_t pid;

    snprintf(conf, sizeof(conf), "SLURM_CONF=%s", cfg->slurm_conf);
    if (!cfg->slurm_conf[0])
        envp[2] = NULL;
    if (pipe2(p, O_CLOEXEC))
        return -1;
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);

        dup2(devnull, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvpe(argv[0], argv, envp);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    while ((r = read(p[0], out + k, n - 1 - k)) > 0 && k < n - 1)
        k += (size_t)r;
    out[k] = '\0';
    close(p[0]);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the job script ---- */

static json_t *job_env(struct sjob *j);

/* Appends export lines for env (single-quoted) to the script at s[k]. */
static int exports(char *s, int k, int cap, json_t *env)
{
    const char *name;
    json_t *v;

    json_object_foreach(env, name, v)
    {
        const char *val = json_string_value(v);

        if (!val || k > cap - 64)
            continue;
        k += snprintf(s + k, (size_t)(cap - k), "export %s='", name);
        for (; *val && k < cap - 8; val++) {
            if (*val == '\'')
                k += snprintf(s + k, (size_t)(cap - k), "'\\''");
            else
                s[k++] = *val;
        }
        k += snprintf(s + k, (size_t)(cap - k), "'\n");
    }
    return k;
}

static char *job_script(struct sjob *j, const char *work)
{
    struct live *l = j->l;
    const char *req = json_string_value(json_object_get(l->spec, "requirements_content"));
    char file[160], *s = xmalloc(8192);
    int k;

    if (!req)
        req = json_string_value(json_object_get(l->spec, "requirements"));
    exec_code_file(l, file, sizeof(file));
    k = snprintf(s, 8192, "#!/bin/sh\ncd '%s' || exit 70\n", work);
    if (!cfg->slurm_rest_url[0]) {
        /* sbatch passes the submitter's environment: the run's own goes in the script. */
        json_t *env = job_env(j);

        k = exports(s, k, 8192 - 512, env);
        json_decref(env);
    }
    if (req && *req)
        k += snprintf(s + k, 8192 - (size_t)k,
                      "'%s' -m venv --system-site-packages .venv > ../install.log 2>&1 && "
                      ".venv/bin/python -m pip install --disable-pip-version-check --no-input "
                      "--retries 0 --timeout 15 -r requirements.txt >> ../install.log 2>&1 || "
                      "{ echo '[lyceumd] installing the requirements failed' >&2; exit 71; }\n"
                      "exec .venv/bin/python -u '%s'\n",
                      python, file);
    else
        k += snprintf(s + k, 8192 - (size_t)k, "exec '%s' -u '%s'\n", python, file);
    return s;
}

static json_t *job_env(struct sjob *j)
{
    json_t *env = json_pack("{s:s,s:s,s:s,s:s,s:s}", "PATH", "/usr/local/bin:/usr/bin:/bin", "LANG",
                            "C.UTF-8", "PYTHONUNBUFFERED", "1", "LYCEUM_EXECUTION_ID", j->l->id,
                            "HOME", j->dir);
    const char *k;
    json_t *v;

    json_object_foreach(j->l->env, k, v) if (json_is_string(v)) json_object_set(env, k, v);
    return env;
}

/* Submits one job; 0, or -1 with why (Slurm down or refusing). */
static int submit(CURL *c, struct sjob *j, char *why, size_t wn)
{
    const struct live *p = j->l; /* the profile's limits, partition and gres */
    char work[PATH_MAX + 8], outp[PATH_MAX + 16], errp[PATH_MAX + 16], *script;
    int minutes = (j->l->timeout_s + 59) / 60;
    int rc = -1;

    snprintf(work, sizeof(work), "%s/work", j->dir);
    snprintf(outp, sizeof(outp), "%s/stdout.txt", j->dir);
    snprintf(errp, sizeof(errp), "%s/stderr.txt", j->dir);
    script = job_script(j, work);
    if (cfg->slurm_rest_url[0]) {
        json_t *job = json_pack("{s:s,s:s,s:s,s:s,s:o,s:i,s:i}", "name", j->l->id,
                                "current_working_directory", work, "standard_output", outp,
                                "standard_error", errp, "environment", job_env(j), "time_limit",
                                minutes, "cpus_per_task", p->cpus > 0 ? p->cpus : 1);
        json_t *ans;

        if (p->partition[0])
            json_object_set_new(job, "partition", json_string(p->partition));
        if (p->gres[0])
            json_object_set_new(job, "gres", json_string(p->gres));
        if (p->mem_bytes > 0)
            json_object_set_new(job, "memory_per_node", json_integer(p->mem_bytes >> 20));
        else
            json_object_set_new(job, "memory_per_cpu", json_integer(500));
        ans = rest(c, "POST", API "/job/submit",
                   json_pack("{s:o,s:s}", "job", job, "script", script), why, wn);
        if (ans && json_is_integer(json_object_get(ans, "job_id"))) {
            snprintf(j->job_id, sizeof(j->job_id), "%lld",
                     (long long)json_integer_value(json_object_get(ans, "job_id")));
            rc = 0;
        }
        json_decref(ans);
    } else {
        char path[PATH_MAX + 16], out[512], tl[32], cpus[32], mem[32], part[80], gres[80];
        char *argv[16];
        int a = 0, fd;

        snprintf(path, sizeof(path), "%s/job.sh", j->dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
        if (fd < 0 || write(fd, script, strlen(script)) != (ssize_t)strlen(script)) {
            snprintf(why, wn, "cannot write the job script");
            if (fd >= 0)
                close(fd);
            free(script);
            return -1;
        }
        close(fd);
        snprintf(tl, sizeof(tl), "--time=%d", minutes);
        snprintf(cpus, sizeof(cpus), "--cpus-per-task=%d", p->cpus > 0 ? p->cpus : 1);
        snprintf(mem, sizeof(mem), "--mem=%lldM",
                 p->mem_bytes > 0 ? (long long)(p->mem_bytes >> 20) : 500LL);
        argv[a++] = "sbatch";
        argv[a++] = "--parsable";
        argv[a++] = "-J";
        argv[a++] = j->l->id;
        argv[a++] = "-o";
        argv[a++] = outp;
        argv[a++] = "-e";
        argv[a++] = errp;
        argv[a++] = tl;
        argv[a++] = cpus;
        argv[a++] = mem;
        if (p->partition[0]) {
            snprintf(part, sizeof(part), "--partition=%s", p->partition);
            argv[a++] = part;
        }
        if (p->gres[0]) {
            snprintf(gres, sizeof(gres), "--gres=%s", p->gres);
            argv[a++] = gres;
        }
        argv[a++] = path;
        argv[a] = NULL;
        if (run_cmd(argv, out, sizeof(out)) == 0 && atoll(out) > 0) {
            snprintf(j->job_id, sizeof(j->job_id), "%lld", atoll(out));
            rc = 0;
        } else {
            out[strcspn(out, "\n")] = '\0';
            snprintf(why, wn, "sbatch: %.200s", out[0] ? out : "failed");
        }
    }
    free(script);
    return rc;
}

static void cancel(CURL *c, struct sjob *j, int sig)
{
    char why[256] = "";

    if (cfg->slurm_rest_url[0]) {
        char path[96];

        snprintf(path, sizeof(path), API "/job/%s?signal=%s", j->job_id,
                 sig == SIGTERM ? "SIGTERM" : "SIGKILL");
        json_decref(rest(c, "DELETE", path, NULL, why, sizeof(why)));
    } else {
        char s[32], out[256];
        char *argv[] = {"scancel", s, j->job_id, NULL};

        snprintf(s, sizeof(s), "--signal=%s", sig == SIGTERM ? "TERM" : "KILL");
        if (sig == SIGKILL)
            argv[1] = "--full";
        run_cmd(argv, out, sizeof(out));
    }
    if (sig == SIGKILL && cfg->slurm_rest_url[0])
        log_info("run %s: cancelled Slurm job %s", j->l->id, j->job_id);
}

/* The states of every job Slurm knows: an object job id -> {state, exit} */
static json_t *poll_states(CURL *c, char *why, size_t wn)
{
    json_t *out = json_object();

    if (cfg->slurm_rest_url[0]) {
        json_t *ans = rest(c, "GET", API "/jobs", NULL, why, wn), *jb;
        size_t i;

        if (!ans) {
            json_decref(out);
            return NULL;
        }
        json_array_foreach(json_object_get(ans, "jobs"), i, jb)
        {
            char id[32];

            snprintf(id, sizeof(id), "%lld",
                     (long long)json_integer_value(json_object_get(jb, "job_id")));
            json_object_set_new(out, id,
                                json_pack("{s:O,s:O,s:O}", "state",
                                          json_object_get(jb, "job_state"), "exit",
                                          json_object_get(jb, "exit_code"), "name",
                                          json_object_get(jb, "name") ?: json_null()));
        }
        json_decref(ans);
    } else {
        char *text = xmalloc(1 << 20), *line, *save = NULL;
        char *argv[] = {"scontrol", "show", "job", "-o", NULL};

        if (run_cmd(argv, text, 1 << 20) != 0 && !strstr(text, "No jobs")) {
            snprintf(why, wn, "scontrol: %.200s", text);
            free(text);
            json_decref(out);
            return NULL;
        }
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *id = strstr(line, "JobId="), *st = strstr(line, " JobState=");
            char *ex = strstr(line, " ExitCode="), *nm = strstr(line, " JobName=");
            char jid[32], state[32], name[64] = "";
            int code = 0, sig = 0;

            if (!id || !st || sscanf(id, "JobId=%31s", jid) != 1 ||
                sscanf(st, " JobState=%31s", state) != 1)
                continue;
            if (ex)
                sscanf(ex, " ExitCode=%d:%d", &code, &sig);
            if (nm)
                sscanf(nm, " JobName=%63s", name);
            json_object_set_new(out, jid,
                                json_pack("{s:s,s:i,s:s}", "state", state, "exit",
                                          sig ? 128 + sig : code << 8, "name", name));
        }
        free(text);
    }
    return out;
}

#define STEPD "slurmstepd" /* then ": " or "-<node>: " */

/* Slurm's own line on a job it ends ("slurmstepd-node: error: *** JOB 7 ON node CANCELLED AT
 * 2026-12-07T21:00:00 DUE TO TIME LIMIT ***") is said in lyceumd's words instead: 1 when the
 * n bytes at p are such a line (a newline included), after saying so. */
static int stepd_line(struct sjob *j, const char *p, size_t n)
{
    static const char said_abort[] = "[lyceumd] Slurm ended the job: the run was stopped\n";
    static const char said_time[] = "[lyceumd] Slurm ended the job: the run reached its timeout\n";

    if (n < sizeof(STEPD) - 1 || memcmp(p, STEPD, sizeof(STEPD) - 1) != 0 ||
        !memmem(p, n, ": error: *** JOB ", 17) || !memmem(p, n, " CANCELLED AT ", 14))
        return 0;
    if (memmem(p, n, "TIME LIMIT", 10))
        live_output(j->l, OUT_SYSTEM, said_time, sizeof(said_time) - 1);
    else
        live_output(j->l, OUT_SYSTEM, said_abort, sizeof(said_abort) - 1);
    return 1;
}

/* Passes n bytes of stderr on, but for Slurm's own lines (stepd_line). Returns how many were
 * used: a last line without its newline that may still become such a line is kept back (at
 * most a line of STEPD_MAX), unless done. */
#define STEPD_MAX 512
static size_t stderr_out(struct sjob *j, const char *buf, size_t n, int done)
{
    size_t at = 0, from = 0;

    while (at < n) {
        const char *nl = memchr(buf + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - buf) + 1 : n;
        size_t len = end - at;
        int maybe = memcmp(buf + at, STEPD, len < sizeof(STEPD) - 1 ? len : sizeof(STEPD) - 1) == 0;

        if (!nl && maybe && !done && len < STEPD_MAX) {
            if (at > from)
                live_output(j->l, OUT_STDERR, buf + from, at - from);
            return at; /* the rest comes again with what follows it */
        }
        if (nl && maybe && stepd_line(j, buf + at, len)) {
            if (at > from)
                live_output(j->l, OUT_STDERR, buf + from, at - from);
            from = end;
        }
        at = end;
    }
    if (n > from)
        live_output(j->l, OUT_STDERR, buf + from, n - from);
    return n;
}

/* Copies what the job's output files gained since last time into the run's output. */
static void tail(struct sjob *j)
{
    static const char *names[3] = {NULL, "stdout.txt", "stderr.txt"};

    for (int s = 1; s <= 2; s++) {
        char path[PATH_MAX + 16], buf[65536];
        int fd;
        ssize_t r;

        snprintf(path, sizeof(path), "%s/%s", j->dir, names[s]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        while ((r = pread(fd, buf, sizeof(buf), j->off[s])) > 0) {
            size_t used = (size_t)r;

            if (s == 1)
                live_output(j->l, OUT_STDOUT, buf, used);
            else
                used = stderr_out(j, buf, used, j->done);
            j->off[s] += (int64_t)used;
            if (used < (size_t)r)
                break; /* a partial line kept back */
        }
        close(fd);
    }
}

static int terminal(const char *st)
{
    return st && strcmp(st, "PENDING") != 0 && strcmp(st, "RUNNING") != 0 &&
           strcmp(st, "CONFIGURING") != 0 && strcmp(st, "COMPLETING") != 0 &&
           strcmp(st, "SUSPENDED") != 0 && strcmp(st, "REQUEUED") != 0 &&
           strcmp(st, "RESIZING") != 0;
}

/* Ends a job's run from its final Slurm state. Called without mu. */
static void finish(struct sjob *j, const char *state, int64_t wait_status)
{
    int code = (int)((wait_status >> 8) & 0xff);

    if (wait_status & 0x7f)
        code = 128 + (int)(wait_status & 0x7f);
    tail(j);
    if (strcmp(state, "COMPLETED") == 0 || strcmp(state, "FAILED") == 0) {
        if (code == 71)
            snprintf(j->l->note, sizeof(j->l->note),
                     "Installing the requirements failed; see install_log");
        live_exited(j->l, code, NULL);
    } else if (strcmp(state, "CANCELLED") == 0) {
        live_exited(j->l, code ? code : 137,
                    j->cancelled ? NULL : "The Slurm job was cancelled outside lyceumd");
    } else if (strcmp(state, "TIMEOUT") == 0 || strcmp(state, "DEADLINE") == 0) {
        j->l->timed_out = 1;
        live_exited(j->l, code ? code : 137, NULL);
    } else if (strcmp(state, "OUT_OF_MEMORY") == 0) {
        snprintf(j->l->note, sizeof(j->l->note), "The job ran out of memory (Slurm)");
        live_exited(j->l, code ? code : 137, NULL);
    } else {
        char why[96];

        snprintf(why, sizeof(why), "The Slurm job ended %s", state);
        live_exited(j->l, code, why);
    }
}

/* The id of the newest job of states named after j's run, or NULL. */
static const char *job_named(json_t *states, struct sjob *j)
{
    const char *id, *best = NULL;
    json_t *st;

    json_object_foreach(states, id, st)
    {
        const char *name = json_string_value(json_object_get(st, "name"));

        if (name && strcmp(name, j->l->id) == 0 && (!best || atoll(id) > atoll(best)))
            best = id;
    }
    return best;
}

/* A run that Slurm may hold a job of already (see the top), looked for in *known (the jobs
 * Slurm holds, read once per round into *known when NULL): 1 when its job was found, and is
 * followed from now on, or when it must not be submitted again; 0 when it may be submitted;
 * -1 (why set) when Slurm does not answer. */
static int look_for_job(CURL *c, struct sjob *j, json_t **known, char *why, size_t wn)
{
    const char *id;
    char path[PATH_MAX + 16];

    if (!*known)
        *known = poll_states(c, why, wn);
    if (!*known)
        return -1; /* submit nothing meanwhile: ask again later */
    id = job_named(*known, j);
    if (id) {
        snprintf(j->job_id, sizeof(j->job_id), "%s", id);
        live_reference(j->l, j->job_id);
        live_queued(j->l);
        log_info("run %s: found its Slurm job %s, submitted before; following it", j->l->id, id);
        return 1;
    }
    /* Not known to Slurm, yet its output files are there: it ran, and Slurm forgot it
     * (MinJobAge) while lyceumd was down. Running it again is not ours to decide. */
    snprintf(path, sizeof(path), "%s/stdout.txt", j->dir);
    if (access(path, F_OK) == 0) {
        pthread_mutex_lock(&mu);
        j->done = 1;
        pthread_mutex_unlock(&mu);
        tail(j);
        live_exited(j->l, -1,
                    "The Slurm job of this run ended while lyceumd was down, and Slurm no "
                    "longer knows how");
        return 1;
    }
    j->lookup = 0;
    return 0;
}

static void *slurm_main(void *arg);

static void slurm_job(void *arg)
{
    slurm_main(arg);
}

static void *slurm_main(void *arg)
{
    CURL *c = curl_easy_init();
    int64_t next_poll = 0;

    (void)arg;
    while (1) {
        struct sjob *todo[64];
        int n = 0, budget;
        char why[256] = "";
        json_t *states = NULL, *known = NULL;
        int any_submitted = 0;

        pthread_mutex_lock(&mu);
        if (stopping) {
            pthread_mutex_unlock(&mu);
            break;
        }
        /* Submissions, at most submit_per_second per second (this loop runs every poll). */
        budget = cfg->slurm_submit_per_s * cfg->slurm_poll_ms / 1000;
        if (budget < 1)
            budget = 1;
        for (struct sjob *j = jobs; j && n < 64 && n < budget; j = j->next)
            if (!j->job_id[0] && !j->done && now_mono_us() >= j->submit_after_us)
                todo[n++] = j;
        pthread_mutex_unlock(&mu);
        for (int i = 0; i < n; i++) {
            struct sjob *j = todo[i];
            int found = j->lookup ? look_for_job(c, j, &known, why, sizeof(why)) : 0;

            if (found == 1) {
                any_submitted = 1;
                continue;
            }
            if (found == 0 && j->cancel_sig == SIGKILL) {
                pthread_mutex_lock(&mu);
                j->done = 1;
                pthread_mutex_unlock(&mu);
                live_exited(j->l, 137, NULL);
                continue;
            }
            if (found == 0 && submit(c, j, why, sizeof(why)) == 0) {
                live_reference(j->l, j->job_id);
                live_queued(j->l);
                any_submitted = 1;
                down_why[0] = '\0';
            } else {
                /* Slurm is down or refused: the run waits, and says why. */
                if (!j->told_down) {
                    char line[400];
                    int k = snprintf(line, sizeof(line), "[lyceumd] waiting for Slurm: %s\n", why);

                    live_output(j->l, OUT_SYSTEM, line, (size_t)k);
                    j->told_down = 1;
                }
                snprintf(down_why, sizeof(down_why), "%s", why);
                live_waiting(j->l, why);
                j->submit_after_us = now_mono_us() + 2000000;
                /* Its answer may be what was lost: the job may be there. */
                j->lookup = 1;
                log_error("run %s: cannot submit to Slurm: %s", j->l->id, why);
            }
        }
        json_decref(known);
        if (now_mono_us() >= next_poll || any_submitted) {
            int have = 0;

            pthread_mutex_lock(&mu);
            for (struct sjob *j = jobs; j; j = j->next)
                have |= j->job_id[0] && !j->done;
            pthread_mutex_unlock(&mu);
            if (have)
                states = poll_states(c, why, sizeof(why));
            next_poll = now_mono_us() + (int64_t)cfg->slurm_poll_ms * 1000;
        }
        if (states) {
            /* Slurm answered: a job it does not know, in LOST_POLLS answers in a row, is
             * lost. Its controller lost its state (a restart without it), or forgot a job
             * that ended (MinJobAge) while lyceumd was down: nothing will say how it ended,
             * so its run ends now instead of at its timeout. */
            pthread_mutex_lock(&mu);
            for (struct sjob *j = jobs; j; j = j->next)
                if (j->job_id[0] && !j->done)
                    j->missing = json_object_get(states, j->job_id) ? 0 : j->missing + 1;
            pthread_mutex_unlock(&mu);
            for (;;) {
                struct sjob *hit = NULL;
                json_t *st = NULL;

                pthread_mutex_lock(&mu);
                for (struct sjob *j = jobs; j && !hit; j = j->next) {
                    if (!j->job_id[0] || j->done)
                        continue;
                    st = json_object_get(states, j->job_id);
                    if (j->cancel_sig && !j->cancelled) {
                        hit = j;
                        break;
                    }
                    if (j->missing >= LOST_POLLS) {
                        j->done = 1;
                        hit = j;
                        break;
                    }
                    if (!st)
                        continue;
                    if (terminal(json_string_value(json_object_get(st, "state"))) ||
                        (!j->running &&
                         strcmp(json_string_value(json_object_get(st, "state")), "RUNNING") == 0))
                        hit = j;
                }
                if (hit && st && terminal(json_string_value(json_object_get(st, "state"))))
                    hit->done = 1;
                pthread_mutex_unlock(&mu);
                if (!hit)
                    break;
                if (hit->cancel_sig && !hit->cancelled) {
                    cancel(c, hit, hit->cancel_sig);
                    hit->cancelled = 1;
                    continue;
                }
                if (hit->done && !st) {
                    char lost[160];

                    snprintf(lost, sizeof(lost),
                             "Slurm no longer knows job %s (its controller lost the job, or "
                             "forgot it after it ended): how the run ended is unknown",
                             hit->job_id);
                    log_error("run %s: %s", hit->l->id, lost);
                    tail(hit);
                    live_exited(hit->l, -1, lost);
                    continue;
                }
                if (hit->done) {
                    finish(hit, json_string_value(json_object_get(st, "state")),
                           json_integer_value(json_object_get(st, "exit")));
                } else {
                    hit->running = 1;
                    live_running(hit->l);
                }
            }
            /* Output of the running ones. */
            pthread_mutex_lock(&mu);
            for (struct sjob *j = jobs; j; j = j->next)
                if (j->running && !j->done)
                    tail(j);
            pthread_mutex_unlock(&mu);
            json_decref(states);
        }
        pthread_mutex_lock(&mu);
        {
            struct timespec ts;

            deadline_in(&ts, CLOCK_REALTIME, (int64_t)cfg->slurm_poll_ms * 1000);
            if (!stopping)
                pthread_cond_timedwait(&cv, &mu, &ts);
        }
        pthread_mutex_unlock(&mu);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- the interface ---- */

static void track(struct sjob *j)
{
    pthread_mutex_lock(&mu);
    j->next = jobs;
    jobs = j;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static int slurm_start(struct live *l)
{
    struct sjob *j = xcalloc(1, sizeof(*j));
    char work[PATH_MAX], why[300] = "";

    j->l = l;
    l->exec_priv = j;
    if (!running) {
        snprintf(l->errbuf, sizeof(l->errbuf),
                 "this server has no Slurm settings (the config's \"slurm\" object)");
        return LY_EUNAVAIL;
    }
    snprintf(j->dir, sizeof(j->dir), "%s/%s", cfg->slurm_shared_dir, l->id);
    if (mkdir(j->dir, 0755) != 0) {
        if (errno != EEXIST) {
            snprintf(l->errbuf, sizeof(l->errbuf), "cannot create %.300s: %s", j->dir,
                     strerror(errno));
            return LY_EIO;
        }
        j->lookup = 1; /* started before a restart: it may have been submitted then */
    }
    if (exec_prepare_python(l, j->dir, work, sizeof(work), why, sizeof(why))) {
        snprintf(l->errbuf, sizeof(l->errbuf), "%s", why);
        return LY_EIO;
    }
    track(j);
    return 0;
}

/* Follows a run submitted before a restart, by its job id; its output goes on from the bytes
 * of each stream that output.log already holds. */
static int slurm_adopt(struct live *l, const struct exec_prior *prior)
{
    struct sjob *j;

    if (!prior->ref)
        return LY_ENOTFOUND;
    j = xcalloc(1, sizeof(*j));
    j->l = l;
    l->exec_priv = j;
    snprintf(j->dir, sizeof(j->dir), "%s/%s", cfg->slurm_shared_dir, l->id);
    snprintf(j->job_id, sizeof(j->job_id), "%s", prior->ref);
    j->off[OUT_STDOUT] = prior->logged[OUT_STDOUT];
    j->off[OUT_STDERR] = prior->logged[OUT_STDERR];
    track(j);
    log_info("run %s: following Slurm job %s again", l->id, prior->ref);
    return 0;
}

static void slurm_signal(struct live *l, int sig)
{
    struct sjob *j = l->exec_priv;

    if (!j)
        return;
    pthread_mutex_lock(&mu);
    if (!j->done && (j->cancel_sig != SIGKILL)) {
        j->cancel_sig = sig;
        j->cancelled = 0;
    }
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void slurm_release(struct live *l)
{
    struct sjob *j = l->exec_priv;

    if (!j)
        return;
    pthread_mutex_lock(&mu);
    for (struct sjob **pp = &jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    free(j);
    l->exec_priv = NULL;
}

/* Slurm queues its jobs itself and places their GPUs on its nodes; its jobs go on while
 * lyceumd is down. */
static void slurm_capacity(struct exec_capacity *cap)
{
    cap->kinds = 1 << RUN_PYTHON;
    cap->outlives = 1;
}

/* The thread starts only when a profile uses Slurm. */
static int slurm_init(const struct config *c, int used)
{
    cfg = c;
    if (!used)
        return 0;
    snprintf(python, sizeof(python), "%s", c->python);
    if (strcmp(c->slurm_user, "root") == 0)
        log_warn("slurm.user is root: tenants' Slurm jobs run as root on the nodes, outside "
                 "lyceumd's sandbox; set slurm.user to an unprivileged account");
    if (!c->slurm_shared_dir[0]) {
        log_error("a profile uses Slurm but the config has no slurm.shared_dir");
        return LY_EINVAL;
    }
    if (mkdir(c->slurm_shared_dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", c->slurm_shared_dir, strerror(errno));
        return LY_EIO;
    }
    if (c->slurm_rest_url[0]) {
        int fd = open(c->slurm_jwt_key, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, key, sizeof(key)) : -1;

        if (fd >= 0)
            close(fd);
        if (n <= 0) {
            log_error("cannot read the Slurm JWT key '%s' (slurm.jwt_key)", c->slurm_jwt_key);
            return LY_EINVAL;
        }
        key_len = (size_t)n;
    }
    poller = worker_pool_new("Slurm poller", 1, 0);
    if (worker_submit(poller, slurm_job, NULL)) {
        worker_pool_free(poller);
        poller = NULL;
        return LY_EINTERNAL;
    }
    running = 1;
    log_info("Slurm backend: %s, shared directory %s",
             c->slurm_rest_url[0] ? c->slurm_rest_url : "sbatch/scontrol/scancel",
             c->slurm_shared_dir);
    return 0;
}

static void slurm_shutdown(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    worker_pool_free(poller);
    poller = NULL;
    running = 0;
}

const struct exec_ops exec_slurm = {
    .name = "slurm",
    .init = slurm_init,
    .shutdown = slurm_shutdown,
    .start = slurm_start,
    .signal = slurm_signal,
    .release = slurm_release,
    .adopt = slurm_adopt,
    .capacity = slurm_capacity,
};
