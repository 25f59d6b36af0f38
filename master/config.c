/*
 * config.c: the YAML config file -> mp_conf_t (see config.h).
 *
 * Loading runs in two steps. First libyaml's event parser builds a small
 * node tree in a temporary pool; every node keeps its start and end marks,
 * so any later check can name the line and column of the offending value.
 * Aliases are rejected while the tree is built, which keeps the tree a tree
 * (no shared or cyclic nodes) and every error position unambiguous.
 *
 * Then the tree is walked against tables of key records (name, expected
 * node type, handler, offset of the field), in the manner of h2o's
 * configurator: the generic walker reports unknown, duplicate and missing
 * keys and wrong node types; a handler only converts one value. Adding a
 * key is adding a row and, at most, a handler.
 *
 * Every allocation of the result is made in conf->pool, and PCRE2 codes are
 * freed by cleanups on it, so one mp_pool_destroy() undoes a load, failed
 * or not. The first error wins: it is written to the caller's buffer and
 * every caller returns MP_ERROR up to mp_conf_load().
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/pool.h"
#include "master/config.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define CONF_POOL_SIZE 16384
#define CONF_DICT_MIN 16384
#define CONF_LUA_NOREF (-2)

/*
 * A real config nests about eight levels deep. The cap matters because
 * libyaml's scanner is quadratic in flow nesting: 200,000 "[" take minutes
 * to reject, and stopping at the first event past the cap avoids that.
 */
#define CONF_MAX_DEPTH 64

typedef enum {
    NODE_SCALAR = 0,
    NODE_SEQUENCE,
    NODE_MAPPING
} node_type_t;

/* A YAML node of the temporary tree. */
typedef struct node_s {
    node_type_t type;
    yaml_scalar_style_t style;
    char *value; /* scalars: NUL-terminated (may hold NULs; see len) */
    size_t len;
    yaml_mark_t start;
    yaml_mark_t end;
    struct node_s **items; /* sequence items; mapping: key, value, ... */
    size_t nitems;
    size_t cap;
    struct node_s *parent;
} node_t;

/* A listen address of one server, before addresses are merged. */
typedef struct {
    struct sockaddr_storage sa;
    socklen_t socklen;
    char text[64];
    const node_t *node;
} listen_build_t;

/* What a server needs while it is parsed but the snapshot does not keep. */
typedef struct {
    mp_conf_server_t *srv;
    listen_build_t *listens;
    size_t nlistens;
    const node_t **name_nodes; /* parallel to srv->names */
} server_build_t;

typedef struct {
    mp_conf_t *conf;
    mp_pool_t *tmp;      /* the node tree and build records */
    const char *path;    /* the file as given, for messages */
    const char *base;    /* its basename, for chunk names */
    char *err;
    size_t errlen;
    int failed;
    int depth;           /* of the collection being built */
} conf_ctx_t;

typedef struct conf_key_s conf_key_t;

typedef int (*conf_key_cb)(conf_ctx_t *ctx, const conf_key_t *key,
                           const node_t *value, void *base);

typedef enum {
    EXPECT_ANY = 0, /* the handler checks the node type itself */
    EXPECT_MAPPING,
    EXPECT_SEQUENCE
} expect_t;

#define KEY_REQUIRED 0x1

/* One config key: a row of a section's table. */
struct conf_key_s {
    const char *name;
    expect_t expect;
    unsigned flags;
    conf_key_cb handler;
    size_t offset;      /* of the field the handler sets, in base */
    const void *data;   /* a sub-table for sections */
    int64_t min;        /* bounds for numbers; min for sizes */
    int64_t max;
};

#define KEY_END { NULL, EXPECT_ANY, 0, NULL, 0, NULL, 0, 0 }


/* ---- errors ------------------------------------------------------------ */

static int
error_at(conf_ctx_t *ctx, size_t line, size_t column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


static int
error_at(conf_ctx_t *ctx, size_t line, size_t column, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ctx->failed || ctx->errlen == 0) {
        ctx->failed = 1;
        return MP_ERROR;
    }
    ctx->failed = 1;
    n = snprintf(ctx->err, ctx->errlen, "%s:%zu:%zu: ", ctx->path, line,
                 column);
    if (n >= 0 && (size_t) n < ctx->errlen) {
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - (size_t) n, fmt, ap);
        va_end(ap);
    }
    return MP_ERROR;
}


/* The message of an error at node; libyaml marks are 0-based. */
#define node_error(ctx, node, ...)                                            \
    error_at((ctx), (node)->start.line + 1, (node)->start.column + 1,         \
             __VA_ARGS__)


/* ---- the node tree ----------------------------------------------------- */

