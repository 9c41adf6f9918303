/* ColumnRows: one dataset's rows held as columns, behind the list-of-tuples API that normalisers and
 * the row builders use (issue 18 part 2).
 *
 * A record buffer's trades, book and bbo lists are row tuples in schema order (schemas/__init__.py).
 * Millions of tuples are built by the normalisers and taken apart again when they become Arrow
 * columns; this store keeps each field in an array instead (numbers unboxed, strings as the str
 * objects themselves), and hands the columns to Arrow as buffers (to_columns, the same layout as
 * streaming._avronative.rows_to_columns). The frame scanner and the book engine append rows straight
 * from their cells, without a tuple (column_rows_append_objects / column_rows_append_cells).
 *
 * It behaves as the list it replaces: append, extend, len, indexing and slicing (rows come back as
 * tuples equal to those appended, of the same types), assignment of a row at an index, iteration,
 * comparison with lists, clear. A row that is not a tuple of the stored width holding values exactly
 * of its columns' types (an exact str, bytes, an exact int within the column's range, a float that is
 * not NaN, True/False, None where the field is nullable), and any other list operation (insert, pop,
 * sort, slice assignment, del, ...), turns the store into a plain list of tuples for good (until clear):
 * every row is kept as it was given, and the list's own behaviour, results and errors follow.
 *
 * Type codes are those of the compiled codec (streaming/codec.py ``_spec``): one byte per field, the
 * type with 0x10 set when the field is nullable.
 */

#include "_columnrows.h"

#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

enum { T_STRING = 1, T_BYTES = 2, T_LONG = 3, T_INT = 4, T_DOUBLE = 5, T_BOOLEAN = 6 };
#define NULLABLE 0x10
#define TYPE_MASK 0x0f
#define MAX_FIELDS 64

typedef struct {
    PyObject_HEAD
    PyObject *spec;                /* bytes: the field codes of the whole schema */
    int nf;                        /* fields of the schema */
    int width;                     /* fields of a stored row (the rest are null in every row) */
    uint8_t codes[MAX_FIELDS];
    Py_ssize_t n, cap;             /* rows held in the columns, room for */
    char *col[MAX_FIELDS];         /* per stored field: PyObject * (string, bytes), int64_t (long),
                                    * int32_t (int), double, uint8_t (boolean) per row */
    PyObject *shared[MAX_FIELDS];  /* long, int and double fields: the bytearray that col points into,
                                    * which to_columns hands to Arrow without a copy */
    uint8_t *isnull[MAX_FIELDS];   /* per nullable number or boolean field: 1 where the value is None */
    PyObject *list;                /* a plain list of the rows once the columns gave them up, else NULL */
} ColumnRows;

static inline int type_of(uint8_t code) { return code & TYPE_MASK; }
static inline int is_object_field(uint8_t code) { return type_of(code) == T_STRING || type_of(code) == T_BYTES; }
static inline size_t cell_size(uint8_t code) {
    int t = type_of(code);
    return is_object_field(code) ? sizeof(PyObject *) : t == T_BOOLEAN ? 1 : t == T_INT ? 4 : 8;
}
/* long, int and double fields: their values are an Arrow data buffer as they are */
static inline int is_shared_field(uint8_t code) {
    int t = type_of(code);
    return t == T_LONG || t == T_INT || t == T_DOUBLE;
}

/* Points field f at a bytearray of `bytes` bytes that holds its first `keep` bytes. The bytearray is
 * resized in place unless Arrow still reads it (a buffer to_columns handed out: the bytearray has
 * exports, and resizing could move it); then the values are copied into a new one, and Arrow keeps
 * the old. 0, or -1 with an exception. */
static int regrow(ColumnRows *s, int f, Py_ssize_t bytes, Py_ssize_t keep) {
    PyObject *a = s->shared[f];
    if (a && ((PyByteArrayObject *)a)->ob_exports == 0) {
        if (PyByteArray_Resize(a, bytes) < 0) return -1;
    } else {
        PyObject *b = PyByteArray_FromStringAndSize(NULL, bytes);
        if (!b) return -1;
        if (a && keep > 0) memcpy(PyByteArray_AS_STRING(b), PyByteArray_AS_STRING(a), (size_t)keep);
        Py_XSETREF(s->shared[f], b);
    }
    s->col[f] = PyByteArray_AS_STRING(s->shared[f]);
    return 0;
}

/* Before rows already held are changed in place: the fields whose values Arrow still reads get a
 * copy of their own. 0, or -1 with an exception. */
