/*
 * dsm_faultio.c -- an in-memory, fault-injecting struct dsm_io for tests
 * (the contract is in dsm_faultio.h).
 *
 * Model.  A file is a node with two images: the durable one (what the
 * platters hold) and the volatile one (what the page cache shows).  Every
 * pwrite/ftruncate changes the volatile image and is appended, with a copy
 * of its data, to the node's pending list; fdatasync copies the volatile
 * image over the durable one and empties the list.  The namespace is a
 * table of entries <path, vol node, dur node>: open(O_CREAT) and unlink
 * change the vol side, syncdir(dir) copies vol to dur for every entry in
 * dir.  Power loss keeps, for every entry, only its dur node, whose durable
 * image (in torn mode first updated with a random subset of its pending
 * operations, applied whole or cut at a sector boundary, in random order)
 * becomes its volatile image too.
 *
 * Invariants (asserts cite them as FIO1..FIO5):
 *   FIO1  an image holds len <= size bytes in buf (len <= cap); the bytes
 *         [len, size) read as zeros.
 *   FIO2  a node's volatile image equals its durable image outside
 *         [dirty_lo, dirty_hi), except for the size; every byte between the
 *         two sizes lies inside that range.
 *   FIO3  applying a node's pending list in order to its durable image
 *         gives its volatile image (as long as dsm_faultio_corrupt() has
 *         not touched bytes the list rewrites).
 *   FIO4  a node's refs counts the entry slots (vol and dur) and the open
 *         fds that point to it; it is freed when refs reaches 0.
 *   FIO5  an entry has vol or dur (or both); a path has at most one entry.
 *
 * States of the machine:
 *
 *      running --power_loss / crash_at trigger (fio_power_loss)--> crashed
 *      crashed --every call (fio_enter)--> crashed, returns -EIO
 *      crashed --reboot (dsm_faultio_reboot)--> running, all fds invalid
 *      running --reboot--> running, all fds invalid, files as they were
 *                          (a process restart: the page cache survives)
 *
 * Simplifications: mkdir makes a directory durable at once, does not
 * require its parent to exist (so test paths under a real temporary
 * directory need no chain of mkdirs), and directories are never removed.
 * "." and "/" always exist.  Paths are normalised only by collapsing
 * repeated slashes and dropping "." components and trailing slashes; ".."
 * is an ordinary name.  A directory cannot be opened (-EISDIR).  Files are
 * growable byte buffers, sparse only past their last written byte; a file
 * may not grow beyond FIO_MAX_FILE (-EFBIG); at most FIO_MAX_FDS fds are
 * open at once (-EMFILE).  Out of memory during a power loss (which cannot
 * report errors) aborts.
 *
 * Choices where dsm_faultio.h is silent: dsm_faultio_power_loss() leaves
 * the machine crashed (every call -EIO until reboot), as crash_at does.
 * Descriptor numbers start at 3 and are never reused across reboots, so a
 * stale fd is always -EBADF.  nth == 0 means 1; dsm_faultio_fail() takes
 * err with either sign (0 means EIO).  dsm_faultio_clear() disarms failures
 * and short writes but not an armed crash_at (crash state); reboot disarms
 * everything.  A power loss that tears writes applies each pending ftruncate
 * or not, in the same random order as the writes, so a size it produces is
 * one some order of the pending operations gives.  Open follows Linux:
 * O_TRUNC truncates even with O_RDONLY; ftruncate on a read-only fd is
 * -EINVAL, pwrite -EBADF, pread on a write-only fd -EBADF.  listdir calls
 * fn without the lock (fn may call back in), in name order.
 */
#include "dsm_faultio.h"

#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIO_SECTOR 512u
#define FIO_MAX_FILE (2ull << 30)
#define FIO_MAX_FDS 4096

struct fio_img {
        uint8_t *buf;
        uint64_t len;           /* bytes materialised in buf */
        uint64_t cap;           /* bytes allocated */
        uint64_t size;          /* logical size; [len, size) is zeros */
};

enum fio_pkind {
        FIO_P_WRITE,
        FIO_P_TRUNC,
};

struct fio_pending {
        enum fio_pkind kind;
        uint64_t off;           /* write: offset; trunc: new size */
        uint64_t len;
        uint8_t *data;
};

struct fio_node {
        struct fio_img dur;
        struct fio_img vol;
        uint64_t dirty_lo;
        uint64_t dirty_hi;
        struct fio_pending *pend;
        size_t npend;
        size_t cappend;
        unsigned refs;
};