static int
is_null(const node_t *n)
{
    if (n->type != NODE_SCALAR || n->style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    return n->len == 0 || strcmp(n->value, "~") == 0
           || strcmp(n->value, "null") == 0 || strcmp(n->value, "Null") == 0
           || strcmp(n->value, "NULL") == 0;
}


static int
is_string(const node_t *n)
{
    return n->type == NODE_SCALAR && !is_null(n);
}


static int
scalar_is(const node_t *n, const char *s)
{
    return n->type == NODE_SCALAR && n->len == strlen(s)
           && memcmp(n->value, s, n->len) == 0;
}


/* The value of key name in mapping m, or NULL. */
static const node_t *
mapping_get(const node_t *m, const char *name)
{
    size_t i;

    if (m->type != NODE_MAPPING) {
        return NULL;
    }
    for (i = 0; i + 1 < m->nitems; i += 2) {
        if (scalar_is(m->items[i], name)) {
            return m->items[i + 1];
        }
    }
    return NULL;
}


static node_t *
node_create(conf_ctx_t *ctx, node_type_t type, const yaml_event_t *ev)
{
    node_t *n = mp_pool_calloc(ctx->tmp, sizeof(node_t));

    n->type = type;
    n->start = ev->start_mark;
    n->end = ev->end_mark;
    if (type == NODE_SCALAR) {
        n->style = ev->data.scalar.style;
        n->len = ev->data.scalar.length;
        n->value = mp_pool_strndup(ctx->tmp, (char *) ev->data.scalar.value,
                                   n->len);
    }
    return n;
}


static void
node_append(conf_ctx_t *ctx, node_t *parent, node_t *child)
{
    node_t **items;

    if (parent->nitems == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 8;
        items = mp_pool_alloc(ctx->tmp, parent->cap * sizeof(node_t *));
        if (parent->nitems) {
            memcpy(items, parent->items, parent->nitems * sizeof(node_t *));
        }
        parent->items = items;
    }
    parent->items[parent->nitems++] = child;
}


/*
 * The mark of byte offset off of f. libyaml's reader decodes ahead of the
 * scanner, so for an encoding error it reports only an offset, and its
 * current mark lags behind; counting lines again is exact.
 */
static yaml_mark_t
offset_mark(FILE *f, size_t off)
{
    yaml_mark_t m = { 0, 0, 0 };
    int c;

    if (fseek(f, 0, SEEK_SET) != 0) {
        return m;
    }
    for (; m.index < off && (c = getc(f)) != EOF; m.index++) {
        if (c == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}


static int
yaml_error(conf_ctx_t *ctx, const yaml_parser_t *parser, FILE *f)
{
    yaml_mark_t m = parser->problem_mark;
    const char *problem = parser->problem ? parser->problem : "unknown error";

    if (parser->error == YAML_MEMORY_ERROR) {
        return error_at(ctx, 1, 1, "YAML parser out of memory");
    }
    if (parser->error == YAML_READER_ERROR) {
        m = offset_mark(f, parser->problem_offset);
    }
    if (parser->context) {
        return error_at(ctx, m.line + 1, m.column + 1,
                        "YAML syntax error: %s (%s at line %zu, column %zu)",
                        problem, parser->context,
                        parser->context_mark.line + 1,
                        parser->context_mark.column + 1);
    }
    return error_at(ctx, m.line + 1, m.column + 1, "YAML syntax error: %s",
                    problem);
}


/* Feeds one parser event into the tree; sets *done at the stream's end. */
static int
tree_event(conf_ctx_t *ctx, const yaml_event_t *ev, node_t **root,
           node_t **cur, int *ndocs, int *done)
{
    node_t *n;

    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return MP_OK;
    case YAML_DOCUMENT_START_EVENT:
        if ((*ndocs)++ > 0) {
            return error_at(ctx, ev->start_mark.line + 1,
                            ev->start_mark.column + 1,
                            "a config file holds one YAML document only");
        }
        return MP_OK;
    case YAML_ALIAS_EVENT:
        return error_at(ctx, ev->start_mark.line + 1,
                        ev->start_mark.column + 1,
                        "YAML aliases are not supported");
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        n = node_create(ctx,
                        ev->type == YAML_SCALAR_EVENT ? NODE_SCALAR
                        : ev->type == YAML_SEQUENCE_START_EVENT
                            ? NODE_SEQUENCE
                            : NODE_MAPPING,
                        ev);
        if (*cur) {
            node_append(ctx, *cur, n);
        } else {
            *root = n;
        }
        if (n->type != NODE_SCALAR) {
            if (++ctx->depth > CONF_MAX_DEPTH) {
                return node_error(ctx, n,
                                  "YAML nesting is deeper than %d levels",
                                  CONF_MAX_DEPTH);
            }
            n->parent = *cur;
            *cur = n;
        }
        return MP_OK;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        (*cur)->end = ev->end_mark;
        *cur = (*cur)->parent;
        ctx->depth--;
        return MP_OK;
    default:
        return MP_OK;
    }
}


/*
 * Builds the tree of the file's single document. The walk that follows
 * only descends into keys it knows, so its recursion depth is bounded by
 * the schema, however deeply a hostile file nests.
 */
static int
tree_load(conf_ctx_t *ctx, FILE *f, node_t **root)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    node_t *cur = NULL;
    int ndocs = 0, done = 0, rc = MP_OK;

    *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        return error_at(ctx, 1, 1, "YAML parser out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    while (!done && rc == MP_OK) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = yaml_error(ctx, &parser, f);
            break;
        }
        rc = tree_event(ctx, &ev, root, &cur, &ndocs, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}


/* ---- scalars ----------------------------------------------------------- */

int
mp_conf_parse_size(const char *s, size_t len, size_t *out)
{
    size_t v = 0, mult = 1, i;

    if (len == 0) {
        return MP_ERROR;
    }
    switch (s[len - 1]) {
    case 'k':
    case 'K':
        mult = 1024;
        len--;
        break;
    case 'm':
    case 'M':
        mult = 1024 * 1024;
        len--;
        break;
    case 'g':
    case 'G':
        mult = 1024 * 1024 * 1024;
        len--;
        break;
    }
    if (len == 0) {
        return MP_ERROR;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return MP_ERROR;
        }
        if (v > (SIZE_MAX - (size_t) (s[i] - '0')) / 10) {
            return MP_ERROR;
        }
        v = v * 10 + (size_t) (s[i] - '0');
    }
    if (v > SIZE_MAX / mult) {
        return MP_ERROR;
    }
    *out = v * mult;
    return MP_OK;
}


/* Reads digits at s[*i..len) into *v; MP_ERROR on none or overflow. */
static int
parse_digits(const char *s, size_t len, size_t *i, int64_t *v)
{
    size_t start = *i;

    *v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (*v > (INT64_MAX - (s[*i] - '0')) / 10) {
            return MP_ERROR;
        }
        *v = *v * 10 + (s[*i] - '0');
        (*i)++;
    }
    return *i > start ? MP_OK : MP_ERROR;
}


int
mp_conf_parse_duration(const char *s, size_t len, mp_msec_t *out)
{
    /* In decreasing order: a part must use a smaller unit than the last. */
    static const struct {
        const char *name;
        int64_t msec;
    } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 },
        { "s", 1000 },     { "ms", 1 },
    };
    int64_t total = 0, v;
    size_t i = 0, u, ulen;
    int last = -1;

    if (parse_digits(s, len, &i, &v) != MP_OK) {
        return MP_ERROR;
    }
    if (i == len) {
        if (v > INT64_MAX / 1000) {
            return MP_ERROR;
        }
        *out = v * 1000;
        return MP_OK;
    }
    for (;;) {
        for (u = mp_nelems(units); u-- > 0;) {
            ulen = strlen(units[u].name);
            if (len - i >= ulen && memcmp(s + i, units[u].name, ulen) == 0
                && (i + ulen == len || (s[i + ulen] >= '0'
                                        && s[i + ulen] <= '9'))) {
                break;
            }
        }
        if (u == (size_t) -1 || (int) u <= last) {
            return MP_ERROR;
        }
        last = (int) u;
        i += ulen;
        if (v > (INT64_MAX - total) / units[u].msec) {
            return MP_ERROR;
        }
        total += v * units[u].msec;
        if (i == len) {
            break;
        }
        if (parse_digits(s, len, &i, &v) != MP_OK || i == len) {
            return MP_ERROR;
        }
    }
    *out = total;
    return MP_OK;
}


/* A NUL-terminated absolute path for s: as is, or under conf->prefix. */
static const char *
resolve_path(conf_ctx_t *ctx, const char *s, size_t len)
{
    size_t plen;
    char *p;

    if (len > 0 && s[0] == '/') {
        return mp_pool_strndup(ctx->conf->pool, s, len);
    }
    while (len >= 2 && s[0] == '.' && s[1] == '/') {
        s += 2;
        len -= 2;
        while (len > 0 && s[0] == '/') {
            s++;
            len--;
        }
    }
    plen = strlen(ctx->conf->prefix);
    p = mp_pool_nalloc(ctx->conf->pool, plen + len + 1);
    memcpy(p, ctx->conf->prefix, plen);
    memcpy(p + plen, s, len);
    p[plen + len] = '\0';
    return p;
}


