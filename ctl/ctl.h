/*
 * ctl.h -- locusctl's internals: the state directory of a dev cluster,
 * starting and stopping its programs, and talking to its daemons.
 *
 * Modules:
 *   ctl_state.c  where things are (state directory, run/ and log/ files,
 *                the programs' binaries) and calls to the daemons;
 *   ctl_proc.c   processes: start a program in the background with a ready
 *                pipe, tell whether a pid is still that program, stop one,
 *                the mount table of the kernel, unmounting;
 *   ctl_start.c  a site's programs: the state layout, starting the
 *                daemons and the mount, waiting for registration,
 *                stopping, unmounting, whose a mount is;
 *   ctl_dev.c    dev up, dev down (one site or several), fsck --rebuild;
 *   ctl_net.c    dev partition, dev heal (nftables cuts between sites);
 *   ctl_info.c   status, fg create, fg list;
 *   ctl_sites.c  sites (storage sites and membership views);
 *   ctl_site.c   site init, site join (a site of a real cluster, its
 *                site.conf), and calls to a daemon by address.
 *
 * Conventions: int functions return >= 0 or a negative errno; messages for
 * the user go to stderr as "locusctl: ..." and are printed once, by the
 * function that decides the outcome (helpers fill an err buffer instead).
 * Every descriptor is O_CLOEXEC except the ready pipe handed to a child.
 *
 * Threads: one (locusctl is a short-lived command).
 */
#ifndef CTL_H
#define CTL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "lp_fs.h"
#include "lp_key.h"

#define CTL_SITE 1u                     /* the site locusctl claims in handshakes */
#define CTL_MAX_SITES 32u               /* sites of one dev cluster */
#define CTL_ADDR_MAX 64
#define CTL_DEFAULT_TIMEOUT_S 30
#define CTL_STOP_TIMEOUT_MS 10000       /* SIGTERM, then this long, then SIGKILL */
#define CTL_CALL_MS 10000               /* a request to a daemon */
#define CTL_FG_CREATE_MS 60000          /* CSS_FG_CREATE (several storage calls) */
#define CTL_LOG_TAIL 20                 /* lines of a log shown after a failure */

/* The programs of a site. */
enum ctl_prog_id {
        CTL_CSSD = 0,
        CTL_STORAGED = 1,
        CTL_MOUNT = 2,
        CTL_NPROGS
};

struct ctl_prog {
        const char *bin;                /* "locus-cssd" */
        const char *subdir;             /* its folder in the build tree: "css" */
        const char *tag;                /* run/<tag>.pid, run/<tag>.port, log/<tag>.log */
};

extern const struct ctl_prog ctl_progs[CTL_NPROGS];

/*
 * A state directory, seen from one of its sites.  A one-site cluster
 * keeps its run/ and log/ files in STATE/run and STATE/log; a cluster of
 * N > 1 sites has them per site, in STATE/site<k>/run and
 * STATE/site<k>/log, and remembers its sites' addresses in STATE/sites
 * (one a line, site 1 first).  The CSS of every file group is site 1's
 * locus-cssd (docs/cluster.md, "Phase 1: one CSS").
 */
struct ctl_state {
        char dir[PATH_MAX];             /* absolute */
        bool exists;
        unsigned nsites;                /* >= 1 */
        unsigned site;                  /* the site this view is of, 1..nsites */
        /* CTL_CSSD names this site's own locus-cssd (its membership
         * service, docs/cluster.md "Membership"), not the CSS (site 1's) */
        bool own_cssd;
        char addrs[CTL_MAX_SITES][CTL_ADDR_MAX];        /* site k's address: addrs[k - 1] */
        /* --config FILE: a site of a real cluster (site.conf), not a dev
         * cluster: requests to the CSS go to its [css] address with its key */
        bool remote;
        char css_host[CTL_ADDR_MAX];
        uint16_t css_port;
        char key[PATH_MAX];
};

