/*
 * us_xattr.c -- the using site's extended attributes (us_core.h "extended
 * attributes"), and what it remembers of security.capability.
 * Invariants: us_core_int.h.
 */
#include "us_core_int.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/xattr.h>

#include "cm.h"

/*
 * The kernel asks for "security.capability" before every write(2) to a
 * file (to clear file capabilities), a round trip each time.  A mount
 * remembers that a file has none -- because it just created it, or the
 * storage site said so -- for the kernel's own attribute timeout, and
 * forgets it when it sets or removes that attribute itself.  Caller holds
 * core->mu.
 */
#define CAPS_NAME "security.capability"
#define CAPS_TTL_US ((uint64_t)(US_ATTR_TIMEOUT_US))

void us__caps_absent(struct us_node *n)
{
        n->nocaps_until = cm_now_us() + CAPS_TTL_US;
}

/* This mount sets or removes the attribute: ask the storage site again. */
static void caps_forget(struct us_core *core, uint64_t fino)
{
        struct us_node *n;

        pthread_mutex_lock(&core->mu);
        n = us__node_find(core, fino);
        if (n)
                n->nocaps_until = 0;
        pthread_mutex_unlock(&core->mu);
}

/* ---- extended attributes -------------------------------------------------------------- */

/*
 * Names we serve.  "system." names carry kernel semantics (POSIX ACLs:
 * system.posix_acl_access must change the mode with it) that a plain store
 * of values would get wrong, so they are refused as on a filesystem
 * mounted noacl: EOPNOTSUPP, and programs such as cp -p fall back to
 * chmod.
 */
static int xattr_name(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > LP_FS_NAME_MAX)
                return -ERANGE;
        if (!strncmp(name, "system.", 7))
                return -EOPNOTSUPP;
        return 0;
}

/* Drop "system." names (stored before this rule, or by another client)
 * from a NUL-separated list, in place; the new length. */
static size_t xattr_filter(uint8_t *list, size_t len)
{
        size_t in = 0, out = 0;

        while (in < len) {
                uint8_t *z = memchr(list + in, 0, len - in);
                size_t l = z ? (size_t)(z - (list + in)) + 1 : len - in;

                if (!(l >= 7 && !memcmp(list + in, "system.", 7))) {
                        memmove(list + out, list + in, l);
                        out += l;
                }
                in += l;
        }
        return out;
}

/* The file and the attribute name of a request about one attribute. */
static int xattr_args(uint64_t fino, const char *name, uint32_t *ret_fg, uint64_t *ret_ino)
{
        int r = us_ino_from_fuse(fino, ret_fg, ret_ino);

        if (r < 0)
                return r;
        return xattr_name(name);
}

/* Hand a value or a list (len bytes at data) to the caller's buffer of
 * size bytes; size 0 asks only for the length, answered with probe_len.
 * -ERANGE when it does not fit. */
static int xattr_copy_out(const void *data, size_t len, size_t probe_len, void *buf, size_t size,
                          size_t *ret_len)
{
        if (size == 0) {
                *ret_len = probe_len;
                return 0;
        }
        if (len > size)
                return -ERANGE;
        memcpy(buf, data, len);
        *ret_len = len;
        return 0;
}

/* Send req, a change of attribute name of file fino, with resend rule rs;
 * first forget what this mount knows of security.capability if that is
 * the one. */
static int xattr_change(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                        const struct lp_fs_req *req, enum us_resend rs)
{
        struct lp_fs_resp resp;
        int r;

        if (!strcmp(name, CAPS_NAME))
                caps_forget(core, fino);
        r = us__call_fg(core, ctx, req, rs, &resp);
        if (r == 0)
                lp_fs_resp_release(&resp);
        return r;
}

/* The whole list of names (NUL-separated) into *ret. */
static int xattr_list(struct us_core *core, struct us_ctx *ctx, uint32_t fg, uint64_t ino,
                      struct lp_fs_resp *ret)
{
        struct lp_fs_req req;

