/*
 * cm.c -- see cm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm.h"

static char cm_prog[64] = "locus";
static int cm_level = LOG_INFO;
static enum cm_log_dest cm_dest = CM_LOG_STDERR;

void cm_log_init(const char *prog, int level, enum cm_log_dest dest)
{
        snprintf(cm_prog, sizeof(cm_prog), "%s", prog);
        cm_level = level;
        cm_dest = dest;
        if (dest == CM_LOG_SYSLOG)
                openlog(cm_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int cm_log_level_parse(const char *s)
{
        static const char *names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
        char *end;
        long v;

        for (int i = 0; i < 8; i++)
                if (!strcasecmp(s, names[i]))
                        return i;
        if (!strcasecmp(s, "error"))
                return LOG_ERR;
        if (!strcasecmp(s, "warn"))
                return LOG_WARNING;
        v = strtol(s, &end, 10);
        if (*s && !*end && v >= 0 && v <= 7)
                return (int)v;
        return -EINVAL;
}

int cm_log_level(void)
{
        return cm_level;
}

void cm_logv(int prio, const char *fmt, va_list ap)
{
        static const char *tags[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
        char msg[2048];
        int n, m;

        if (prio > cm_level)
                return;
        if (cm_dest == CM_LOG_SYSLOG) {
                vsyslog(prio, fmt, ap);
                return;
        }
        {
                struct timespec ts = cm_wall();
                struct tm tm;

                gmtime_r(&ts.tv_sec, &tm);
                n = snprintf(msg, sizeof(msg), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                             ts.tv_nsec / 1000000, cm_prog, (int)getpid(), tags[prio & 7]);
        }
        if (n < 0)
                return;
        m = vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
        if (m < 0)
                return;
        n += m;
        if ((size_t)n > sizeof(msg) - 2)
                n = (int)sizeof(msg) - 2;
        msg[n++] = '\n';
        (void)!write(STDERR_FILENO, msg, (size_t)n);
}

void cm_log(int prio, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        cm_logv(prio, fmt, ap);
        va_end(ap);
}

uint64_t cm_now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct timespec cm_wall(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return ts;
}

int cm_write_file(const char *path, const char *content)
{
        char tmp[4096];
        size_t len = strlen(content);
        int fd, r = 0;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, content, len) != (ssize_t)len)
                r = errno ? -errno : -EIO;
        if (close(fd) < 0 && !r)
                r = -errno;
        if (!r && rename(tmp, path) < 0)
                r = -errno;
        if (r)
                unlink(tmp);
        return r;
}

int cm_read_file(const char *path, char *buf, size_t cap)
{
        ssize_t n;
        int fd;

        if (!cap)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, cap - 1);
        close(fd);
        if (n < 0)
                return -errno;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = 0;
        return (int)n;
}

void cm_ready(int fd, const char *info)
{
        char line[512];
        int n;

        if (fd < 0)
                return;
        n = snprintf(line, sizeof(line), "READY %s\n", info ? info : "");
        if (n > 0)
                (void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        close(fd);
}

int cm_wait_ready(int fd, int timeout_ms, char *buf, size_t cap)
{
        char line[512];
        size_t have = 0;
        uint64_t deadline = cm_now_us() + (uint64_t)timeout_ms * 1000u;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = cm_now_us();
                char *nl;
                ssize_t n;
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                n = read(fd, line + have, sizeof(line) - 1 - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EPIPE;
                have += (size_t)n;
                line[have] = 0;
                nl = strchr(line, '\n');
                if (!nl && have < sizeof(line) - 1)
                        continue;
                if (nl)
                        *nl = 0;
                if (strncmp(line, "READY", 5) != 0)
                        return -EPIPE;
                if (buf && cap)
                        snprintf(buf, cap, "%s", line[5] == ' ' ? line + 6 : line + 5);
                return 0;
        }
}

int cm_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *ret_port)
{
        const char *colon;
        size_t hl;
        char *end;
        long port;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *rb = strchr(s, ']');

                if (!rb || rb[1] != ':')
                        return -EINVAL;
                hl = (size_t)(rb - s - 1);
                colon = rb + 1;
                s++;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                hl = (size_t)(colon - s);
        }
        if (hl == 0 || hl >= hostcap)
                return -EINVAL;
        port = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || port < 0 || port > 65535)
                return -EINVAL;
        memcpy(host, s, hl);
        host[hl] = 0;
        *ret_port = (uint16_t)port;
        return 0;
}

int cm_read_port_file(const char *path, uint16_t *ret_port)
{
        char buf[64], *end;
        long v;
        int n = cm_read_file(path, buf, sizeof(buf));

        if (n < 0)
                return n;
        errno = 0;
        v = strtol(buf, &end, 10);
        if (!buf[0] || *end || errno || v <= 0 || v > 65535)
                return -EINVAL;
        *ret_port = (uint16_t)v;
        return 0;
}

int cm_mkdir_p(const char *path, mode_t mode)
{
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}