static void
set_pos(conf_ctx_t *ctx, mp_conf_pos_t *pos, const node_t *n)
{
    pos->file = ctx->conf->file;
    pos->line = (int) n->start.line + 1;
    pos->column = (int) n->start.column + 1;
}


/* Checks that n is a non-empty scalar without NUL bytes. */
static int
want_string(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            const char *what)
{
    if (!is_string(n) || n->len == 0) {
        return node_error(ctx, n, "expected %s for \"%s\"", what, key->name);
    }
    if (strlen(n->value) != n->len) {
        return node_error(ctx, n, "unexpected NUL character in \"%s\"",
                          key->name);
    }
    return MP_OK;
}


static int
get_int(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n, int *out)
{
    int64_t v;
    size_t i = 0;

    if (want_string(ctx, key, n, "a number") != MP_OK) {
        return MP_ERROR;
    }
    if (parse_digits(n->value, n->len, &i, &v) != MP_OK || i != n->len
        || v < key->min || v > key->max) {
        return node_error(ctx, n,
                          "invalid number \"%s\" for \"%s\": expected an "
                          "integer from %lld to %lld",
                          n->value, key->name, (long long) key->min,
                          (long long) key->max);
    }
    *out = (int) v;
    return MP_OK;
}


static int
get_size(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
         size_t *out)
{
    if (want_string(ctx, key, n, "a size") != MP_OK) {
        return MP_ERROR;
    }
    if (mp_conf_parse_size(n->value, n->len, out) != MP_OK) {
        return node_error(ctx, n,
                          "invalid size \"%s\" for \"%s\": expected a number "
                          "of bytes with an optional k, m or g suffix",
                          n->value, key->name);
    }
    if (*out < (size_t) key->min) {
        return node_error(ctx, n,
                          "size \"%s\" for \"%s\" is too small: expected at "
                          "least %lld bytes",
                          n->value, key->name, (long long) key->min);
    }
    return MP_OK;
}


/* ---- the generic walker ------------------------------------------------ */

static int
check_type(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n)
{
    if (key->expect == EXPECT_MAPPING && n->type != NODE_MAPPING
        && !is_null(n)) {
        return node_error(ctx, n, "expected a mapping for \"%s\"", key->name);
    }
    if (key->expect == EXPECT_SEQUENCE && n->type != NODE_SEQUENCE
        && !is_null(n)) {
        return node_error(ctx, n, "expected a sequence for \"%s\"",
                          key->name);
    }
    return MP_OK;
}


/*
 * Applies the keys of mapping m (or of a null, read as empty) to base
 * through the table keys. where ("in \"cluster\"", "at the top level")
 * completes the messages about unknown, duplicate and missing keys.
 */
static int
parse_mapping(conf_ctx_t *ctx, const node_t *m, const conf_key_t *keys,
              void *base, const char *where)
{
    const conf_key_t *key;
    const node_t *k;
    uint64_t seen = 0;
    size_t i, r;

    for (i = 0; i + 1 < m->nitems; i += 2) {
        k = m->items[i];
        if (k->type != NODE_SCALAR) {
            return node_error(ctx, k, "expected a string key %s", where);
        }
        for (r = 0; keys[r].name && !scalar_is(k, keys[r].name); r++) {
            /* void */
        }
        key = &keys[r];
        if (key->name == NULL) {
            return node_error(ctx, k, "unknown key \"%s\" %s", k->value,
                              where);
        }
        if (seen & ((uint64_t) 1 << r)) {
            return node_error(ctx, k, "duplicate key \"%s\" %s", k->value,
                              where);
        }
        seen |= (uint64_t) 1 << r;
        if (check_type(ctx, key, m->items[i + 1]) != MP_OK
            || key->handler(ctx, key, m->items[i + 1], base) != MP_OK) {
            return MP_ERROR;
        }
    }
    for (r = 0; keys[r].name; r++) {
        if ((keys[r].flags & KEY_REQUIRED) && !(seen & ((uint64_t) 1 << r))) {
            return node_error(ctx, m, "missing required key \"%s\" %s",
                              keys[r].name, where);
        }
    }
    return MP_OK;
}


/* ---- key handlers ------------------------------------------------------ */

#define FIELD(base, key, type) ((type *) ((char *) (base) + (key)->offset))


static int
set_section(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            void *base)
{
    char where[64];

    snprintf(where, sizeof(where), "in \"%s\"", key->name);
    return parse_mapping(ctx, n, key->data, base, where);
}


static int
set_string(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
           void *base)
{
    /* Unlike paths and numbers, a string may be empty: package_cpath: "" */
    if (n->len == 0 && is_string(n)) {
        *FIELD(base, key, const char *) = "";
        return MP_OK;
    }
    if (want_string(ctx, key, n, "a string") != MP_OK) {
        return MP_ERROR;
    }
    *FIELD(base, key, const char *) =
        mp_pool_strndup(ctx->conf->pool, n->value, n->len);
    return MP_OK;
}


static int
set_path(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n, void *base)
{
    if (want_string(ctx, key, n, "a path") != MP_OK) {
        return MP_ERROR;
    }
    *FIELD(base, key, const char *) = resolve_path(ctx, n->value, n->len);
    return MP_OK;
}


static int
set_int(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n, void *base)
{
    return get_int(ctx, key, n, FIELD(base, key, int));
}


static int
set_workers(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            void *base)
{
    long cpus;

    if (!scalar_is(n, "auto")) {
        return set_int(ctx, key, n, base);
    }
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *FIELD(base, key, int) = (int) mp_max(1, mp_min(cpus, key->max));
    return MP_OK;
}


static int
set_size(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n, void *base)
{
    return get_size(ctx, key, n, FIELD(base, key, size_t));
}


static int
set_duration(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
             void *base)
{
    if (want_string(ctx, key, n, "a duration") != MP_OK) {
        return MP_ERROR;
    }
    if (mp_conf_parse_duration(n->value, n->len, FIELD(base, key, mp_msec_t))
        != MP_OK) {
        return node_error(ctx, n,
                          "invalid duration \"%s\" for \"%s\": expected "
                          "seconds or parts like 500ms, 30s, 5m, 1h, 1d, "
                          "1m30s",
                          n->value, key->name);
    }
    return MP_OK;
}


static int
set_level(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
          void *base)
{
    int level;

    if (want_string(ctx, key, n, "a log level") != MP_OK) {
        return MP_ERROR;
    }
    level = mp_log_level_parse(n->value);
    if (level < MP_LOG_EMERG) {
        return node_error(ctx, n,
                          "unknown log level \"%s\": expected debug, info, "
                          "notice, warn, error, crit, alert or emerg",
                          n->value);
    }
    *FIELD(base, key, int) = level;
    return MP_OK;
}


