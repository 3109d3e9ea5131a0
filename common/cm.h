/*
 * cm.h -- the small pieces every LocusFS program shares: one logger per
 * program, time, and the files and descriptors a daemon uses to tell its
 * parent and its peers where it is.
 *
 * Logging: cm_log_init() names the program and picks a destination
 * (stderr, or syslog); messages below the chosen level are dropped.
 * Levels are syslog's (LOG_ERR .. LOG_DEBUG).  Libraries never log above
 * LOG_DEBUG; programs log each error once, where it is decided, naming the
 * file (<fg,ino> or path), the site and the cause.  cm_log is thread-safe
 * (one write(2) per message).
 *
 * Time: cm_now_us() is CLOCK_MONOTONIC in microseconds; cm_wall() is the
 * wall clock (for mtime and the like).
 *
 * Readiness: a daemon started by locusctl gets --ready-fd N; once it
 * listens it calls cm_ready(fd, "port=N") which writes one line and closes
 * the descriptor; the parent waits for that line (cm_wait_ready) instead of
 * sleeping.  cm_write_file() writes pid and port files atomically
 * (temporary file + rename).
 *
 * Errors: negative errno.
 */
#ifndef CM_H
#define CM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>
#include <sys/types.h>
#include <time.h>

enum cm_log_dest {
        CM_LOG_STDERR = 0,
        CM_LOG_SYSLOG = 1,
};

void cm_log_init(const char *prog, int level, enum cm_log_dest dest);
/* Parse "err", "warning", "notice", "info", "debug" (or a number 0-7). */
int cm_log_level_parse(const char *s);
int cm_log_level(void);
void cm_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cm_logv(int prio, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

uint64_t cm_now_us(void);
struct timespec cm_wall(void);

/* Write content to path atomically (path.tmp + rename), mode 0644. */
int cm_write_file(const char *path, const char *content);
/* Read a small file (at most cap-1 bytes) into buf, NUL-terminated, with
 * trailing newlines removed. */
int cm_read_file(const char *path, char *buf, size_t cap);
/* Read a port file (one number 1..65535): 0, -EINVAL, or cm_read_file's. */
int cm_read_port_file(const char *path, uint16_t *ret_port);

/* Tell the parent we are ready: write "READY <info>\n" to fd and close it.
 * fd < 0 does nothing. */
void cm_ready(int fd, const char *info);
/* Wait until fd (the read end) delivers a READY line, at most timeout_ms.
 * Copies <info> into buf.  Returns 0, -ETIMEDOUT, or -EPIPE if the writer
 * closed without saying READY (it failed: its log says why). */
int cm_wait_ready(int fd, int timeout_ms, char *buf, size_t cap);

/* mkdir -p: path and its missing parents, each with mode; 0 if it exists.
 * -ENAMETOOLONG, errors of mkdir. */
int cm_mkdir_p(const char *path, mode_t mode);

/* Split "host:port" (IPv4 or [IPv6]); port may be 0. */
int cm_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *ret_port);

#endif
