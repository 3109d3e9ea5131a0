/*
 * lp_fs.c -- the filesystem protocol's messages: the C structs of lp_fs.h
 * to and from the protobuf-c encoding of locus_fs.proto.
 *
 * Encoding builds the protobuf-c structs on the stack, pointing at the
 * caller's memory, and packs them into one malloc'ed buffer.  Decoding
 * unpacks (protobuf-c allocates) and points the C struct into the unpacked
 * message; the few arrays of structs are converted into C arrays.  Both are
 * kept in a private block hung on lp__priv and freed by release.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "locus_fs.pb-c.h"
#include "lp_conn.h"
#include "lp_fs.h"
#include "lp_status.h"

/* Each flag its own bit: two branches once gave two SS_INSTALL flags the
 * same bit, and a materialization was taken for a directory piece. */
#define LP__BITS_DISTINCT(or_, sum_) ((or_) == (sum_))
_Static_assert(LP__BITS_DISTINCT(LP_FS_INSTALL_BEGIN | LP_FS_INSTALL_TRUNC | LP_FS_INSTALL_DATA | LP_FS_INSTALL_ENTRIES |
                                 LP_FS_INSTALL_COMMIT | LP_FS_INSTALL_ABORT | LP_FS_INSTALL_REPAIR |
                                 LP_FS_INSTALL_MATERIALIZE,
                                 LP_FS_INSTALL_BEGIN + LP_FS_INSTALL_TRUNC + LP_FS_INSTALL_DATA + LP_FS_INSTALL_ENTRIES +
                                 LP_FS_INSTALL_COMMIT + LP_FS_INSTALL_ABORT + LP_FS_INSTALL_REPAIR +
                                 LP_FS_INSTALL_MATERIALIZE),
               "SS_INSTALL flags share a bit");
_Static_assert(LP__BITS_DISTINCT(LP_FS_FETCH_VV | LP_FS_FETCH_COMPARE | LP_FS_FETCH_PIECES,
                                 LP_FS_FETCH_VV + LP_FS_FETCH_COMPARE + LP_FS_FETCH_PIECES),
               "SS_FETCH flags share a bit");

/* ---- encoding ---------------------------------------------------------------- */

static void time_out(Locus__FsTime *t, const struct lp_fs_time *v)
{
        locus__fs_time__init(t);
        t->has_sec = v->sec != 0;
        t->sec = v->sec;
        t->has_nsec = v->nsec != 0;
        t->nsec = v->nsec;
}

struct attr_pb {
        Locus__FsAttr a;
        Locus__FsTime at, mt, ct;
};

#define SET(pb, field, val)                     \
        do {                                    \
                (pb)->has_##field = (val) != 0; \
                (pb)->field = (val);            \
        } while (0)

static void attr_out(struct attr_pb *p, const struct lp_fs_attr *v)
{
        locus__fs_attr__init(&p->a);
        SET(&p->a, ino, v->ino);
        SET(&p->a, size, v->size);
        SET(&p->a, blocks, v->blocks);
        SET(&p->a, mode, v->mode);
        SET(&p->a, nlink, v->nlink);
        SET(&p->a, uid, v->uid);
        SET(&p->a, gid, v->gid);
        SET(&p->a, rdev, v->rdev);
        SET(&p->a, generation, v->generation);
        SET(&p->a, version, v->version);
        if (v->vvlen) {
                p->a.has_vv = 1;
                p->a.vv.len = v->vvlen;
                p->a.vv.data = (uint8_t *)v->vv;
        }
        time_out(&p->at, &v->atime);
        time_out(&p->mt, &v->mtime);
        time_out(&p->ct, &v->ctime);
        p->a.atime = &p->at;
        p->a.mtime = &p->mt;
        p->a.ctime = &p->ct;
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
        ProtobufCBinaryData b = { n, (uint8_t *)p };

        return b;
}

