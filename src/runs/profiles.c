/*
 * See profiles.h. Prices are kept as integer micro-credits per hour; the config writes them
 * as JSON numbers or decimal strings and both are parsed exactly through their decimal text.
 */
#include "runs/profiles.h"
#include "core/err.h"
#include "core/fbuf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/util.h"
#include "exec/exec.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct profile table[PROFILE_MAX];
static int count;
static char names[PROFILE_MAX * 66];

/* Built-in hourly prices for the GPU families NVML may find, when no config names them. */
static const struct {
    const char *family;
    const char *price;
} default_prices[] = {
    /* API.md 16.4: Lyceum's live on-demand prices per GPU-hour. */
    {"l40s", "1.19"}, {"a100", "1.59"}, {"h100", "2.79"}, {"h200", "4.29"}, {"b200", "6.49"},
    {"b300", "7.99"}, {"t4", "0.39"},   {"a10", "0.89"},  {"l4", "0.69"},   {NULL, NULL},
};

#define CPU_PRICE "0.36"

/* The backends a profile may name: those registered that run Python runs ("local, slurm"). */
static void backend_names(char *out, size_t n)
{
    struct fbuf b;

    fbuf_init(&b, out, n);
    for (int i = 0; i < exec_count(); i++) {
        struct exec_capacity cap;

        exec_capacity_of(exec_at(i), &cap);
        if (cap.kinds & (1 << RUN_PYTHON))
            fbuf_printf(&b, "%s%s", b.len ? ", " : "", exec_at(i)->name);
    }
}

int profiles_count(void)
{
    return count;
}

struct profile *profile_at(int i)
{
    return i >= 0 && i < count ? &table[i] : NULL;
}

struct profile *profile_find(const char *name)
{
    for (int i = 0; name && i < count; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

const char *profiles_names(void)
{
    return names;
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) >= sizeof(table[0].name))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* A price as a JSON number or string, parsed exactly from its decimal text. */
static int parse_price(json_t *v, int64_t *out)
{
    char buf[64];

    if (json_is_string(v))
        return micro_parse(json_string_value(v), out);
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return micro_parse(buf, out);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.6f", json_real_value(v));
        return micro_parse(buf, out);
    }
    return LY_EINVAL;
}

static struct profile *find_in(struct profile *tab, int cnt, const char *name)
{
    for (int i = 0; name && i < cnt; i++)
        if (strcmp(tab[i].name, name) == 0)
            return &tab[i];
    return NULL;
}

