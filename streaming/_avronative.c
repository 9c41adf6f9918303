/* Compiled Avro single-object codec of ticktape's records (issue 18; schemas/README.md).
 *
 * The pure-Python codec (streaming/codec.py) is the reference. This module only takes the common
 * case and gives up on anything unusual, so the caller can hand that input to the reference:
 *
 * - encoding: every value must be of the exact Python type the schema field expects (str, int or an
 *   int subclass other than bool, a float or anything float() accepts, True/False, bytes/bytearray,
 *   None in a nullable field); otherwise the encoder returns None and nothing was produced.
 * - decoding: a message value that is malformed, mixes schemas, or holds a number that does not fit
 *   its Arrow column (a 10-byte varint beyond 64 bits, an Avro int beyond 32 bits) gets the count -1;
 *   its rows are not in the columns, and the caller decodes it with the reference decoder (which
 *   raises the error, or returns the rows that the column conversion then reports).
 * - row tuples to Arrow columns (rows_to_columns, for schemas.rows_to_arrow): a value not exactly of
 *   its column's type (an int subclass other than bool is an int), out of its column's range, or a
 *   row of another shape returns None, and schemas.python_rows_to_arrow converts, coerces or
 *   raises; lake_order orders Arrow buffers by (symbol, ts_recv) like pyarrow.compute.sort_indices
 *   (storage.lake.sort_for_lake).
 *
 * Field specs come from Python as a bytes object, one byte per field: the type code (T_*) with
 * bit 0x10 set when the field is a ["null", T] union. Decoded columns are returned as the buffers of
 * Arrow arrays (validity bitmap, int32 offsets, data) so that the caller builds the arrays with
 * pyarrow.Array.from_buffers, without one Python object per row.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum { T_STRING = 1, T_BYTES = 2, T_LONG = 3, T_INT = 4, T_DOUBLE = 5, T_BOOLEAN = 6 };
#define NULLABLE 0x10
#define TYPE_MASK 0x0f
#define HEADER_BYTES 10
#define MAX_FIELDS 64

/* ------------------------------------------------------------------------------------------------ */
/* Growable byte buffer (plain malloc: decoding runs without the GIL) */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (extra <= b->cap - b->len) return 0;
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) return -1;
    Py_ssize_t want = b->len + extra;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < want) cap *= 2;
    char *p = realloc(b->p, (size_t)cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static inline void put_byte(Buf *b, uint8_t v) { b->p[b->len++] = (char)v; }

static inline void put_varint(Buf *b, uint64_t z) {
    while (z > 0x7f) {
        b->p[b->len++] = (char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    b->p[b->len++] = (char)z;
}

static inline uint64_t zigzag(int64_t n) { return ((uint64_t)n << 1) ^ (uint64_t)(n >> 63); }

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

typedef struct {
    const uint8_t *spec;
    int nfields;
    const char *header;
    PyObject *data;   /* list of row tuples, or tuple of column lists */
    int columns;      /* 0: rows, 1: columns */
    Py_ssize_t nrows;
} EncCtx;

/* Largest encoding of a value that is not a string or bytes: union byte + 10-byte varint. */
#define FIXED_MAX 11

/* A string or bytes value: the union branch of a nullable field, the length, the bytes. */
static int put_sized(Buf *b, int nullable, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, FIXED_MAX + n) < 0) return -1;
    if (nullable) put_byte(b, 2);
    put_varint(b, zigzag((int64_t)n));
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

/* The field codes of spec (1..64 known codes): their count, or -1 with ValueError set. */
static int check_spec(PyObject *spec, const uint8_t **codes) {
    if (!PyBytes_Check(spec) || PyBytes_GET_SIZE(spec) < 1 || PyBytes_GET_SIZE(spec) > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "spec must be bytes of 1..64 field codes");
        return -1;
    }
    *codes = (const uint8_t *)PyBytes_AS_STRING(spec);
    int nfields = (int)PyBytes_GET_SIZE(spec);
    for (int f = 0; f < nfields; f++) {
        int t = (*codes)[f] & TYPE_MASK;
        if (t < T_STRING || t > T_BOOLEAN || ((*codes)[f] & ~(NULLABLE | TYPE_MASK))) {
            PyErr_SetString(PyExc_ValueError, "unknown field code in spec");
            return -1;
        }
    }
    return nfields;
}

static int parse_spec(PyObject *spec, const char *header, Py_ssize_t header_len, EncCtx *ctx) {
    ctx->nfields = check_spec(spec, &ctx->spec);
    if (ctx->nfields < 0) return -1;
    if (header_len != HEADER_BYTES) {
        PyErr_SetString(PyExc_ValueError, "header must be 10 bytes");
        return -1;
    }
    ctx->header = header;
    return 0;
}

/* Sets up row access; 1 when the data has a shape this module does not take (caller falls back). */
static int setup_data(EncCtx *ctx, PyObject *data, int columns) {
    ctx->data = data;
    ctx->columns = columns;
    if (!columns) {
        if (!PyList_CheckExact(data)) return 1;
        ctx->nrows = PyList_GET_SIZE(data);
        return 0;
    }
    if (!PyTuple_CheckExact(data) || PyTuple_GET_SIZE(data) != ctx->nfields) return 1;
    Py_ssize_t n = -1;
    for (int f = 0; f < ctx->nfields; f++) {
        PyObject *col = PyTuple_GET_ITEM(data, f);
        if (!PyList_CheckExact(col)) return 1;
        if (n >= 0 && PyList_GET_SIZE(col) != n) return 1;
        n = PyList_GET_SIZE(col);
    }
    ctx->nrows = n;
    return 0;
}

/* The row tuple r (borrowed), or NULL when it is not an exact tuple of the schema's width. */
static inline PyObject *row_at(const EncCtx *ctx, Py_ssize_t r) {
    PyObject *row = PyList_GET_ITEM(ctx->data, r);
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ctx->nfields) return NULL;
    return row;
}

/* Field f of row r (borrowed); NULL when the row does not fit. Lists may change under us only if a
 * value's __float__ mutates them: sizes are checked again at each access. */
static inline PyObject *cell(const EncCtx *ctx, Py_ssize_t r, int f) {
    if (ctx->columns) {
        PyObject *col = PyTuple_GET_ITEM(ctx->data, f);
        if (r >= PyList_GET_SIZE(col)) return NULL;
        return PyList_GET_ITEM(col, r);
    }
    if (r >= PyList_GET_SIZE(ctx->data)) return NULL;
    PyObject *row = row_at(ctx, r);
    return row == NULL ? NULL : PyTuple_GET_ITEM(row, f);
}

