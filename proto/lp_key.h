/*
 * lp_key.h -- the cluster key file.
 *
 * Every site of a cluster shares one 32-byte secret, the cluster key; every
 * connection proves knowledge of it in the handshake (lp_conn.h).  On disk
 * the key is a file holding exactly 64 hexadecimal digits (either case) and
 * one newline, with no group or other permission bits (created 0400).
 *
 * Ownership: the caller owns the key buffer; wipe it with sodium_memzero()
 * (or lp_key_wipe()) when done.
 *
 * Threads: no state; any thread.
 *
 * Errors (negative errno):
 *   lp_key_generate: -EEXIST (never overwrites), errors of open/write/fsync
 *                    (the half-written file is removed).
 *   lp_key_load:     -ENOENT, -EACCES, ... from open;
 *                    -EPERM    the file grants group or other any access
 *                              (the key would not be secret); chmod 0400;
 *                    -EBADMSG  the content is not 64 hex digits + newline;
 *                    -EINVAL   not a regular file.
 *   lp_key_strerror() words these for an administrator.
 */
#ifndef LP_KEY_H
#define LP_KEY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LP_KEY_SIZE 32
#define LP_KEY_FILE_SIZE (2 * LP_KEY_SIZE + 1)

/* Create path (O_EXCL, mode 0400) holding a fresh random key. */
int lp_key_generate(const char *path);

/* Read the key in path into key[]; key[] is written on success only. */
int lp_key_load(const char *path, uint8_t key[LP_KEY_SIZE]);

/* Explain an error of lp_key_load()/lp_key_generate() (static string). */
const char *lp_key_strerror(int err);

/* Overwrite key material with zeros in a way the compiler keeps. */
void lp_key_wipe(void *key, size_t len);

#ifdef __cplusplus
}
#endif

#endif