/* Options of the commands; which ones a command takes is its mask. */
enum {
        CTL_OPT_STATE = 1 << 0,         /* --state PATH */
        CTL_OPT_JSON = 1 << 1,          /* --json */
        CTL_OPT_SITES = 1 << 2,         /* --sites N */
        CTL_OPT_TIMEOUT = 1 << 3,       /* --timeout SEC */
        CTL_OPT_MOUNT = 1 << 4,         /* --mount PATH */
        CTL_OPT_REBUILD = 1 << 5,       /* --rebuild */
        CTL_OPT_FORCE = 1 << 6,         /* --force */
        CTL_OPT_ADDRS = 1 << 7,         /* --addrs A,B,... */
        CTL_OPT_COPIES = 1 << 8,        /* --copies N */
        CTL_OPT_CONFIG = 1 << 9,        /* --config FILE */
        CTL_OPT_SITE = 1 << 10,         /* site init/join: --dir, --addr, --id, --key, --css-port, --storage-port */
        CTL_OPT_TREE = 1 << 11,         /* --tree */
        CTL_OPT_SYNC_COPIES = 1 << 12,  /* --sync-copies N */
        CTL_OPT_RECURSIVE = 1 << 13,    /* -r, --recursive */
        CTL_OPT_VIEW = 1 << 14,         /* --site K: ask site K's own cssd (sites) */
};

#define CTL_MAX_POS 4

struct ctl_opts {
        const char *state;
        bool json;
        const char *sites;              /* --sites: a count (dev up) or a list (fg create); NULL: not given */
        const char *addrs;
        int copies;                     /* 0: not given */
        int sync_copies;                /* 0: not given */
        const char *config;
        const char *dir, *addr, *key;   /* site init / join */
        int id, css_port, storage_port; /* 0: not given */
        int view_site;                  /* --site K; 0: not given */
        bool tree;
        bool recursive;
        int timeout_s;
        const char *mount;
        bool rebuild;
        bool force;
        int npos;                       /* positional arguments after the command word */
        char *pos[CTL_MAX_POS];
};

/* ---- ctl_state.c ---- */

/* Parse argv (argv[0] = the command word) allowing the options in mask and
 * up to maxpos positional arguments; prints what is wrong.  0 or -EINVAL. */
int ctl_parse_opts(int argc, char **argv, unsigned mask, int maxpos, struct ctl_opts *ret);

/* --state PATH, else $LOCUS_STATE_DIR, else the default (docs/cluster.md).
 * Does not create anything.  -ENAMETOOLONG, -ENOENT (no HOME for a user). */
int ctl_state_resolve(const char *opt, struct ctl_state *ret);
/* --config FILE: st becomes a view of that site's cluster (remote, exists). */
int ctl_state_from_config(const char *file, struct ctl_state *st);
/* The same state directory seen from site k (1..st->nsites). */
void ctl_state_at(const struct ctl_state *st, unsigned k, struct ctl_state *ret);
/* The address of site k of st ("127.0.0.1" for a one-site cluster). */
const char *ctl_site_addr(const struct ctl_state *st, unsigned k);
/* ctl_state_at, with CTL_CSSD naming site k's own locus-cssd. */
void ctl_state_cssd_at(const struct ctl_state *st, unsigned k, struct ctl_state *ret);
/* Read STATE/sites into st (nsites, addrs); none: one site at 127.0.0.1.
 * -EBADMSG when the file is not a list of addresses. */
int ctl_read_sites(struct ctl_state *st);
/* The cluster a command's options name: --config FILE (a site.conf),
 * else --state as ctl_state_resolve.  -EINVAL: a site.conf that does not
 * read (ctl_state_from_config printed why). */
int ctl_state_of_opts(const struct ctl_opts *o, struct ctl_state *st);
/* STATE/rel into buf; -ENAMETOOLONG. */
int ctl_path(const struct ctl_state *st, const char *rel, char *buf, size_t cap);
/* STATE/run/<tag>.<ext> and STATE/log/<tag>.log (STATE/site<k>/run/...
 * of site st->site in a cluster of several sites) */
int ctl_run_file(const struct ctl_state *st, enum ctl_prog_id p, const char *ext, char *buf, size_t cap);
int ctl_log_file(const struct ctl_state *st, enum ctl_prog_id p, char *buf, size_t cap);
/* Read run/<tag>.pid / .port: 0, -ENOENT, -EBADMSG. */
int ctl_read_pid(const struct ctl_state *st, enum ctl_prog_id p, pid_t *ret);
int ctl_read_port(const struct ctl_state *st, enum ctl_prog_id p, uint16_t *ret);
/* Find a program: $LOCUS_BIN_DIR, the build tree next to locusctl, locusctl's
 * own directory, ../sbin beside it (an installed PREFIX/bin/locusctl), $PATH.
 * -ENOENT (where it looked is in where). */