static int pack(const ProtobufCMessage *m, uint8_t **ret_buf, size_t *ret_len)
{
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(n ? n : 1);

        if (!buf)
                return -ENOMEM;
        protobuf_c_message_pack(m, buf);
        *ret_buf = buf;
        *ret_len = n;
        return 0;
}

int lp_fs_req_encode(const struct lp_fs_req *r, uint8_t **ret_buf, size_t *ret_len)
{
        Locus__FsRequest m;
        Locus__FsCred cred;
        Locus__FsTime at, mt, ct;

        if (r->namelen > LP_FS_NAME_MAX || r->newnamelen > LP_FS_NAME_MAX || r->datalen > LP_FS_DATA_MAX ||
            r->bloblen > LP_FS_DATA_MAX || r->cred.ngroups > LP_FS_MAX_GROUPS)
                return -EINVAL;
        locus__fs_request__init(&m);
        locus__fs_cred__init(&cred);
        SET(&cred, uid, r->cred.uid);
        SET(&cred, gid, r->cred.gid);
        SET(&cred, pid, r->cred.pid);
        SET(&cred, umask, r->cred.umask);
        cred.n_groups = r->cred.ngroups;
        cred.groups = (uint32_t *)r->cred.groups;
        m.cred = &cred;
        SET(&m, op, r->op);
        SET(&m, fg, r->fg);
        SET(&m, ino, r->ino);
        SET(&m, parent, r->parent);
        SET(&m, newparent, r->newparent);
        SET(&m, session, r->session);
        SET(&m, offset, r->offset);
        SET(&m, length, r->length);
        SET(&m, size, r->size);
        SET(&m, mode, r->mode);
        SET(&m, uid, r->uid);
        SET(&m, gid, r->gid);
        SET(&m, flags, r->flags);
        SET(&m, valid, r->valid);
        SET(&m, whence, r->whence);
        SET(&m, rdev, r->rdev);
        SET(&m, ino2, r->ino2);
        SET(&m, session2, r->session2);
        SET(&m, offset2, r->offset2);
        SET(&m, site, r->site);
        SET(&m, port, r->port);
        if (r->atime.sec || r->atime.nsec) {
                time_out(&at, &r->atime);
                m.atime = &at;
        }
        if (r->mtime.sec || r->mtime.nsec) {
                time_out(&mt, &r->mtime);
                m.mtime = &mt;
        }
        if (r->ctime.sec || r->ctime.nsec) {
                time_out(&ct, &r->ctime);
                m.ctime = &ct;
        }
        if (r->name) {
                m.has_name = 1;
                m.name = bin(r->name, r->namelen);
        }
        if (r->newname) {
                m.has_newname = 1;
                m.newname = bin(r->newname, r->newnamelen);
        }
        if (r->data) {
                m.has_data = 1;
                m.data = bin(r->data, r->datalen);
        }
        if (r->blob) {
                m.has_blob = 1;
                m.blob = bin(r->blob, r->bloblen);
        }
        m.host = (char *)r->host;
        m.path = (char *)r->path;
        m.text = (char *)r->text;
        return pack(&m.base, ret_buf, ret_len);
}

