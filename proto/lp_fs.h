/*
 * lp_fs.h -- the LocusFS filesystem protocol: one request message and one
 * response message, as plain C structs, with their wire encoding.
 *
 * Every request travels as a frame of type LP_MSG_FS_REQ, every answer as
 * LP_MSG_FS_RESP with LP_F_REPLY and the request's reqid.  The operation
 * (enum lp_fs_op) says which fields of the request mean something; every
 * other field is left zero/NULL and is not sent.  docs/protocol.md lists,
 * for every operation, the fields it reads, what it answers and the errors
 * it may return.  Only proto/ knows the protobuf-c schema (locus_fs.proto);
 * everyone else uses these structs.
 *
 * Errors on the wire are status codes (lp_status.h), never a host errno; in
 * these structs `status` holds the negative errno that lp_status_to_errno()
 * gives (0 for success), so callers think in errno throughout.
 *
 * Ownership: lp_fs_*_encode() return a malloc'ed buffer the caller frees.
 * lp_fs_*_decode() fill a struct whose pointers (names, data, arrays) point
 * into memory owned by the decoded struct: valid until lp_fs_*_release().
 * A struct the caller fills for encoding owns nothing: its pointers are the
 * caller's.
 *
 * Limits (checked by decode, so a peer cannot make us hold more):
 * LP_FS_NAME_MAX bytes per name, LP_FS_DATA_MAX bytes of data,
 * LP_FS_MAX_ENTRIES directory entries or mount entries per message,
 * LP_FS_MAX_GROUPS supplementary groups, LP_FS_VV_MAX bytes of a version
 * vector.  A message over a limit decodes to
 * -EBADMSG (or -ENAMETOOLONG for a name).
 *
 * Threads: no global state.
 */
#ifndef LP_FS_H
#define LP_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frame types of the filesystem protocol (lp_frame.h: 64 and up). */
#define LP_MSG_FS_REQ 64u
#define LP_MSG_FS_RESP 65u

#define LP_FS_NAME_MAX 255u
#define LP_FS_PATH_MAX 4096u
#define LP_FS_DATA_MAX (4u << 20)       /* read/write/xattr payload */
#define LP_FS_XATTR_VALUE_MAX (64u << 10)
#define LP_FS_MAX_ENTRIES 4096u
/* Holders listed per mount entry. */
#define LP_FS_MAX_HOLDERS 256u
#define LP_FS_MAX_GROUPS 256u
#define LP_FS_VV_MAX 512u               /* bytes of an encoded version vector */

/* The root directory of every file group has this inode number. */
#define LP_FS_ROOT_INO 1u

