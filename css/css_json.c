/*
 * css_json.c -- see css_json.h.
 *
 * The parser is recursive descent over the text with an explicit depth
 * bound; every allocation of the tree happens while parsing, and a failure
 * frees what was built so far (css_json_free copes with half-built nodes:
 * items beyond n are never touched, and n only grows once an item is
 * complete).
 */
#include "css_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writer ---------------------------------------------------------------- */

void css_jw_init(struct css_jw *w)
{
        memset(w, 0, sizeof(*w));
}

static void jw_put(struct css_jw *w, const char *s, size_t n)
{
        if (w->err)
                return;
        if (w->len + n + 1 > w->cap) {
                size_t cap = w->cap ? w->cap : 256;
                char *b;

                while (cap < w->len + n + 1)
                        cap *= 2;
                b = realloc(w->buf, cap);
                if (!b) {
                        w->err = true;
                        return;
                }
                w->buf = b;
                w->cap = cap;
        }
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = 0;
}

static void jw_sep(struct css_jw *w)
{
        if (w->comma)
                jw_put(w, ",", 1);
        w->comma = false;
}

void css_jw_obj_begin(struct css_jw *w)
{
        jw_sep(w);
        jw_put(w, "{", 1);
}

void css_jw_obj_end(struct css_jw *w)
{
        jw_put(w, "}", 1);
        w->comma = true;
}

void css_jw_arr_begin(struct css_jw *w)
{
        jw_sep(w);
        jw_put(w, "[", 1);
}

void css_jw_arr_end(struct css_jw *w)
{
        jw_put(w, "]", 1);
        w->comma = true;
}

static void jw_string(struct css_jw *w, const char *s)
{
        const char *run = s;

        jw_put(w, "\"", 1);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                char esc[8];

                if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
                        continue;
                jw_put(w, run, (size_t)(s - run));
                switch (c) {
                case '"': jw_put(w, "\\\"", 2); break;
                case '\\': jw_put(w, "\\\\", 2); break;
                case '\n': jw_put(w, "\\n", 2); break;
                case '\t': jw_put(w, "\\t", 2); break;
                case '\r': jw_put(w, "\\r", 2); break;
                default:
                        snprintf(esc, sizeof(esc), "\\u%04x", c);
                        jw_put(w, esc, 6);
                }
                run = s + 1;
        }
        jw_put(w, run, (size_t)(s - run));
        jw_put(w, "\"", 1);
}

void css_jw_key(struct css_jw *w, const char *key)
{
        jw_sep(w);
        jw_string(w, key);
        jw_put(w, ":", 1);
}

void css_jw_str(struct css_jw *w, const char *s)
{
        if (!s) {
                css_jw_null(w);
                return;
        }
        jw_sep(w);
        jw_string(w, s);
        w->comma = true;
}

void css_jw_u64(struct css_jw *w, uint64_t v)
{
        char b[32];
        int n = snprintf(b, sizeof(b), "%" PRIu64, v);

        jw_sep(w);
        jw_put(w, b, (size_t)n);
        w->comma = true;
}

void css_jw_i64(struct css_jw *w, int64_t v)
{
        char b[32];
        int n = snprintf(b, sizeof(b), "%" PRId64, v);

        jw_sep(w);
        jw_put(w, b, (size_t)n);
        w->comma = true;
}

void css_jw_bool(struct css_jw *w, bool v)
{
        jw_sep(w);
        jw_put(w, v ? "true" : "false", v ? 4 : 5);
        w->comma = true;
}

void css_jw_null(struct css_jw *w)
{
        jw_sep(w);
        jw_put(w, "null", 4);
        w->comma = true;
}

void css_jw_raw(struct css_jw *w, const char *json)
{
        jw_sep(w);
        jw_put(w, json, strlen(json));
        w->comma = true;
}

void css_jw_reset(struct css_jw *w)
{
        free(w->buf);
        css_jw_init(w);
}

int css_jw_finish(struct css_jw *w, char **ret)
{
        if (!w->err && !w->buf)
                jw_put(w, "", 0);
        if (w->err) {
                css_jw_reset(w);
                return -ENOMEM;
        }
        *ret = w->buf;
        css_jw_init(w);
        return 0;
}

/* ---- parser ---------------------------------------------------------------- */

struct jp {
        const char *p, *end;
        int depth;
};

static void jp_ws(struct jp *j)
{
        while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
                j->p++;
}

static int jp_value(struct jp *j, struct css_jval *v);
static void jval_clear(struct css_jval *v);