int lp_fs_resp_encode(const struct lp_fs_resp *r, uint8_t **ret_buf, size_t *ret_len)
{
        Locus__FsResponse m;
        Locus__FsStatfs st;
        struct attr_pb a1, a2;
        Locus__FsDirent *ents = NULL, **entp = NULL;
        struct attr_pb *entattr = NULL;
        Locus__FsMount *mnts = NULL, **mntp = NULL;
        Locus__FsHolder *hold = NULL, **holdp = NULL;
        char *msg = NULL;
        int ret;

        if (r->datalen > LP_FS_DATA_MAX || r->nentries > LP_FS_MAX_ENTRIES || r->nmounts > LP_FS_MAX_ENTRIES)
                return -EINVAL;
        locus__fs_response__init(&m);
        if (r->status) {
                m.has_status = 1;
                m.status = (uint32_t)lp_errno_to_status(r->status);
        }
        m.message = (char *)r->message;
        if (r->message && strlen(r->message) > LP_FS_PATH_MAX) {
                /* The peer's decoder refuses longer strings: cut it (a
                 * message is for people; the status says what happened). */
                msg = strndup(r->message, LP_FS_PATH_MAX);
                if (!msg)
                        return -ENOMEM;
                m.message = msg;
        }
        if (r->has_attr) {
                attr_out(&a1, &r->attr);
                m.attr = &a1.a;
        }
        if (r->has_attr2) {
                attr_out(&a2, &r->attr2);
                m.attr2 = &a2.a;
        }
        SET(&m, session, r->session);
        SET(&m, version, r->version);
        SET(&m, value, r->value);
        SET(&m, ino, r->ino);
        SET(&m, orphan, r->orphan);
        SET(&m, eof, r->eof);
        SET(&m, site, r->site);
        SET(&m, port, r->port);
        if (r->data) {
                m.has_data = 1;
                m.data = bin(r->data, r->datalen);
        }
        if (r->has_statfs) {
                locus__fs_statfs__init(&st);
                SET(&st, blocks, r->statfs.blocks);
                SET(&st, bfree, r->statfs.bfree);
                SET(&st, bavail, r->statfs.bavail);
                SET(&st, files, r->statfs.files);
                SET(&st, ffree, r->statfs.ffree);
                SET(&st, bsize, r->statfs.bsize);
                SET(&st, namemax, r->statfs.namemax);
                m.statfs = &st;
        }
        if (r->nentries) {
                ents = calloc(r->nentries, sizeof(*ents));
                entp = calloc(r->nentries, sizeof(*entp));
                entattr = calloc(r->nentries, sizeof(*entattr));
                if (!ents || !entp || !entattr) {
                        ret = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < r->nentries; i++) {
                        const struct lp_fs_dirent *d = &r->entries[i];

                        if (d->namelen > LP_FS_NAME_MAX) {
                                ret = -EINVAL;
                                goto out;
                        }
                        locus__fs_dirent__init(&ents[i]);
                        SET(&ents[i], ino, d->ino);
                        SET(&ents[i], next, d->next);
                        SET(&ents[i], type, d->type);
                        ents[i].has_name = 1;
                        ents[i].name = bin(d->name, d->namelen);
                        if (d->has_attr) {
                                attr_out(&entattr[i], &d->attr);
                                ents[i].attr = &entattr[i].a;
                        }
                        entp[i] = &ents[i];
                }
                m.n_entries = r->nentries;
                m.entries = entp;
        }
        if (r->nmounts) {
                size_t nh = 0, h = 0;

                for (size_t i = 0; i < r->nmounts; i++) {
                        if (r->mounts[i].nholders > LP_FS_MAX_HOLDERS) {
                                ret = -EINVAL;
                                goto out;
                        }
                        nh += r->mounts[i].nholders;
                }
                mnts = calloc(r->nmounts, sizeof(*mnts));
                mntp = calloc(r->nmounts, sizeof(*mntp));
                hold = calloc(nh ? nh : 1, sizeof(*hold));
                holdp = calloc(nh ? nh : 1, sizeof(*holdp));
                if (!mnts || !mntp || !hold || !holdp) {
                        ret = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < r->nmounts; i++) {
                        const struct lp_fs_mount *x = &r->mounts[i];

                        locus__fs_mount__init(&mnts[i]);
                        SET(&mnts[i], fg, x->fg);
                        mnts[i].name = (char *)x->name;
                        SET(&mnts[i], parent_fg, x->parent_fg);
                        SET(&mnts[i], parent_ino, x->parent_ino);
                        mnts[i].path = (char *)x->path;
                        SET(&mnts[i], site, x->site);
                        mnts[i].host = (char *)x->host;
                        SET(&mnts[i], port, x->port);
                        if (x->sync_copies > 1)
                                SET(&mnts[i], sync_copies, x->sync_copies);
                        mnts[i].holders = &holdp[h];
                        mnts[i].n_holders = x->nholders;
                        for (size_t k = 0; k < x->nholders; k++, h++) {
                                locus__fs_holder__init(&hold[h]);
                                SET(&hold[h], site, x->holders[k].site);
                                hold[h].host = (char *)x->holders[k].host;
                                SET(&hold[h], port, x->holders[k].port);
                                if (x->holders[k].adding)
                                        SET(&hold[h], adding, true);
                                holdp[h] = &hold[h];
                        }
                        mntp[i] = &mnts[i];
                }
                m.n_mounts = r->nmounts;
                m.mounts = mntp;
        }
        m.host = (char *)r->host;
        m.text = (char *)r->text;
        ret = pack(&m.base, ret_buf, ret_len);
out:
        free(msg);
        free(ents);
        free(entp);
        free(entattr);
        free(mnts);
        free(mntp);
        free(hold);
        free(holdp);
        return ret;
}