/* Appends the encoding of one value: 0 done, 1 not taken (fall back), -1 out of memory. */
static int enc_value(Buf *b, int code, PyObject *v) {
    int t = code & TYPE_MASK;
    if (code & NULLABLE) {
        if (v == Py_None) {
            if (buf_reserve(b, 1) < 0) return -1;
            put_byte(b, 0);
            return 0;
        }
    }
    switch (t) {
    case T_STRING: {
        if (!PyUnicode_CheckExact(v)) return 1;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (s == NULL) { /* a lone surrogate: the reference raises its CodecError */
            PyErr_Clear();
            return 1;
        }
        return put_sized(b, code & NULLABLE, s, n);
    }
    case T_BYTES: {
        const char *s;
        Py_ssize_t n;
        if (PyBytes_CheckExact(v)) {
            s = PyBytes_AS_STRING(v);
            n = PyBytes_GET_SIZE(v);
        } else if (PyByteArray_CheckExact(v)) {
            s = PyByteArray_AS_STRING(v);
            n = PyByteArray_GET_SIZE(v);
        } else {
            return 1;
        }
        return put_sized(b, code & NULLABLE, s, n);
    }
    case T_LONG:
    case T_INT: {
        /* The reference encodes Avro int and long alike (64-bit range), refusing bool. */
        if (!PyLong_Check(v) || PyBool_Check(v)) return 1;
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 1;
        }
        if (buf_reserve(b, FIXED_MAX) < 0) return -1;
        if (code & NULLABLE) put_byte(b, 2);
        put_varint(b, zigzag((int64_t)n));
        return 0;
    }
    case T_DOUBLE: {
        double d;
        if (PyFloat_CheckExact(v)) {
            d = PyFloat_AS_DOUBLE(v);
        } else {
            /* What struct.pack("<d", v) accepts (float subclasses, int, bool, __float__/__index__). */
            d = PyFloat_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return 1;
            }
        }
        if (buf_reserve(b, 9) < 0) return -1;
        if (code & NULLABLE) put_byte(b, 2);
        memcpy(b->p + b->len, &d, 8); /* little-endian hosts only: checked at import */
        b->len += 8;
        return 0;
    }
    case T_BOOLEAN: {
        if (v != Py_True && v != Py_False) return 1;
        if (buf_reserve(b, 2) < 0) return -1;
        if (code & NULLABLE) put_byte(b, 2);
        put_byte(b, v == Py_True ? 1 : 0);
        return 0;
    }
    }
    return 1;
}

/* Appends header + body of row r: 0 done, 1 not taken, -1 out of memory. */
static int enc_record(Buf *b, const EncCtx *ctx, Py_ssize_t r) {
    if (!ctx->columns && (r >= PyList_GET_SIZE(ctx->data) || row_at(ctx, r) == NULL)) return 1;
    if (buf_reserve(b, HEADER_BYTES) < 0) return -1;
    memcpy(b->p + b->len, ctx->header, HEADER_BYTES);
    b->len += HEADER_BYTES;
    PyObject *row = ctx->columns ? NULL : PyList_GET_ITEM(ctx->data, r);
    if (row != NULL) Py_INCREF(row); /* a value's __float__ could drop the list's reference */
    int rc = 0;
    for (int f = 0; f < ctx->nfields && rc == 0; f++) {
        PyObject *v = row != NULL ? PyTuple_GET_ITEM(row, f) : cell(ctx, r, f);
        if (v == NULL) {
            rc = 1;
            break;
        }
        Py_INCREF(v);
        rc = enc_value(b, ctx->spec[f], v);
        Py_DECREF(v);
    }
    Py_XDECREF(row);
    return rc;
}