struct fio_entry {
        char *path;
        struct fio_node *vol;
        struct fio_node *dur;
};

struct fio_fd {
        struct fio_node *node;  /* NULL: free slot */
        int acc;                /* O_RDONLY, O_WRONLY or O_RDWR */
};

struct fio_fault {
        bool armed;
        bool persist;
        uint64_t at;            /* call number that fails */
        int err;
};

struct dsm_faultio {
        pthread_mutex_t lock;
        uint64_t rng;
        uint64_t calls[DSM_FOP_COUNT];
        struct fio_fault fault[DSM_FOP_COUNT];

        bool short_armed;
        uint64_t short_at;
        size_t short_keep;

        bool crash_armed;
        enum dsm_fop crash_op;
        uint64_t crash_at;
        bool crashed;

        char **dirs;
        size_t ndirs, capdirs;
        struct fio_entry *ents;
        size_t nents, capents;
        struct fio_fd *fds;
        size_t nfds, capfds;    /* slots in use (high-water), allocated */
        int fd_base;            /* fd = fd_base + slot */
};

/* ---- helpers ---------------------------------------------------------- */

static uint64_t fio_rand(struct dsm_faultio *f)
{
        /* splitmix64: any seed, 0 included, gives a good sequence. */
        uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
        return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
        return a > b ? a : b;
}

static int grow_array(void **arr, size_t *cap, size_t want, size_t elem)
{
        size_t ncap;
        void *p;

        if (want <= *cap)
                return 0;
        ncap = *cap ? *cap * 2 : 8;
        while (ncap < want)
                ncap *= 2;
        p = realloc(*arr, ncap * elem);
        if (!p)
                return -ENOMEM;
        *arr = p;
        *cap = ncap;
        return 0;
}

/* ---- images ----------------------------------------------------------- */

static int img_reserve(struct fio_img *im, uint64_t want)
{
        uint64_t ncap;
        uint8_t *p;

        if (want <= im->cap)
                return 0;
        if (want > SIZE_MAX)
                return -ENOMEM;
        ncap = max_u64(max_u64(im->cap * 2, want), 4096);
        p = realloc(im->buf, (size_t)ncap);
        if (!p)
                return -ENOMEM;
        im->buf = p;
        im->cap = ncap;
        return 0;
}

/* Write n bytes at off; room must have been reserved up to off + n. */
static void img_write(struct fio_img *im, uint64_t off, const void *data, uint64_t n)
{
        assert(off + n <= im->cap);
        if (!n)
                return;
        if (off > im->len)
                memset(im->buf + im->len, 0, (size_t)(off - im->len));  /* FIO1 */
        memcpy(im->buf + off, data, (size_t)n);
        im->len = max_u64(im->len, off + n);
        im->size = max_u64(im->size, off + n);
}

static void img_resize(struct fio_img *im, uint64_t size)
{
        if (size < im->len)
                im->len = size;
        im->size = size;
}

/* Read n bytes at off (off + n <= size). */
static void img_read(const struct fio_img *im, uint64_t off, void *buf, uint64_t n)
{
        uint64_t have = off < im->len ? min_u64(n, im->len - off) : 0;

        assert(off + n <= im->size);
        if (have)
                memcpy(buf, im->buf + off, (size_t)have);
        memset((uint8_t *)buf + have, 0, (size_t)(n - have));
}

/* Make [0, end) materialised (end <= size); reserve first. */
static void img_materialise(struct fio_img *im, uint64_t end)
{
        assert(end <= im->size && end <= im->cap);
        if (end > im->len) {
                memset(im->buf + im->len, 0, (size_t)(end - im->len));
                im->len = end;
        }
}

static void img_free(struct fio_img *im)
{
        free(im->buf);
        memset(im, 0, sizeof(*im));
}

static int img_clone(struct fio_img *dst, const struct fio_img *src)
{
        struct fio_img n = { .len = src->len, .cap = src->len, .size = src->size };

        if (src->len) {
                n.buf = malloc((size_t)src->len);
                if (!n.buf)
                        return -ENOMEM;
                memcpy(n.buf, src->buf, (size_t)src->len);
        }
        img_free(dst);
        *dst = n;
        return 0;
}

/* ---- nodes ------------------------------------------------------------ */