static int own_arrays(ColumnRows *s) {
    for (int f = 0; f < s->width; f++) {
        PyObject *a = s->shared[f];
        if (a && ((PyByteArrayObject *)a)->ob_exports > 0) {
            size_t size = cell_size(s->codes[f]);
            if (regrow(s, f, (Py_ssize_t)(s->cap * (Py_ssize_t)size), (Py_ssize_t)(s->n * (Py_ssize_t)size)) < 0)
                return -1;
        }
    }
    return 0;
}

static int reserve(ColumnRows *s, Py_ssize_t extra) {
    if (extra <= s->cap - s->n) return 0;
    if (extra > PY_SSIZE_T_MAX / 16 - s->n) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + extra) cap *= 2;
    for (int f = 0; f < s->width; f++) {
        size_t size = cell_size(s->codes[f]);
        if (is_shared_field(s->codes[f])) {
            if (regrow(s, f, cap * (Py_ssize_t)size, s->n * (Py_ssize_t)size) < 0) return -1;
        } else {
            char *p = realloc(s->col[f], (size_t)cap * size);
            if (!p) {
                PyErr_NoMemory();
                return -1;
            }
            s->col[f] = p;
        }
        if ((s->codes[f] & NULLABLE) && !is_object_field(s->codes[f])) {
            uint8_t *q = realloc(s->isnull[f], (size_t)cap);
            if (!q) {
                PyErr_NoMemory();
                return -1;
            }
            s->isnull[f] = q;
        }
    }
    s->cap = cap;
    return 0;
}

/* Drops the rows held in the columns. The arrays stay for reuse, but for those Arrow still reads
 * (the next rows would overwrite its values): they are let go, and the next row makes new ones. */
static void release_cells(ColumnRows *s) {
    Py_ssize_t n = s->n;
    s->n = 0;
    for (int f = 0; f < s->width; f++) {
        PyObject *a = s->shared[f];
        if (a && ((PyByteArrayObject *)a)->ob_exports > 0) {
            Py_CLEAR(s->shared[f]);
            s->col[f] = NULL;
            s->cap = 0; /* every field is sized again by the next reserve */
        }
        if (!is_object_field(s->codes[f])) continue;
        PyObject **objs = (PyObject **)s->col[f];
        for (Py_ssize_t r = 0; r < n; r++) Py_DECREF(objs[r]);
    }
}

/* 1 when value v is taken by a field of this code as is (*iv / *dv: its number), else 0. Runs no
 * Python code. */
static int takes(uint8_t code, PyObject *v, int64_t *iv, double *dv) {
    if (v == Py_None) return (code & NULLABLE) != 0;
    switch (type_of(code)) {
    case T_STRING:
        if (!PyUnicode_CheckExact(v)) return 0;
        if (!PyUnicode_IS_COMPACT_ASCII(v)) {
            Py_ssize_t k;
            if (!PyUnicode_AsUTF8AndSize(v, &k)) { /* a lone surrogate: the list path reports it */
                PyErr_Clear();
                return 0;
            }
        }
        return 1;
    case T_BYTES:
        return PyBytes_CheckExact(v);
    case T_LONG:
    case T_INT: {
        if (!PyLong_CheckExact(v)) return 0;
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        if (type_of(code) == T_INT && (x < INT32_MIN || x > INT32_MAX)) return 0;
        *iv = (int64_t)x;
        return 1;
    }
    case T_DOUBLE: {
        if (!PyFloat_CheckExact(v)) return 0;
        double d = PyFloat_AS_DOUBLE(v);
        if (d != d) return 0; /* NaN: a new NaN object would not equal the one given */
        *dv = d;
        return 1;
    }
    case T_BOOLEAN:
        if (v != Py_True && v != Py_False) return 0;
        *iv = v == Py_True;
        return 1;
    }
    return 0;
}

/* Writes a taken cell as row r of stored field f (an object field gets a new reference to it). */
static inline void put(ColumnRows *s, int f, Py_ssize_t r, const CRCell *c) {
    uint8_t code = s->codes[f];
    if (is_object_field(code)) {
        ((PyObject **)s->col[f])[r] = Py_NewRef(c->obj);
        return;
    }
    int null = c->obj == Py_None;
    int64_t iv = c->i;
    double dv = c->d;
    if (s->isnull[f]) s->isnull[f][r] = (uint8_t)null;
    switch (type_of(code)) {
    case T_LONG:
        ((int64_t *)s->col[f])[r] = null ? 0 : iv;
        break;
    case T_INT:
        ((int32_t *)s->col[f])[r] = null ? 0 : (int32_t)iv; /* taken within int32 */
        break;
    case T_DOUBLE:
        ((double *)s->col[f])[r] = null ? 0.0 : dv;
        break;
    case T_BOOLEAN:
        ((uint8_t *)s->col[f])[r] = (uint8_t)(null ? 0 : iv);
        break;
    }
}