static PyObject *fallback_or_nomem(int rc) {
    if (rc < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* encode_batch(spec, header, data, columns) -> bytes | None: every row, back to back. */
static PyObject *encode_batch(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spec, *data;
    const char *header;
    Py_ssize_t header_len;
    int columns;
    if (!PyArg_ParseTuple(args, "Sy#Op:encode_batch", &spec, &header, &header_len, &data, &columns))
        return NULL;
    EncCtx ctx;
    if (parse_spec(spec, header, header_len, &ctx) < 0) return NULL;
    if (setup_data(&ctx, data, columns)) Py_RETURN_NONE;
    Buf b = {0};
    int rc = 0;
    for (Py_ssize_t r = 0; r < ctx.nrows && rc == 0; r++) rc = enc_record(&b, &ctx, r);
    if (rc != 0) {
        buf_free(&b);
        return fallback_or_nomem(rc);
    }
    PyObject *out = PyBytes_FromStringAndSize(b.p, b.len);
    buf_free(&b);
    return out;
}

/* One reusable buffer for encode_row (the GIL is held; a re-entrant call, from a value's __float__,
 * gets a buffer of its own). */
static Buf row_scratch;
static int row_scratch_busy;

/* encode_row(spec, header, row) -> bytes | None: one single-object encoding. */
static PyObject *encode_row(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spec, *row;
    const char *header;
    Py_ssize_t header_len;
    if (!PyArg_ParseTuple(args, "Sy#O:encode_row", &spec, &header, &header_len, &row)) return NULL;
    EncCtx ctx;
    if (parse_spec(spec, header, header_len, &ctx) < 0) return NULL;
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ctx.nfields) Py_RETURN_NONE;
    Buf own = {0};
    int shared = !row_scratch_busy;
    Buf *b = shared ? &row_scratch : &own;
    row_scratch_busy |= shared;
    b->len = 0;
    int rc = buf_reserve(b, HEADER_BYTES);
    if (rc == 0) {
        memcpy(b->p, header, HEADER_BYTES);
        b->len = HEADER_BYTES;
    }
    Py_INCREF(row);
    for (int f = 0; f < ctx.nfields && rc == 0; f++) {
        PyObject *v = PyTuple_GET_ITEM(row, f);
        Py_INCREF(v);
        rc = enc_value(b, ctx.spec[f], v);
        Py_DECREF(v);
    }
    Py_DECREF(row);
    PyObject *out = rc == 0 ? PyBytes_FromStringAndSize(b->p, b->len) : NULL;
    if (shared) {
        row_scratch_busy = 0;
        if (row_scratch.cap > (1 << 20)) buf_free(&row_scratch); /* keep it small between calls */
    } else {
        buf_free(&own);
    }
    if (rc != 0) return fallback_or_nomem(rc);
    return out;
}

/* The UTF-8 bytes of a key part (borrowed from the str's cache), or NULL (not an exact str). */
static const char *key_part(PyObject *v, Py_ssize_t *n) {
    if (!PyUnicode_CheckExact(v)) return NULL;
    const char *s = PyUnicode_AsUTF8AndSize(v, n);
    if (s == NULL) PyErr_Clear();
    return s;
}

/* encode_keyed(spec, header, data, columns, max_bytes, ts_field) -> list | None
 *
 * What streaming.kafka publishes for one dataset: rows grouped by the key ``exchange|symbol`` (fields
 * 0 and 1; a null or empty symbol gives ``exchange|``), keys in order of first appearance, rows in
 * order within a key, each key's encodings packed into values of at most max_bytes (a record never
 * splits; a larger record is a value of its own). Returns [(key, value, rows, ts)], ts being the
 * tuple of field ``ts_field`` of the value's rows (None when ts_field < 0), or None when a row is
 * not taken (then nothing is returned: the caller encodes the whole batch with the reference).
 */
static PyObject *encode_keyed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spec, *data;
    const char *header;
    Py_ssize_t header_len, max_bytes;
    int columns, ts_field;
    if (!PyArg_ParseTuple(args, "Sy#Opni:encode_keyed", &spec, &header, &header_len, &data, &columns,
                          &max_bytes, &ts_field))
        return NULL;
    EncCtx ctx;
    if (parse_spec(spec, header, header_len, &ctx) < 0) return NULL;
    if (ctx.nfields < 2 || ts_field >= ctx.nfields) {
        PyErr_SetString(PyExc_ValueError, "encode_keyed needs fields 0 and 1, and ts_field < nfields");
        return NULL;
    }
    if (setup_data(&ctx, data, columns)) Py_RETURN_NONE;
    Py_ssize_t n = ctx.nrows;
    PyObject *result = NULL, *groups = NULL, *keys = NULL;
    Py_ssize_t *next = NULL, *heads = NULL, *tails = NULL;
    Buf b = {0};
    int rc = 0;

    groups = PyDict_New();
    keys = PyList_New(0);
    next = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    heads = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    tails = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    if (groups == NULL || keys == NULL || next == NULL || heads == NULL || tails == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto error;
    }
    /* 1. group ids, as linked lists of row numbers */
    {
        PyObject *last0 = NULL, *last1 = NULL;
        Py_ssize_t group = -1, ngroups = 0;
        for (Py_ssize_t r = 0; r < n; r++) {
            PyObject *v0 = cell(&ctx, r, 0), *v1 = cell(&ctx, r, 1);
            if (v0 == NULL || v1 == NULL) {
                rc = 1;
                break;
            }
            if (v0 != last0 || v1 != last1) {
                Py_ssize_t n0, n1 = 0;
                const char *s0 = key_part(v0, &n0), *s1 = "";
                if (s0 == NULL) {
                    rc = 1;
                    break;
                }
                if (v1 != Py_None) {
                    s1 = key_part(v1, &n1);
                    if (s1 == NULL) {
                        rc = 1;
                        break;
                    }
                }
                PyObject *key = PyBytes_FromStringAndSize(NULL, n0 + 1 + n1);
                if (key == NULL) goto error;
                char *k = PyBytes_AS_STRING(key);
                memcpy(k, s0, (size_t)n0);
                k[n0] = '|';
                memcpy(k + n0 + 1, s1, (size_t)n1);
                PyObject *found = PyDict_GetItemWithError(groups, key);
                if (found != NULL) {
                    group = PyLong_AsSsize_t(found);
                    Py_DECREF(key);
                } else if (PyErr_Occurred()) {
                    Py_DECREF(key);
                    goto error;
                } else {
                    group = ngroups++;
                    PyObject *num = PyLong_FromSsize_t(group);
                    int bad = num == NULL || PyDict_SetItem(groups, key, num) < 0 ||
                              PyList_Append(keys, key) < 0;
                    Py_XDECREF(num);
                    Py_DECREF(key);
                    if (bad) goto error;
                    heads[group] = -1;
                }
                last0 = v0;
                last1 = v1;
            }
            next[r] = -1;
            if (heads[group] < 0)
                heads[group] = r;
            else
                next[tails[group]] = r;
            tails[group] = r;
        }
        if (rc != 0) {
            PyMem_Free(next);
            PyMem_Free(heads);
            PyMem_Free(tails);
            Py_DECREF(groups);
            Py_DECREF(keys);
            Py_RETURN_NONE;
        }
    }
    /* 2. each key's records, cut into values */
    result = PyList_New(0);
    if (result == NULL) goto error;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(keys); g++) {
        PyObject *key = PyList_GET_ITEM(keys, g);
        Py_ssize_t part_rows = 0, part_first = heads[g];
        b.len = 0;
        for (Py_ssize_t r = heads[g];; r = next[r]) {
            Py_ssize_t start = b.len;
            if (r >= 0) {
                rc = enc_record(&b, &ctx, r);
                if (rc != 0) break;
            }
            Py_ssize_t rec = b.len - start;
            /* Emit the part before this record when it would not fit, and the last part at the end. */
            if (part_rows > 0 && (r < 0 || start + rec > max_bytes)) {
                PyObject *value = PyBytes_FromStringAndSize(b.p, start);
                PyObject *ts = Py_None;
                Py_INCREF(ts);
                if (value != NULL && ts_field >= 0) {
                    Py_DECREF(ts);
                    ts = PyTuple_New(part_rows);
                    Py_ssize_t i = 0;
                    for (Py_ssize_t q = part_first; ts != NULL && i < part_rows; q = next[q], i++) {
                        PyObject *t = cell(&ctx, q, ts_field);
                        if (t == NULL) t = Py_None; /* cannot happen: the row was just encoded */
                        Py_INCREF(t);
                        PyTuple_SET_ITEM(ts, i, t);
                    }
                }
                PyObject *item = (value && ts) ? Py_BuildValue("(OOnO)", key, value, part_rows, ts) : NULL;
                Py_XDECREF(value);
                Py_XDECREF(ts);
                if (item == NULL || PyList_Append(result, item) < 0) {
                    Py_XDECREF(item);
                    goto error;
                }
                Py_DECREF(item);
                if (r < 0) break;
                memmove(b.p, b.p + start, (size_t)rec);
                b.len = rec;
                part_rows = 0;
                part_first = r;
            }
            if (r < 0) break;
            part_rows++;
        }
        if (rc != 0) break;
    }
    if (rc != 0) {
        if (rc < 0) PyErr_NoMemory();
        goto error_or_fallback;
    }
    buf_free(&b);
    PyMem_Free(next);
    PyMem_Free(heads);
    PyMem_Free(tails);
    Py_DECREF(groups);
    Py_DECREF(keys);
    return result;

error_or_fallback:
    if (rc > 0) {
        buf_free(&b);
        PyMem_Free(next);
        PyMem_Free(heads);
        PyMem_Free(tails);
        Py_XDECREF(groups);
        Py_XDECREF(keys);
        Py_XDECREF(result);
        Py_RETURN_NONE;
    }
error:
    buf_free(&b);
    PyMem_Free(next);
    PyMem_Free(heads);
    PyMem_Free(tails);
    Py_XDECREF(groups);
    Py_XDECREF(keys);
    Py_XDECREF(result);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoding to Arrow column buffers */