enum lp_fs_op {
        LP_FS_NOP = 0,
        /* using site -> storage site: names and attributes */
        LP_FS_LOOKUP = 1,
        LP_FS_GETATTR = 2,
        LP_FS_SETATTR = 3,
        LP_FS_READDIR = 4,
        LP_FS_MKDIR = 5,
        LP_FS_MKNOD = 6,
        LP_FS_CREATE = 7,
        LP_FS_UNLINK = 8,
        LP_FS_RMDIR = 9,
        LP_FS_RENAME = 10,
        LP_FS_LINK = 11,
        LP_FS_SYMLINK = 12,
        LP_FS_READLINK = 13,
        LP_FS_STATFS = 14,
        LP_FS_GETXATTR = 15,
        LP_FS_SETXATTR = 16,
        LP_FS_LISTXATTR = 17,
        LP_FS_REMOVEXATTR = 18,
        /* using site -> storage site: data and write sessions */
        LP_FS_OPEN = 20,
        LP_FS_READ = 21,
        LP_FS_WRITE = 22,
        LP_FS_COMMIT = 23,
        LP_FS_ABORT = 24,
        LP_FS_FALLOCATE = 25,
        LP_FS_LSEEK = 26,
        LP_FS_COPY_RANGE = 27,
        LP_FS_SYNC = 28,
        LP_FS_FORGET_ORPHAN = 29,
        /* storage site administration (locusctl, cssd) */
        LP_FS_SS_STATUS = 40,
        LP_FS_SS_CHECKPOINT = 41,
        LP_FS_SS_CLEAN = 42,
        LP_FS_SS_FG_CREATE = 43,
        LP_FS_SS_ORPHANS = 44,
        /* storage site -> storage site: replication (docs/replication.md) */
        LP_FS_SS_CHANGES = 45,
        LP_FS_SS_FETCH = 46,
        LP_FS_SS_INSTALL = 47,
        /* storage site administration (locusctl): delete a container */
        LP_FS_SS_FG_DROP = 48,
        /* -> current synchronization site */
        LP_FS_CSS_REGISTER = 60,
        LP_FS_CSS_MOUNTTABLE = 61,
        LP_FS_CSS_OPEN = 62,
        LP_FS_CSS_CLOSE = 63,
        LP_FS_CSS_STATUS = 64,
        LP_FS_CSS_FG_CREATE = 65,
        LP_FS_CSS_OPENED = 66,
        LP_FS_CSS_ORPHAN = 67,
        LP_FS_CSS_FG_HOLDERS = 68,
        LP_FS_CSS_FG_SET = 69,          /* name: the group; length: its new sync_copies */
        /* CSS -> a registered storage site, pushed (reqid 0, never answered):
         * the mount table, or who serves a group, changed; length: a count */
        LP_FS_CSS_NOTE_MTAB = 80,
        /* coherence (docs/coherence.md): commit notes, blob = a batch
         * (proto/lp_note.h); the notes are never answered (reqid 0) */
        LP_FS_SS_NOTE_COMMIT = 81,      /* storage site -> CSS, on its registration link */
        LP_FS_CSS_WATCH = 82,           /* mount -> CSS: send me the notes (answered) */
        LP_FS_CSS_NOTE_INVAL = 83,      /* CSS -> a watching mount, pushed */
        /* cssd <-> cssd: membership (docs/cluster.md, "Membership") */
        LP_FS_CSS_HEARTBEAT = 90,       /* site, host, port: the sender's cssd; text: its view;
                                         * answer text: ours */
        LP_FS_CSS_PROBE = 91,           /* site: do you reach it?  answer value: 1 yes, 0 no */
        LP_FS_CSS_EPOCH = 92,           /* site: the proposer; text: {epoch, members}; answer 0
                                         * (accepted) or an error; value: the answerer's max epoch */
        LP_FS_CSS_MEMBERS = 93,         /* (locusctl) answer text: this cssd's view, JSON */
};

/* setattr `valid` bits (the same meaning as FUSE_SET_ATTR_*). */
#define LP_FS_SET_MODE (1u << 0)
#define LP_FS_SET_UID (1u << 1)
#define LP_FS_SET_GID (1u << 2)
#define LP_FS_SET_SIZE (1u << 3)
#define LP_FS_SET_ATIME (1u << 4)
#define LP_FS_SET_MTIME (1u << 5)
#define LP_FS_SET_ATIME_NOW (1u << 7)
#define LP_FS_SET_MTIME_NOW (1u << 8)
#define LP_FS_SET_CTIME (1u << 10)      /* to req.ctime if given, else now */

/* rename flags (as renameat2) */
#define LP_FS_RENAME_NOREPLACE (1u << 0)
#define LP_FS_RENAME_EXCHANGE (1u << 1)
#define LP_FS_RENAME_WHITEOUT (1u << 2)

/* setxattr flags (as setxattr(2)) */
#define LP_FS_XATTR_CREATE 1u
#define LP_FS_XATTR_REPLACE 2u

/* commit flags */
#define LP_FS_COMMIT_SYNC (1u << 0)     /* durable before the answer (fsync) */
#define LP_FS_COMMIT_END (1u << 1)      /* the session ends (last close) */
#define LP_FS_COMMIT_DATASYNC (1u << 2) /* fdatasync: same as SYNC for us */

/* In req.valid of WRITE, FALLOCATE, COPY_RANGE (the target), SETATTR and
 * OPEN/CREATE with O_TRUNC (not a SET bit): the change stamps no mtime or
 * ctime of the storage site's clock; the client's kernel keeps them and
 * sends them with SETATTR (FUSE writeback cache). */
#define LP_FS_CLIENT_TIMES (1u << 15)

/* SS_CHANGES flags */
#define LP_FS_CHANGES_COUNT (1u << 0)   /* only count them: value = changes after since */

/* SS_FETCH flags */
#define LP_FS_FETCH_VV (1u << 0)        /* the vector only (no xattrs, entries, data) */
#define LP_FS_FETCH_COMPARE (1u << 1)   /* data: a change list; answer: which to pull */
#define LP_FS_FETCH_PIECES (1u << 2)    /* a directory too big for one answer comes in pieces
                                         * (lp_rs.h): offset = the cookie to go on after */
