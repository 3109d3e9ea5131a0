/*
 * css_json.h -- a small JSON writer and parser for the status reports and
 * registrations that travel as text in the filesystem protocol
 * (CSS_REGISTER's list of file groups, CSS_STATUS, SS_STATUS), shared by
 * locus-cssd and locusctl.  It depends on nothing but libc.
 *
 * Writer: struct css_jw accumulates one JSON text in a growing buffer; the
 * caller calls begin/end/key/value in document order and the writer puts
 * the commas and colons.  A failed allocation makes the writer sticky:
 * every later call does nothing and css_jw_finish() returns -ENOMEM.  The
 * writer does not check that keys and values alternate; that is the
 * caller's job (the tests parse what the callers write).
 *
 * Parser: css_json_parse() builds a tree of struct css_jval from a text
 * (RFC 8259; strings are unescaped to UTF-8, \u0000 is refused so that
 * every string is also a C string).  Limits: nesting depth CSS_JSON_DEPTH;
 * the size of the tree is bounded by the size of the text, which the
 * caller bounds (the frame limit).
 *
 * Ownership: css_jw_finish() hands over a malloc'ed NUL-terminated string
 * (free()).  The tree returned by css_json_parse() is owned by the caller
 * and freed with css_json_free(); every pointer into it (strings, items,
 * the result of css_json_get()) is valid until then.
 *
 * Threads: no global state; any thread.
 *
 * Errors: css_json_parse(): -EBADMSG (not JSON, trailing garbage, too
 * deep, \u0000), -ENOMEM.  css_jw_finish(): -ENOMEM.
 */
#ifndef CSS_JSON_H
#define CSS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSS_JSON_DEPTH 64

/* ---- writer ---- */

struct css_jw {
        char *buf;
        size_t len, cap;
        bool comma;                     /* the next key or value needs a ',' first */
        bool err;                       /* an allocation failed: sticky */
};

void css_jw_init(struct css_jw *w);
void css_jw_obj_begin(struct css_jw *w);
void css_jw_obj_end(struct css_jw *w);
void css_jw_arr_begin(struct css_jw *w);
void css_jw_arr_end(struct css_jw *w);
/* A member name inside an object; the value follows. */
void css_jw_key(struct css_jw *w, const char *key);
/* A string value (NULL writes null); bytes are escaped as JSON needs. */
void css_jw_str(struct css_jw *w, const char *s);
void css_jw_u64(struct css_jw *w, uint64_t v);
void css_jw_i64(struct css_jw *w, int64_t v);
void css_jw_bool(struct css_jw *w, bool v);
void css_jw_null(struct css_jw *w);
/* A value that is already JSON text (e.g. a peer's status report), copied
 * as it is.  The caller vouches that it is valid JSON. */
void css_jw_raw(struct css_jw *w, const char *json);
/* Hand over the text (*ret, malloc'ed) and reset the writer.  On -ENOMEM
 * nothing is handed over and the writer is reset. */
int css_jw_finish(struct css_jw *w, char **ret);
/* Drop what was written (after an error elsewhere). */
void css_jw_reset(struct css_jw *w);

/* ---- parser ---- */

enum css_jtype {
        CSS_JNULL,
        CSS_JBOOL,
        CSS_JNUM,
        CSS_JSTR,
        CSS_JARR,
        CSS_JOBJ,
};

struct css_jval {
        enum css_jtype type;
        bool b;                         /* CSS_JBOOL */
        double num;                     /* CSS_JNUM */
        bool is_int;                    /* CSS_JNUM: integral, exactly in i */
        int64_t i;
        char *str;                      /* CSS_JSTR: NUL-terminated UTF-8 */
        size_t len;
        size_t n;                       /* CSS_JARR / CSS_JOBJ: number of items */
        struct css_jval *items;
        char **keys;                    /* CSS_JOBJ: keys[k] names items[k] */
};

int css_json_parse(const char *text, size_t len, struct css_jval **ret);
void css_json_free(struct css_jval *v);
/* The member called key of an object (the first one), or NULL. */
const struct css_jval *css_json_get(const struct css_jval *obj, const char *key);
/* v is an integer in [0, max]: store it in *ret and return true. */
bool css_json_uint(const struct css_jval *v, uint64_t max, uint64_t *ret);

#endif
