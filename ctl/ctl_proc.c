/*
 * ctl_proc.c -- starting, watching and stopping the programs of a dev
 * cluster, and the kernel's mount table.  See ctl.h.
 *
 * Waiting for a process to end uses a pidfd (pidfd_open, Linux 5.3): it
 * becomes readable when the process exits, whether or not it is our child,
 * so we wait for the event instead of polling; signals go through the pidfd
 * too, so a recycled pid is never signalled.  Kernels without pidfds fall
 * back to checking kill(pid, 0) every 10 ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cm.h"
#include "ctl.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static int pidfd_open_(pid_t pid)
{
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? -errno : fd;
}

static int pidfd_kill(int pidfd, pid_t pid, int sig)
{
        if (pidfd >= 0)
                return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
        return kill(pid, sig) < 0 ? -errno : 0;
}

/* A zombie or a dead pid is not alive. */
static bool pid_running(pid_t pid)
{
        char file[64], buf[512], *rp;
        int fd;
        ssize_t n;

        if (kill(pid, 0) < 0 && errno == ESRCH)
                return false;
        snprintf(file, sizeof(file), "/proc/%d/stat", (int)pid);
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        rp = strrchr(buf, ')');
        return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

bool ctl_alive(pid_t pid, const char *comm)
{
        char file[64], buf[64];

        if (pid <= 0 || !pid_running(pid))
                return false;
        if (!comm)
                return true;
        snprintf(file, sizeof(file), "/proc/%d/comm", (int)pid);
        if (cm_read_file(file, buf, sizeof(buf)) < 0)
                return false;
        /* comm holds at most 15 characters of the name */
        return strncmp(buf, comm, 15) == 0;
}

/* Wait until pid ends (pidfd, or polling without one); 0 or -ETIMEDOUT. */
static int wait_end(int pidfd, pid_t pid, int timeout_ms)
{
        uint64_t deadline = cm_now_us() + (uint64_t)timeout_ms * 1000u;

        for (;;) {
                uint64_t now = cm_now_us();
                int left = now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);

                if (pidfd >= 0) {
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        int r = poll(&p, 1, left);

                        if (r > 0)
                                return 0;
                        if (r < 0 && errno == EINTR)
                                continue;
                        if (r == 0)
                                return -ETIMEDOUT;
                        return -errno;
                }
                if (!pid_running(pid))
                        return 0;
                if (left == 0)
                        return -ETIMEDOUT;
                {
                        struct timespec ts = { 0, 10 * 1000 * 1000 };   /* no pidfd: poll */

                        nanosleep(&ts, NULL);
                }
        }
}

static void reap(pid_t pid)
{
        while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
                ;
}

/* Wait for pid to end without reaping it. */
static int wait_gone(pid_t pid, int timeout_ms)
{
        int pidfd = pidfd_open_(pid);
        int r;

        if (pidfd == -ESRCH)
                return 0;
        r = wait_end(pidfd < 0 ? -1 : pidfd, pid, timeout_ms);
        if (pidfd >= 0)
                close(pidfd);
        return r;
}

int ctl_wait_gone(pid_t pid, int timeout_ms)
{
        int r = wait_gone(pid, timeout_ms);

        if (r == 0)
                reap(pid);
        return r;
}

int ctl_stop(pid_t pid, const char *comm, int timeout_ms, bool *ret_killed)
{
        int pidfd = pidfd_open_(pid);
        int r;

        if (ret_killed)
                *ret_killed = false;
        if (pidfd == -ESRCH)
                return 0;
        if (pidfd < 0)
                pidfd = -1;
        /* Checked after pidfd_open: the pidfd names the process we checked. */
        if (!ctl_alive(pid, comm)) {
                if (pidfd >= 0)
                        close(pidfd);
                reap(pid);
                return 0;
        }
        r = pidfd_kill(pidfd, pid, SIGTERM);
        if (r == 0 || r == -ESRCH)
                r = wait_end(pidfd, pid, timeout_ms);
        if (r == -ETIMEDOUT) {
                if (ret_killed)
                        *ret_killed = true;
                pidfd_kill(pidfd, pid, SIGKILL);
                r = wait_end(pidfd, pid, 5000);
        }
        if (pidfd >= 0)
                close(pidfd);
        reap(pid);
        return r;
}

