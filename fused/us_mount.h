/*
 * us_mount.h -- the locusfs-mount program: options, cluster key, the first
 * mount table from the CSS, the FUSE session, readiness, the session loop
 * and a clean unmount.
 *
 * Sequence: parse options; load the key; fetch the mount table (retrying
 * for up to timeout=, so a mount started together with its daemons waits
 * for them); create the FUSE session and mount; daemonize unless -f (then
 * log to syslog, stderr being gone); start the keeper and the watch
 * thread (commit notes, us_watch.h); write "READY mounted" to --ready-fd;
 * run the multi-threaded loop until unmounted or SIGTERM/SIGINT/SIGHUP
 * (libfuse's handlers end the loop; requests still waiting for a daemon
 * give up within US_RPC_CONNECT_MS, releases go on, to commit); stop the
 * watch thread; unmount;
 * commit what is still open (us_core_destroy via the FUSE destroy
 * callback); exit.
 *
 * Exit status: 0 after a clean unmount (also by signal), 1 when it could
 * not mount or the loop failed, 2 for a usage error.
 *
 * Ownership: everything is owned by us_main() and freed before it returns.
 *
 * Threads: us_main() runs on the main thread; it starts libfuse's workers,
 * the core's keeper thread and the watch thread (commit notes, us_watch.h),
 * and joins them before it returns.
 */
#ifndef US_MOUNT_H
#define US_MOUNT_H

#define US_EXIT_OK 0
#define US_EXIT_FAIL 1
#define US_EXIT_USAGE 2

int us_main(int argc, char **argv);

#endif
