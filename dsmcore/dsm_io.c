/*
 * dsm_io.c -- the default I/O seam: struct dsm_io on top of the system
 * calls.  Every descriptor is O_CLOEXEC; interrupted calls are restarted;
 * errors come back as negative errno, converted at the syscall.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsm_int.h"

static int px_open(void *ctx, const char *path, int flags, mode_t mode)
{
        int fd;

        (void)ctx;
        do
                fd = open(path, flags | O_CLOEXEC, mode);
        while (fd < 0 && errno == EINTR);
        return fd < 0 ? -errno : fd;
}

static int px_close(void *ctx, int fd)
{
        (void)ctx;
        return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t len, uint64_t off)
{
        ssize_t n;

        (void)ctx;
        do
                n = pread(fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

static ssize_t px_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
        ssize_t n;

        (void)ctx;
        do
                n = pwrite(fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

static int px_fdatasync(void *ctx, int fd)
{
        (void)ctx;
        /* Never retried on failure: the caller enters its error state. */
        return fdatasync(fd) < 0 ? -errno : 0;
}

static int px_ftruncate(void *ctx, int fd, uint64_t len)
{
        (void)ctx;
        return ftruncate(fd, (off_t)len) < 0 ? -errno : 0;
}

static int px_fsize(void *ctx, int fd, uint64_t *ret)
{
        struct stat st;

        (void)ctx;
        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (uint64_t)st.st_size;
        return 0;
}

static int px_unlink(void *ctx, const char *path)
{
        (void)ctx;
        return unlink(path) < 0 ? -errno : 0;
}

static int px_mkdir(void *ctx, const char *path, mode_t mode)
{
        (void)ctx;
        return mkdir(path, mode) < 0 ? -errno : 0;
}

static int px_syncdir(void *ctx, const char *path)
{
        int fd, r = 0;

        (void)ctx;
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int px_listdir(void *ctx, const char *path, int (*fn)(void *, const char *), void *arg)
{
        DIR *d;
        struct dirent *de;
        int r = 0;

        (void)ctx;
        d = opendir(path);
        if (!d)
                return -errno;
        errno = 0;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                r = fn(arg, de->d_name);
                if (r < 0)
                        break;
                errno = 0;
        }
        if (!de && errno)
                r = -errno;
        closedir(d);
        return r;
}

static void px_advise_seq(void *ctx, int fd)
{
        (void)ctx;
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

static void px_prefetch(void *ctx, int fd, uint64_t off, uint64_t len)
{
        (void)ctx;
        (void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

const struct dsm_io dsm_posix_io = {
        .open = px_open,
        .close = px_close,
        .pread = px_pread,
        .pwrite = px_pwrite,
        .fdatasync = px_fdatasync,
        .ftruncate = px_ftruncate,
        .fsize = px_fsize,
        .unlink = px_unlink,
        .mkdir = px_mkdir,
        .syncdir = px_syncdir,
        .listdir = px_listdir,
        .advise_seq = px_advise_seq,
        .prefetch = px_prefetch,
};