static struct fio_node *node_new(void)
{
        return calloc(1, sizeof(struct fio_node));
}

static void node_drop_pending(struct fio_node *nd)
{
        for (size_t i = 0; i < nd->npend; i++)
                free(nd->pend[i].data);
        nd->npend = 0;
}

static void node_ref(struct fio_node *nd)
{
        if (nd)
                nd->refs++;
}

static void node_unref(struct fio_node *nd)
{
        if (!nd)
                return;
        assert(nd->refs > 0);                                   /* FIO4 */
        if (--nd->refs)
                return;
        node_drop_pending(nd);
        free(nd->pend);
        img_free(&nd->dur);
        img_free(&nd->vol);
        free(nd);
}

static void node_mark_dirty(struct fio_node *nd, uint64_t lo, uint64_t hi)
{
        if (lo >= hi)
                return;
        if (nd->dirty_lo >= nd->dirty_hi) {
                nd->dirty_lo = lo;
                nd->dirty_hi = hi;
        } else {
                nd->dirty_lo = min_u64(nd->dirty_lo, lo);
                nd->dirty_hi = max_u64(nd->dirty_hi, hi);
        }
}

static int node_reserve_pending(struct fio_node *nd)
{
        return grow_array((void **)&nd->pend, &nd->cappend, nd->npend + 1, sizeof(*nd->pend));
}

/* fdatasync: durable := volatile (FIO2 makes it a copy of the dirty range). */
static int node_sync(struct fio_node *nd)
{
        uint64_t lo = nd->dirty_lo;
        uint64_t hi = min_u64(nd->dirty_hi, nd->vol.size);
        uint64_t m, zs, ze;
        int r;

        if (lo < hi) {
                m = min_u64(hi, nd->vol.len);
                r = img_reserve(&nd->dur, m);
                if (r < 0)
                        return r;
                img_resize(&nd->dur, nd->vol.size);
                if (lo < m)
                        img_write(&nd->dur, lo, nd->vol.buf + lo, m - lo);
                /* The rest of the range reads as zeros in vol (FIO1). */
                zs = max_u64(lo, m);
                ze = min_u64(hi, nd->dur.len);
                if (zs < ze)
                        memset(nd->dur.buf + zs, 0, (size_t)(ze - zs));
        } else {
                img_resize(&nd->dur, nd->vol.size);
        }
        nd->dur.size = nd->vol.size;
        nd->dirty_lo = nd->dirty_hi = 0;
        node_drop_pending(nd);
        return 0;
}

/* Apply a random subset of the pending operations, each whole or torn at a
 * sector boundary, in random order, to the durable image. */
static void node_apply_torn(struct dsm_faultio *f, struct fio_node *nd)
{
        size_t n = nd->npend;

        /* Fisher-Yates shuffle of the pending list. */
        for (size_t i = n; i > 1; i--) {
                size_t j = (size_t)(fio_rand(f) % i);
                struct fio_pending t = nd->pend[i - 1];

                nd->pend[i - 1] = nd->pend[j];
                nd->pend[j] = t;
        }
        for (size_t i = 0; i < n; i++) {
                struct fio_pending *p = &nd->pend[i];
                uint64_t end = p->off + p->len, keep, first, last;

                if (p->kind == FIO_P_TRUNC) {
                        if (fio_rand(f) & 1)
                                img_resize(&nd->dur, p->off);
                        continue;
                }
                switch (fio_rand(f) % 3) {
                case 0:                 /* vanished */
                        continue;
                case 1:                 /* whole */
                        keep = p->len;
                        break;
                default:                /* torn at a sector boundary inside it */
                        first = (p->off / FIO_SECTOR + 1) * FIO_SECTOR;
                        last = ((end - 1) / FIO_SECTOR) * FIO_SECTOR;
                        if (first > last) {
                                /* Within one sector: atomic. */
                                keep = (fio_rand(f) & 1) ? p->len : 0;
                        } else {
                                uint64_t nb = (last - first) / FIO_SECTOR + 1;

                                keep = first + FIO_SECTOR * (fio_rand(f) % nb) - p->off;
                        }
                        break;
                }
                if (!keep)
                        continue;
                /* Out of memory here: the write is lost, as it may be. */
                if (img_reserve(&nd->dur, p->off + keep) < 0)
                        continue;
                img_write(&nd->dur, p->off, p->data, keep);
        }
}

/* ---- paths, directories, entries ------------------------------------ */

