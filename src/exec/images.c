/*
 * Docker images per org, and the registry secrets of Docker runs.
 *
 * The engine has one image store for every org, so its tags are not to be trusted as they
 * are: an image that org A pulled with its registry credentials carries the same tag for
 * everyone. The rule here: a run is created from an image id (never a tag, which a later
 * pull may move), and
 *   - a run with registry credentials pulls its image with them, every time, and that org is
 *     recorded as having pulled that image privately (docker_pulls);
 *   - a run without (or whose credentials do not pull) uses the image the tag names here when
 *     no other org pulled that repository with credentials, or when this image is one its own
 *     org pulled with credentials, or one that someone pulled with none; otherwise it pulls
 *     the tag anonymously first, which a private registry refuses.
 * Repositories are compared in the engine's canonical form (docker.io/library/python for
 * python), so no spelling (a digest instead of a tag, docker.io/ or not) escapes the rule,
 * and an image found only by an id prefix is not taken for the tag. The engine answers a pull by
 * digest from its own store without asking the registry, so such a pull proves nothing when
 * the image is here already (a digest names an image another org pulled: refused, unless this
 * org may use it anyway). A pull with credentials
 * is recorded as pending before it starts (until it ends), so the tag it moves is never
 * trusted in between, even across a crash.
 *
 * The secrets (docker_registry_credentials, docker_password, aws_secret_access_key,
 * aws_session_token) never reach the run's stored spec: the start path takes them out of the
 * request and has the domain store them sealed (exec_host's creds_*: runs/host.c seals them
 * with "run_credentials:<run id>" as AAD); the run's thread reads them back for its pulls and
 * drops them once pulled (the store's trigger drops them too when the run ends, whichever
 * way). The records of who pulled what go through exec_host too.
 */
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "exec/docker.h"
#include "exec/docker_int.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_fields[] = {"docker_registry_credentials", "docker_password",
                                            "aws_secret_access_key", "aws_session_token", NULL};

/* ---- the run's secrets ---- */