/* Row r as a new tuple, or NULL with an exception. */
static PyObject *row_at(ColumnRows *s, Py_ssize_t r) {
    PyObject *t = PyTuple_New(s->width);
    if (!t) return NULL;
    /* allocating the tuple may have run a collection, and code that changed this store */
    if (s->list || r >= s->n) {
        Py_DECREF(t);
        PyErr_SetString(PyExc_RuntimeError, "ColumnRows changed while a row was read");
        return NULL;
    }
    for (int f = 0; f < s->width; f++) {
        uint8_t code = s->codes[f];
        PyObject *o;
        if (is_object_field(code)) {
            o = Py_NewRef(((PyObject **)s->col[f])[r]);
        } else if (s->isnull[f] && s->isnull[f][r]) {
            o = Py_NewRef(Py_None);
        } else {
            switch (type_of(code)) {
            case T_DOUBLE:
                o = PyFloat_FromDouble(((double *)s->col[f])[r]);
                break;
            case T_BOOLEAN:
                o = PyBool_FromLong(((uint8_t *)s->col[f])[r]);
                break;
            case T_INT:
                o = PyLong_FromLong(((int32_t *)s->col[f])[r]);
                break;
            default:
                o = PyLong_FromLongLong(((int64_t *)s->col[f])[r]);
            }
        }
        if (!o) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, f, o);
    }
    PyObject_GC_UnTrack(t); /* strings, numbers and None: never part of a cycle */
    return t;
}

/* Rows start, start + step, ... (len of them) as a new list of tuples. */
static PyObject *rows_slice(ColumnRows *s, Py_ssize_t start, Py_ssize_t len, Py_ssize_t step) {
    PyObject *out = PyList_New(len);
    if (!out) return NULL;
    for (Py_ssize_t k = 0, r = start; k < len; k++, r += step) {
        PyObject *t = row_at(s, r);
        if (!t) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, k, t);
    }
    return out;
}

/* Every row as a new list of tuples (the list itself, a new reference, once the store is a list). */
static PyObject *as_list(ColumnRows *s) {
    if (s->list) return Py_NewRef(s->list);
    return rows_slice(s, 0, s->n, 1);
}

/* Turns the store into a plain list of its rows. 0, or -1 with an exception. */
static int to_list(ColumnRows *s) {
    if (s->list) return 0;
    PyObject *list = as_list(s);
    if (!list) return -1;
    release_cells(s);
    s->list = list;
    return 0;
}

static int list_append_objects(ColumnRows *s, PyObject *const *cells, Py_ssize_t n) {
    if (to_list(s) < 0) return -1;
    PyObject *t = PyTuple_New(n);
    if (!t) return -1;
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, Py_NewRef(cells[i]));
    int r = PyList_Append(s->list, t);
    Py_DECREF(t);
    return r;
}

int column_rows_append_objects(PyObject *rows, PyObject *const *objs, Py_ssize_t n) {
    ColumnRows *s = (ColumnRows *)rows;
    CRCell cells[MAX_FIELDS];
    if (!s->list && column_rows_cells_of(rows, objs, n, cells)) return column_rows_append_made(rows, cells);
    return list_append_objects(s, objs, n);
}

int column_rows_append_cells(PyObject *rows, const CRCell *cells, Py_ssize_t n) {
    ColumnRows *s = (ColumnRows *)rows;
    if (n != s->width) {
        PyErr_SetString(PyExc_SystemError, "ColumnRows: a row of cells of another width");
        return -1;
    }
    int ok = !s->list;
    for (int f = 0; f < s->width; f++) {
        uint8_t code = s->codes[f];
        const CRCell *c = &cells[f];
        int number = c->obj == NULL;
        /* None goes in any column (a nullable one takes it); a number only in a number column, an
         * object only in a string or bytes column */
        if (c->obj != Py_None && number == is_object_field(code)) {
            PyErr_SetString(PyExc_SystemError, "ColumnRows: a cell that does not match its column");
            return -1;
        }
        if (!ok) continue;
        if (number) {
            int t = type_of(code);
            if (t == T_INT && (c->i < INT32_MIN || c->i > INT32_MAX)) ok = 0;
            if (t == T_DOUBLE && c->d != c->d) ok = 0;
            if (t == T_BOOLEAN && c->i != 0 && c->i != 1) ok = 0;
        } else {
            int64_t iv;
            double dv;
            ok = takes(code, c->obj, &iv, &dv);
        }
    }
    if (ok) return column_rows_append_made(rows, cells);
    /* the row as objects, into the list */
    PyObject *objs[MAX_FIELDS] = {0}; /* zeroed: gcc cannot see that only made ones are read */
    int made = 0, rc = -1;
    for (; made < s->width; made++) {
        const CRCell *c = &cells[made];
        uint8_t code = s->codes[made];
        PyObject *o = c->obj ? Py_NewRef(c->obj)
                      : type_of(code) == T_DOUBLE  ? PyFloat_FromDouble(c->d)
                      : type_of(code) == T_BOOLEAN ? PyBool_FromLong((long)c->i)
                                                   : PyLong_FromLongLong((long long)c->i);
        if (!o) break;
        objs[made] = o;
    }
    if (made == s->width) rc = list_append_objects(s, objs, s->width);
    for (int i = 0; i < made; i++) Py_DECREF(objs[i]);
    return rc;
}

