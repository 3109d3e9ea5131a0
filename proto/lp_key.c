/* lp_key.c -- see lp_key.h. */
#include "lp_key.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

static int hexval(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static int write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;

        while (len) {
                ssize_t n = write(fd, p, len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

void lp_key_wipe(void *key, size_t len)
{
        sodium_memzero(key, len);
}

int lp_key_generate(const char *path)
{
        static const char hex[] = "0123456789abcdef";
        uint8_t key[LP_KEY_SIZE];
        char text[LP_KEY_FILE_SIZE];
        int fd, r;

        if (sodium_init() < 0)
                return -EIO;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
        if (fd < 0)
                return -errno;
        /* The umask can only clear bits; make sure nothing else is set. */
        if (fchmod(fd, 0400) < 0) {
                r = -errno;
                goto fail_unlink;
        }
        randombytes_buf(key, sizeof(key));
        for (size_t i = 0; i < LP_KEY_SIZE; i++) {
                text[2 * i] = hex[key[i] >> 4];
                text[2 * i + 1] = hex[key[i] & 15];
        }
        text[LP_KEY_FILE_SIZE - 1] = '\n';
        r = write_all(fd, text, sizeof(text));
        sodium_memzero(key, sizeof(key));
        sodium_memzero(text, sizeof(text));
        if (r < 0)
                goto fail_unlink;
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail_unlink;
        }
        if (close(fd) < 0) {
                r = -errno;
                fd = -1;
                goto fail_unlink;
        }
        return 0;

fail_unlink:
        if (fd >= 0)
                close(fd);
        unlink(path);
        return r;
}

int lp_key_load(const char *path, uint8_t key[LP_KEY_SIZE])
{
        uint8_t k[LP_KEY_SIZE];
        char text[LP_KEY_FILE_SIZE + 1];        /* one more to see excess */
        struct stat st;
        size_t got = 0;
        int fd, r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out_close;
        }
        if (!S_ISREG(st.st_mode)) {
                r = -EINVAL;
                goto out_close;
        }
        if (st.st_mode & 077) {
                r = -EPERM;
                goto out_close;
        }
        while (got < sizeof(text)) {
                ssize_t n = read(fd, text + got, sizeof(text) - got);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out_wipe;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        r = -EBADMSG;
        if (got != LP_KEY_FILE_SIZE || text[LP_KEY_FILE_SIZE - 1] != '\n')
                goto out_wipe;
        for (size_t i = 0; i < LP_KEY_SIZE; i++) {
                int hi = hexval((unsigned char)text[2 * i]);
                int lo = hexval((unsigned char)text[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        goto out_wipe;
                k[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(key, k, LP_KEY_SIZE);
        r = 0;

out_wipe:
        sodium_memzero(k, sizeof(k));
        sodium_memzero(text, sizeof(text));
out_close:
        close(fd);
        return r;
}

const char *lp_key_strerror(int err)
{
        switch (err < 0 ? -err : err) {
        case 0:
                return "success";
        case EPERM:
                return "key file is accessible to group or others; it must be mode 0400 or 0600";
        case EBADMSG:
                return "key file must hold exactly 64 hexadecimal digits followed by a newline";
        case EINVAL:
                return "key file is not a regular file";
        case EEXIST:
                return "key file already exists; refusing to overwrite it";
        case ENOENT:
                return "key file does not exist";
        case EACCES:
                return "key file cannot be opened (permission denied)";
        default:
                return "key file cannot be read or written";
        }
}