static int hex4(const char *p, unsigned *ret)
{
        unsigned x = 0;

        for (int i = 0; i < 4; i++) {
                char c = p[i];

                x <<= 4;
                if (c >= '0' && c <= '9')
                        x |= (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        x |= (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        x |= (unsigned)(c - 'A' + 10);
                else
                        return -EBADMSG;
        }
        *ret = x;
        return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
        if (cp < 0x80) {
                o[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char)(0xC0 | (cp >> 6));
                o[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char)(0xE0 | (cp >> 12));
                o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                o[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/* Parse a string at j->p (the opening quote) into a malloc'ed C string. */
static int jp_string(struct jp *j, char **ret, size_t *ret_len)
{
        const char *s = j->p + 1;
        const char *q;
        char *out, *o;

        /* The unescaped form is never longer than the escaped one. */
        for (q = s; q < j->end && *q != '"'; q++) {
                if ((unsigned char)*q < 0x20)
                        return -EBADMSG;
                if (*q == '\\')
                        q++;
        }
        if (q >= j->end)
                return -EBADMSG;
        out = malloc((size_t)(q - s) + 1);
        if (!out)
                return -ENOMEM;
        o = out;
        while (s < q) {
                unsigned cp, lo;

                if (*s != '\\') {
                        *o++ = *s++;
                        continue;
                }
                s++;
                switch (*s) {
                case '"': *o++ = '"'; s++; continue;
                case '\\': *o++ = '\\'; s++; continue;
                case '/': *o++ = '/'; s++; continue;
                case 'b': *o++ = '\b'; s++; continue;
                case 'f': *o++ = '\f'; s++; continue;
                case 'n': *o++ = '\n'; s++; continue;
                case 'r': *o++ = '\r'; s++; continue;
                case 't': *o++ = '\t'; s++; continue;
                case 'u': break;
                default: goto bad;
                }
                if (q - s < 5 || hex4(s + 1, &cp) < 0)
                        goto bad;
                s += 5;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 ||
                            lo < 0xDC00 || lo > 0xDFFF)
                                goto bad;
                        s += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                        goto bad;
                }
                o += utf8_put(o, cp);
        }
        *o = 0;
        j->p = q + 1;
        *ret = out;
        *ret_len = (size_t)(o - out);
        return 0;
bad:
        free(out);
        return -EBADMSG;
}

static int jp_number(struct jp *j, struct css_jval *v)
{
        const char *s = j->p, *q = s;
        bool integral = true;
        char buf[64];
        size_t n;

        if (q < j->end && *q == '-')
                q++;
        if (q >= j->end)
                return -EBADMSG;
        if (*q == '0') {
                q++;
        } else if (*q >= '1' && *q <= '9') {
                while (q < j->end && *q >= '0' && *q <= '9')
                        q++;
        } else {
                return -EBADMSG;
        }
        if (q < j->end && *q == '.') {
                integral = false;
                q++;
                if (q >= j->end || *q < '0' || *q > '9')
                        return -EBADMSG;
                while (q < j->end && *q >= '0' && *q <= '9')
                        q++;
        }
        if (q < j->end && (*q == 'e' || *q == 'E')) {
                integral = false;
                q++;
                if (q < j->end && (*q == '+' || *q == '-'))
                        q++;
                if (q >= j->end || *q < '0' || *q > '9')
                        return -EBADMSG;
                while (q < j->end && *q >= '0' && *q <= '9')
                        q++;
        }
        n = (size_t)(q - s);
        if (n >= sizeof(buf))
                integral = false;
        v->type = CSS_JNUM;
        if (n < sizeof(buf)) {
                memcpy(buf, s, n);
                buf[n] = 0;
        } else {
                /* A very long number: only its magnitude matters. */
                char *t = strndup(s, n);

                if (!t)
                        return -ENOMEM;
                v->num = strtod(t, NULL);
                free(t);
                j->p = q;
                return 0;
        }
        v->num = strtod(buf, NULL);
        if (integral) {
                char *e;

                errno = 0;
                v->i = strtoll(buf, &e, 10);
                v->is_int = errno == 0 && *e == 0;
        }
        j->p = q;
        return 0;
}

static int jp_lit(struct jp *j, const char *lit)
{
        size_t n = strlen(lit);

        if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
                return -EBADMSG;
        j->p += n;
        return 0;
}

/* Make room for one more item (and key) in a container node. */
static int jp_grow(struct css_jval *v, size_t *cap)
{
        struct css_jval *it;

        if (v->n < *cap)
                return 0;
        *cap = *cap ? *cap * 2 : 4;
        it = realloc(v->items, *cap * sizeof(*it));
        if (!it)
                return -ENOMEM;
        v->items = it;
        if (v->type == CSS_JOBJ) {
                char **k = realloc(v->keys, *cap * sizeof(*k));

                if (!k)
                        return -ENOMEM;
                v->keys = k;
        }
        return 0;
}

static int jp_container(struct jp *j, struct css_jval *v, bool obj)
{
        char close = obj ? '}' : ']';
        size_t cap = 0;
        int r;

        if (++j->depth > CSS_JSON_DEPTH)
                return -EBADMSG;
        v->type = obj ? CSS_JOBJ : CSS_JARR;
        j->p++;
        jp_ws(j);
        if (j->p < j->end && *j->p == close) {
                j->p++;
                j->depth--;
                return 0;
        }
        for (;;) {
                char *key = NULL;
                size_t klen;

                jp_ws(j);
                if (obj) {
                        if (j->p >= j->end || *j->p != '"')
                                return -EBADMSG;
                        r = jp_string(j, &key, &klen);
                        if (r < 0)
                                return r;
                        jp_ws(j);
                        if (j->p >= j->end || *j->p != ':') {
                                free(key);
                                return -EBADMSG;
                        }
                        j->p++;
                }
                r = jp_grow(v, &cap);
                if (r < 0) {
                        free(key);
                        return r;
                }
                memset(&v->items[v->n], 0, sizeof(v->items[v->n]));
                r = jp_value(j, &v->items[v->n]);
                if (r < 0) {
                        jval_clear(&v->items[v->n]);
                        free(key);
                        return r;
                }
                if (obj)
                        v->keys[v->n] = key;
                v->n++;
                jp_ws(j);
                if (j->p < j->end && *j->p == ',') {
                        j->p++;
                        continue;
                }
                if (j->p < j->end && *j->p == close) {
                        j->p++;
                        j->depth--;
                        return 0;
                }
                return -EBADMSG;
        }
}

static int jp_value(struct jp *j, struct css_jval *v)
{
        jp_ws(j);
        if (j->p >= j->end)
                return -EBADMSG;
        switch (*j->p) {
        case '{':
                return jp_container(j, v, true);
        case '[':
                return jp_container(j, v, false);
        case '"':
                v->type = CSS_JSTR;
                return jp_string(j, &v->str, &v->len);
        case 't':
                v->type = CSS_JBOOL;
                v->b = true;
                return jp_lit(j, "true");
        case 'f':
                v->type = CSS_JBOOL;
                return jp_lit(j, "false");
        case 'n':
                v->type = CSS_JNULL;
                return jp_lit(j, "null");
        default:
                return jp_number(j, v);
        }
}

/* Free what a node owns (not the node itself). */
static void jval_clear(struct css_jval *v)
{
        for (size_t k = 0; k < v->n; k++) {
                jval_clear(&v->items[k]);
                if (v->keys)
                        free(v->keys[k]);
        }
        free(v->items);
        free(v->keys);
        free(v->str);
        memset(v, 0, sizeof(*v));
}

int css_json_parse(const char *text, size_t len, struct css_jval **ret)
{
        struct jp j = { .p = text, .end = text + len, .depth = 0 };
        struct css_jval *v = calloc(1, sizeof(*v));
        int r;

        if (!v)
                return -ENOMEM;
        r = jp_value(&j, v);
        if (r == 0) {
                jp_ws(&j);
                if (j.p != j.end)
                        r = -EBADMSG;
        }
        if (r < 0) {
                jval_clear(v);
                free(v);
                return r;
        }
        *ret = v;
        return 0;
}

void css_json_free(struct css_jval *v)
{
        if (!v)
                return;
        jval_clear(v);
        free(v);
}

const struct css_jval *css_json_get(const struct css_jval *obj, const char *key)
{
        if (!obj || obj->type != CSS_JOBJ)
                return NULL;
        for (size_t k = 0; k < obj->n; k++)
                if (!strcmp(obj->keys[k], key))
                        return &obj->items[k];
        return NULL;
}

bool css_json_uint(const struct css_jval *v, uint64_t max, uint64_t *ret)
{
        if (!v || v->type != CSS_JNUM || !v->is_int || v->i < 0 || (uint64_t)v->i > max)
                return false;
        *ret = (uint64_t)v->i;
        return true;
}