int ctl_find_bin(enum ctl_prog_id p, char *buf, size_t cap, char *where, size_t wcap);
/*
 * The source (FUSE fsname) of the mount dev up makes: "locusfs:STATE", so
 * that mount(8), findmnt and /proc/mounts tell two clusters apart and
 * dev down can tell whose a mount is.  -ENAMETOOLONG.
 */
#define CTL_SOURCE_PREFIX "locusfs:"
int ctl_mount_source(const struct ctl_state *st, char *buf, size_t cap);
/*
 * A command for the user to copy: "locusctl dev VERB DIR --state STATE",
 * DIR and STATE quoted for the shell when they need it.  dir NULL: where
 * the cluster was last mounted (run/mountpoint), else the word DIR.
 * Returns buf (truncated if cap is too small).
 */
const char *ctl_hint(const struct ctl_state *st, const char *verb, const char *dir, char *buf, size_t cap);

/*
 * One request to a daemon of the state dir (CTL_CSSD: site 1's, the CSS of
 * the cluster; CTL_STORAGED: site st->site's; at its address and the port
 * in its run/<tag>.port).  0 with *resp (release it) even when
 * resp->status < 0; a transport failure is < 0 with err saying what.
 */
int ctl_call(const struct ctl_state *st, enum ctl_prog_id p, const struct lp_fs_req *rq, int timeout_ms,
             struct lp_fs_resp *resp, char *err, size_t cap);

/* ---- ctl_proc.c ---- */

/* Is pid alive (not a zombie) and running the program named comm? */
bool ctl_alive(pid_t pid, const char *comm);
/*
 * The top mount on dir (absolute), from mountinfo only: *ret_any whether
 * dir is a mount point, *ret_locus whether the top mount is fuse.locusfs,
 * its source (unescaped) into src unless src is NULL ("" when none).
 */
void ctl_mount_info(const char *dir, bool *ret_any, bool *ret_locus, char *src, size_t cap);
/* Is dir (absolute) the mount point of a LocusFS mount (fuse.locusfs)? */
bool ctl_is_mounted(const char *dir);
/* Is dir (absolute) a mount point of anything? */
bool ctl_is_mountpoint(const char *dir);
/* An absolute, symlink-free form of path that does not look at path itself
 * when it is a mount point (a dead or stuck FUSE mount would not answer). */
int ctl_abspath(const char *path, char *buf, size_t cap);
/* The parent resolved with realpath(), the last component as it is. */
int ctl_abspath_lexical(const char *path, char *buf, size_t cap);

/*
 * Start bin with argv (argv[0] included, NULL-terminated) in the
 * background: a new session, stdin /dev/null, stdout and stderr appended to
 * log, the ready pipe as descriptor 3 (argv must say --ready-fd 3).  Wait
 * at most timeout_ms for its READY line; info gets what follows READY.
 * Returns 0 with *ret_pid, or -ETIMEDOUT (it was killed), -EPIPE (it
 * failed; *ret_how says how: "exited with status 1", ...), spawn errors.
 */
int ctl_spawn(const char *bin, char *const argv[], const char *log, int timeout_ms, pid_t *ret_pid,
              char *info, size_t icap, char *how, size_t hcap);

/*
 * Stop pid if it still runs comm: SIGTERM, wait up to timeout_ms, then
 * SIGKILL (and *ret_killed = true) and wait again.  Reaps it if it is our
 * child.  0 once it is gone (or was), -ETIMEDOUT if even SIGKILL did not
 * end it within 5 s.
 */
int ctl_stop(pid_t pid, const char *comm, int timeout_ms, bool *ret_killed);
/* Wait (no signal) up to timeout_ms for pid to end: 0 or -ETIMEDOUT. */
int ctl_wait_gone(pid_t pid, int timeout_ms);

/*
 * Unmount dir: fusermount3 -u (or umount2 when fusermount3 is missing);
 * if that fails and lazy_ok, the same lazily (-z / MNT_DETACH), and
 * *ret_lazy = true.  0 or the last error, with err saying what.
 */
int ctl_unmount(const char *dir, bool lazy_ok, bool *ret_lazy, char *err, size_t cap);

/* In a child before exec: close every descriptor from first up. */
void ctl_close_from(int first);

/* Print the last n lines of a file to f, indented. */
void ctl_print_tail(FILE *f, const char *file, int n);

/* ---- ctl_start.c ---- */

/* What one invocation started, to stop it again if a later step fails. */
struct ctl_started {
        pid_t pid[CTL_NPROGS];
        const char *mountdir;
};