/* ---- decoding ------------------------------------------------------------------ */

struct priv {
        ProtobufCMessage *msg;
        struct lp_fs_dirent *entries;
        struct lp_fs_mount *mounts;
        struct lp_fs_holder *holders;
};

static void time_in(struct lp_fs_time *v, const Locus__FsTime *t)
{
        if (!t)
                return;
        v->sec = t->sec;
        v->nsec = t->nsec;
}

static int attr_in(struct lp_fs_attr *v, const Locus__FsAttr *a)
{
        v->ino = a->ino;
        v->size = a->size;
        v->blocks = a->blocks;
        v->mode = a->mode;
        v->nlink = a->nlink;
        v->uid = a->uid;
        v->gid = a->gid;
        v->rdev = a->rdev;
        v->generation = a->generation;
        v->version = a->version;
        if (a->has_vv) {
                if (a->vv.len > LP_FS_VV_MAX)
                        return -EBADMSG;
                v->vv = a->vv.len ? a->vv.data : NULL;
                v->vvlen = a->vv.len;
        }
        time_in(&v->atime, a->atime);
        time_in(&v->mtime, a->mtime);
        time_in(&v->ctime, a->ctime);
        return (v->atime.nsec >= 1000000000u || v->mtime.nsec >= 1000000000u ||
                v->ctime.nsec >= 1000000000u) ? -EBADMSG : 0;
}

static int str_ok(const char *s)
{
        return !s || strlen(s) <= LP_FS_PATH_MAX;
}