int column_rows_cells_of(PyObject *rows, PyObject *const *objs, Py_ssize_t n, CRCell *cells) {
    ColumnRows *s = (ColumnRows *)rows;
    if (n != s->width) return 0;
    for (int f = 0; f < s->width; f++) {
        int64_t iv = 0;
        double dv = 0.0;
        if (!takes(s->codes[f], objs[f], &iv, &dv)) return 0;
        cells[f].obj = is_object_field(s->codes[f]) || objs[f] == Py_None ? objs[f] : NULL;
        cells[f].i = iv;
        cells[f].d = dv;
    }
    return 1;
}

int column_rows_append_made(PyObject *rows, const CRCell *cells) {
    ColumnRows *s = (ColumnRows *)rows;
    if (s->list) return column_rows_append_cells(rows, cells, s->width);
    if (reserve(s, 1) < 0) return -1;
    Py_ssize_t r = s->n;
    for (int f = 0; f < s->width; f++) put(s, f, r, &cells[f]);
    s->n = r + 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Python API */

static PyObject *cr_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *spec;
    int width;
    static char *kwlist[] = {"spec", "width", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Si:ColumnRows", kwlist, &spec, &width)) return NULL;
    Py_ssize_t nf = PyBytes_GET_SIZE(spec);
    if (nf < 1 || nf > MAX_FIELDS || width < 1 || width > nf) {
        PyErr_SetString(PyExc_ValueError, "ColumnRows: spec must hold 1..64 field codes and 1 <= width <= len(spec)");
        return NULL;
    }
    const uint8_t *codes = (const uint8_t *)PyBytes_AS_STRING(spec);
    for (Py_ssize_t f = 0; f < nf; f++) {
        int t = type_of(codes[f]);
        if (t < T_STRING || t > T_BOOLEAN || (codes[f] & ~(NULLABLE | TYPE_MASK))) {
            PyErr_SetString(PyExc_ValueError, "ColumnRows: unknown field code in spec");
            return NULL;
        }
        if (f >= width && !(codes[f] & NULLABLE)) {
            PyErr_SetString(PyExc_ValueError, "ColumnRows: fields past width must be nullable");
            return NULL;
        }
    }
    ColumnRows *s = (ColumnRows *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    s->spec = Py_NewRef(spec);
    s->nf = (int)nf;
    s->width = width;
    memcpy(s->codes, codes, (size_t)nf);
    return (PyObject *)s;
}

static int cr_traverse(ColumnRows *s, visitproc visit, void *arg) {
    Py_VISIT(s->list);
    return 0;
}

static int cr_clear_refs(ColumnRows *s) {
    Py_CLEAR(s->list);
    return 0;
}

static void cr_dealloc(ColumnRows *s) {
    PyObject_GC_UnTrack(s);
    release_cells(s);
    for (int f = 0; f < MAX_FIELDS; f++) {
        if (s->shared[f])
            Py_CLEAR(s->shared[f]);
        else
            free(s->col[f]);
        free(s->isnull[f]);
    }
    Py_CLEAR(s->list);
    Py_CLEAR(s->spec);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static Py_ssize_t cr_len(ColumnRows *s) { return s->list ? PyList_GET_SIZE(s->list) : s->n; }

static PyObject *cr_item(ColumnRows *s, Py_ssize_t i) {
    if (s->list) return PySequence_GetItem(s->list, i);
    if (i < 0 || i >= s->n) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    return row_at(s, i);
}

static PyObject *cr_subscript(ColumnRows *s, PyObject *key) {
    if (s->list) return PyObject_GetItem(s->list, key);
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (i < 0) i += s->n;
        return cr_item(s, i);
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) return NULL;
        Py_ssize_t len = PySlice_AdjustIndices(s->n, &start, &stop, step);
        return rows_slice(s, start, len, step);
    }
    PyErr_Format(PyExc_TypeError, "list indices must be integers or slices, not %.200s", Py_TYPE(key)->tp_name);
    return NULL;
}

static int cr_ass_subscript(ColumnRows *s, PyObject *key, PyObject *value) {
    if (!s->list && value && PyIndex_Check(key) && PyTuple_CheckExact(value) && PyTuple_GET_SIZE(value) == s->width) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return -1;
        if (i < 0) i += s->n;
        if (i < 0 || i >= s->n) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            return -1;
        }
        CRCell cells[MAX_FIELDS];
        if (column_rows_cells_of((PyObject *)s, &PyTuple_GET_ITEM(value, 0), s->width, cells)) {
            if (own_arrays(s) < 0) return -1;
            for (int f = 0; f < s->width; f++) {
                PyObject *old = is_object_field(s->codes[f]) ? ((PyObject **)s->col[f])[i] : NULL;
                put(s, f, i, &cells[f]);
                Py_XDECREF(old); /* a str or bytes: freeing it runs no Python code */
            }
            return 0;
        }
    }
    if (to_list(s) < 0) return -1;
    return value ? PyObject_SetItem(s->list, key, value) : PyObject_DelItem(s->list, key);
}