static int
set_error_log(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
              void *base)
{
    if (scalar_is(n, "stderr")) {
        *FIELD(base, key, const char *) = "stderr";
        return MP_OK;
    }
    return set_path(ctx, key, n, base);
}


static int
set_access_log(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
               void *base)
{
    if (scalar_is(n, "off")) {
        *FIELD(base, key, const char *) = NULL;
        return MP_OK;
    }
    return set_path(ctx, key, n, base);
}


/*
 * Reads a whole Lua file into the pool, NUL-terminated. It reads to EOF
 * rather than trusting st_size, so a file that grows meanwhile, or a FIFO,
 * still yields all its bytes.
 */
static int
read_source(conf_ctx_t *ctx, const char *path, const node_t *n, mp_str_t *out)
{
    size_t cap = 4096, len = 0;
    ssize_t got;
    char *buf;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return node_error(ctx, n,
                          "cannot read Lua file: open() \"%s\" failed "
                          "(%d: %s)",
                          path, errno, strerror(errno));
    }
    buf = mp_alloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = mp_realloc(buf, cap);
        }
        got = read(fd, buf + len, cap - len);
        if (got > 0) {
            len += (size_t) got;
        } else if (got == 0) {
            break;
        } else if (errno != EINTR) {
            node_error(ctx, n,
                       "cannot read Lua file: read() \"%s\" failed (%d: %s)",
                       path, errno, strerror(errno));
            free(buf);
            close(fd);
            return MP_ERROR;
        }
    }
    close(fd);
    out->data = mp_pool_strndup(ctx->conf->pool, buf, len);
    out->len = len;
    free(buf);
    return MP_OK;
}


static const conf_key_t handler_file_keys[] = {
    { "file", EXPECT_ANY, KEY_REQUIRED, set_path,
      offsetof(mp_conf_handler_t, path), NULL, 0, 0 },
    KEY_END,
};


/*
 * A Lua handler: inline code, or {file: path} read now. Chunk names follow
 * lua-nginx-module: "=content_by_lua(moonpool.yaml:12)" and "@/abs/path".
 */
static int
set_handler(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            void *base)
{
    mp_pool_t *pool = ctx->conf->pool;
    mp_conf_handler_t *h = mp_pool_calloc(pool, sizeof(mp_conf_handler_t));
    char where[64];
    size_t size;
    char *chunk;

    h->ref = CONF_LUA_NOREF;
    set_pos(ctx, &h->pos, n);
    if (n->type == NODE_MAPPING) {
        snprintf(where, sizeof(where), "in \"%s\"", key->name);
        if (parse_mapping(ctx, n, handler_file_keys, h, where) != MP_OK
            || read_source(ctx, h->path, mapping_get(n, "file"), &h->code)
                   != MP_OK) {
            return MP_ERROR;
        }
        size = strlen(h->path) + 2;
        chunk = mp_pool_nalloc(pool, size);
        snprintf(chunk, size, "@%s", h->path);
    } else {
        if (n->type != NODE_SCALAR || is_null(n)) {
            return node_error(ctx, n,
                              "expected Lua code or {file: path} for \"%s\"",
                              key->name);
        }
        h->code.data = mp_pool_strndup(pool, n->value, n->len);
        h->code.len = n->len;
        size = strlen(key->name) + strlen(ctx->base) + 48;
        chunk = mp_pool_nalloc(pool, size);
        snprintf(chunk, size, "=%s_by_lua(%s:%zu)", key->name, ctx->base,
                 n->start.line + 1);
    }
    h->chunk = chunk;
    *FIELD(base, key, mp_conf_handler_t *) = h;
    return MP_OK;
}


static int
set_dicts(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
          void *base)
{
    static const conf_key_t size_key = { "shared_dicts", EXPECT_ANY, 0, NULL,
                                         0, NULL, CONF_DICT_MIN, 0 };
    mp_conf_t *conf = base;
    mp_conf_dict_t *d;
    const node_t *k;
    size_t i, j;

    (void) key;
    conf->dicts = mp_pool_calloc(conf->pool,
                                 (n->nitems / 2 + 1) * sizeof(mp_conf_dict_t));
    for (i = 0; i + 1 < n->nitems; i += 2) {
        k = n->items[i];
        if (want_string(ctx, &size_key, k, "a dict name") != MP_OK) {
            return MP_ERROR;
        }
        for (j = 0; j < conf->ndicts; j++) {
            if (conf->dicts[j].name.len == k->len
                && memcmp(conf->dicts[j].name.data, k->value, k->len) == 0) {
                return node_error(ctx, k, "duplicate shared dict \"%s\"",
                                  k->value);
            }
        }
        d = &conf->dicts[conf->ndicts];
        d->name.data = mp_pool_strndup(conf->pool, k->value, k->len);
        d->name.len = k->len;
        set_pos(ctx, &d->pos, k);
        if (get_size(ctx, &size_key, n->items[i + 1], &d->size) != MP_OK) {
            return MP_ERROR;
        }
        conf->ndicts++;
    }
    return MP_OK;
}


/* ---- servers: listen, names ------------------------------------------- */

static int
sockaddr_equal(const struct sockaddr_storage *a,
               const struct sockaddr_storage *b)
{
    const struct sockaddr_in *a4 = (const void *) a, *b4 = (const void *) b;
    const struct sockaddr_in6 *a6 = (const void *) a, *b6 = (const void *) b;

    if (a->ss_family != b->ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        return a4->sin_port == b4->sin_port
               && a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    }
    return a6->sin6_port == b6->sin6_port
           && memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof(a6->sin6_addr))
                  == 0;
}


/* Completes an address whose IP is set: family, port, length and text. */
static void
finish_listen(listen_build_t *lb, int v6, int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *) &lb->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &lb->sa;
    char buf[INET6_ADDRSTRLEN];

    if (v6) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        lb->socklen = sizeof(struct sockaddr_in6);
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
        snprintf(lb->text, sizeof(lb->text), "[%s]:%d", buf, port);
    } else {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        lb->socklen = sizeof(struct sockaddr_in);
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
        snprintf(lb->text, sizeof(lb->text), "%s:%d", buf, port);
    }
}


/*
 * "127.0.0.1:8080", "[::1]:8080", "*:8080" or a bare "8080". Host names
 * are refused on purpose: resolving them at load time would make the
 * config depend on DNS at every reload.
 */