/* Normalise path into a malloc'ed string. */
static int path_norm(const char *path, char **ret)
{
        size_t len, o = 0;
        const char *s = path;
        char *out;

        if (!path || !*path)
                return -ENOENT;
        len = strlen(path);
        if (len >= PATH_MAX)
                return -ENAMETOOLONG;
        out = malloc(len + 2);
        if (!out)
                return -ENOMEM;
        if (*s == '/')
                out[o++] = '/';
        while (*s) {
                const char *c;
                size_t cl;

                while (*s == '/')
                        s++;
                c = s;
                while (*s && *s != '/')
                        s++;
                cl = (size_t)(s - c);
                if (!cl || (cl == 1 && c[0] == '.'))
                        continue;
                if (o && out[o - 1] != '/')
                        out[o++] = '/';
                memcpy(out + o, c, cl);
                o += cl;
        }
        if (!o)
                out[o++] = '.';
        out[o] = '\0';
        *ret = out;
        return 0;
}

/* Length of the parent part of a normalised path; *ret_dot when the parent
 * is "." (a relative name without a slash). */
static size_t path_parent_len(const char *p, bool *ret_dot)
{
        const char *sl = strrchr(p, '/');

        *ret_dot = !sl;
        if (!sl)
                return 0;
        if (sl == p)
                return 1;       /* "/" */
        return (size_t)(sl - p);
}

static bool path_in_dir(const char *p, const char *dir)
{
        bool dot;
        size_t pl = path_parent_len(p, &dot);

        if (dot)
                return strcmp(dir, ".") == 0;
        if (strcmp(p, "/") == 0)
                return false;
        return strlen(dir) == pl && strncmp(p, dir, pl) == 0;
}

static const char *path_base(const char *p)
{
        const char *sl = strrchr(p, '/');

        return sl ? sl + 1 : p;
}

static bool dir_exists(const struct dsm_faultio *f, const char *p)
{
        if (strcmp(p, ".") == 0 || strcmp(p, "/") == 0)
                return true;
        for (size_t i = 0; i < f->ndirs; i++)
                if (strcmp(f->dirs[i], p) == 0)
                        return true;
        return false;
}

static struct fio_entry *entry_find(struct dsm_faultio *f, const char *p)
{
        for (size_t i = 0; i < f->nents; i++)
                if (strcmp(f->ents[i].path, p) == 0)
                        return &f->ents[i];
        return NULL;
}

static struct fio_node *file_find(struct dsm_faultio *f, const char *p)
{
        struct fio_entry *e = entry_find(f, p);

        return e ? e->vol : NULL;
}

/* Remove the entries that have neither side left (FIO5). */
static void entries_compact(struct dsm_faultio *f)
{
        size_t o = 0;

        for (size_t i = 0; i < f->nents; i++) {
                if (f->ents[i].vol || f->ents[i].dur)
                        f->ents[o++] = f->ents[i];
                else
                        free(f->ents[i].path);
        }
        f->nents = o;
}

/* Check that the parent of p is a directory: 0, -ENOENT or -ENOTDIR. */
static int parent_check(struct dsm_faultio *f, const char *p)
{
        bool dot;
        size_t pl = path_parent_len(p, &dot);
        char *parent;
        int r = 0;

        if (dot || strcmp(p, "/") == 0)
                return 0;
        parent = strndup(p, pl);
        if (!parent)
                return -ENOMEM;
        if (!dir_exists(f, parent))
                r = file_find(f, parent) ? -ENOTDIR : -ENOENT;
        free(parent);
        return r;
}

/* ---- descriptors ------------------------------------------------------ */

static struct fio_fd *fd_get(struct dsm_faultio *f, int fd)
{
        int64_t slot = (int64_t)fd - f->fd_base;

        if (fd < f->fd_base || slot >= (int64_t)f->nfds || !f->fds[slot].node)
                return NULL;
        return &f->fds[slot];
}

/* Find a free slot; returns its index or a negative errno. */
static int fd_alloc_slot(struct dsm_faultio *f)
{
        int r;

        for (size_t i = 0; i < f->nfds; i++)
                if (!f->fds[i].node)
                        return (int)i;
        if (f->nfds >= FIO_MAX_FDS)
                return -EMFILE;
        r = grow_array((void **)&f->fds, &f->capfds, f->nfds + 1, sizeof(*f->fds));
        if (r < 0)
                return r;
        f->fds[f->nfds].node = NULL;
        return (int)f->nfds++;
}