/* Overwrites the string values of o before it is freed. */
static void wipe(json_t *o)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v)
    {
        if (json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
}

char *docker_creds_take(json_t *body)
{
    json_t *o = json_object();
    char *text = NULL;

    for (int i = 0; secret_fields[i]; i++) {
        json_t *v = json_object_get(body, secret_fields[i]);

        if (json_is_string(v) && json_string_length(v))
            json_object_set(o, secret_fields[i], v);
    }
    for (int i = 0; secret_fields[i]; i++)
        json_object_del(body, secret_fields[i]);
    if (json_object_size(o))
        text = json_dumps(o, JSON_COMPACT);
    wipe(o);
    json_decref(o);
    return text;
}

int docker_creds_save(const char *run_id, const char *text)
{
    if (!text)
        return 0;
    return exec_host->creds_put(run_id, text);
}

int docker_secrets_load(struct drun *d, char *why, size_t n)
{
    char *plain;
    int err;

    d->secrets = json_object();
    for (int i = 0; secret_fields[i]; i++) {
        /* A run stored before its secrets were sealed still has them in its spec. */
        json_t *v = json_object_get(d->l->spec, secret_fields[i]);

        if (json_is_string(v))
            json_object_set(d->secrets, secret_fields[i], v);
    }
    plain = exec_host->creds_get(d->l->id, &err, why, n);
    if (err)
        return -1;
    if (!plain)
        return 0;
    json_t *o = json_loads(plain, 0, NULL);

    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    if (json_is_object(o))
        json_object_update(d->secrets, o);
    json_decref(o);
    return 0;
}

const char *docker_secret(struct drun *d, const char *name)
{
    return json_string_value(json_object_get(d->secrets, name));
}

void docker_secrets_drop(struct drun *d)
{
    if (d->secrets) {
        wipe(d->secrets);
        json_decref(d->secrets);
        d->secrets = NULL;
    }
    if (exec_host->creds_drop(d->l->id) != 0)
        log_error("run %s: cannot drop its registry credentials from the store", d->l->id);
}

char *docker_auth_header(const char *user, const char *pass)
{
    json_t *a = json_pack("{s:s,s:s}", "username", user, "password", pass);
    char *text = json_dumps(a, JSON_COMPACT), *out;

    out = docker_base64(text, strlen(text));
    for (char *p = out; *p; p++) /* X-Registry-Auth is base64url */
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_decref(a);
    return out;
}

/* ---- references ---- */

/* The canonical repository of ref ("docker.io/library/python" for "python:3.11") into repo,
 * and the canonical reference into full (the repository, then "@digest", else ":tag", with
 * "latest" when ref has neither). 0, or -1 when ref is not an image reference. */
static int canon(const char *ref, char *repo, size_t rn, char *full, size_t fn)
{
    char name[1100], *at, *colon, *slash, *tag = NULL, *digest = NULL;
    const char *host = "docker.io", *path;

    if (!*ref || strlen(ref) >= sizeof(name) ||
        strspn(ref, "abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._-:/@") != strlen(ref))
        return -1;
    snprintf(name, sizeof(name), "%s", ref);
    if ((at = strchr(name, '@'))) {
        *at = '\0';
        digest = at + 1;
    }
    slash = strrchr(name, '/');
    colon = strrchr(slash ? slash : name, ':');
    if (colon) {
        *colon = '\0';
        tag = colon + 1;
    }
    path = name;
    slash = strchr(name, '/');
    if (slash &&
        (memchr(name, '.', (size_t)(slash - name)) || memchr(name, ':', (size_t)(slash - name)) ||
         (slash - name == 9 && strncmp(name, "localhost", 9) == 0))) {
        *slash = '\0';
        host = strcmp(name, "index.docker.io") == 0 ? "docker.io" : name;
        path = slash + 1;
    }
    if (!*path || (tag && !*tag) || (digest && !*digest) || strchr(path, ':'))
        return -1;
    /* A name cut short would compare equal to another: refused instead. */
    if ((size_t)snprintf(repo, rn, "%s/%s%s", host,
                         strcmp(host, "docker.io") == 0 && !strchr(path, '/') ? "library/" : "",
                         path) >= rn)
        return -1;
    if ((size_t)snprintf(full, fn, "%s%s%s", repo, digest ? "@" : ":",
                         digest ? digest
                         : tag  ? tag
                                : "latest") >= fn)
        return -1;
    return 0;
}

/* Whether the image (an inspect answer) carries the canonical reference full as one of its
 * tags or digests: an image the engine found by an id prefix does not. */
static int carries(json_t *img, const char *full)
{
    const char *lists[] = {"RepoTags", "RepoDigests"};
    char repo[1200], other[1200];
    size_t i;
    json_t *v;

    for (int k = 0; k < 2; k++)
        json_array_foreach(json_object_get(img, lists[k]), i, v)
        {
            if (json_is_string(v) &&
                canon(json_string_value(v), repo, sizeof(repo), other, sizeof(other)) == 0 &&
                strcmp(other, full) == 0)
                return 1;
        }
    return 0;
}

/* The id of the image that ref names here into id: 1, 0 when none, -1 when the engine did
 * not answer (why set). */
static int lookup(const char *ref, const char *full, char id[80], char *why, size_t n)
{
    char *enc = curl_easy_escape(NULL, ref, 0), path[1400], *body = NULL;
    json_t *img;
    long st;
    int found = 0;

    if (!enc)
        abort();
    snprintf(path, sizeof(path), "/images/%s/json", enc);
    curl_free(enc);
    st = docker_call("GET", path, NULL, NULL, 10000, NULL, &body);
    if (st != 200 && st != 404) {
        snprintf(why, n, "the Docker engine did not answer about the image '%.200s' (%ld)", ref,
                 st);
        free(body);
        return -1;
    }
    img = st == 200 ? json_loads(body, 0, NULL) : NULL;
    if (json_string_value(json_object_get(img, "Id")) && carries(img, full)) {
        snprintf(id, 80, "%s", json_string_value(json_object_get(img, "Id")));
        found = 1;
    }
    json_decref(img);
    free(body);
    return found;
}

/* The first error in a pull's progress lines into why (1 when there is one), and the
 * manifest digest it reports ("Digest: sha256:...") into digest. */
static int pull_lines(const char *body, char *why, size_t n, char digest[80])
{
    for (const char *p = body; *p;) {
        size_t len = strcspn(p, "\n");
        json_t *j = json_loadb(p, len, 0, NULL);
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *s = json_string_value(json_object_get(j, "status"));

        if (s && strncmp(s, "Digest: ", 8) == 0)
            snprintf(digest, 80, "%s", s + 8);
        if (e)
            snprintf(why, n, "%s", e);
        json_decref(j);
        if (e)
            return 1;
        p += len + (p[len] == '\n');
    }
    return 0;
}

/* Pulls ref (with auth when not NULL): 0 with the manifest digest in digest ("" when the
 * engine gave none); -1 with why set; 1 when the run was killed meanwhile. */
static int pull(struct drun *d, const char *ref, const char *auth, char digest[80], char *why,
                size_t n)
{
    const char *last = strrchr(ref, '/');
    char *enc = curl_easy_escape(NULL, ref, 0), path[1400], *body = NULL;
    int tagged = strchr(ref, '@') || strchr(last ? last : ref, ':');
    long st;
    int rc = 0;

    if (!enc)
        abort();
    digest[0] = '\0';
    snprintf(path, sizeof(path), "/images/create?fromImage=%s%s", enc, tagged ? "" : "&tag=latest");
    curl_free(enc);
    st = docker_call("POST", path, NULL, auth, 600000, d, &body);
    if (docker_wanted(d) == SIGKILL)
        rc = 1;
    else if (st != 200) {
        docker_message_of(body, why, n, "the engine answered");
        rc = -1;
    } else if (pull_lines(body, why, n, digest))
        rc = -1;
    free(body);
    return rc;
}

/* The image ref just pulled (digest as the pull reported it): its id, from the digest when
 * there is one, so that a tag moved meanwhile is not taken for it. 1, 0, -1 as lookup(). */
static int pulled(const char *ref, const char *repo, const char *full, const char *digest,
                  char id[80], char *why, size_t n)
{
    char byd[1300];

    if (!*digest)
        return lookup(ref, full, id, why, n);
    snprintf(byd, sizeof(byd), "%.1200s@%.79s", repo, digest);
    return lookup(byd, byd, id, why, n);
}

int docker_image_resolve(struct drun *d, const char *ref, const char *auth, char id[80], char *why,
                         size_t n)
{
    const char *org = d->l->org_id;
    char repo[1200], full[1200], digest[80], pending[64], cerr[300] = "", perr[300] = "";
    int rc, found, others, usable, here = 0;

    if (canon(ref, repo, sizeof(repo), full, sizeof(full)) != 0) {
        snprintf(why, n, "'%.200s' is not an image reference", ref);
        return -1;
    }
    /* The engine answers a pull by digest from what it has, asking the registry nothing: such
     * a pull proves access only when the image was not here before. */
    if (strchr(ref, '@') && (here = lookup(ref, full, id, why, n)) < 0)
        return -1;
    if (auth && !here) {
        snprintf(pending, sizeof(pending), "pending:%.40s", d->l->id);
        if (exec_host->pull_mark(org, repo, pending, 1) != 0) {
            snprintf(why, n, "cannot record the image pull");
            return -1;
        }
        rc = pull(d, ref, auth, digest, cerr, sizeof(cerr));
        found = rc == 0 ? pulled(ref, repo, full, digest, id, why, n) : 0;
        if (found == 1 && exec_host->pull_mark(org, repo, id, 1) != 0)
            found = -1;
        exec_host->pull_unmark(org, repo, pending);
        if (rc == 1)
            return 1;
        if (found)
            return found == 1 ? 0 : -1;
        /* Credentials that do not pull it: it may still be one any org may run. */
    }
    others = exec_host->repo_private(org, repo);
    found = lookup(ref, full, id, why, n);
    if (found < 0 || others < 0)
        return -1;
    usable = found && others ? exec_host->image_usable(org, id) : 1;
    if (usable < 0)
        return -1;
    if (found && usable)
        return 0;
    if (found && strchr(ref, '@')) {
        snprintf(why, n,
                 "the image '%.200s' cannot be used by its digest here: name it by a tag, with "
                 "the run's registry credentials if it is private",
                 ref);
        return -1;
    }
    rc = pull(d, ref, NULL, digest, perr, sizeof(perr));
    if (rc == 1)
        return 1;
    found = rc == 0 ? pulled(ref, repo, full, digest, id, why, n) : 0;
    if (found == 1) {
        exec_host->pull_mark(org, repo, id, 0);
        return 0;
    }
    if (found == 0)
        snprintf(why, n, "the image '%.200s' cannot be pulled: %.240s%s", ref,
                 cerr[0]   ? cerr
                 : perr[0] ? perr
                           : "the pull did not name it",
                 !auth && (strstr(perr, "auth") || strstr(perr, "denied"))
                     ? " (a private image needs the run's registry credentials)"
                     : "");
    return -1;
}