typedef struct {
    int code;
    Buf data;    /* values: int64, int32, float64, bitmap (boolean) or string bytes */
    Buf offs;    /* int32 offsets (string, bytes) */
    Buf valid;   /* validity bitmap (nullable fields) */
    Py_ssize_t nulls;
} Col;

typedef struct {
    Py_ssize_t data, offs, valid, nulls;
} ColMark;

/* Strict UTF-8 as Python's decoder accepts it: no overlong forms, no surrogates, nothing past
 * U+10FFFF, no truncated sequence. */
static int utf8_valid(const uint8_t *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        Py_ssize_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c == 0xe0) {
            need = 2;
            lo = 0xa0;
        } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
            need = 2;
        } else if (c == 0xed) {
            need = 2;
            hi = 0x9f;
        } else if (c == 0xf0) {
            need = 3;
            lo = 0x90;
        } else if (c >= 0xf1 && c <= 0xf3) {
            need = 3;
        } else if (c == 0xf4) {
            need = 3;
            hi = 0x8f;
        } else {
            return 0;
        }
        if (need > n - i - 1) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (Py_ssize_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return 0;
        i += need + 1;
    }
    return 1;
}

/* Reads a varint of at most 10 bytes. 0: ok (*big set when it does not fit 64 bits), 1: malformed. */
static inline int read_varint(const uint8_t *s, Py_ssize_t end, Py_ssize_t *pos, uint64_t *z, int *big) {
    Py_ssize_t p = *pos;
    if (p >= end) return 1;
    uint8_t c = s[p++];
    if (c < 0x80) {
        *z = c;
        *big = 0;
        *pos = p;
        return 0;
    }
    uint64_t v = c & 0x7f;
    int shift = 7;
    for (;;) {
        if (p >= end) return 1;
        c = s[p++];
        if (shift == 63) {
            /* the tenth byte: must end the varint; bits above the 64th make the value too big */
            if (c & 0x80) return 1;
            v |= (uint64_t)(c & 1) << 63;
            *big = c > 1;
            break;
        }
        v |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) {
            *big = 0;
            break;
        }
        shift += 7;
    }
    *z = v;
    *pos = p;
    return 0;
}

static inline int64_t unzigzag(uint64_t z) { return (int64_t)(z >> 1) ^ -(int64_t)(z & 1); }

/* Room for one more row in every buffer but string data. */
static int reserve_row(Col *cols, int nf, Py_ssize_t nrows) {
    for (int f = 0; f < nf; f++) {
        Col *c = &cols[f];
        int t = c->code & TYPE_MASK;
        if ((c->code & NULLABLE) && (nrows & 7) == 0) {
            if (buf_reserve(&c->valid, 1) < 0) return -1;
        }
        switch (t) {
        case T_STRING:
        case T_BYTES:
            if (buf_reserve(&c->offs, 4) < 0) return -1;
            break;
        case T_LONG:
        case T_DOUBLE:
            if (buf_reserve(&c->data, 8) < 0) return -1;
            break;
        case T_INT:
            if (buf_reserve(&c->data, 4) < 0) return -1;
            break;
        case T_BOOLEAN:
            if ((nrows & 7) == 0 && buf_reserve(&c->data, 1) < 0) return -1;
            break;
        }
    }
    return 0;
}

static inline void set_bit(Buf *b, Py_ssize_t i, int on) {
    if ((i & 7) == 0) b->p[b->len++] = 0;
    uint8_t mask = (uint8_t)(1u << (i & 7));
    if (on)
        b->p[i >> 3] = (char)((uint8_t)b->p[i >> 3] | mask);
    else
        b->p[i >> 3] = (char)((uint8_t)b->p[i >> 3] & (uint8_t)~mask);
}

enum { DEC_OK = 0, DEC_FLAG = 1, DEC_NOMEM = -1, DEC_TOOBIG = -2 };

/* Decodes one body at *pos into row nrows of the columns. */
static int dec_body(Col *cols, int nf, const uint8_t *s, Py_ssize_t end, Py_ssize_t *pos, Py_ssize_t nrows) {
    Py_ssize_t p = *pos;
    if (reserve_row(cols, nf, nrows) < 0) return DEC_NOMEM;
    for (int f = 0; f < nf; f++) {
        Col *c = &cols[f];
        int t = c->code & TYPE_MASK;
        int present = 1;
        if (c->code & NULLABLE) {
            if (p >= end) return DEC_FLAG;
            uint8_t branch = s[p++];
            if (branch == 0)
                present = 0;
            else if (branch != 2)
                return DEC_FLAG;
            set_bit(&c->valid, nrows, present);
            if (!present) c->nulls++;
        }
        switch (t) {
        case T_STRING:
        case T_BYTES: {
            Py_ssize_t n = 0;
            if (present) {
                uint64_t z;
                int big;
                if (read_varint(s, end, &p, &z, &big) || big) return DEC_FLAG;
                int64_t len = unzigzag(z);
                if (len < 0 || len > end - p) return DEC_FLAG;
                n = (Py_ssize_t)len;
                if (t == T_STRING && !utf8_valid(s + p, n)) return DEC_FLAG;
                if (n > INT32_MAX - c->data.len) return DEC_TOOBIG;
                if (n > 0) { /* an empty string may come before the buffer exists */
                    if (buf_reserve(&c->data, n) < 0) return DEC_NOMEM;
                    memcpy(c->data.p + c->data.len, s + p, (size_t)n);
                    c->data.len += n;
                    p += n;
                }
            }
            int32_t off = (int32_t)c->data.len;
            memcpy(c->offs.p + c->offs.len, &off, 4);
            c->offs.len += 4;
            break;
        }
        case T_LONG:
        case T_INT: {
            int64_t v = 0;
            if (present) {
                uint64_t z;
                int big;
                if (read_varint(s, end, &p, &z, &big) || big) return DEC_FLAG;
                v = unzigzag(z);
            }
            if (t == T_LONG) {
                memcpy(c->data.p + c->data.len, &v, 8);
                c->data.len += 8;
            } else {
                if (v < INT32_MIN || v > INT32_MAX) return DEC_FLAG;
                int32_t w = (int32_t)v;
                memcpy(c->data.p + c->data.len, &w, 4);
                c->data.len += 4;
            }
            break;
        }
        case T_DOUBLE:
            if (present) {
                if (end - p < 8) return DEC_FLAG;
                memcpy(c->data.p + c->data.len, s + p, 8);
                p += 8;
            } else {
                memset(c->data.p + c->data.len, 0, 8);
            }
            c->data.len += 8;
            break;
        case T_BOOLEAN: {
            int on = 0;
            if (present) {
                if (p >= end || s[p] > 1) return DEC_FLAG;
                on = s[p++];
            }
            set_bit(&c->data, nrows, on);
            break;
        }
        }
    }
    *pos = p;
    return DEC_OK;
}