/* SS_FETCH answer (not COMPARE): value has this bit when the site keeps no
 * data of the regular file (copies policies, storage/ss_place.h [L3]):
 * no extents, no data; it is not a current copy to read. */
#define LP_FS_FETCH_NODATA (1u << 0)

/* SS_INSTALL flags (any combination, in this order) */
#define LP_FS_INSTALL_BEGIN (1u << 0)   /* open an install session on ino */
#define LP_FS_INSTALL_TRUNC (1u << 1)   /* ... that starts with no pages */
#define LP_FS_INSTALL_DATA (1u << 2)    /* stage data at offset (page-aligned) */
#define LP_FS_INSTALL_ENTRIES (1u << 6) /* stage the entries of blob, a piece of a directory
                                         * (lp_rs.h), in the session (not with COMMIT:
                                         * both read blob) */
#define LP_FS_INSTALL_COMMIT (1u << 3)  /* install blob (a file state) with the staged pages */
#define LP_FS_INSTALL_ABORT (1u << 4)   /* drop the session */
#define LP_FS_INSTALL_REPAIR (1u << 5)  /* with COMMIT: rewrite the pages of a copy whose
                                         * vector EQUALS the state's (ss_repl.c [R4]) */
#define LP_FS_INSTALL_MATERIALIZE (1u << 7)     /* with COMMIT: as REPAIR, at a site that keeps
                                                 * no data of the file, which then does
                                                 * (ss_repl.c [R5], storage/ss_place.h [L4]) */

/* CSS_FG_HOLDERS `flags`: where `site` is to stand with file group `fg`
 * (docs/replication.md, "Adding and removing copies"); the answer's
 * `value` is 1 when that changed something, 0 when it stood there already. */
#define LP_FS_HOLDER_ADDING 1u          /* its copy is being made: it pulls, nobody reads it */
#define LP_FS_HOLDER_FULL 2u            /* its copy is complete: a holder */
#define LP_FS_HOLDER_REMOVE 3u          /* no longer a holder (never the last one) */

/* open flags: the O_* flags of open(2) travel as they are. */

struct lp_fs_time {
        int64_t sec;
        uint32_t nsec;
};

struct lp_fs_attr {
        uint64_t ino;
        uint64_t size;
        uint64_t blocks;                /* 512-byte blocks holding data */
        uint32_t mode;                  /* type and permission bits */
        uint32_t nlink;
        uint32_t uid;
        uint32_t gid;
        uint64_t rdev;
        struct lp_fs_time atime, mtime, ctime;
        uint64_t generation;
        uint64_t version;               /* the sum of vv's counters: grows with
                                         * every update of the file */
        /* The copy's version vector, encoded (dsm_vv_encode; at most
         * LP_FS_VV_MAX bytes, vvlen 0: not sent).  Not owned: decoded, it
         * points into the answer (valid until lp_fs_resp_release; a copy
         * of the struct must not keep it longer); to encode, the caller's
         * memory, valid until the message is encoded. */
        const uint8_t *vv;
        size_t vvlen;
};

/* The caller, as the kernel reported it. */
struct lp_fs_cred {
        uint32_t uid;
        uint32_t gid;
        uint32_t pid;
        uint32_t umask;
        uint32_t ngroups;
        const uint32_t *groups;
};

struct lp_fs_dirent {
        uint64_t ino;
        uint64_t next;                  /* cookie of the entry after this one */
        uint32_t type;                  /* DT_* */
        const uint8_t *name;
        size_t namelen;
        bool has_attr;                  /* readdirplus */
        struct lp_fs_attr attr;
};

/* A site holding a container of a file group (port 0: not registered). */
struct lp_fs_holder {
        uint64_t site;
        const char *host;
        uint32_t port;
        bool adding;                    /* being added: pulls from the holders, never read */
};

struct lp_fs_mount {
        uint32_t fg;                    /* the file group mounted */
        const char *name;
        uint32_t parent_fg;             /* where: directory parent_ino of parent_fg */
        uint64_t parent_ino;            /* 0 for the root file group */
        const char *path;               /* its path from / */
        uint64_t site;                  /* its primary storage site (docs/replication.md) */
        const char *host;
        uint32_t port;
        const struct lp_fs_holder *holders;     /* every holder, site order; at most LP_FS_MAX_HOLDERS */
        size_t nholders;
        uint32_t sync_copies;           /* fsync durable on this many copies; decoded >= 1 */
};