/* Parses the config's machine_types into tab (PROFILE_MAX entries), their number into *cnt. */
static int from_config(json_t *arr, const struct gpu_info *gpus, int ngpu, struct profile *tab,
                       int *cnt, char *why, size_t n)
{
    size_t i;
    json_t *o;
    int nt = 0;

    json_array_foreach(arr, i, o)
    {
        struct profile *p;
        const char *name = json_string_value(json_object_get(o, "hardware_profile"));
        struct exec_capacity cap;
        json_t *v;

        if (!json_is_object(o) || !name || !valid_name(name)) {
            snprintf(why, n, "machine_types[%zu]: needs a hardware_profile of [a-zA-Z0-9_.]", i);
            return LY_EINVAL;
        }
        if (find_in(tab, nt, name) || nt == PROFILE_MAX) {
            snprintf(why, n, "machine_types[%zu]: '%s' twice, or too many profiles", i, name);
            return LY_EINVAL;
        }
        p = &tab[nt];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", name);
        snprintf(p->backend, sizeof(p->backend), "local");
        v = json_object_get(o, "price_per_hour");
        if (v && (parse_price(v, &p->price_micro) || p->price_micro < 0)) {
            snprintf(why, n, "machine_types[%zu]: price_per_hour must be a decimal", i);
            return LY_EINVAL;
        }
        if ((v = json_object_get(o, "gpu_model")) && json_is_string(v))
            snprintf(p->gpu_model, sizeof(p->gpu_model), "%s", json_string_value(v));
        p->gpu_count = (int)json_integer_value(json_object_get(o, "gpu_count"));
        p->vcpus = (int)json_integer_value(json_object_get(o, "vcpus"));
        p->mem_bytes = (int64_t)json_integer_value(json_object_get(o, "memory_gb")) << 30;
        if ((v = json_object_get(o, "memory_mb")))
            p->mem_bytes = (int64_t)json_integer_value(v) << 20;
        p->pids_max = (int64_t)json_integer_value(json_object_get(o, "pids_max"));
        if ((v = json_object_get(o, "backend")) && json_is_string(v))
            snprintf(p->backend, sizeof(p->backend), "%s", json_string_value(v));
        exec_capacity_of(exec_lookup(p->backend), &cap);
        if (!exec_lookup(p->backend) || !(cap.kinds & (1 << RUN_PYTHON))) {
            char known[200];

            backend_names(known, sizeof(known));
            snprintf(why, n, "machine_types[%zu]: backend '%s' is not known (%s)", i, p->backend,
                     known);
            return LY_EINVAL;
        }
        if ((v = json_object_get(o, "partition")) && json_is_string(v))
            snprintf(p->partition, sizeof(p->partition), "%s", json_string_value(v));
        if ((v = json_object_get(o, "gres")) && json_is_string(v))
            snprintf(p->gres, sizeof(p->gres), "%s", json_string_value(v));
        if ((v = json_object_get(o, "gpu_indices")) && json_is_array(v)) {
            /* Explicit GPU indices (also how tests declare GPUs a machine does not have). */
            size_t k;
            json_t *g;

            json_array_foreach(v, k, g) if (p->ngpus < GPU_MAX && json_is_integer(g))
                p->gpu_idx[p->ngpus++] = (int)json_integer_value(g);
        } else if (p->gpu_count > 0) {
            /* The detected GPUs whose family the profile's name or model names. */
            for (int k = 0; k < ngpu; k++) {
                char fam[48];

                snprintf(fam, sizeof(fam), "gpu.%s", gpus[k].family);
                if (strcmp(fam, p->name) == 0 ||
                    (p->gpu_model[0] && strstr(gpus[k].name, p->gpu_model)))
                    p->gpu_idx[p->ngpus++] = gpus[k].index;
            }
        }
        v = json_object_get(o, "max_concurrent");
        if (!cap.local_gpus) {
            /* The backend (Slurm) queues and places the jobs; this bounds how many lyceumd
             * hands it. */
            p->max_concurrent = v ? (int)json_integer_value(v) : 256;
            nt++;
            continue;
        }
        if (v)
            p->max_concurrent = (int)json_integer_value(v);
        else if (p->gpu_count > 0)
            p->max_concurrent = p->ngpus / p->gpu_count;
        else
            p->max_concurrent = (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (p->gpu_count > 0 && p->gpu_count > p->ngpus)
            p->max_concurrent = 0; /* listed, but this machine cannot give it */
        if (p->max_concurrent < 0)
            p->max_concurrent = 0;
        nt++;
    }
    if (!find_in(tab, nt, "cpu")) {
        snprintf(why, n, "machine_types must declare the 'cpu' profile");
        return LY_EINVAL;
    }
    *cnt = nt;
    return 0;
}

static void defaults(const struct gpu_info *gpus, int ngpu)
{
    struct profile *p = &table[count++];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "cpu");
    snprintf(p->backend, sizeof(p->backend), "local");
    micro_parse(CPU_PRICE, &p->price_micro);
    p->vcpus = (int)(ncpu > 0 ? ncpu : 1);
    p->max_concurrent = p->vcpus < 2 ? 2 : p->vcpus;
    for (int k = 0; k < ngpu; k++) {
        char name[64];

        snprintf(name, sizeof(name), "gpu.%s", gpus[k].family);
        p = profile_find(name);
        if (!p && count < PROFILE_MAX) {
            p = &table[count++];
            memset(p, 0, sizeof(*p));
            snprintf(p->name, sizeof(p->name), "%s", name);
            snprintf(p->gpu_model, sizeof(p->gpu_model), "%s", gpus[k].name);
            snprintf(p->backend, sizeof(p->backend), "local");
            p->gpu_count = 1;
            p->vcpus = p->vcpus ? p->vcpus : (int)(ncpu > 0 ? ncpu : 1);
            p->mem_bytes = 0;
            micro_parse("1.59", &p->price_micro);
            for (int d = 0; default_prices[d].family; d++)
                if (strcmp(default_prices[d].family, gpus[k].family) == 0)
                    micro_parse(default_prices[d].price, &p->price_micro);
        }
        if (p && p->ngpus < GPU_MAX) {
            p->gpu_idx[p->ngpus++] = gpus[k].index;
            p->max_concurrent = p->ngpus;
        }
    }
}