typedef struct {
    Col cols[MAX_FIELDS];
    int nf;
    const char *header;
    Py_ssize_t nvalues;
    Py_buffer *views;
    Py_ssize_t *counts;
    Py_ssize_t nrows;
    int status;
} DecJob;

static void dec_run(DecJob *job) {
    job->status = DEC_OK;
    for (Py_ssize_t i = 0; i < job->nvalues; i++) {
        const uint8_t *s = job->views[i].buf;
        Py_ssize_t end = job->views[i].len, pos = 0;
        ColMark mark[MAX_FIELDS];
        for (int f = 0; f < job->nf; f++) {
            mark[f].data = job->cols[f].data.len;
            mark[f].offs = job->cols[f].offs.len;
            mark[f].valid = job->cols[f].valid.len;
            mark[f].nulls = job->cols[f].nulls;
        }
        Py_ssize_t first = job->nrows;
        int rc = end == 0 ? DEC_FLAG : DEC_OK;
        while (rc == DEC_OK && pos < end) {
            if (end - pos < HEADER_BYTES || memcmp(s + pos, job->header, HEADER_BYTES) != 0) {
                rc = DEC_FLAG;
                break;
            }
            pos += HEADER_BYTES;
            rc = dec_body(job->cols, job->nf, s, end, &pos, job->nrows);
            if (rc == DEC_OK) job->nrows++;
        }
        if (rc == DEC_OK) {
            job->counts[i] = job->nrows - first;
            continue;
        }
        if (rc < 0) {
            job->status = rc;
            return;
        }
        /* Flagged: take its rows out again (bitmap bits past the end are rewritten by later rows,
         * and the last byte is masked when the columns are handed out). */
        for (int f = 0; f < job->nf; f++) {
            job->cols[f].data.len = mark[f].data;
            job->cols[f].offs.len = mark[f].offs;
            job->cols[f].valid.len = mark[f].valid;
            job->cols[f].nulls = mark[f].nulls;
        }
        job->nrows = first;
        job->counts[i] = -1;
    }
}

static PyObject *bytes_of(Buf *b) { return PyBytes_FromStringAndSize(b->p ? b->p : "", b->len); }

static void mask_tail(Buf *b, Py_ssize_t nrows) {
    if (nrows & 7) b->p[nrows >> 3] = (char)((uint8_t)b->p[nrows >> 3] & (uint8_t)((1u << (nrows & 7)) - 1));
}

/* The columns as a list of (validity | None, offsets | None, data, null_count): the buffers of Arrow
 * arrays of nrows rows (int64 for long, int32 for int, float64, bit-packed booleans, int32 offsets +
 * bytes for strings and bytes). Masks the bits past nrows of the last bitmap bytes. ``own`` (or NULL):
 * per field, the bytes objects that already hold its validity, offsets and data buffers (Buf.p points
 * into them; NULL where the Buf is malloc'ed and copied out). */
static PyObject *columns_out(Col *cols, int nf, Py_ssize_t nrows, PyObject **own) {
    PyObject *out = PyList_New(nf);
    if (out == NULL) return NULL;
    for (int f = 0; f < nf; f++) {
        Col *c = &cols[f];
        int t = c->code & TYPE_MASK;
        PyObject *valid = Py_None, *offs = Py_None, *data;
        Py_INCREF(Py_None);
        Py_INCREF(Py_None);
        PyObject **mine = own != NULL ? own + 3 * f : NULL;
        if ((c->code & NULLABLE) && c->nulls > 0) {
            mask_tail(&c->valid, nrows);
            Py_DECREF(valid);
            valid = mine != NULL && mine[0] != NULL ? Py_NewRef(mine[0]) : bytes_of(&c->valid);
        }
        if (t == T_STRING || t == T_BYTES) {
            Py_DECREF(offs);
            offs = mine != NULL && mine[1] != NULL ? Py_NewRef(mine[1]) : bytes_of(&c->offs);
        }
        if (t == T_BOOLEAN) mask_tail(&c->data, nrows);
        data = mine != NULL && mine[2] != NULL ? Py_NewRef(mine[2]) : bytes_of(&c->data);
        PyObject *item = (valid && offs && data) ? Py_BuildValue("(OOOn)", valid, offs, data, c->nulls) : NULL;
        Py_XDECREF(valid);
        Py_XDECREF(offs);
        Py_XDECREF(data);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, f, item);
    }
    return out;
}

/* decode_values(spec, header, values) -> (nrows, counts, columns)
 *
 * Every value must be one or more single-object encodings with ``header``. counts[i] is the number of
 * rows of value i, or -1 when value i is not taken (see the top of this file). columns[f] is
 * (validity | None, offsets | None, data, null_count): the buffers of an Arrow array of nrows rows
 * (int64 for long, int32 for int, float64, bit-packed booleans, int32 offsets + bytes for strings).
 * The parsing runs without the GIL.
 */