int lp_fs_req_decode(const void *buf, size_t len, struct lp_fs_req *r)
{
        Locus__FsRequest *m;
        struct priv *p;
        int ret = -EBADMSG;

        memset(r, 0, sizeof(*r));
        m = locus__fs_request__unpack(NULL, len, buf);
        if (!m)
                return -EBADMSG;
        p = calloc(1, sizeof(*p));
        if (!p) {
                locus__fs_request__free_unpacked(m, NULL);
                return -ENOMEM;
        }
        p->msg = &m->base;
        if (m->has_name && m->name.len > LP_FS_NAME_MAX) {
                ret = -ENAMETOOLONG;
                goto fail;
        }
        if (m->has_newname && m->newname.len > LP_FS_NAME_MAX) {
                ret = -ENAMETOOLONG;
                goto fail;
        }
        if ((m->has_data && m->data.len > LP_FS_DATA_MAX) || (m->has_blob && m->blob.len > LP_FS_DATA_MAX) ||
            !str_ok(m->host) || !str_ok(m->path) || !str_ok(m->text))
                goto fail;
        if (m->cred) {
                if (m->cred->n_groups > LP_FS_MAX_GROUPS)
                        goto fail;
                r->cred.uid = m->cred->uid;
                r->cred.gid = m->cred->gid;
                r->cred.pid = m->cred->pid;
                r->cred.umask = m->cred->umask;
                r->cred.ngroups = (uint32_t)m->cred->n_groups;
                r->cred.groups = m->cred->groups;
        }
        r->op = m->op;
        r->fg = m->fg;
        r->ino = m->ino;
        r->parent = m->parent;
        r->newparent = m->newparent;
        r->session = m->session;
        r->offset = m->offset;
        r->length = m->length;
        r->size = m->size;
        r->mode = m->mode;
        r->uid = m->uid;
        r->gid = m->gid;
        r->flags = m->flags;
        r->valid = m->valid;
        r->whence = m->whence;
        r->rdev = m->rdev;
        time_in(&r->atime, m->atime);
        time_in(&r->mtime, m->mtime);
        time_in(&r->ctime, m->ctime);
        if (r->atime.nsec >= 1000000000u || r->mtime.nsec >= 1000000000u ||
            r->ctime.nsec >= 1000000000u)
                goto fail;
        if (m->has_name) {
                r->name = m->name.data ? m->name.data : (const uint8_t *)"";
                r->namelen = m->name.len;
        }
        if (m->has_newname) {
                r->newname = m->newname.data ? m->newname.data : (const uint8_t *)"";
                r->newnamelen = m->newname.len;
        }
        if (m->has_data) {
                r->data = m->data.data ? m->data.data : (const uint8_t *)"";
                r->datalen = m->data.len;
        }
        if (m->has_blob) {
                r->blob = m->blob.data ? m->blob.data : (const uint8_t *)"";
                r->bloblen = m->blob.len;
        }
        r->ino2 = m->ino2;
        r->session2 = m->session2;
        r->offset2 = m->offset2;
        r->site = m->site;
        r->host = m->host;
        r->port = m->port;
        r->path = m->path;
        r->text = m->text;
        r->lp__priv = p;
        return 0;
fail:
        locus__fs_request__free_unpacked(m, NULL);
        free(p);
        memset(r, 0, sizeof(*r));
        return ret;
}