/* Undo the octal escapes of /proc/self/mountinfo (\040 for a space, ...). */
static void unescape(char *s)
{
        char *o = s;

        while (*s) {
                if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
                    s[3] <= '7') {
                        *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
                        s += 4;
                } else {
                        *o++ = *s++;
                }
        }
        *o = 0;
}

void ctl_mount_info(const char *dir, bool *ret_any, bool *ret_locus, char *src, size_t cap)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char *line = NULL;
        size_t lcap = 0;
        bool top_is_locus = false, any = false;

        *ret_any = *ret_locus = false;
        if (src && cap)
                src[0] = 0;
        if (!f)
                return;
        while (getline(&line, &lcap, f) > 0) {
                char *save = NULL, *tok, *mp = NULL, *sep, *source;
                int i = 0;

                sep = strstr(line, " - ");
                if (!sep)
                        continue;
                *sep = 0;
                for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++)
                        if (i == 4)
                                mp = tok;
                if (!mp)
                        continue;
                unescape(mp);
                if (strcmp(mp, dir) != 0)
                        continue;
                /* later lines are mounted on top of earlier ones;
                 * after " - ": type, source, super options */
                tok = strtok_r(sep + 3, " ", &save);
                top_is_locus = tok && !strcmp(tok, "fuse.locusfs");
                any = true;
                source = tok ? strtok_r(NULL, " \n", &save) : NULL;
                if (src && cap) {
                        if (source)
                                unescape(source);
                        snprintf(src, cap, "%s", source ? source : "");
                }
        }
        free(line);
        fclose(f);
        *ret_any = any;
        *ret_locus = top_is_locus;
}

bool ctl_is_mounted(const char *dir)
{
        bool any, locus;

        ctl_mount_info(dir, &any, &locus, NULL, 0);
        return locus;
}

bool ctl_is_mountpoint(const char *dir)
{
        bool any, locus;

        ctl_mount_info(dir, &any, &locus, NULL, 0);
        return any;
}

/*
 * The parent is resolved with realpath(); the last component is looked at
 * only if it is not a mount point: looking at a FUSE mount point asks its
 * daemon, which may be dead (ENOTCONN) or waiting for a storage site that
 * is down (a request then blocks for the mount's whole timeout).
 */
int ctl_abspath(const char *path, char *buf, size_t cap)
{
        char lex[PATH_MAX], *rp;
        int n;

        n = ctl_abspath_lexical(path, lex, sizeof(lex));
        if (n == 0 && ctl_is_mountpoint(lex)) {
                n = snprintf(buf, cap, "%s", lex);
                return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
        }
        rp = realpath(path, NULL);
        if (rp) {
                n = snprintf(buf, cap, "%s", rp);
                free(rp);
                return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
        }
        n = snprintf(buf, cap, "%s", lex);
        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ctl_abspath_lexical(const char *path, char *buf, size_t cap)
{
        char tmp[PATH_MAX], *rp, *slash;
        const char *base;
        int n;

        if (path[0] == '/')
                n = snprintf(tmp, sizeof(tmp), "%s", path);
        else {
                char cwd[PATH_MAX];

                if (!getcwd(cwd, sizeof(cwd)))
                        return -errno;
                n = snprintf(tmp, sizeof(tmp), "%s/%s", cwd, path);
        }
        if (n < 0 || (size_t)n >= sizeof(tmp))
                return -ENAMETOOLONG;
        while (n > 1 && tmp[n - 1] == '/')
                tmp[--n] = 0;
        slash = strrchr(tmp, '/');
        base = slash + 1;
        if (!strcmp(base, ".") || !strcmp(base, "..")) {
                rp = realpath(tmp, NULL);
                if (!rp)
                        return -errno;
                n = snprintf(buf, cap, "%s", rp);
                free(rp);
                return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
        }
        if (slash == tmp) {
                n = snprintf(buf, cap, "/%s", base);
                return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
        }
        *slash = 0;
        rp = realpath(tmp, NULL);
        n = snprintf(buf, cap, "%s/%s", rp ? rp : tmp, base);
        free(rp);
        return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

void ctl_close_from(int first)
{
        /* Descriptors we did not open ourselves (inherited without
         * close-on-exec from whoever ran locusctl) must not reach a daemon:
         * one holding the write end of its caller's pipe would keep the
         * caller waiting for end-of-file for as long as the daemon lives. */
        if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) == 0)
                return;
        for (long fd = first, max = sysconf(_SC_OPEN_MAX); fd < (max > 0 && max < 65536 ? max : 65536); fd++)
                close((int)fd);
}