static PyObject *decode_values(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spec, *values;
    const char *header;
    Py_ssize_t header_len;
    if (!PyArg_ParseTuple(args, "Sy#O:decode_values", &spec, &header, &header_len, &values)) return NULL;
    EncCtx ctx;
    if (parse_spec(spec, header, header_len, &ctx) < 0) return NULL;
    PyObject *seq = PySequence_Fast(values, "values must be a sequence");
    if (seq == NULL) return NULL;
    DecJob *job = calloc(1, sizeof(DecJob));
    if (job == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL, *counts = NULL, *cols = NULL;
    Py_ssize_t taken = 0;
    job->nf = ctx.nfields;
    job->header = header;
    job->nvalues = PySequence_Fast_GET_SIZE(seq);
    job->views = PyMem_Calloc((size_t)(job->nvalues ? job->nvalues : 1), sizeof(Py_buffer));
    job->counts = PyMem_Calloc((size_t)(job->nvalues ? job->nvalues : 1), sizeof(Py_ssize_t));
    if (job->views == NULL || job->counts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int f = 0; f < job->nf; f++) job->cols[f].code = ctx.spec[f];
    for (; taken < job->nvalues; taken++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, taken), &job->views[taken], PyBUF_SIMPLE) < 0)
            goto done;
    }
    /* start the string and bitmap buffers with what an empty array needs */
    for (int f = 0; f < job->nf; f++) {
        Col *c = &job->cols[f];
        int t = c->code & TYPE_MASK;
        if (t == T_STRING || t == T_BYTES) {
            if (buf_reserve(&c->offs, 4) < 0) {
                PyErr_NoMemory();
                goto done;
            }
            memset(c->offs.p, 0, 4);
            c->offs.len = 4;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    dec_run(job);
    Py_END_ALLOW_THREADS
    if (job->status == DEC_NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (job->status == DEC_TOOBIG) {
        PyErr_SetString(PyExc_OverflowError, "more than 2 GiB of string data in one call: decode fewer values");
        goto done;
    }
    counts = PyList_New(job->nvalues);
    if (counts == NULL) goto done;
    for (Py_ssize_t i = 0; i < job->nvalues; i++) {
        PyObject *n = PyLong_FromSsize_t(job->counts[i]);
        if (n == NULL) goto done;
        PyList_SET_ITEM(counts, i, n);
    }
    cols = columns_out(job->cols, job->nf, job->nrows, NULL);
    if (cols == NULL) goto done;
    result = Py_BuildValue("(nOO)", job->nrows, counts, cols);
done:
    for (Py_ssize_t i = 0; i < taken; i++) PyBuffer_Release(&job->views[i]);
    for (int f = 0; f < job->nf; f++) {
        buf_free(&job->cols[f].data);
        buf_free(&job->cols[f].offs);
        buf_free(&job->cols[f].valid);
    }
    PyMem_Free(job->views);
    PyMem_Free(job->counts);
    free(job);
    Py_XDECREF(counts);
    Py_XDECREF(cols);
    Py_DECREF(seq);
    return result;
}

/* ------------------------------------------------------------------------------------------------ */
/* Row tuples to Arrow column buffers (schemas.rows_to_arrow) */

enum { CELL_OK = 0, CELL_DECLINE = 1, CELL_NOMEM = -1 };

/* Appends value v as row r of column c. The fixed-size buffers (offsets, numbers, bitmaps) hold room
 * for every row already; string data grows here. Takes only what the reference converts to the same
 * value without question: an exact str (UTF-8 encodable), exact bytes, an int (not bool) that fits
 * the column, an exact float, True/False, None in a nullable field. No Python code runs. */
static inline int put_cell(Col *c, PyObject *v, Py_ssize_t r) {
    int t = c->code & TYPE_MASK;
    int present = 1;
    if (c->code & NULLABLE) {
        present = v != Py_None;
        set_bit(&c->valid, r, present);
        if (!present) c->nulls++;
    }
    switch (t) {
    case T_STRING:
    case T_BYTES: {
        const char *s = NULL;
        Py_ssize_t n = 0;
        if (present) {
            if (t == T_STRING) {
                if (!PyUnicode_CheckExact(v)) return CELL_DECLINE;
                if (PyUnicode_IS_COMPACT_ASCII(v)) {
                    s = (const char *)PyUnicode_DATA(v);
                    n = PyUnicode_GET_LENGTH(v);
                } else {
                    s = PyUnicode_AsUTF8AndSize(v, &n);
                    if (s == NULL) { /* a lone surrogate: the reference raises its error */
                        PyErr_Clear();
                        return CELL_DECLINE;
                    }
                }
            } else {
                if (!PyBytes_CheckExact(v)) return CELL_DECLINE;
                s = PyBytes_AS_STRING(v);
                n = PyBytes_GET_SIZE(v);
            }
            if (n > INT32_MAX - c->data.len) return CELL_DECLINE; /* past int32 offsets */
            if (n > 0) {
                if (buf_reserve(&c->data, n) < 0) return CELL_NOMEM;
                memcpy(c->data.p + c->data.len, s, (size_t)n);
                c->data.len += n;
            }
        } else if (c->code & NULLABLE) {
            /* nothing */
        } else {
            return CELL_DECLINE;
        }
        int32_t off = (int32_t)c->data.len;
        memcpy(c->offs.p + c->offs.len, &off, 4);
        c->offs.len += 4;
        return CELL_OK;
    }
    case T_LONG:
    case T_INT: {
        long long x = 0;
        if (present) {
            if (!PyLong_Check(v) || PyBool_Check(v)) return CELL_DECLINE;
            int overflow = 0;
            x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return CELL_DECLINE;
            }
        }
        if (t == T_LONG) {
            int64_t w = (int64_t)x;
            memcpy(c->data.p + c->data.len, &w, 8);
            c->data.len += 8;
        } else {
            if (x < INT32_MIN || x > INT32_MAX) return CELL_DECLINE;
            int32_t w = (int32_t)x;
            memcpy(c->data.p + c->data.len, &w, 4);
            c->data.len += 4;
        }
        return CELL_OK;
    }
    case T_DOUBLE: {
        double d = 0.0;
        if (present) {
            if (!PyFloat_CheckExact(v)) return CELL_DECLINE;
            d = PyFloat_AS_DOUBLE(v);
        }
        memcpy(c->data.p + c->data.len, &d, 8);
        c->data.len += 8;
        return CELL_OK;
    }
    case T_BOOLEAN:
        if (present && v != Py_True && v != Py_False) return CELL_DECLINE;
        set_bit(&c->data, r, v == Py_True);
        return CELL_OK;
    }
    return CELL_DECLINE;
}

/* Points b at a new bytes object of exactly size bytes (stored in *owner): its final content, written
 * in place (never grown). 0, or -1 with an exception set. */
static int own_bytes(Buf *b, PyObject **owner, Py_ssize_t size) {
    *owner = PyBytes_FromStringAndSize(NULL, size);
    if (*owner == NULL) return -1;
    b->p = PyBytes_AS_STRING(*owner);
    b->len = 0;
    b->cap = size;
    return 0;
}

/* The fixed-size buffers of n rows (validity, offsets, numbers, bitmaps) as bytes objects in own[3 * f
 * + 0, 1, 2]; string data grows in malloc'ed memory. 0, or -1 with an exception set. */
static int reserve_rows(Col *cols, int nf, Py_ssize_t n, PyObject **own) {
    Py_ssize_t bits = (n + 7) / 8;
    if (n > PY_SSIZE_T_MAX / 8 - 1) {
        PyErr_NoMemory();
        return -1;
    }
    for (int f = 0; f < nf; f++) {
        Col *c = &cols[f];
        int t = c->code & TYPE_MASK;
        if ((c->code & NULLABLE) && own_bytes(&c->valid, &own[3 * f], bits) < 0) return -1;
        switch (t) {
        case T_STRING:
        case T_BYTES:
            if (own_bytes(&c->offs, &own[3 * f + 1], 4 * (n + 1)) < 0) return -1;
            memset(c->offs.p, 0, 4);
            c->offs.len = 4;
            break;
        case T_LONG:
        case T_DOUBLE:
            if (own_bytes(&c->data, &own[3 * f + 2], 8 * n) < 0) return -1;
            break;
        case T_INT:
            if (own_bytes(&c->data, &own[3 * f + 2], 4 * n) < 0) return -1;
            break;
        case T_BOOLEAN:
            if (own_bytes(&c->data, &own[3 * f + 2], bits) < 0) return -1;
            break;
        }
    }
    return 0;
}

/* rows_to_columns(spec, base_fields, rows) -> (nrows, columns) | None
 *
 * ``rows`` is a list of tuples of len(spec) fields, or of the first ``base_fields`` ones (the fields
 * after them must be nullable: they are null in such a row). ``columns`` is what decode_values gives.
 * None when a row or a value is not taken (see put_cell; a row that is not an exact tuple of either
 * width): nothing was produced, and the caller converts the rows with the reference, which raises
 * or converts as it does. Reading the row objects needs the GIL, which is held throughout; no Python
 * code runs, so the list cannot change under the loop.
 */
static PyObject *rows_to_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spec, *rows;
    int base_nf;
    if (!PyArg_ParseTuple(args, "SiO:rows_to_columns", &spec, &base_nf, &rows)) return NULL;
    const uint8_t *codes;
    int nf = check_spec(spec, &codes);
    if (nf < 0) return NULL;
    if (base_nf < 1 || base_nf > nf) {
        PyErr_SetString(PyExc_ValueError, "base_fields must be 1..len(spec)");
        return NULL;
    }
    for (int f = base_nf; f < nf; f++) {
        if (!(codes[f] & NULLABLE)) {
            PyErr_SetString(PyExc_ValueError, "fields past base_fields must be nullable");
            return NULL;
        }
    }
    if (!PyList_CheckExact(rows)) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    Col *cols = calloc((size_t)nf, sizeof(Col));
    PyObject **own = calloc((size_t)nf * 3, sizeof(PyObject *));
    PyObject *result = NULL;
    int rc = CELL_NOMEM;
    if (cols == NULL || own == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int f = 0; f < nf; f++) cols[f].code = codes[f];
    if (reserve_rows(cols, nf, n, own) < 0) goto done;
    rc = CELL_OK;
    for (Py_ssize_t r = 0; r < n && rc == CELL_OK; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_CheckExact(row)) {
            rc = CELL_DECLINE;
            break;
        }
        Py_ssize_t w = PyTuple_GET_SIZE(row);
        if (w != nf && w != base_nf) {
            rc = CELL_DECLINE;
            break;
        }
        for (int f = 0; f < nf && rc == CELL_OK; f++)
            rc = put_cell(&cols[f], f < w ? PyTuple_GET_ITEM(row, f) : Py_None, r);
    }
    if (rc == CELL_NOMEM) {
        PyErr_NoMemory();
    } else if (rc == CELL_DECLINE) {
        result = Py_NewRef(Py_None);
    } else {
        PyObject *out = columns_out(cols, nf, n, own);
        if (out != NULL) {
            result = Py_BuildValue("(nO)", n, out);
            Py_DECREF(out);
        }
    }