static int cr_append_any(ColumnRows *s, PyObject *row) {
    if (PyTuple_CheckExact(row))
        return column_rows_append_objects((PyObject *)s, &PyTuple_GET_ITEM(row, 0), PyTuple_GET_SIZE(row));
    if (to_list(s) < 0) return -1;
    return PyList_Append(s->list, row);
}

static PyObject *cr_append(ColumnRows *s, PyObject *row) {
    if (cr_append_any(s, row) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *cr_tolist(ColumnRows *s, PyObject *Py_UNUSED(ignored));

static int cr_extend_any(ColumnRows *s, PyObject *items) {
    if (ColumnRows_CheckExact(items)) {
        ColumnRows *o = (ColumnRows *)items;
        if (!s->list && !o->list && o->width == s->width && o->nf == s->nf &&
            memcmp(o->codes, s->codes, (size_t)s->nf) == 0) {
            Py_ssize_t m = o->n;
            if (m == 0) return 0;
            if (reserve(s, m) < 0) return -1;
            for (int f = 0; f < s->width; f++) {
                size_t size = cell_size(s->codes[f]);
                /* after reserve: o may be s, whose arrays moved */
                memmove(s->col[f] + (size_t)s->n * size, o->col[f], (size_t)m * size);
                if (is_object_field(s->codes[f])) {
                    PyObject **objs = (PyObject **)s->col[f] + s->n;
                    for (Py_ssize_t r = 0; r < m; r++) Py_INCREF(objs[r]);
                }
                if (s->isnull[f]) memmove(s->isnull[f] + s->n, o->isnull[f], (size_t)m);
            }
            s->n += m;
            return 0;
        }
    }
    /* a snapshot of the items first: they may be this store, or be changed by appending */
    PyObject *seq = ColumnRows_CheckExact(items) ? cr_tolist((ColumnRows *)items, NULL) : PySequence_List(items);
    if (!seq) return -1;
    int rc = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(seq) && rc == 0; k++) rc = cr_append_any(s, PyList_GET_ITEM(seq, k));
    Py_DECREF(seq);
    return rc;
}

static PyObject *cr_extend(ColumnRows *s, PyObject *items) {
    if (cr_extend_any(s, items) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *cr_clear(ColumnRows *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *list = s->list;
    s->list = NULL;
    release_cells(s);
    Py_XDECREF(list);
    Py_RETURN_NONE;
}

static PyObject *cr_tolist(ColumnRows *s, PyObject *Py_UNUSED(ignored)) {
    if (s->list) return PyList_GetSlice(s->list, 0, PyList_GET_SIZE(s->list));
    return as_list(s);
}

static PyObject *cr_empty(ColumnRows *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *args = Py_BuildValue("(Oi)", s->spec, s->width);
    if (!args) return NULL;
    PyObject *out = cr_new(Py_TYPE(s), args, NULL);
    Py_DECREF(args);
    /* room for as many rows as this one had: the next unit of a replay is about as large, and its
     * arrays then never move while they fill */
    if (out && s->cap > 0 && reserve((ColumnRows *)out, s->cap) < 0) Py_CLEAR(out);
    return out;
}

static PyObject *cr_reduce(ColumnRows *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *rows = cr_tolist(s, NULL);
    if (!rows) return NULL;
    PyObject *out = Py_BuildValue("(O(N))", (PyObject *)&PyList_Type, rows);
    return out;
}

/* to_columns() -> (nrows, columns) | None: the buffers of Arrow arrays of every field of the schema,
 * as streaming._avronative.rows_to_columns gives them ((validity | None, offsets | None, data,
 * null_count) per field; fields past the stored width are all null). None once the store is a list,
 * or when a string column's bytes pass int32 offsets: then the rows convert as a list does. */
static PyObject *cr_to_columns(ColumnRows *s, PyObject *Py_UNUSED(ignored)) {
    if (s->list) Py_RETURN_NONE;
    Py_ssize_t n = s->n;
    Py_ssize_t bits = (n + 7) / 8;
    PyObject *parts[MAX_FIELDS][3] = {{NULL}};
    Py_ssize_t nulls[MAX_FIELDS] = {0};
    PyObject *result = NULL;
    int declined = 0;
    for (int f = 0; f < s->nf && !declined; f++) {
        uint8_t code = s->codes[f];
        int t = type_of(code), stored = f < s->width;
        PyObject *valid = NULL, *offs = NULL, *data = NULL;
        uint8_t *vb = NULL;
        if (code & NULLABLE) {
            valid = PyBytes_FromStringAndSize(NULL, bits);
            if (!valid) goto fail;
            vb = (uint8_t *)PyBytes_AS_STRING(valid);
            memset(vb, 0, (size_t)bits);
        }
        parts[f][0] = valid;
        if (t == T_STRING || t == T_BYTES) {
            PyObject **objs = stored ? (PyObject **)s->col[f] : NULL;
            Py_ssize_t total = 0;
            for (Py_ssize_t r = 0; stored && r < n; r++) {
                PyObject *o = objs[r];
                if (o == Py_None) continue;
                Py_ssize_t k = 0;
                if (t == T_BYTES)
                    k = PyBytes_GET_SIZE(o);
                else if (PyUnicode_IS_COMPACT_ASCII(o))
                    k = PyUnicode_GET_LENGTH(o);
                else if (!PyUnicode_AsUTF8AndSize(o, &k)) /* cached when the row was taken */
                    goto fail;
                total += k;
                if (total > INT32_MAX) break;
            }
            if (total > INT32_MAX) {
                declined = 1;
                break;
            }
            offs = PyBytes_FromStringAndSize(NULL, 4 * (n + 1));
            data = offs ? PyBytes_FromStringAndSize(NULL, total) : NULL;
            parts[f][1] = offs;
            parts[f][2] = data;
            if (!data) goto fail;
            int32_t *op = (int32_t *)PyBytes_AS_STRING(offs);
            char *dp = PyBytes_AS_STRING(data);
            int32_t at = 0;
            op[0] = 0;
            for (Py_ssize_t r = 0; r < n; r++) {
                PyObject *o = stored ? objs[r] : Py_None;
                if (o == Py_None) {
                    nulls[f]++;
                } else {
                    const char *p;
                    Py_ssize_t k;
                    if (t == T_BYTES) {
                        p = PyBytes_AS_STRING(o);
                        k = PyBytes_GET_SIZE(o);
                    } else if (PyUnicode_IS_COMPACT_ASCII(o)) {
                        p = (const char *)PyUnicode_DATA(o);
                        k = PyUnicode_GET_LENGTH(o);
                    } else {
                        p = PyUnicode_AsUTF8AndSize(o, &k); /* cached: measured above */
                        if (!p) goto fail;
                    }
                    memcpy(dp + at, p, (size_t)k);
                    at += (int32_t)k;
                    if (vb) vb[r >> 3] |= (uint8_t)(1u << (r & 7));
                }
                op[r + 1] = at;
            }
            continue;
        }
        Py_ssize_t size = t == T_BOOLEAN ? bits : t == T_INT ? 4 * n : 8 * n;
        const uint8_t *isnull = stored ? s->isnull[f] : NULL;
        if (stored && s->shared[f]) {
            /* the values as they are: Arrow reads the first n of them (the bytearray may be longer) */
            data = Py_NewRef(s->shared[f]);
            parts[f][2] = data;
        } else {
            data = PyBytes_FromStringAndSize(NULL, size);
            parts[f][2] = data;
            if (!data) goto fail;
            char *dp = PyBytes_AS_STRING(data);
            memset(dp, 0, (size_t)size);
            if (!stored) {
                nulls[f] = n;
            } else if (t == T_BOOLEAN) {
                const uint8_t *v = (const uint8_t *)s->col[f];
                for (Py_ssize_t r = 0; r < n; r++)
                    if (v[r]) dp[r >> 3] = (char)((uint8_t)dp[r >> 3] | (1u << (r & 7)));
            }
        }
        if (stored && vb) {
            for (Py_ssize_t r = 0; r < n; r++) {
                if (isnull && isnull[r])
                    nulls[f]++;
                else
                    vb[r >> 3] |= (uint8_t)(1u << (r & 7));
            }
        }
    }
    if (declined) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *columns = PyList_New(s->nf);
    if (!columns) goto fail;
    for (int f = 0; f < s->nf; f++) {
        PyObject *valid = nulls[f] && parts[f][0] ? parts[f][0] : Py_None;
        PyObject *offs = parts[f][1] ? parts[f][1] : Py_None;
        PyObject *item = Py_BuildValue("(OOOn)", valid, offs, parts[f][2], nulls[f]);
        if (!item) {
            Py_DECREF(columns);
            goto fail;
        }
        PyList_SET_ITEM(columns, f, item);
    }
    result = Py_BuildValue("(nN)", n, columns);
    goto done;
fail:
    result = NULL;
done:
    for (int f = 0; f < MAX_FIELDS; f++)
        for (int k = 0; k < 3; k++) Py_XDECREF(parts[f][k]);
    return result;
}

static PyObject *cr_richcompare(PyObject *a, PyObject *b, int op) {
    if (!ColumnRows_CheckExact(a) || !(PyList_Check(b) || ColumnRows_CheckExact(b))) Py_RETURN_NOTIMPLEMENTED;
    PyObject *la = as_list((ColumnRows *)a);
    if (!la) return NULL;
    PyObject *lb = ColumnRows_CheckExact(b) ? as_list((ColumnRows *)b) : Py_NewRef(b);
    PyObject *r = lb ? PyObject_RichCompare(la, lb, op) : NULL;
    Py_DECREF(la);
    Py_XDECREF(lb);
    return r;
}

static PyObject *cr_repr(ColumnRows *s) {
    PyObject *l = as_list(s);
    if (!l) return NULL;
    PyObject *r = PyObject_Repr(l);
    Py_DECREF(l);
    return r;
}

static int cr_contains(ColumnRows *s, PyObject *v) {
    PyObject *l = as_list(s);
    if (!l) return -1;
    int r = PySequence_Contains(l, v);
    Py_DECREF(l);
    return r;
}

static PyObject *cr_concat(ColumnRows *s, PyObject *other) {
    PyObject *l = as_list(s);
    if (!l) return NULL;
    PyObject *r = PySequence_Concat(l, other);
    Py_DECREF(l);
    return r;
}

static PyObject *cr_inplace_concat(ColumnRows *s, PyObject *other) {
    if (cr_extend_any(s, other) < 0) return NULL;
    return Py_NewRef(s);
}

/* Another list method (insert, pop, sort, index, ...): the store becomes a list and the list's own
 * method answers. */
static PyObject *cr_getattro(PyObject *self, PyObject *name) {
    PyObject *r = PyObject_GenericGetAttr(self, name);
    if (r || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *in_list = PyDict_GetItemWithError(PyList_Type.tp_dict, name); /* borrowed */
    if (!in_list) {
        if (PyErr_Occurred()) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        } else {
            PyErr_Restore(type, value, tb); /* not a list attribute: the AttributeError stands */
        }
        return NULL;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    ColumnRows *s = (ColumnRows *)self;
    if (to_list(s) < 0) return NULL;
    return PyObject_GetAttr(s->list, name);
}

static PyObject *cr_get_columnar(ColumnRows *s, void *Py_UNUSED(closure)) { return PyBool_FromLong(s->list == NULL); }
static PyObject *cr_get_spec(ColumnRows *s, void *Py_UNUSED(closure)) { return Py_NewRef(s->spec); }
static PyObject *cr_get_width(ColumnRows *s, void *Py_UNUSED(closure)) { return PyLong_FromLong(s->width); }

/* Iterator: by index, so that it sees rows appended meanwhile, as a list's iterator does. */
typedef struct {
    PyObject_HEAD
    ColumnRows *rows;
    Py_ssize_t next;
} ColumnRowsIter;

static PyObject *cr_iter(ColumnRows *s) {
    ColumnRowsIter *it = PyObject_GC_New(ColumnRowsIter, &ColumnRowsIterType);
    if (!it) return NULL;
    it->rows = (ColumnRows *)Py_NewRef(s);
    it->next = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *cri_next(ColumnRowsIter *it) {
    if (!it->rows) return NULL;
    if (it->next < cr_len(it->rows)) return cr_item(it->rows, it->next++);
    Py_CLEAR(it->rows);
    return NULL;
}

static int cri_traverse(ColumnRowsIter *it, visitproc visit, void *arg) {
    Py_VISIT(it->rows);
    return 0;
}

static void cri_dealloc(ColumnRowsIter *it) {
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->rows);
    PyObject_GC_Del(it);
}

PyTypeObject ColumnRowsIterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._booknative.ColumnRowsIterator",
    .tp_basicsize = sizeof(ColumnRowsIter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)cri_dealloc,
    .tp_traverse = (traverseproc)cri_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)cri_next,
};

static PyMethodDef cr_methods[] = {
    {"append", (PyCFunction)cr_append, METH_O, "Appends one row (a tuple in schema order)."},
    {"extend", (PyCFunction)cr_extend, METH_O, "Appends every row of an iterable."},
    {"clear", (PyCFunction)cr_clear, METH_NOARGS, "Removes every row (a store that became a list holds columns again)."},
    {"tolist", (PyCFunction)cr_tolist, METH_NOARGS, "The rows as a new list of tuples."},
    {"empty", (PyCFunction)cr_empty, METH_NOARGS, "A new, empty store of the same fields (and room for as many rows)."},
    {"to_columns", (PyCFunction)cr_to_columns, METH_NOARGS,
     "to_columns() -> (nrows, columns) | None: Arrow buffers per field (None once the rows are a list)."},
    {"__reduce__", (PyCFunction)cr_reduce, METH_NOARGS, "Pickled and copied as a list of tuples."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cr_getset[] = {
    {"columnar", (getter)cr_get_columnar, NULL, "False once the rows are held as a plain list.", NULL},
    {"spec", (getter)cr_get_spec, NULL, "The field codes (streaming.codec's spec of the dataset).", NULL},
    {"width", (getter)cr_get_width, NULL, "Fields of a stored row.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods cr_as_sequence = {
    .sq_length = (lenfunc)cr_len,
    .sq_concat = (binaryfunc)cr_concat,
    .sq_item = (ssizeargfunc)cr_item,
    .sq_contains = (objobjproc)cr_contains,
    .sq_inplace_concat = (binaryfunc)cr_inplace_concat,
};

static PyMappingMethods cr_as_mapping = {
    .mp_length = (lenfunc)cr_len,
    .mp_subscript = (binaryfunc)cr_subscript,
    .mp_ass_subscript = (objobjargproc)cr_ass_subscript,
};

PyTypeObject ColumnRowsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._booknative.ColumnRows",
    .tp_doc = "ColumnRows(spec, width): one dataset's rows as columns, behind a list-of-tuples API.",
    .tp_basicsize = sizeof(ColumnRows),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_SEQUENCE,
    .tp_new = cr_new,
    .tp_dealloc = (destructor)cr_dealloc,
    .tp_traverse = (traverseproc)cr_traverse,
    .tp_clear = (inquiry)cr_clear_refs,
    .tp_repr = (reprfunc)cr_repr,
    .tp_as_sequence = &cr_as_sequence,
    .tp_as_mapping = &cr_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_getattro = cr_getattro,
    .tp_richcompare = cr_richcompare,
    .tp_iter = (getiterfunc)cr_iter,
    .tp_methods = cr_methods,
    .tp_getset = cr_getset,
};

/* keep_freed_memory(on) -> bool: whether glibc's malloc now keeps (on) or returns (off) freed memory.
 *
 * A replay fills new column arrays of tens of MB for every unit while Arrow frees the last unit's:
 * glibc serves blocks that large with fresh mmap()s, and the first touch of each page was ~12 % of the
 * normalising loop (bench/RESULTS.md, "Columnar record buffers"). On: blocks come from the heap and
 * freed ones are reused (M_MMAP_THRESHOLD 512 MiB, M_TRIM_THRESHOLD 1 GiB); off: the documented
 * defaults (128 KiB each) and malloc_trim(0) give the memory back. False where the C library is not
 * glibc (nothing changes). https://man7.org/linux/man-pages/man3/mallopt.3.html (checked 2026-12-06). */
PyObject *keep_freed_memory(PyObject *self, PyObject *arg) {
    (void)self;
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
#ifdef __GLIBC__
    int ok = on ? mallopt(M_MMAP_THRESHOLD, 512 << 20) && mallopt(M_TRIM_THRESHOLD, 1 << 30)
                : mallopt(M_MMAP_THRESHOLD, 128 << 10) && mallopt(M_TRIM_THRESHOLD, 128 << 10);
    if (!on) malloc_trim(0);
    return PyBool_FromLong(ok);
#else
    Py_RETURN_FALSE;
#endif
}