/* Close every fd; numbers handed out so far are never valid again. */
static void fds_close_all(struct dsm_faultio *f)
{
        for (size_t i = 0; i < f->nfds; i++) {
                node_unref(f->fds[i].node);
                f->fds[i].node = NULL;
        }
        f->fd_base += (int)f->nfds;
        f->nfds = 0;
}

/* ---- crashes and faults ---------------------------------------------- */

static void fio_power_loss(struct dsm_faultio *f, bool torn)
{
        for (size_t i = 0; i < f->nents; i++) {
                struct fio_node *nd = f->ents[i].dur;

                if (!nd)
                        continue;
                if (torn)
                        node_apply_torn(f, nd);
                node_drop_pending(nd);
                if (img_clone(&nd->vol, &nd->dur) < 0) {
                        fprintf(stderr, "dsm_faultio: out of memory in power loss\n");
                        abort();
                }
                nd->dirty_lo = nd->dirty_hi = 0;
        }
        for (size_t i = 0; i < f->nents; i++) {
                struct fio_entry *e = &f->ents[i];

                if (e->vol != e->dur) {
                        node_unref(e->vol);
                        e->vol = e->dur;
                        node_ref(e->vol);
                }
        }
        entries_compact(f);
        fds_close_all(f);
        f->crashed = true;
}

/* Count a call of op and decide whether it may run: 0, -EIO (crashed) or
 * the armed fault's error.  Called with the lock held. */
static int fio_enter(struct dsm_faultio *f, enum dsm_fop op)
{
        struct fio_fault *ft = &f->fault[op];
        uint64_t n = ++f->calls[op];

        if (f->crash_armed && f->crash_op == op && n == f->crash_at) {
                f->crash_armed = false;
                fio_power_loss(f, true);
        }
        if (f->crashed)
                return -EIO;
        if (ft->armed && (n == ft->at || (ft->persist && n > ft->at))) {
                if (!ft->persist)
                        ft->armed = false;
                return -ft->err;
        }
        return 0;
}

/* ---- the operations --------------------------------------------------- */

static int fio_open(void *ctx, const char *path, int flags, mode_t mode)
{
        struct dsm_faultio *f = ctx;
        int acc = flags & O_ACCMODE;
        struct fio_entry *e;
        struct fio_node *nd;
        char *p = NULL;
        int slot, r;

        (void)mode;
        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_OPEN);
        if (r < 0)
                goto out;
        r = -EINVAL;
        if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR)
                goto out;
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        r = -EISDIR;
        if (dir_exists(f, p))
                goto out;
        r = parent_check(f, p);
        if (r < 0)
                goto out;
        slot = fd_alloc_slot(f);
        if (slot < 0) {
                r = slot;
                goto out;
        }

        e = entry_find(f, p);
        nd = e ? e->vol : NULL;
        if (nd) {
                r = -EEXIST;
                if ((flags & O_CREAT) && (flags & O_EXCL))
                        goto out;
                if ((flags & O_TRUNC) && nd->vol.size) {
                        r = node_reserve_pending(nd);
                        if (r < 0)
                                goto out;
                        nd->pend[nd->npend++] = (struct fio_pending){
                                .kind = FIO_P_TRUNC, .off = 0,
                        };
                        node_mark_dirty(nd, 0, nd->vol.size);   /* FIO2 */
                        img_resize(&nd->vol, 0);
                }
        } else {
                r = -ENOENT;
                if (!(flags & O_CREAT))
                        goto out;
                r = -ENOMEM;
                if (!e) {
                        if (grow_array((void **)&f->ents, &f->capents, f->nents + 1,
                                       sizeof(*f->ents)) < 0)
                                goto out;
                        e = &f->ents[f->nents];
                        *e = (struct fio_entry){ .path = p };
                }
                nd = node_new();
                if (!nd)
                        goto out;
                if (e == &f->ents[f->nents]) {
                        f->nents++;
                        p = NULL;       /* owned by the entry now */
                }
                e->vol = nd;
                node_ref(nd);
        }
        f->fds[slot].node = nd;
        f->fds[slot].acc = acc;
        node_ref(nd);
        r = f->fd_base + slot;
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}