done:
    if (cols != NULL && own != NULL) {
        for (int f = 0; f < nf; f++) {
            /* buffers held by a bytes object are released with it */
            if (own[3 * f + 2] == NULL) buf_free(&cols[f].data);
            if (own[3 * f + 1] == NULL) buf_free(&cols[f].offs);
            if (own[3 * f] == NULL) buf_free(&cols[f].valid);
        }
        for (int i = 0; i < 3 * nf; i++) Py_XDECREF(own[i]);
    }
    free(cols);
    free(own);
    return result;
}

/* ------------------------------------------------------------------------------------------------ */
/* Lake order: rows by (symbol, ts_recv), stable (storage.lake.sort_for_lake) */

typedef struct {
    const uint8_t *data;    /* symbol bytes */
    const int32_t *offs;    /* symbol offsets (n + 1, from the array's offset) */
    const int64_t *ts;      /* ts_recv */
} OrderCtx;

typedef int (*cmp_fn)(const OrderCtx *ctx, int64_t a, int64_t b);

static int cmp_symbol(const OrderCtx *ctx, int64_t a, int64_t b) {
    int32_t la = ctx->offs[a + 1] - ctx->offs[a], lb = ctx->offs[b + 1] - ctx->offs[b];
    int32_t m = la < lb ? la : lb;
    int c = m > 0 ? memcmp(ctx->data + ctx->offs[a], ctx->data + ctx->offs[b], (size_t)m) : 0;
    if (c != 0) return c;
    return (la > lb) - (la < lb);
}

static int cmp_ts(const OrderCtx *ctx, int64_t a, int64_t b) { return (ctx->ts[a] > ctx->ts[b]) - (ctx->ts[a] < ctx->ts[b]); }

/* Stable natural merge sort of idx[0..n) by cmp (tmp: room for n). Already-ordered runs cost one
 * pass: a unit of a few replayed sequences is a few runs. */
static void merge_sort(int64_t *idx, int64_t *tmp, Py_ssize_t n, cmp_fn cmp, const OrderCtx *ctx) {
    int64_t *src = idx, *dst = tmp;
    for (;;) {
        Py_ssize_t runs = 0, i = 0;
        while (i < n) {
            Py_ssize_t mid = i + 1;
            while (mid < n && cmp(ctx, src[mid - 1], src[mid]) <= 0) mid++;
            Py_ssize_t end = mid;
            if (mid < n) {
                end = mid + 1;
                while (end < n && cmp(ctx, src[end - 1], src[end]) <= 0) end++;
            }
            Py_ssize_t a = i, b = mid, o = i;
            while (a < mid && b < end) dst[o++] = cmp(ctx, src[a], src[b]) <= 0 ? src[a++] : src[b++];
            while (a < mid) dst[o++] = src[a++];
            while (b < end) dst[o++] = src[b++];
            runs++;
            i = end;
        }
        int64_t *t = src;
        src = dst;
        dst = t;
        if (runs <= 1) break;
    }
    if (src != idx) memcpy(idx, src, sizeof(int64_t) * (size_t)n);
}