        us__req_init(&req, ctx, LP_FS_LISTXATTR, fg, ino);
        req.length = LP_FS_DATA_MAX;
        return us__call_fg(core, ctx, &req, US_RESEND_ANY, ret);
}

int us_core_setxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     const void *value, size_t size, int flags)
{
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = xattr_args(fino, name, &fg, &ino);
        if (r < 0)
                return r;
        if (size > LP_FS_XATTR_VALUE_MAX)
                return -E2BIG;
        if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
                return -EINVAL;
        us__req_init(&req, ctx, LP_FS_SETXATTR, fg, ino);
        us__req_name(&req, name);
        req.data = value;
        req.datalen = size;
        req.flags = ((flags & XATTR_CREATE) ? LP_FS_XATTR_CREATE : 0) |
                    ((flags & XATTR_REPLACE) ? LP_FS_XATTR_REPLACE : 0);
        /* Setting a value twice is the same as once, unless CREATE makes
         * the second one fail. */
        return xattr_change(core, ctx, fino, name, &req,
                            (flags & XATTR_CREATE) ? US_RESEND_UNSENT : US_RESEND_ANY);
}

int us_core_getxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, const char *name,
                     void *buf, size_t size, size_t *ret_len)
{
        struct lp_fs_resp resp;
        struct lp_fs_req req;
        struct us_node *n;
        bool caps;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = xattr_args(fino, name, &fg, &ino);
        if (r < 0)
                return r;
        caps = !strcmp(name, CAPS_NAME);
        if (caps) {
                bool absent;

                pthread_mutex_lock(&core->mu);
                n = us__node_find(core, fino);
                absent = n && n->nocaps_until > cm_now_us();
                pthread_mutex_unlock(&core->mu);
                if (absent)
                        return -ENODATA;
        }
        us__req_init(&req, ctx, LP_FS_GETXATTR, fg, ino);
        us__req_name(&req, name);
        /* Ask for the whole value and check the size here, so that ERANGE
         * does not depend on the wire. */
        req.length = size ? LP_FS_XATTR_VALUE_MAX : 0;
        r = us__call_fg(core, ctx, &req, US_RESEND_ANY, &resp);
        if (r == -ENODATA && caps) {
                pthread_mutex_lock(&core->mu);
                n = us__node_find(core, fino);
                if (n)
                        us__caps_absent(n);
                pthread_mutex_unlock(&core->mu);
        }
        if (r < 0)
                return r;
        r = xattr_copy_out(resp.data, resp.datalen, resp.datalen ? resp.datalen : resp.value, buf, size,
                           ret_len);
        lp_fs_resp_release(&resp);
        return r;
}

int us_core_listxattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino, void *buf,
                      size_t size, size_t *ret_len)
{
        struct lp_fs_resp resp;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = us_ino_from_fuse(fino, &fg, &ino);
        if (r < 0)
                return r;
        r = xattr_list(core, ctx, fg, ino, &resp);
        if (r < 0)
                return r;
        /* resp.data is the decoded message's own memory. */
        resp.datalen = xattr_filter((uint8_t *)resp.data, resp.datalen);
        r = xattr_copy_out(resp.data, resp.datalen, resp.datalen, buf, size, ret_len);
        lp_fs_resp_release(&resp);
        return r;
}

int us_core_removexattr(struct us_core *core, struct us_ctx *ctx, uint64_t fino,
                        const char *name)
{
        struct lp_fs_req req;
        uint32_t fg;
        uint64_t ino;
        int r;

        r = xattr_args(fino, name, &fg, &ino);
        if (r < 0)
                return r;
        us__req_init(&req, ctx, LP_FS_REMOVEXATTR, fg, ino);
        us__req_name(&req, name);
        /* A resend after a lost answer would say ENODATA for a removal that
         * happened: send once. */
        return xattr_change(core, ctx, fino, name, &req, US_RESEND_UNSENT);
}