/* Create the state directory's layout and the cluster key (first use);
 * a cluster of several sites gets site<k>/{data,run,log} for each site,
 * site1/css, and STATE/sites.  Reported; < 0 on failure. */
int ctl_state_init(const struct ctl_state *st);
/* Does site st->site's data directory hold no container yet (its first start)? */
bool ctl_site_fresh(const struct ctl_state *st);
/* Remove run/<tag>.<ext> of p. */
void ctl_remove_run_file(const struct ctl_state *st, enum ctl_prog_id p, const char *ext);
/* "locusctl: <prog> <how>" and the last lines of its log, to stderr. */
void ctl_report_failure(const struct ctl_state *st, enum ctl_prog_id p, const char *how);
/* Unmount (lazily if busy) and say what happened.  0 or < 0 (reported). */
int ctl_unmount_dir(const char *dir);
/* Stop p (ctl_stop) and say how; its pid file goes once it is gone. */
void ctl_stop_prog(const struct ctl_state *st, enum ctl_prog_id p, pid_t pid, int timeout_ms);
/* Stop what s says was started, newest first. */
void ctl_undo(const struct ctl_state *st, struct ctl_started *s);
/*
 * Start daemon p (cssd or storaged) of site st->site (the cssd: site 1's)
 * with its usual arguments, on its previous port if it had one, bound to
 * the site's address; create_root: the storaged creates the root file
 * group.  0 with *ret_pid and *ret_port, or < 0 (reported).
 */
int ctl_start_daemon(const struct ctl_state *st, enum ctl_prog_id p, int timeout_s, bool create_root,
                     pid_t *ret_pid, uint16_t *ret_port);
/* Wait until every site's storage site serves the root file group
 * (registered with the CSS), at most timeout_s.  0 or -ETIMEDOUT (reported). */
int ctl_wait_root_served(const struct ctl_state *st, int timeout_s);
/* Start site st->site's mount on dir.  0 with *ret_pid, or < 0 (reported). */
int ctl_start_mount(const struct ctl_state *st, const char *dir, int timeout_s, pid_t *ret_pid);
/*
 * Is the LocusFS mount at dir (absolute) this cluster's?  Yes when its
 * source is ours; no when it names another state directory (ret_other->dir
 * gets it); a source of another form is ours only if dir is rec.  Not a
 * LocusFS mount at all: *ret_locus false, and true returned.
 */
bool ctl_mount_is_ours(const struct ctl_state *st, const char *dir, const char *rec, bool *ret_locus,
                       struct ctl_state *ret_other);

/* ---- commands (ctl_dev.c, ctl_info.c, ctl_site.c): argv[0] is the command word ---- */

int ctl_cmd_dev(int argc, char **argv);
/* ctl_net.c: dev partition DIR SPEC, dev heal DIR (argv[0] is "partition" or
 * "heal"); ctl_net_heal removes st's dev partition (quiet: only if one is on
 * record, printing nothing but errors): 0 or a negative errno. */
int ctl_cmd_dev_net(int argc, char **argv);
int ctl_net_heal(const struct ctl_state *st, bool quiet);
int ctl_cmd_fsck(int argc, char **argv);
/* ctl_sync.c: locusctl sync [--state S | --config F] [--timeout SEC] */
int ctl_cmd_sync(int argc, char **argv);
/*
 * One request to a daemon at host:port (a storage site the mount table
 * names), over *cp if set (else a new connection, kept in *cp; cp NULL:
 * closed after the call).  0 with *resp (release it; its status may be an
 * error), or a transport error with err saying what (the connection is
 * then closed and *cp NULL).
 */
struct lp_client;
/* ctl_call_conn's calls end by this cm_now_us() time (us; 0: no deadline,
 * CTL_CALL_MS each) -- `sync --timeout` keeps its word with a peer cut off. */
void ctl_set_deadline(uint64_t us);
int ctl_call_conn(const char *host, uint16_t port, const uint8_t key[LP_KEY_SIZE], struct lp_client **cp,
                const struct lp_fs_req *q, struct lp_fs_resp *resp, char *err, size_t cap);
/*
 * For status: every copy of every file group in mt (a CSS_MOUNTTABLE
 * answer), as its holder reports it: its seq, how far it has pulled from
 * the primary, how many files it is behind (changes the primary made after
 * that, counted at the primary), and its state (primary, current, behind,
 * unreachable).  A JSON array into w, a table into out (either may be NULL).
 */