static inline uint64_t hash_bytes(const uint8_t *s, int32_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (int32_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

/* The stable (symbol, ts) order of n rows into order[] (room for n); 1 if it is not the identity,
 * 0 if the rows are in that order already, -1 out of memory. Runs without the GIL. */
static int lake_order_run(const OrderCtx *ctx, Py_ssize_t n, int64_t *order) {
    int rc = -1;
    int32_t *code = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int64_t *first = NULL, *tmp = NULL, *start = NULL;
    int32_t *slots = NULL;
    Py_ssize_t nslots = 64, k = 0;
    slots = malloc(sizeof(int32_t) * (size_t)nslots);
    first = malloc(sizeof(int64_t) * (size_t)nslots); /* a row of each distinct symbol, by code */
    if (code == NULL || slots == NULL || first == NULL) goto done;
    memset(slots, 0xff, sizeof(int32_t) * (size_t)nslots);
    /* 1. a code per distinct symbol (a run of one symbol costs a comparison with the previous row) */
    for (Py_ssize_t r = 0; r < n; r++) {
        if (r > 0 && cmp_symbol(ctx, r - 1, r) == 0) {
            code[r] = code[r - 1];
            continue;
        }
        int32_t len = ctx->offs[r + 1] - ctx->offs[r];
        uint64_t h = hash_bytes(ctx->data + ctx->offs[r], len);
        Py_ssize_t s = (Py_ssize_t)(h & (uint64_t)(nslots - 1));
        while (slots[s] >= 0 && cmp_symbol(ctx, first[slots[s]], r) != 0) s = (s + 1) & (nslots - 1);
        if (slots[s] >= 0) {
            code[r] = slots[s];
            continue;
        }
        if (k > INT32_MAX - 1) goto done;
        slots[s] = (int32_t)k;
        first[k] = r;
        code[r] = (int32_t)k++;
        if (2 * k > nslots) { /* grow and rehash */
            Py_ssize_t grown = nslots * 2;
            int32_t *ns = malloc(sizeof(int32_t) * (size_t)grown);
            int64_t *nf = realloc(first, sizeof(int64_t) * (size_t)grown);
            if (nf != NULL) first = nf;
            if (ns == NULL || nf == NULL) {
                free(ns);
                goto done;
            }
            memset(ns, 0xff, sizeof(int32_t) * (size_t)grown);
            for (int32_t j = 0; j < (int32_t)k; j++) {
                int64_t fr = first[j];
                Py_ssize_t t = (Py_ssize_t)(hash_bytes(ctx->data + ctx->offs[fr], ctx->offs[fr + 1] - ctx->offs[fr]) &
                                            (uint64_t)(grown - 1));
                while (ns[t] >= 0) t = (t + 1) & (grown - 1);
                ns[t] = j;
            }
            free(slots);
            slots = ns;
            nslots = grown;
        }
    }
    /* 2. the codes ranked by their symbols' bytes (as Arrow orders strings) */
    tmp = malloc(sizeof(int64_t) * (size_t)(n > k ? n : k) + 8);
    start = calloc((size_t)k + 1, sizeof(int64_t));
    if (tmp == NULL || start == NULL) goto done;
    {
        int64_t *byname = malloc(sizeof(int64_t) * (size_t)(k ? k : 1));
        if (byname == NULL) goto done;
        memcpy(byname, first, sizeof(int64_t) * (size_t)k);
        merge_sort(byname, tmp, k, cmp_symbol, ctx);
        int32_t *rank = (int32_t *)slots; /* reused: nslots > k */
        for (Py_ssize_t j = 0; j < k; j++) rank[code[byname[j]]] = (int32_t)j;
        free(byname);
        for (Py_ssize_t r = 0; r < n; r++) code[r] = rank[code[r]];
    }
    /* 3. counting sort by rank (stable), then each symbol's rows by ts where they are not in order */
    for (Py_ssize_t r = 0; r < n; r++) start[code[r] + 1]++;
    for (Py_ssize_t j = 0; j < k; j++) start[j + 1] += start[j];
    {
        int64_t *fill = tmp;
        memcpy(fill, start, sizeof(int64_t) * (size_t)k);
        for (Py_ssize_t r = 0; r < n; r++) order[fill[code[r]]++] = r;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        int64_t lo = start[j], hi = start[j + 1];
        for (int64_t i = lo + 1; i < hi; i++) {
            if (ctx->ts[order[i - 1]] > ctx->ts[order[i]]) {
                merge_sort(order + lo, tmp, hi - lo, cmp_ts, ctx);
                break;
            }
        }
    }
    rc = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (order[r] != r) {
            rc = 1;
            break;
        }
    }
done:
    free(code);
    free(slots);
    free(first);
    free(tmp);
    free(start);
    return rc;
}

/* lake_order(n, offsets, data, ts, symbol_offset, ts_offset) -> bytes | None
 *
 * The stable order of n rows by (symbol, ts_recv) as int64 row numbers (what
 * pyarrow.compute.sort_indices gives for those keys), or None when the rows are in that order. The
 * symbols are a string array without nulls (its int32 offsets and data buffers, and the array's
 * offset), ts_recv int64 values (buffer and offset). Runs without the GIL.
 */
static PyObject *lake_order(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t n, sym_off, ts_off;
    Py_buffer offs, data, ts;
    if (!PyArg_ParseTuple(args, "ny*y*y*nn:lake_order", &n, &offs, &data, &ts, &sym_off, &ts_off)) return NULL;
    PyObject *result = NULL;
    int64_t *order = NULL;
    if (n < 0 || sym_off < 0 || ts_off < 0 || n > (PY_SSIZE_T_MAX / 8) - ts_off - 1 ||
        offs.len / 4 < sym_off + n + 1 || ts.len / 8 < ts_off + n) {
        PyErr_SetString(PyExc_ValueError, "lake_order: buffers shorter than the rows");
        goto out;
    }
    const int32_t *o = (const int32_t *)offs.buf + sym_off;
    for (Py_ssize_t r = 0; r < n; r++) { /* offsets are trusted no further than the data buffer */
        if (o[r] < 0 || o[r] > o[r + 1] || o[r + 1] > data.len) {
            PyErr_SetString(PyExc_ValueError, "lake_order: offsets outside the data buffer");
            goto out;
        }
    }
    OrderCtx ctx = {(const uint8_t *)data.buf, o, (const int64_t *)ts.buf + ts_off};
    order = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (order == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = lake_order_run(&ctx, n, order);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        PyErr_NoMemory();
    else if (rc == 0)
        result = Py_NewRef(Py_None);
    else
        result = PyBytes_FromStringAndSize((const char *)order, (Py_ssize_t)sizeof(int64_t) * n);
out:
    free(order);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&data);
    PyBuffer_Release(&ts);
    return result;
}

/* ------------------------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"encode_batch", encode_batch, METH_VARARGS, "encode_batch(spec, header, data, columns) -> bytes | None"},
    {"encode_row", encode_row, METH_VARARGS, "encode_row(spec, header, row) -> bytes | None"},
    {"encode_keyed", encode_keyed, METH_VARARGS,
     "encode_keyed(spec, header, data, columns, max_bytes, ts_field) -> [(key, value, rows, ts)] | None"},
    {"decode_values", decode_values, METH_VARARGS,
     "decode_values(spec, header, values) -> (nrows, counts, columns)"},
    {"rows_to_columns", rows_to_columns, METH_VARARGS, "rows_to_columns(spec, base_fields, rows) -> (nrows, columns) | None"},
    {"lake_order", lake_order, METH_VARARGS,
     "lake_order(n, offsets, data, ts, symbol_offset, ts_offset) -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_avronative",
    "Compiled Avro single-object codec of ticktape records (the reference is streaming/codec.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__avronative(void) {
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "_avronative supports little-endian hosts only");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "T_STRING", T_STRING) < 0 || PyModule_AddIntConstant(m, "T_BYTES", T_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "T_LONG", T_LONG) < 0 || PyModule_AddIntConstant(m, "T_INT", T_INT) < 0 ||
        PyModule_AddIntConstant(m, "T_DOUBLE", T_DOUBLE) < 0 ||
        PyModule_AddIntConstant(m, "T_BOOLEAN", T_BOOLEAN) < 0 ||
        PyModule_AddIntConstant(m, "NULLABLE", NULLABLE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