static int fio_close(void *ctx, int fd)
{
        struct dsm_faultio *f = ctx;
        struct fio_fd *d;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_CLOSE);
        if (r < 0)
                goto out;
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d)
                goto out;
        node_unref(d->node);
        d->node = NULL;
        r = 0;
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static ssize_t fio_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
        struct dsm_faultio *f = ctx;
        struct fio_fd *d;
        ssize_t r;
        uint64_t n;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_PREAD);
        if (r < 0)
                goto out;
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d || d->acc == O_WRONLY)
                goto out;
        r = 0;
        if (off >= d->node->vol.size)
                goto out;
        n = min_u64(min_u64(len, SSIZE_MAX), d->node->vol.size - off);
        img_read(&d->node->vol, off, buf, n);
        r = (ssize_t)n;
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static ssize_t fio_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
        struct dsm_faultio *f = ctx;
        struct fio_node *nd;
        struct fio_fd *d;
        uint8_t *copy;
        ssize_t r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_PWRITE);
        if (r < 0)
                goto out;
        if (f->short_armed && f->calls[DSM_FOP_PWRITE] == f->short_at) {
                f->short_armed = false;
                if (f->short_keep < len)
                        len = f->short_keep;
        }
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d || d->acc == O_RDONLY)
                goto out;
        nd = d->node;
        r = 0;
        if (!len)
                goto out;
        r = -EFBIG;
        if (len > SSIZE_MAX || off > FIO_MAX_FILE || len > FIO_MAX_FILE - off)
                goto out;
        r = -ENOMEM;
        if (node_reserve_pending(nd) < 0 || img_reserve(&nd->vol, off + len) < 0)
                goto out;
        copy = malloc(len);
        if (!copy)
                goto out;
        memcpy(copy, buf, len);
        nd->pend[nd->npend++] = (struct fio_pending){
                .kind = FIO_P_WRITE, .off = off, .len = len, .data = copy,
        };
        /* FIO2: the written bytes and any gap past the old size. */
        node_mark_dirty(nd, min_u64(off, nd->vol.size), off + len);
        img_write(&nd->vol, off, buf, len);
        r = (ssize_t)len;
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_fdatasync(void *ctx, int fd)
{
        struct dsm_faultio *f = ctx;
        struct fio_fd *d;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_FDATASYNC);
        if (r < 0)
                goto out;
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d)
                goto out;
        r = node_sync(d->node);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_ftruncate(void *ctx, int fd, uint64_t len)
{
        struct dsm_faultio *f = ctx;
        struct fio_node *nd;
        struct fio_fd *d;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_FTRUNCATE);
        if (r < 0)
                goto out;
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d)
                goto out;
        r = -EINVAL;            /* as Linux: not open for writing */
        if (d->acc == O_RDONLY)
                goto out;
        r = -EFBIG;
        if (len > FIO_MAX_FILE)
                goto out;
        nd = d->node;
        r = node_reserve_pending(nd);
        if (r < 0)
                goto out;
        nd->pend[nd->npend++] = (struct fio_pending){ .kind = FIO_P_TRUNC, .off = len };
        node_mark_dirty(nd, min_u64(len, nd->vol.size), max_u64(len, nd->vol.size));
        img_resize(&nd->vol, len);
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_fsize(void *ctx, int fd, uint64_t *ret_size)
{
        struct dsm_faultio *f = ctx;
        struct fio_fd *d;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_FSIZE);
        if (r < 0)
                goto out;
        d = fd_get(f, fd);
        r = -EBADF;
        if (!d)
                goto out;
        *ret_size = d->node->vol.size;
        r = 0;
out:
        pthread_mutex_unlock(&f->lock);
        return r;
}

static int fio_unlink(void *ctx, const char *path)
{
        struct dsm_faultio *f = ctx;
        struct fio_entry *e;
        char *p = NULL;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_UNLINK);
        if (r < 0)
                goto out;
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        r = -EISDIR;
        if (dir_exists(f, p))
                goto out;
        r = parent_check(f, p);
        if (r < 0)
                goto out;
        e = entry_find(f, p);
        r = -ENOENT;
        if (!e || !e->vol)
                goto out;
        node_unref(e->vol);
        e->vol = NULL;
        entries_compact(f);
        r = 0;
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}