static void describe_status(int status, char *how, size_t cap)
{
        if (WIFEXITED(status))
                snprintf(how, cap, "exited with status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(how, cap, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                snprintf(how, cap, "ended (status 0x%x)", status);
}

/* A descriptor number >= 10, close-on-exec (keeps clear of 0..3 in the child). */
static int high_fd(int fd)
{
        int n;

        if (fd < 0 || fd >= 10)
                return fd;
        n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        close(fd);
        return n < 0 ? -1 : n;
}

int ctl_spawn(const char *bin, char *const argv[], const char *log, int timeout_ms, pid_t *ret_pid,
              char *info, size_t icap, char *how, size_t hcap)
{
        int p[2], logfd, nullfd, r, status;
        pid_t pid;

        snprintf(how, hcap, "could not be started");
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        p[0] = high_fd(p[0]);
        p[1] = high_fd(p[1]);
        logfd = high_fd(open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
        nullfd = high_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (p[0] < 0 || p[1] < 0 || logfd < 0 || nullfd < 0) {
                r = errno ? -errno : -EMFILE;
                snprintf(how, hcap, "could not be started: %s: %s",
                         logfd < 0 ? log : nullfd < 0 ? "/dev/null" : "pipe", strerror(-r));
                goto out_close;
        }
        {
                struct timespec ts = cm_wall();
                struct tm tm;
                char line[1024];
                int n;

                gmtime_r(&ts.tv_sec, &tm);
                n = snprintf(line, sizeof(line), "---- %04d-%02d-%02dT%02d:%02d:%02dZ locusctl starts %s",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, bin);
                for (int i = 1; argv[i] && n > 0 && (size_t)n < sizeof(line) - 2; i++)
                        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", argv[i]);
                if (n > 0 && (size_t)n >= sizeof(line) - 1)
                        n = (int)sizeof(line) - 2;
                if (n > 0) {
                        line[n++] = '\n';
                        (void)!write(logfd, line, (size_t)n);
                }
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                snprintf(how, hcap, "could not be started: fork: %s", strerror(-r));
                goto out_close;
        }
        if (pid == 0) {
                sigset_t none;

                setsid();
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 || dup2(p[1], 3) < 0)
                        _exit(127);
                /* dup2 leaves 0..3 without close-on-exec; nothing else goes on. */
                ctl_close_from(4);
                execv(bin, argv);
                dprintf(2, "locusctl: cannot execute %s: %s\n", bin, strerror(errno));
                _exit(127);
        }
        close(p[1]);
        close(logfd);
        close(nullfd);
        p[1] = logfd = nullfd = -1;
        r = cm_wait_ready(p[0], timeout_ms, info, icap);
        close(p[0]);
        if (r == 0) {
                *ret_pid = pid;
                return 0;
        }
        if (r == -ETIMEDOUT) {
                bool killed;

                ctl_stop(pid, NULL, 2000, &killed);
                snprintf(how, hcap, "did not say READY within %d s (stopped%s)", timeout_ms / 1000,
                         killed ? " with SIGKILL" : "");
                return -ETIMEDOUT;
        }
        /* It closed the pipe without READY: it is failing; see how it ends. */
        if (wait_gone(pid, 5000) == 0) {
                if (waitpid(pid, &status, 0) == pid)
                        describe_status(status, how, hcap);
                else
                        snprintf(how, hcap, "ended without saying READY");
        } else {
                ctl_stop(pid, NULL, 2000, NULL);
                snprintf(how, hcap, "closed its ready descriptor without READY (stopped)");
        }
        return -EPIPE;
out_close:
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0)
                        close(p[i]);
        if (logfd >= 0)
                close(logfd);
        if (nullfd >= 0)
                close(nullfd);
        return r;
}