static int
parse_listen(conf_ctx_t *ctx, const node_t *n, listen_build_t *lb)
{
    struct sockaddr_in *sin = (struct sockaddr_in *) &lb->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &lb->sa;
    const char *s = n->value, *colon, *port;
    char host[INET6_ADDRSTRLEN + 1];
    size_t hlen, i = 0;
    int64_t p;
    int v6;

    memset(lb, 0, sizeof(*lb));
    lb->node = n;
    if (strspn(s, "0123456789") == n->len) {
        colon = NULL;
        port = s;
        strcpy(host, "0.0.0.0");
        v6 = 0;
    } else {
        v6 = s[0] == '[';
        colon = v6 ? strstr(s, "]:") : strrchr(s, ':');
        if (colon == NULL || colon == s) {
            return node_error(ctx, n,
                              "invalid listen \"%s\": expected \"IP:PORT\", "
                              "\"[IPV6]:PORT\", \"*:PORT\" or \"PORT\"",
                              s);
        }
        port = colon + 1 + v6;
        hlen = (size_t) (colon - s) - v6;
        if (hlen >= sizeof(host)) {
            hlen = sizeof(host) - 1;
        }
        memcpy(host, s + v6, hlen);
        host[hlen] = '\0';
        if (!v6 && strcmp(host, "*") == 0) {
            strcpy(host, "0.0.0.0");
        }
    }
    if (parse_digits(port, strlen(port), &i, &p) != MP_OK
        || i != strlen(port) || p < 1 || p > 65535) {
        return node_error(ctx, n,
                          "invalid listen \"%s\": expected a port from 1 to "
                          "65535",
                          s);
    }
    if (v6 ? inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1
           : inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        return node_error(ctx, n,
                          "invalid listen \"%s\": \"%s\" is not an IP%s "
                          "address%s",
                          s, host, v6 ? "v6" : "v4",
                          v6 || strchr(host, ':') == NULL
                              ? ""
                              : " (write IPv6 addresses as [ADDR]:PORT)");
    }
    finish_listen(lb, v6, (int) p);
    return MP_OK;
}


/*
 * The items of a "string or sequence of strings" value: n's items, or n
 * itself through one[0]. Returns the count, or 0 after an error.
 */
static size_t
string_list(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            const node_t *const **items, const node_t **one)
{
    size_t i;

    if (n->type == NODE_SEQUENCE) {
        if (n->nitems == 0) {
            node_error(ctx, n, "expected at least one value for \"%s\"",
                       key->name);
            return 0;
        }
        for (i = 0; i < n->nitems; i++) {
            if (want_string(ctx, key, n->items[i], "a string") != MP_OK) {
                return 0;
            }
        }
        *items = (const node_t *const *) n->items;
        return n->nitems;
    }
    if (want_string(ctx, key, n, "a string or a sequence") != MP_OK) {
        return 0;
    }
    one[0] = n;
    *items = one;
    return 1;
}


static int
set_listen(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
           void *base)
{
    server_build_t *b = base;
    const node_t *const *items;
    const node_t *one[1];
    size_t count, i, j;

    count = string_list(ctx, key, n, &items, one);
    if (count == 0) {
        return MP_ERROR;
    }
    b->listens = mp_pool_calloc(ctx->tmp, count * sizeof(listen_build_t));
    for (i = 0; i < count; i++) {
        if (parse_listen(ctx, items[i], &b->listens[i]) != MP_OK) {
            return MP_ERROR;
        }
        for (j = 0; j < i; j++) {
            if (sockaddr_equal(&b->listens[j].sa, &b->listens[i].sa)) {
                return node_error(ctx, items[i], "duplicate listen \"%s\"",
                                  b->listens[i].text);
            }
        }
        b->nlistens++;
    }
    return MP_OK;
}


/* "1.2.3.4", "1.2.3.4:53", "::1" or "[::1]:53". */
static int
resolver_address_ok(const char *s)
{
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    const char *colon, *end, *port = NULL;
    size_t n;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            return 0;
        }
        n = (size_t) (end - s - 1);
        s++;
        port = end[1] == ':' ? end + 2 : NULL;
    } else {
        colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            n = (size_t) (colon - s);
            port = colon + 1;
        } else {
            n = strlen(s);
        }
    }
    if (n == 0 || n >= sizeof(host)) {
        return 0;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (inet_pton(AF_INET, host, addr) != 1
        && inet_pton(AF_INET6, host, addr) != 1) {
        return 0;
    }
    if (port != NULL) {
        char *e;
        long v = strtol(port, &e, 10);

        if (*port == '\0' || *e != '\0' || v < 1 || v > 65535) {
            return 0;
        }
    }
    return 1;
}


/*
 * lua.resolver: nameservers as "ip", "ip:port" or "[ipv6]:port", one or a
 * sequence. Kept as written (evdns reads that form); numeric only, since a
 * nameserver cannot be found by name.
 */
static int
set_resolver(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
             void *base)
{
    const node_t *const *items;
    const node_t *one[1];
    const char **out;
    size_t count, i;

    count = string_list(ctx, key, n, &items, one);
    if (count == 0) {
        return MP_ERROR;
    }
    out = mp_pool_calloc(ctx->conf->pool, count * sizeof(char *));
    for (i = 0; i < count; i++) {
        if (!resolver_address_ok(items[i]->value)) {
            return node_error(ctx, items[i],
                              "invalid resolver \"%s\": expected an IP "
                              "address with an optional port",
                              items[i]->value);
        }
        out[i] = mp_pool_strndup(ctx->conf->pool, items[i]->value,
                                 items[i]->len);
    }
    *FIELD(base, key, const char **) = out;
    ((mp_conf_t *) base)->lua.nresolvers = count; /* lua keys: base = conf */
    return MP_OK;
}


/* "example.com", "*.example.com" or "www.example.*", lowercased. */
static int
check_name(conf_ctx_t *ctx, const node_t *n, char *name, size_t len)
{
    size_t i, stars = 0;
    int bad = 0;

    for (i = 0; i < len; i++) {
        name[i] = (char) tolower((unsigned char) name[i]);
        stars += name[i] == '*';
        bad |= isspace((unsigned char) name[i]) || name[i] == '/'
               || name[i] == ':';
    }
    if (bad) {
        /* void: reported below */
    } else if (stars == 0
        || (stars == 1 && len > 2
            && ((name[0] == '*' && name[1] == '.')
                || (name[len - 1] == '*' && name[len - 2] == '.')))) {
        return MP_OK;
    }
    return node_error(ctx, n,
                      "invalid server name \"%s\": expected \"example.com\", "
                      "\"*.example.com\" or \"www.example.*\"",
                      n->value);
}


static int
set_names(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
          void *base)
{
    server_build_t *b = base;
    const node_t *const *items;
    const node_t *one[1];
    mp_str_t *name;
    size_t count, i;

    count = string_list(ctx, key, n, &items, one);
    if (count == 0) {
        return MP_ERROR;
    }
    b->srv->names = mp_pool_calloc(ctx->conf->pool, count * sizeof(mp_str_t));
    b->name_nodes = mp_pool_calloc(ctx->tmp, count * sizeof(node_t *));
    for (i = 0; i < count; i++) {
        name = &b->srv->names[i];
        name->len = items[i]->len;
        name->data = mp_pool_strndup(ctx->conf->pool, items[i]->value,
                                     name->len);
        if (check_name(ctx, items[i], name->data, name->len) != MP_OK) {
            return MP_ERROR;
        }
        b->name_nodes[i] = items[i];
        b->srv->nnames++;
    }
    return MP_OK;
}