struct lp_fs_statfs {
        uint64_t blocks, bfree, bavail; /* in units of bsize */
        uint64_t files, ffree;
        uint32_t bsize;
        uint32_t namemax;
};

struct lp_fs_req {
        uint32_t op;                    /* enum lp_fs_op */
        struct lp_fs_cred cred;
        uint32_t fg;
        uint64_t ino;
        uint64_t parent;
        uint64_t newparent;
        uint64_t session;
        uint64_t offset;
        uint64_t length;
        uint64_t size;
        uint32_t mode;
        uint32_t uid;
        uint32_t gid;
        uint32_t flags;
        uint32_t valid;
        uint32_t whence;
        uint64_t rdev;
        struct lp_fs_time atime, mtime, ctime;
        const uint8_t *name;
        size_t namelen;
        const uint8_t *newname;
        size_t newnamelen;
        const uint8_t *data;            /* write data, symlink target, xattr value */
        size_t datalen;
        /* copy_file_range destination; also the second file of an op */
        uint64_t ino2;
        uint64_t session2;
        uint64_t offset2;
        /* site registration / administration */
        uint64_t site;
        const char *host;
        uint32_t port;
        const char *path;
        const char *text;
        const uint8_t *blob;            /* SS_INSTALL: a file state (ss_rs.h) */
        size_t bloblen;
        void *lp__priv;                 /* decode's storage; leave NULL */
};

struct lp_fs_resp {
        int status;                     /* 0 or -errno */
        const char *message;            /* optional human-readable detail */
        bool has_attr;
        struct lp_fs_attr attr;
        bool has_attr2;                 /* e.g. the new parent after rename */
        struct lp_fs_attr attr2;
        uint64_t session;
        uint64_t version;
        uint64_t value;                 /* bytes written / copied, lseek offset, ... */
        uint64_t ino;                   /* e.g. an orphaned inode after unlink */
        bool orphan;                    /* ino has no name left */
        const uint8_t *data;
        size_t datalen;
        const struct lp_fs_dirent *entries;
        size_t nentries;
        bool eof;
        bool has_statfs;
        struct lp_fs_statfs statfs;
        const struct lp_fs_mount *mounts;
        size_t nmounts;
        uint64_t site;
        const char *host;
        uint32_t port;
        const char *text;               /* status reports (JSON) */
        void *lp__priv;                 /* decode's storage; leave NULL */
};

/* Encode into a new malloc'ed buffer.  Returns 0, -ENOMEM, -EINVAL (a
 * field over its limit). */
int lp_fs_req_encode(const struct lp_fs_req *r, uint8_t **ret_buf, size_t *ret_len);
int lp_fs_resp_encode(const struct lp_fs_resp *r, uint8_t **ret_buf, size_t *ret_len);

/* Decode; on success the struct must later be released.  Returns 0,
 * -EBADMSG (does not parse, or over a limit), -ENAMETOOLONG, -ENOMEM.  On
 * failure nothing needs releasing. */
int lp_fs_req_decode(const void *buf, size_t len, struct lp_fs_req *ret);
int lp_fs_resp_decode(const void *buf, size_t len, struct lp_fs_resp *ret);
void lp_fs_req_release(struct lp_fs_req *r);
void lp_fs_resp_release(struct lp_fs_resp *r);

/* A short name for an operation, for logs ("lookup"); never NULL. */
const char *lp_fs_op_name(uint32_t op);

struct lp_client;
/*
 * One request and its answer over a blocking client (lp_conn.h), within
 * timeout_ms.  Returns 0 with *ret decoded (release it with
 * lp_fs_resp_release; its status may be an error), or a transport error:
 * an LP_MSG_STATUS reply's code as -errno, -EPROTO for another frame
 * type, lp_client_call's and the codec's errors.  *ret_msg (may be NULL)
 * gets a malloc'ed message of an LP_MSG_STATUS reply, or NULL.
 */
int lp_fs_call(struct lp_client *c, const struct lp_fs_req *q, int timeout_ms, struct lp_fs_resp *ret,
               char **ret_msg);

#ifdef __cplusplus
}
#endif
#endif