int lp_fs_resp_decode(const void *buf, size_t len, struct lp_fs_resp *r)
{
        Locus__FsResponse *m;
        struct priv *p;
        int ret = -EBADMSG;

        memset(r, 0, sizeof(*r));
        m = locus__fs_response__unpack(NULL, len, buf);
        if (!m)
                return -EBADMSG;
        p = calloc(1, sizeof(*p));
        if (!p) {
                locus__fs_response__free_unpacked(m, NULL);
                return -ENOMEM;
        }
        p->msg = &m->base;
        if ((m->has_data && m->data.len > LP_FS_DATA_MAX) || m->n_entries > LP_FS_MAX_ENTRIES ||
            m->n_mounts > LP_FS_MAX_ENTRIES || !str_ok(m->message) || !str_ok(m->host))
                goto fail;
        r->status = m->has_status ? lp_status_to_errno((int)m->status) : 0;
        r->message = m->message;
        if (m->attr) {
                r->has_attr = true;
                if (attr_in(&r->attr, m->attr) < 0)
                        goto fail;
        }
        if (m->attr2) {
                r->has_attr2 = true;
                if (attr_in(&r->attr2, m->attr2) < 0)
                        goto fail;
        }
        r->session = m->session;
        r->version = m->version;
        r->value = m->value;
        r->ino = m->ino;
        r->orphan = m->orphan;
        r->eof = m->eof;
        r->site = m->site;
        r->host = m->host;
        r->port = m->port;
        r->text = m->text;
        if (m->has_data) {
                r->data = m->data.data ? m->data.data : (const uint8_t *)"";
                r->datalen = m->data.len;
        }
        if (m->statfs) {
                r->has_statfs = true;
                r->statfs.blocks = m->statfs->blocks;
                r->statfs.bfree = m->statfs->bfree;
                r->statfs.bavail = m->statfs->bavail;
                r->statfs.files = m->statfs->files;
                r->statfs.ffree = m->statfs->ffree;
                r->statfs.bsize = m->statfs->bsize;
                r->statfs.namemax = m->statfs->namemax;
        }
        if (m->n_entries) {
                p->entries = calloc(m->n_entries, sizeof(*p->entries));
                if (!p->entries) {
                        ret = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < m->n_entries; i++) {
                        const Locus__FsDirent *d = m->entries[i];
                        struct lp_fs_dirent *e = &p->entries[i];

                        if (d->name.len > LP_FS_NAME_MAX)
                                goto fail;
                        e->ino = d->ino;
                        e->next = d->next;
                        e->type = d->type;
                        e->name = d->name.data ? d->name.data : (const uint8_t *)"";
                        e->namelen = d->name.len;
                        if (d->attr) {
                                e->has_attr = true;
                                if (attr_in(&e->attr, d->attr) < 0)
                                        goto fail;
                        }
                }
                r->entries = p->entries;
                r->nentries = m->n_entries;
        }
        if (m->n_mounts) {
                size_t nh = 0, h = 0;

                for (size_t i = 0; i < m->n_mounts; i++) {
                        if (m->mounts[i]->n_holders > LP_FS_MAX_HOLDERS)
                                goto fail;
                        nh += m->mounts[i]->n_holders;
                }
                p->mounts = calloc(m->n_mounts, sizeof(*p->mounts));
                p->holders = calloc(nh ? nh : 1, sizeof(*p->holders));
                if (!p->mounts || !p->holders) {
                        ret = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < m->n_mounts; i++) {
                        const Locus__FsMount *x = m->mounts[i];
                        struct lp_fs_mount *y = &p->mounts[i];

                        if (!str_ok(x->name) || !str_ok(x->path) || !str_ok(x->host))
                                goto fail;
                        y->fg = x->fg;
                        y->name = x->name;
                        y->parent_fg = x->parent_fg;
                        y->parent_ino = x->parent_ino;
                        y->path = x->path;
                        y->site = x->site;
                        y->host = x->host;
                        y->port = x->port;
                        y->sync_copies = x->sync_copies > 1 ? x->sync_copies : 1;
                        y->holders = &p->holders[h];
                        y->nholders = x->n_holders;
                        for (size_t k = 0; k < x->n_holders; k++, h++) {
                                if (!str_ok(x->holders[k]->host))
                                        goto fail;
                                p->holders[h].site = x->holders[k]->site;
                                p->holders[h].host = x->holders[k]->host;
                                p->holders[h].port = x->holders[k]->port;
                                p->holders[h].adding = x->holders[k]->has_adding && x->holders[k]->adding;
                        }
                }
                r->mounts = p->mounts;
                r->nmounts = m->n_mounts;
        }
        r->lp__priv = p;
        return 0;
fail:
        free(p->entries);
        free(p->mounts);
        free(p->holders);
        locus__fs_response__free_unpacked(m, NULL);
        free(p);
        memset(r, 0, sizeof(*r));
        return ret;
}

static void priv_free(struct priv *p)
{
        if (!p)
                return;
        protobuf_c_message_free_unpacked(p->msg, NULL);
        free(p->entries);
        free(p->mounts);
        free(p->holders);
        free(p);
}

void lp_fs_req_release(struct lp_fs_req *r)
{
        if (!r)
                return;
        priv_free(r->lp__priv);
        memset(r, 0, sizeof(*r));
}

void lp_fs_resp_release(struct lp_fs_resp *r)
{
        if (!r)
                return;
        priv_free(r->lp__priv);
        memset(r, 0, sizeof(*r));
}