static const conf_key_t tls_keys[] = {
    { "certificate", EXPECT_ANY, KEY_REQUIRED, set_path,
      offsetof(mp_conf_server_t, tls_certificate), NULL, 0, 0 },
    { "key", EXPECT_ANY, KEY_REQUIRED, set_path,
      offsetof(mp_conf_server_t, tls_key), NULL, 0, 0 },
    KEY_END,
};


static int
set_tls(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n, void *base)
{
    server_build_t *b = base;

    (void) key;
    return parse_mapping(ctx, n, tls_keys, b->srv, "in \"tls\"");
}


/* ---- locations --------------------------------------------------------- */

static void
free_regex(void *data)
{
    pcre2_code_free(data);
}


/*
 * The column of byte off of a scalar's value, when the source spells the
 * value byte for byte on one line (plain, or quoted without escapes);
 * otherwise the column of the value itself.
 */
static size_t
value_column(const node_t *n, size_t off)
{
    size_t raw = n->end.index - n->start.index;
    int quoted = n->style == YAML_SINGLE_QUOTED_SCALAR_STYLE
                 || n->style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;

    if (n->start.line == n->end.line
        && ((n->style == YAML_PLAIN_SCALAR_STYLE && raw == n->len)
            || (quoted && raw == n->len + 2))) {
        return n->start.column + 1 + (size_t) quoted + off;
    }
    return n->start.column + 1;
}


static int
compile_regex(conf_ctx_t *ctx, const node_t *n, mp_conf_location_t *loc)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off;
    pcre2_code *re;
    uint32_t options = 0;
    int code;

    if (loc->kind == MP_MATCH_REGEX_ICASE) {
        options |= PCRE2_CASELESS;
    }
    re = pcre2_compile((PCRE2_SPTR) loc->pattern.data, loc->pattern.len,
                       options, &code, &off, NULL);
    if (re == NULL) {
        pcre2_get_error_message(code, msg, sizeof(msg));
        return error_at(ctx, n->start.line + 1,
                        value_column(n, n->len - loc->pattern.len + off),
                        "invalid regex \"%s\": %s at offset %zu",
                        loc->pattern.data, (char *) msg, (size_t) off);
    }
    mp_pool_cleanup_add(ctx->conf->pool, free_regex, re);
    /* Without JIT (unsupported CPU, no executable memory) PCRE2 interprets. */
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    loc->re = re;
    return MP_OK;
}


static int
set_match(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
          void *base)
{
    static const struct {
        const char *mod;
        mp_match_kind_t kind;
    } mods[] = {
        { "^~", MP_MATCH_PREFIX_STOP }, { "~*", MP_MATCH_REGEX_ICASE },
        { "~", MP_MATCH_REGEX },        { "=", MP_MATCH_EXACT },
    };
    mp_conf_location_t *loc = base;
    const char *p = n->value;
    size_t i, mlen;

    if (want_string(ctx, key, n, "a string") != MP_OK) {
        return MP_ERROR;
    }
    loc->kind = MP_MATCH_PREFIX;
    for (i = 0; i < mp_nelems(mods); i++) {
        mlen = strlen(mods[i].mod);
        if (strncmp(p, mods[i].mod, mlen) == 0) {
            loc->kind = mods[i].kind;
            p += mlen;
            p += strspn(p, " \t");
            break;
        }
    }
    loc->pattern.len = n->len - (size_t) (p - n->value);
    loc->pattern.data = mp_pool_strndup(ctx->conf->pool, p,
                                        loc->pattern.len);
    if (loc->kind == MP_MATCH_REGEX || loc->kind == MP_MATCH_REGEX_ICASE) {
        if (loc->pattern.len == 0) {
            return node_error(ctx, n, "invalid match \"%s\": expected a "
                              "regex after the modifier", n->value);
        }
        return compile_regex(ctx, n, loc);
    }
    if (p[0] != '/') {
        return node_error(ctx, n,
                          "invalid match \"%s\": expected \"= /uri\", "
                          "\"^~ /prefix\", \"~ regex\", \"~* regex\" or "
                          "\"/prefix\"",
                          n->value);
    }
    return MP_OK;
}


#define PHASE_KEY(name, phase)                                                 \
    { name, EXPECT_ANY, 0, set_handler,                                        \
      offsetof(mp_conf_location_t, handlers) +                                 \
          (phase) * sizeof(mp_conf_handler_t *),                               \
      NULL, 0, 0 }

static const conf_key_t location_keys[] = {
    { "match", EXPECT_ANY, KEY_REQUIRED, set_match, 0, NULL, 0, 0 },
    PHASE_KEY("rewrite", MP_PHASE_REWRITE),
    PHASE_KEY("access", MP_PHASE_ACCESS),
    PHASE_KEY("content", MP_PHASE_CONTENT),
    PHASE_KEY("header_filter", MP_PHASE_HEADER_FILTER),
    PHASE_KEY("body_filter", MP_PHASE_BODY_FILTER),
    PHASE_KEY("log", MP_PHASE_LOG),
    KEY_END,
};


/* Prefix and ^~ prefix of the same string collide, as in nginx. */
static int
match_class(mp_match_kind_t kind)
{
    return kind == MP_MATCH_PREFIX_STOP ? MP_MATCH_PREFIX : (int) kind;
}


static int
set_locations(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
              void *base)
{
    mp_conf_server_t *srv = ((server_build_t *) base)->srv;
    mp_conf_location_t *loc, *prev;
    const node_t *item;
    size_t i, j;

    (void) key;
    srv->locations = mp_pool_calloc(ctx->conf->pool,
                                    (n->nitems + 1)
                                        * sizeof(mp_conf_location_t));
    for (i = 0; i < n->nitems; i++) {
        item = n->items[i];
        if (item->type != NODE_MAPPING) {
            return node_error(ctx, item, "expected a mapping for a location");
        }
        loc = &srv->locations[i];
        loc->index = (int) i;
        set_pos(ctx, &loc->pos, item);
        if (parse_mapping(ctx, item, location_keys, loc, "in a location")
            != MP_OK) {
            return MP_ERROR;
        }
        for (j = 0; j < i; j++) {
            prev = &srv->locations[j];
            if (match_class(prev->kind) == match_class(loc->kind)
                && prev->pattern.len == loc->pattern.len
                && memcmp(prev->pattern.data, loc->pattern.data,
                          loc->pattern.len) == 0) {
                return node_error(ctx, mapping_get(item, "match"),
                                  "duplicate location \"%s\" in a server",
                                  mapping_get(item, "match")->value);
            }
        }
        srv->nlocations++;
    }
    return MP_OK;
}