/* Run argv (PATH search), collect its stderr into err; its exit status, or < 0. */
static int run_capture(char *const argv[], char *err, size_t cap)
{
        int p[2], status;
        pid_t pid;
        size_t have = 0;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                int r = -errno;

                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                int nul = open("/dev/null", O_RDWR);

                if (nul < 0 || dup2(nul, 0) < 0 || dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
                        _exit(127);
                ctl_close_from(3);
                execvp(argv[0], argv);
                _exit(errno == ENOENT ? 126 : 127);
        }
        close(p[1]);
        for (;;) {
                char buf[256];
                ssize_t n = read(p[0], buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                for (ssize_t i = 0; i < n && have + 1 < cap; i++)
                        err[have++] = buf[i] == '\n' ? ' ' : buf[i];
        }
        close(p[0]);
        if (cap)
                err[have < cap ? have : cap - 1] = 0;
        while (have > 0 && err[have - 1] == ' ')
                err[--have] = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
                return -ENOENT;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ctl_unmount(const char *dir, bool lazy_ok, bool *ret_lazy, char *err, size_t cap)
{
        char *argv_u[] = { "fusermount3", "-u", (char *)dir, NULL };
        char *argv_z[] = { "fusermount3", "-u", "-z", (char *)dir, NULL };
        int r;

        *ret_lazy = false;
        err[0] = 0;
        r = run_capture(argv_u, err, cap);
        if (r == 0)
                return 0;
        if (r == -ENOENT) {
                /* no fusermount3: the system call (needs root) */
                if (umount2(dir, UMOUNT_NOFOLLOW) == 0)
                        return 0;
                r = -errno;
                snprintf(err, cap, "umount %s: %s", dir, strerror(-r));
                if (!lazy_ok)
                        return r;
                *ret_lazy = true;
                if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
                        return 0;
                r = -errno;
                snprintf(err, cap, "umount -l %s: %s", dir, strerror(-r));
                return r;
        }
        if (!lazy_ok)
                return r < 0 ? r : -EBUSY;
        *ret_lazy = true;
        r = run_capture(argv_z, err, cap);
        return r == 0 ? 0 : (r < 0 ? r : -EBUSY);
}

void ctl_print_tail(FILE *f, const char *file, int n)
{
        char buf[16384];
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        off_t size, from;
        ssize_t got;
        char *p;

        if (fd < 0) {
                fprintf(f, "    (cannot read %s: %s)\n", file, strerror(errno));
                return;
        }
        size = lseek(fd, 0, SEEK_END);
        from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
        got = pread(fd, buf, sizeof(buf) - 1, from);
        close(fd);
        if (got <= 0) {
                fprintf(f, "    (%s is empty)\n", file);
                return;
        }
        buf[got] = 0;
        while (got > 0 && buf[got - 1] == '\n')
                buf[--got] = 0;
        p = buf + got;
        for (int lines = 0; p > buf; p--)
                if (p[-1] == '\n' && ++lines == n)
                        break;
        while (*p) {
                char *nl = strchr(p, '\n');

                if (nl)
                        *nl = 0;
                fprintf(f, "    %s\n", p);
                if (!nl)
                        break;
                p = nl + 1;
        }
}