struct css_jw;
/* ctl_info.c: print a writer's JSON document on stdout (and reset it). */
void ctl_print_json(struct css_jw *w);
void ctl_copies_report(const struct ctl_state *st, const struct lp_fs_resp *mt, struct css_jw *w, FILE *out);
/*
 * SS_STATUS of the storage site `site` at host:port, parsed (free it with
 * css_json_free); 0, or an error with err saying what.  In a report:
 * ctl_report_seq: the seq of its container of fg; ctl_report_link: its
 * replicator's link to <fg, site>: the watermark, the last error (NULL for
 * none; valid while js is) and, if ret_pulled, the files pulled.  Both
 * false when the report has no such entry.
 */
struct css_jval;
int ctl_ss_report(const uint8_t key[LP_KEY_SIZE], uint64_t site, const char *host, uint16_t port,
                  struct css_jval **ret, char *err, size_t cap);
bool ctl_report_seq(const struct css_jval *js, uint32_t fg, uint64_t *ret);
bool ctl_report_link(const struct css_jval *js, uint32_t fg, uint64_t site, uint64_t *ret_wm, const char **ret_err,
                     uint64_t *ret_pulled);
/* ctl_copies.c: locusctl copies PATH [--tree] [--state S] [--json] */
int ctl_cmd_copies(int argc, char **argv);
/* ctl_copies.c: the path of directory entry e below path into buf (the
 * walks of copies --tree and replicas set -r); false for "." and "..". */
bool ctl_child_path(const char *path, const struct lp_fs_dirent *e, char *buf, size_t cap);
/* <fg, ino> of PATH (from the root of the name space), looked up at the
 * primaries the mount table mt names; 0 or an error with err saying what. */
struct lp_fs_resp;
int ctl_resolve(const struct lp_fs_resp *mt, const uint8_t key[LP_KEY_SIZE], const char *path, uint32_t *ret_fg,
                uint64_t *ret_ino, char *err, size_t cap);
/* The copy of <fg, ino> at holder h (SS_FETCH VV over *cpp, as
 * ctl_call_conn): its vector in hex into vv (2 * LP_FS_VV_MAX + 1 bytes),
 * whether it is a deletion record, its mode and size, and whether the
 * holder keeps no data of it (copies policies, LP_FS_FETCH_NODATA).  0 or
 * an error with err saying what. */
struct lp_fs_holder;
int ctl_copy_vv(const struct lp_fs_holder *h, const uint8_t key[LP_KEY_SIZE], struct lp_client **cpp, uint32_t fg,
                uint64_t ino, char *vv, bool *ret_gone, uint32_t *ret_mode, uint64_t *ret_size, bool *ret_nodata,
                char *err, size_t cap);
/* For a command on PATH (from the root of the name space): the cluster of
 * o (--state/--config), its key, its mount table (*ret_mt, released by the
 * caller on success), PATH's file group's entry in it and PATH's inode.
 * Prints what is wrong and returns an error (then nothing to release, the
 * key wiped). */
int ctl_locate(const struct ctl_opts *o, const char *path, uint8_t key[LP_KEY_SIZE], struct lp_fs_resp *ret_mt,
               const struct lp_fs_mount **ret_m, uint64_t *ret_ino);
/* ctl_replicas.c: locusctl replicas add|remove FG|PATH SITE [--state S] [--timeout SEC] */
int ctl_cmd_replicas(int argc, char **argv);
/* ctl_replset.c: locusctl replicas set PATH N [-r] [--sites A,B] [--state S] [--timeout SEC]
 * (argv[0] is "replicas") */
int ctl_replicas_set(int argc, char **argv);
int ctl_cmd_status(int argc, char **argv);
int ctl_cmd_fg(int argc, char **argv);
int ctl_cmd_sites(int argc, char **argv);
int ctl_cmd_site(int argc, char **argv);

/* ---- ctl_site.c ---- */

/* The cluster key of st (a dev cluster's STATE/cluster.key, or the key
 * file of --config's site.conf). */
int ctl_load_key(const struct ctl_state *st, uint8_t key[LP_KEY_SIZE], char *err, size_t cap);
/* A request to the daemon at host:port with the key in keyfile; as ctl_call. */
int ctl_call_at(const char *what, const char *host, uint16_t port, const char *keyfile, const struct lp_fs_req *rq,
                int timeout_ms, struct lp_fs_resp *resp, char *err, size_t cap);

#endif