static const conf_key_t server_keys[] = {
    { "listen", EXPECT_ANY, KEY_REQUIRED, set_listen, 0, NULL, 0, 0 },
    { "server_names", EXPECT_ANY, 0, set_names, 0, NULL, 0, 0 },
    { "tls", EXPECT_MAPPING, 0, set_tls, 0, NULL, 0, 0 },
    { "locations", EXPECT_SEQUENCE, 0, set_locations, 0, NULL, 0, 0 },
    KEY_END,
};


/* ---- listeners over all servers --------------------------------------- */

/* The index of the listener for lb in conf->listens, added if new. */
static size_t
listen_slot(mp_conf_t *conf, const listen_build_t *lb)
{
    mp_conf_listen_t *ls;
    size_t i;

    for (i = 0; i < conf->nlistens; i++) {
        if (sockaddr_equal(&conf->listens[i].sa, &lb->sa)) {
            return i;
        }
    }
    ls = &conf->listens[conf->nlistens];
    memcpy(&ls->sa, &lb->sa, sizeof(lb->sa));
    ls->socklen = lb->socklen;
    memcpy(ls->text, lb->text, sizeof(ls->text));
    ls->fd = -1;
    return conf->nlistens++;
}


/*
 * Checks the servers sharing one listener: the same Host must not name two
 * of them, and one socket cannot be both plain and TLS.
 */
static int
check_shared_listen(conf_ctx_t *ctx, const mp_conf_listen_t *ls,
                    const server_build_t *builds, const node_t *const *nodes)
{
    const mp_conf_server_t *a, *b;
    const mp_str_t *na, *nb;
    size_t i, j, x, y;

    for (i = 0; i < ls->nservers; i++) {
        a = ls->servers[i];
        if ((a->tls_certificate == NULL)
            != (ls->servers[0]->tls_certificate == NULL)) {
            return node_error(ctx, nodes[i],
                              "listen \"%s\" is shared by servers with and "
                              "without tls",
                              ls->text);
        }
        for (x = 0; x < a->nnames; x++) {
            na = &a->names[x];
            for (j = 0; j <= i; j++) {
                b = ls->servers[j];
                for (y = 0; y < (j == i ? x : b->nnames); y++) {
                    nb = &b->names[y];
                    if (na->len == nb->len
                        && memcmp(na->data, nb->data, na->len) == 0) {
                        return node_error(
                            ctx, builds[a->index].name_nodes[x],
                            "duplicate server name \"%s\" on listen \"%s\"",
                            na->data, ls->text);
                    }
                }
            }
        }
    }
    return MP_OK;
}


static int
build_listens(conf_ctx_t *ctx, const server_build_t *builds, size_t n)
{
    mp_conf_t *conf = ctx->conf;
    const node_t ***nodes;
    size_t total = 0, i, j, slot;
    mp_conf_listen_t *ls;

    for (i = 0; i < n; i++) {
        total += builds[i].nlistens;
    }
    conf->listens = mp_pool_calloc(conf->pool,
                                   total * sizeof(mp_conf_listen_t));
    nodes = mp_pool_calloc(ctx->tmp, total * sizeof(node_t **));
    /* Two passes: count servers per listener, then fill in config order. */
    for (i = 0; i < n; i++) {
        for (j = 0; j < builds[i].nlistens; j++) {
            conf->listens[listen_slot(conf, &builds[i].listens[j])]
                .nservers++;
        }
    }
    for (i = 0; i < conf->nlistens; i++) {
        ls = &conf->listens[i];
        ls->servers = mp_pool_calloc(conf->pool,
                                     ls->nservers * sizeof(mp_conf_server_t *));
        nodes[i] = mp_pool_calloc(ctx->tmp, ls->nservers * sizeof(node_t *));
        ls->nservers = 0;
    }
    for (i = 0; i < n; i++) {
        for (j = 0; j < builds[i].nlistens; j++) {
            slot = listen_slot(conf, &builds[i].listens[j]);
            ls = &conf->listens[slot];
            nodes[slot][ls->nservers] = builds[i].listens[j].node;
            ls->servers[ls->nservers++] = builds[i].srv;
        }
    }
    for (i = 0; i < conf->nlistens; i++) {
        if (check_shared_listen(ctx, &conf->listens[i], builds, nodes[i])
            != MP_OK) {
            return MP_ERROR;
        }
    }
    return MP_OK;
}


static int
set_servers(conf_ctx_t *ctx, const conf_key_t *key, const node_t *n,
            void *base)
{
    mp_conf_t *conf = base;
    server_build_t *builds;
    const node_t *item;
    size_t i;

    (void) key;
    if (n->nitems == 0) {
        return node_error(ctx, n, "expected at least one server in "
                          "\"servers\"");
    }
    conf->servers = mp_pool_calloc(conf->pool,
                                   n->nitems * sizeof(mp_conf_server_t));
    builds = mp_pool_calloc(ctx->tmp, n->nitems * sizeof(server_build_t));
    for (i = 0; i < n->nitems; i++) {
        item = n->items[i];
        if (item->type != NODE_MAPPING) {
            return node_error(ctx, item, "expected a mapping for a server");
        }
        builds[i].srv = &conf->servers[i];
        builds[i].srv->index = (int) i;
        set_pos(ctx, &builds[i].srv->pos, item);
        if (parse_mapping(ctx, item, server_keys, &builds[i], "in a server")
            != MP_OK) {
            return MP_ERROR;
        }
        conf->nservers++;
    }
    return build_listens(ctx, builds, n->nitems);
}


/* ---- the top level ----------------------------------------------------- */

#define CONF_KEY(section, name, handler, field, min, max)                      \
    { name, EXPECT_ANY, 0, handler, offsetof(mp_conf_t, section.field), NULL, \
      min, max }

static const conf_key_t cluster_keys[] = {
    CONF_KEY(cluster, "workers", set_workers, workers, 1, 1024),
    CONF_KEY(cluster, "pid_file", set_path, pid_file, 0, 0),
    CONF_KEY(cluster, "user", set_string, user, 0, 0),
    CONF_KEY(cluster, "shutdown_timeout", set_duration, shutdown_timeout, 0,
             0),
    CONF_KEY(cluster, "max_connections", set_int, max_connections, 1,
             INT_MAX),
    CONF_KEY(cluster, "watchdog_timeout", set_duration, watchdog_timeout, 0,
             0),
    KEY_END,
};

static const conf_key_t log_keys[] = {
    CONF_KEY(log, "error", set_error_log, error, 0, 0),
    CONF_KEY(log, "level", set_level, level, 0, 0),
    CONF_KEY(log, "access", set_access_log, access, 0, 0),
    KEY_END,
};