const char *lp_fs_op_name(uint32_t op)
{
        switch (op) {
        case LP_FS_NOP: return "nop";
        case LP_FS_LOOKUP: return "lookup";
        case LP_FS_GETATTR: return "getattr";
        case LP_FS_SETATTR: return "setattr";
        case LP_FS_READDIR: return "readdir";
        case LP_FS_MKDIR: return "mkdir";
        case LP_FS_MKNOD: return "mknod";
        case LP_FS_CREATE: return "create";
        case LP_FS_UNLINK: return "unlink";
        case LP_FS_RMDIR: return "rmdir";
        case LP_FS_RENAME: return "rename";
        case LP_FS_LINK: return "link";
        case LP_FS_SYMLINK: return "symlink";
        case LP_FS_READLINK: return "readlink";
        case LP_FS_STATFS: return "statfs";
        case LP_FS_GETXATTR: return "getxattr";
        case LP_FS_SETXATTR: return "setxattr";
        case LP_FS_LISTXATTR: return "listxattr";
        case LP_FS_REMOVEXATTR: return "removexattr";
        case LP_FS_OPEN: return "open";
        case LP_FS_READ: return "read";
        case LP_FS_WRITE: return "write";
        case LP_FS_COMMIT: return "commit";
        case LP_FS_ABORT: return "abort";
        case LP_FS_FALLOCATE: return "fallocate";
        case LP_FS_LSEEK: return "lseek";
        case LP_FS_COPY_RANGE: return "copy_range";
        case LP_FS_SYNC: return "sync";
        case LP_FS_FORGET_ORPHAN: return "forget_orphan";
        case LP_FS_SS_STATUS: return "ss_status";
        case LP_FS_SS_CHECKPOINT: return "ss_checkpoint";
        case LP_FS_SS_CLEAN: return "ss_clean";
        case LP_FS_SS_FG_CREATE: return "ss_fg_create";
        case LP_FS_SS_ORPHANS: return "ss_orphans";
        case LP_FS_SS_CHANGES: return "ss_changes";
        case LP_FS_SS_FETCH: return "ss_fetch";
        case LP_FS_SS_INSTALL: return "ss_install";
        case LP_FS_SS_FG_DROP: return "ss_fg_drop";
        case LP_FS_CSS_REGISTER: return "css_register";
        case LP_FS_CSS_MOUNTTABLE: return "css_mounttable";
        case LP_FS_CSS_OPEN: return "css_open";
        case LP_FS_CSS_CLOSE: return "css_close";
        case LP_FS_CSS_STATUS: return "css_status";
        case LP_FS_CSS_FG_CREATE: return "css_fg_create";
        case LP_FS_CSS_OPENED: return "css_opened";
        case LP_FS_CSS_ORPHAN: return "css_orphan";
        case LP_FS_CSS_FG_HOLDERS: return "css_fg_holders";
        case LP_FS_CSS_FG_SET: return "css_fg_set";
        case LP_FS_CSS_NOTE_MTAB: return "css_note_mtab";
        case LP_FS_CSS_HEARTBEAT: return "css_heartbeat";
        case LP_FS_CSS_PROBE: return "css_probe";
        case LP_FS_CSS_EPOCH: return "css_epoch";
        case LP_FS_CSS_MEMBERS: return "css_members";
        case LP_FS_SS_NOTE_COMMIT: return "ss_note_commit";
        case LP_FS_CSS_WATCH: return "css_watch";
        case LP_FS_CSS_NOTE_INVAL: return "css_note_inval";
        default: return "unknown";
        }
}

int lp_fs_call(struct lp_client *c, const struct lp_fs_req *q, int timeout_ms, struct lp_fs_resp *ret,
               char **ret_msg)
{
        uint8_t *buf = NULL;
        void *ans = NULL;
        size_t len, alen;
        uint16_t type;
        int r;

        if (ret_msg)
                *ret_msg = NULL;
        memset(ret, 0, sizeof(*ret));
        r = lp_fs_req_encode(q, &buf, &len);
        if (r < 0)
                return r;
        r = lp_client_call(c, LP_MSG_FS_REQ, buf, len, timeout_ms, &type, &ans, &alen);
        free(buf);
        if (r < 0)
                return r;
        if (type == LP_MSG_STATUS) {
                int code = 0;

                r = lp_status_unpack(ans, alen, &code, ret_msg);
                free(ans);
                if (r < 0)
                        return r;
                r = lp_status_to_errno(code);
                return r ? r : -EPROTO;
        }
        if (type != LP_MSG_FS_RESP) {
                free(ans);
                return -EPROTO;
        }
        r = lp_fs_resp_decode(ans, alen, ret);
        free(ans);
        return r;
}