static int fio_mkdir(void *ctx, const char *path, mode_t mode)
{
        struct dsm_faultio *f = ctx;
        char *p = NULL;
        int r;

        (void)mode;
        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_MKDIR);
        if (r < 0)
                goto out;
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        r = -EEXIST;
        if (dir_exists(f, p) || file_find(f, p))
                goto out;
        /* The parent need not exist, but it may not be a file. */
        r = parent_check(f, p);
        if (r == -ENOENT)
                r = 0;
        if (r < 0)
                goto out;
        r = grow_array((void **)&f->dirs, &f->capdirs, f->ndirs + 1, sizeof(*f->dirs));
        if (r < 0)
                goto out;
        f->dirs[f->ndirs++] = p;
        p = NULL;
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}

/* 0 if p names a directory, else -ENOENT or -ENOTDIR. */
static int dir_check(struct dsm_faultio *f, const char *p)
{
        if (dir_exists(f, p))
                return 0;
        return file_find(f, p) ? -ENOTDIR : -ENOENT;
}

static int fio_syncdir(void *ctx, const char *path)
{
        struct dsm_faultio *f = ctx;
        char *p = NULL;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_SYNCDIR);
        if (r < 0)
                goto out;
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        r = dir_check(f, p);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < f->nents; i++) {
                struct fio_entry *e = &f->ents[i];

                if (e->dur == e->vol || !path_in_dir(e->path, p))
                        continue;
                node_unref(e->dur);
                e->dur = e->vol;
                node_ref(e->dur);
        }
        entries_compact(f);
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fio_listdir(void *ctx, const char *path,
                       int (*fn)(void *arg, const char *name), void *arg)
{
        struct dsm_faultio *f = ctx;
        char **names = NULL, *p = NULL;
        size_t n = 0, cap = 0;
        int r;

        pthread_mutex_lock(&f->lock);
        r = fio_enter(f, DSM_FOP_LISTDIR);
        if (r < 0)
                goto unlock;
        r = path_norm(path, &p);
        if (r < 0)
                goto unlock;
        r = dir_check(f, p);
        if (r < 0)
                goto unlock;
        for (size_t i = 0; i < f->nents + f->ndirs; i++) {
                const char *q;

                if (i < f->nents) {
                        if (!f->ents[i].vol)
                                continue;
                        q = f->ents[i].path;
                } else {
                        q = f->dirs[i - f->nents];
                }
                if (!path_in_dir(q, p))
                        continue;
                r = grow_array((void **)&names, &cap, n + 1, sizeof(*names));
                if (r < 0)
                        goto unlock;
                names[n] = strdup(path_base(q));
                if (!names[n]) {
                        r = -ENOMEM;
                        goto unlock;
                }
                n++;
        }
unlock:
        pthread_mutex_unlock(&f->lock);
        /* fn runs unlocked: it may call back into the I/O layer. */
        if (r >= 0) {
                if (n)
                        qsort(names, n, sizeof(*names), name_cmp);
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = fn(arg, names[i]);
                if (r > 0)
                        r = 0;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(p);
        return r;
}

const struct dsm_io dsm_faultio_ops = {
        .open = fio_open,
        .close = fio_close,
        .pread = fio_pread,
        .pwrite = fio_pwrite,
        .fdatasync = fio_fdatasync,
        .ftruncate = fio_ftruncate,
        .fsize = fio_fsize,
        .unlink = fio_unlink,
        .mkdir = fio_mkdir,
        .syncdir = fio_syncdir,
        .listdir = fio_listdir,
        .advise_seq = NULL,
};

/* ---- control ---------------------------------------------------------- */

struct dsm_faultio *dsm_faultio_new(uint64_t seed)
{
        struct dsm_faultio *f = calloc(1, sizeof(*f));

        if (!f)
                return NULL;
        if (pthread_mutex_init(&f->lock, NULL) != 0) {
                free(f);
                return NULL;
        }
        f->rng = seed;
        f->fd_base = 3;
        return f;
}

void dsm_faultio_free(struct dsm_faultio *f)
{
        if (!f)
                return;
        fds_close_all(f);
        for (size_t i = 0; i < f->nents; i++) {
                node_unref(f->ents[i].vol);
                node_unref(f->ents[i].dur);
                free(f->ents[i].path);
        }
        free(f->ents);
        free(f->fds);
        for (size_t i = 0; i < f->ndirs; i++)
                free(f->dirs[i]);
        free(f->dirs);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

void dsm_faultio_fail(struct dsm_faultio *f, enum dsm_fop op, uint64_t nth, int err, bool persist)
{
        if ((unsigned)op >= DSM_FOP_COUNT)
                return;
        if (!nth)
                nth = 1;
        if (err < 0)
                err = -err;
        if (!err)
                err = EIO;
        pthread_mutex_lock(&f->lock);
        f->fault[op] = (struct fio_fault){
                .armed = true, .persist = persist, .at = f->calls[op] + nth, .err = err,
        };
        pthread_mutex_unlock(&f->lock);
}

void dsm_faultio_clear(struct dsm_faultio *f)
{
        pthread_mutex_lock(&f->lock);
        memset(f->fault, 0, sizeof(f->fault));
        f->short_armed = false;
        pthread_mutex_unlock(&f->lock);
}

void dsm_faultio_short_write(struct dsm_faultio *f, uint64_t nth, size_t keep)
{
        if (!nth)
                nth = 1;
        pthread_mutex_lock(&f->lock);
        f->short_armed = true;
        f->short_at = f->calls[DSM_FOP_PWRITE] + nth;
        f->short_keep = keep;
        pthread_mutex_unlock(&f->lock);
}

void dsm_faultio_power_loss(struct dsm_faultio *f, bool torn)
{
        pthread_mutex_lock(&f->lock);
        fio_power_loss(f, torn);
        pthread_mutex_unlock(&f->lock);
}

void dsm_faultio_crash_at(struct dsm_faultio *f, enum dsm_fop op, uint64_t nth)
{
        if ((unsigned)op >= DSM_FOP_COUNT)
                return;
        if (!nth)
                nth = 1;
        pthread_mutex_lock(&f->lock);
        f->crash_armed = true;
        f->crash_op = op;
        f->crash_at = f->calls[op] + nth;
        pthread_mutex_unlock(&f->lock);
}

bool dsm_faultio_crashed(const struct dsm_faultio *f)
{
        struct dsm_faultio *m = (struct dsm_faultio *)f;    /* the lock is mutable */
        bool c;

        pthread_mutex_lock(&m->lock);
        c = m->crashed;
        pthread_mutex_unlock(&m->lock);
        return c;
}

void dsm_faultio_reboot(struct dsm_faultio *f)
{
        pthread_mutex_lock(&f->lock);
        fds_close_all(f);
        f->crashed = false;
        f->crash_armed = false;
        f->short_armed = false;
        memset(f->fault, 0, sizeof(f->fault));
        pthread_mutex_unlock(&f->lock);
}

uint64_t dsm_faultio_calls(const struct dsm_faultio *f, enum dsm_fop op)
{
        struct dsm_faultio *m = (struct dsm_faultio *)f;
        uint64_t n;

        if ((unsigned)op >= DSM_FOP_COUNT)
                return 0;
        pthread_mutex_lock(&m->lock);
        n = m->calls[op];
        pthread_mutex_unlock(&m->lock);
        return n;
}

int dsm_faultio_corrupt(struct dsm_faultio *f, const char *path, uint64_t off, size_t len)
{
        struct fio_node *nd;
        char *p = NULL;
        uint64_t dend;
        int r;

        pthread_mutex_lock(&f->lock);
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        nd = file_find(f, p);
        r = -ENOENT;
        if (!nd)
                goto out;
        r = -EINVAL;
        if (off > nd->vol.size || len > nd->vol.size - off)
                goto out;
        /* Only the part within the durable size; the rest is dirty (FIO2)
         * and a sync copies it from the volatile image. */
        dend = off < nd->dur.size ? min_u64(off + len, nd->dur.size) : 0;
        r = -ENOMEM;
        if (img_reserve(&nd->vol, off + len) < 0 || img_reserve(&nd->dur, dend) < 0)
                goto out;
        img_materialise(&nd->vol, off + len);
        img_materialise(&nd->dur, dend);
        for (uint64_t i = off; i < off + len; i++)
                nd->vol.buf[i] ^= 0x5a;
        for (uint64_t i = off; i < dend; i++)
                nd->dur.buf[i] ^= 0x5a;
        r = 0;
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}

int64_t dsm_faultio_size(struct dsm_faultio *f, const char *path)
{
        struct fio_node *nd;
        char *p = NULL;
        int64_t r;

        pthread_mutex_lock(&f->lock);
        r = path_norm(path, &p);
        if (r < 0)
                goto out;
        nd = file_find(f, p);
        r = nd ? (int64_t)nd->vol.size : -ENOENT;
out:
        pthread_mutex_unlock(&f->lock);
        free(p);
        return r;
}