static const conf_key_t lua_keys[] = {
    CONF_KEY(lua, "package_path", set_string, package_path, 0, 0),
    CONF_KEY(lua, "package_cpath", set_string, package_cpath, 0, 0),
    CONF_KEY(lua, "init", set_handler, init, 0, 0),
    CONF_KEY(lua, "init_worker", set_handler, init_worker, 0, 0),
    CONF_KEY(lua, "resolver", set_resolver, resolvers, 0, 0),
    CONF_KEY(lua, "resolver_timeout", set_duration, resolver_timeout, 0, 0),
    CONF_KEY(lua, "ssl_trusted_certificate", set_path,
             ssl_trusted_certificate, 0, 0),
    CONF_KEY(lua, "ssl_verify_depth", set_int, ssl_verify_depth, 0, 100),
    CONF_KEY(lua, "socket_connect_timeout", set_duration,
             socket_connect_timeout, 0, 0),
    CONF_KEY(lua, "socket_send_timeout", set_duration, socket_send_timeout,
             0, 0),
    CONF_KEY(lua, "socket_read_timeout", set_duration, socket_read_timeout,
             0, 0),
    CONF_KEY(lua, "socket_keepalive_timeout", set_duration,
             socket_keepalive_timeout, 0, 0),
    CONF_KEY(lua, "socket_pool_size", set_int, socket_pool_size, 1,
             INT_MAX),
    CONF_KEY(lua, "socket_buffer_size", set_size, socket_buffer_size, 512,
             0),
    KEY_END,
};

static const conf_key_t http_keys[] = {
    CONF_KEY(http, "client_header_timeout", set_duration,
             client_header_timeout, 0, 0),
    CONF_KEY(http, "client_body_timeout", set_duration, client_body_timeout,
             0, 0),
    CONF_KEY(http, "send_timeout", set_duration, send_timeout, 0, 0),
    CONF_KEY(http, "keepalive_timeout", set_duration, keepalive_timeout, 0,
             0),
    CONF_KEY(http, "client_max_body_size", set_size, client_max_body_size, 0,
             0),
    CONF_KEY(http, "large_header_buffer", set_size, large_header_buffer,
             1024, 0),
    CONF_KEY(http, "client_body_buffer_size", set_size,
             client_body_buffer_size, 0, 0),
    CONF_KEY(http, "client_body_temp_path", set_path, client_body_temp_path,
             0, 0),
    KEY_END,
};

static const conf_key_t top_keys[] = {
    { "cluster", EXPECT_MAPPING, 0, set_section, 0, cluster_keys, 0, 0 },
    { "log", EXPECT_MAPPING, 0, set_section, 0, log_keys, 0, 0 },
    { "shared_dicts", EXPECT_MAPPING, 0, set_dicts, 0, NULL, 0, 0 },
    { "lua", EXPECT_MAPPING, 0, set_section, 0, lua_keys, 0, 0 },
    { "http", EXPECT_MAPPING, 0, set_section, 0, http_keys, 0, 0 },
    { "servers", EXPECT_SEQUENCE, KEY_REQUIRED, set_servers, 0, NULL, 0, 0 },
    KEY_END,
};


static void
set_defaults(mp_conf_t *conf)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    conf->cluster.workers = (int) mp_max(1, mp_min(cpus, 1024));
    conf->cluster.shutdown_timeout = 30000;
    conf->cluster.max_connections = 10240;
    conf->log.error = "stderr";
    conf->log.level = MP_LOG_NOTICE;
    conf->http.client_header_timeout = 60000;
    conf->http.client_body_timeout = 60000;
    conf->http.send_timeout = 60000;
    conf->http.keepalive_timeout = 75000;
    conf->http.client_max_body_size = 1024 * 1024;
    conf->http.large_header_buffer = 8192;
    conf->lua.resolver_timeout = 30000;
    conf->lua.ssl_verify_depth = 1;
    conf->lua.socket_connect_timeout = 60000;
    conf->lua.socket_send_timeout = 60000;
    conf->lua.socket_read_timeout = 60000;
    conf->lua.socket_keepalive_timeout = 60000;
    conf->lua.socket_pool_size = 30;
    conf->lua.socket_buffer_size = 4096;
    conf->http.client_body_buffer_size = 16384;
    conf->http.client_body_temp_path = "/tmp";
}


/* conf->file (absolute, not resolving symlinks) and conf->prefix. */
static int
set_file(conf_ctx_t *ctx, const char *path)
{
    mp_conf_t *conf = ctx->conf;
    char cwd[PATH_MAX], *file;
    const char *slash;
    size_t size;

    if (path[0] == '/') {
        file = mp_pool_strndup(conf->pool, path, strlen(path));
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            snprintf(ctx->err, ctx->errlen, "getcwd() failed (%d: %s)", errno,
                     strerror(errno));
            return MP_ERROR;
        }
        while (path[0] == '.' && path[1] == '/') {
            path += 2 + strspn(path + 2, "/");
        }
        size = strlen(cwd) + strlen(path) + 2;
        file = mp_pool_nalloc(conf->pool, size);
        snprintf(file, size, "%s%s%s", cwd,
                 cwd[strlen(cwd) - 1] == '/' ? "" : "/", path);
    }
    conf->file = file;
    slash = strrchr(file, '/');
    conf->prefix = mp_pool_strndup(conf->pool, file,
                                   (size_t) (slash - file) + 1);
    ctx->base = slash + 1;
    return MP_OK;
}


mp_conf_t *
mp_conf_load(const char *path, char *err, size_t errlen)
{
    struct stat st;
    conf_ctx_t ctx;
    mp_pool_t *pool;
    node_t *root;
    FILE *f;

    memset(&ctx, 0, sizeof(ctx));
    ctx.path = path;
    ctx.err = err;
    ctx.errlen = errlen;
    if (errlen) {
        err[0] = '\0';
    }
    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "open() \"%s\" failed (%d: %s)", path, errno,
                 strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "read() \"%s\" failed (%d: %s)", path, EISDIR,
                 strerror(EISDIR));
        fclose(f);
        return NULL;
    }
    pool = mp_pool_create(CONF_POOL_SIZE);
    ctx.conf = mp_pool_calloc(pool, sizeof(mp_conf_t));
    ctx.conf->pool = pool;
    ctx.tmp = mp_pool_create(CONF_POOL_SIZE);
    set_defaults(ctx.conf);
    if (set_file(&ctx, path) != MP_OK || tree_load(&ctx, f, &root) != MP_OK) {
        goto failed;
    }
    if (root != NULL && root->type != NODE_MAPPING && !is_null(root)) {
        node_error(&ctx, root, "expected a mapping at the top level");
        goto failed;
    }
    if (root == NULL) {
        root = mp_pool_calloc(ctx.tmp, sizeof(node_t));
    }
    if (parse_mapping(&ctx, root, top_keys, ctx.conf, "at the top level")
        != MP_OK) {
        goto failed;
    }
    fclose(f);
    mp_pool_destroy(ctx.tmp);
    return ctx.conf;

failed:
    fclose(f);
    mp_pool_destroy(ctx.tmp);
    mp_pool_destroy(pool);
    return NULL;
}


void
mp_conf_destroy(mp_conf_t *conf)
{
    if (conf != NULL) {
        mp_pool_destroy(conf->pool);
    }
}
