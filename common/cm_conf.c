/*
 * cm_conf.c -- the site configuration file, parsed by inih.  See cm_conf.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "cm.h"
#include "cm_conf.h"

struct ctx {
        struct cm_conf *c;
        char *err;
        size_t cap;
        const char *path;
        bool bad;                       /* the handler refused a value: err says why */
};

static int num(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
        char *end;
        unsigned long long x;

        if (!*v || *v == '-')
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno || *end || x < min || x > max)
                return -EINVAL;
        *ret = x;
        return 0;
}

static int str(char *dst, size_t cap, const char *v)
{
        size_t n = strlen(v);

        if (n == 0 || n >= cap)
                return -EINVAL;
        memcpy(dst, v, n + 1);
        return 0;
}

/* inih's handler: nonzero is success. */
static int on_value(void *user, const char *section, const char *name, const char *value)
{
        struct ctx *x = user;
        struct cm_conf *c = x->c;
        uint64_t v = 0;
        int r = -ENOENT;
        const char *want = "";

        if (!strcmp(section, "site")) {
                if (!strcmp(name, "id")) {
                        want = "a site id 1..65535";
                        r = num(value, 1, 65535, &v);
                        c->site = v;
                } else if (!strcmp(name, "address")) {
                        want = "a numeric address";
                        r = str(c->address, sizeof(c->address), value);
                } else if (!strcmp(name, "key")) {
                        want = "a file name";
                        r = str(c->key, sizeof(c->key), value);
                }
        } else if (!strcmp(section, "css")) {
                if (!strcmp(name, "address")) {
                        want = "HOST:PORT";
                        r = cm_parse_hostport(value, c->css_host, sizeof(c->css_host), &c->css_port);
                        if (r == 0 && !c->css_port)
                                r = -EINVAL;
                } else if (!strcmp(name, "state")) {
                        want = "a directory";
                        r = str(c->css_state, sizeof(c->css_state), value);
                } else if (!strcmp(name, "port")) {
                        want = "a port 0..65535";
                        r = num(value, 0, 65535, &v);
                        c->css_listen_port = (uint16_t)v;
                } else if (!strcmp(name, "lease_ms")) {
                        want = "100..3600000";
                        r = num(value, 100, 3600000, &v);
                        c->css_lease_ms = (uint32_t)v;
                } else if (!strcmp(name, "heartbeat_ms")) {
                        want = "10..60000";
                        r = num(value, 10, 60000, &v);
                        c->css_heartbeat_ms = (uint32_t)v;
                } else if (!strcmp(name, "suspect_ms")) {
                        want = "30..600000";
                        r = num(value, 30, 600000, &v);
                        c->css_suspect_ms = (uint32_t)v;
                } else if (!strcmp(name, "poll_ms")) {
                        want = "10..60000";
                        r = num(value, 10, 60000, &v);
                        c->css_poll_ms = (uint32_t)v;
                }
        } else if (!strcmp(section, "storage")) {
                if (!strcmp(name, "data")) {
                        want = "a directory";
                        r = str(c->data, sizeof(c->data), value);
                } else if (!strcmp(name, "port")) {
                        want = "a port 0..65535";
                        r = num(value, 0, 65535, &v);
                        c->storage_port = (uint16_t)v;
                } else if (!strcmp(name, "lease_ms")) {
                        want = "100..3600000";
                        r = num(value, 100, 3600000, &v);
                        c->storage_lease_ms = (uint32_t)v;
                }
        }
        if (r == 0)
                return 1;
        /* inih stops at the first refusal and returns its line number. */
        x->bad = true;
        if (r == -ENOENT)
                snprintf(x->err, x->cap, "unknown key '%s' in section [%s]", name, section);
        else
                snprintf(x->err, x->cap, "[%s] %s = %s: expected %s", section, name, value, want);
        return 0;
}

const char *cm_conf_arg(int argc, char **argv)
{
        const char *config = NULL;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--config") && i + 1 < argc)
                        config = argv[i + 1];
                else if (!strncmp(argv[i], "--config=", 9))
                        config = argv[i] + 9;
        }
        return config ? config : argc == 1 ? CM_CONF_DEFAULT : NULL;
}

int cm_conf_load(const char *path, struct cm_conf *ret, char *err, size_t cap)
{
        struct ctx x = { .c = ret, .err = err, .cap = cap, .path = path };
        FILE *f;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (cap)
                err[0] = 0;
        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                snprintf(err, cap, "%s: %s", path, strerror(-r));
                return r;
        }
        r = ini_parse_file(f, on_value, &x);
        fclose(f);
        if (r == 0)
                return 0;
        if (x.bad) {
                char why[256];

                snprintf(why, sizeof(why), "%s", err);
                snprintf(err, cap, "%s:%d: %s", path, r, why);
        } else {
                snprintf(err, cap, "%s:%d: not an INI line (\"[section]\" or \"key = value\")", path, r);
        }
        return -EINVAL;
}