int profiles_init(json_t *machine_types, char *why, size_t n)
{
    struct gpu_info gpus[GPU_MAX];
    int ngpu = gpu_detect(gpus, GPU_MAX);
    struct fbuf b;
    int err = 0;

    count = 0;
    if (machine_types)
        err = from_config(machine_types, gpus, ngpu, table, &count, why, n);
    else
        defaults(gpus, ngpu);
    if (err) {
        count = 0;
        return err;
    }
    fbuf_init(&b, names, sizeof(names));
    for (int i = 0; i < count; i++)
        fbuf_printf(&b, "%s%s", i ? ", " : "", table[i].name);
    return 0;
}

int profiles_parse(json_t *machine_types, struct profile *tab, int *cnt, char *why, size_t n)
{
    struct gpu_info gpus[GPU_MAX];
    int ngpu = gpu_detect(gpus, GPU_MAX);

    *cnt = 0;
    if (!machine_types) {
        snprintf(why, n,
                 "the config declares no machine_types: the machine types stay as they "
                 "are");
        return LY_EINVAL;
    }
    return from_config(machine_types, gpus, ngpu, tab, cnt, why, n);
}

/* 1 when a and b differ in what only a restart may change: where runs go and which GPUs. */
static int layout_differs(const struct profile *a, const struct profile *b)
{
    return strcmp(a->backend, b->backend) || strcmp(a->partition, b->partition) ||
           strcmp(a->gres, b->gres) || strcmp(a->gpu_model, b->gpu_model) ||
           a->gpu_count != b->gpu_count || a->ngpus != b->ngpus ||
           memcmp(a->gpu_idx, b->gpu_idx, sizeof(a->gpu_idx[0]) * (size_t)a->ngpus);
}

void profiles_apply(const struct profile *tab, int cnt)
{
    struct fbuf b;

    for (int i = 0; i < cnt; i++) {
        const struct profile *q = &tab[i];
        struct profile *p = profile_find(q->name);

        if (!p) {
            if (count == PROFILE_MAX) {
                log_warn("reload: machine type %s not added: %d is the most there may be", q->name,
                         PROFILE_MAX);
                continue;
            }
            table[count] = *q;
            table[count].running = 0;
            count++;
            log_info("reload: machine type %s added", q->name);
            continue;
        }
        if (layout_differs(p, q))
            log_warn("reload: machine type %s: its backend, partition, gres or GPUs change only "
                     "at a restart; they stay as they are",
                     p->name);
        if (p->price_micro != q->price_micro || p->max_concurrent != q->max_concurrent ||
            p->vcpus != q->vcpus || p->mem_bytes != q->mem_bytes || p->pids_max != q->pids_max)
            log_info("reload: machine type %s: price_per_hour %lld -> %lld micro-credits, "
                     "max_concurrent %d -> %d (runs going keep their price and slot)",
                     p->name, (long long)p->price_micro, (long long)q->price_micro,
                     p->max_concurrent, q->max_concurrent);
        p->price_micro = q->price_micro;
        p->max_concurrent = q->max_concurrent;
        p->vcpus = q->vcpus;
        p->mem_bytes = q->mem_bytes;
        p->pids_max = q->pids_max;
    }
    for (int i = 0; i < count; i++)
        if (!find_in((struct profile *)tab, cnt, table[i].name))
            log_warn("reload: machine type %s is no longer in the config: it stays until the "
                     "next restart",
                     table[i].name);
    fbuf_init(&b, names, sizeof(names));
    for (int i = 0; i < count; i++)
        fbuf_printf(&b, "%s%s", i ? ", " : "", table[i].name);
}

json_t *profile_json(const struct profile *p)
{
    char price[32];

    micro_format(p->price_micro, price, sizeof(price));
    return json_pack("{s:s,s:o,s:s,s:s?,s:i,s:i,s:I,s:b,s:i,s:s}", "hardware_profile", p->name,
                     "price_per_hour", json_money(p->price_micro), "price_per_hour_str", price,
                     "gpu_model", p->gpu_model[0] ? p->gpu_model : NULL, "gpu_count", p->gpu_count,
                     "vcpus", p->vcpus, "memory_gb", (json_int_t)(p->mem_bytes >> 30), "available",
                     p->max_concurrent > 0, "max_concurrent", p->max_concurrent, "backend",
                     p->backend);
}
