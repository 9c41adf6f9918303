/* The compiled half of collectors/book.py: the price-level store of one book side and level parsing.
 *
 * collectors/book.py is the reference (its pure-Python classes stay, and TICKTAPE_PURE_PYTHON=1
 * selects them). Everything here returns exactly what the reference would: when an input is not of
 * the plain kinds this code handles (exact lists/tuples of exact str/float/int, float limits, 64-bit
 * sequence numbers), or when it is invalid, the functions change nothing and return False / None, and
 * book.py runs the reference code, which raises the reference error or handles the odd input. No error
 * message is therefore ever composed here.
 *
 * Levels: a sorted map price -> value (the reference's SortedDict; values are the (size, price_str,
 * size_str) tuples the engine stores, keys the price objects given, kept as a dict keeps them).
 * Prices are also held as doubles in one array sorted so that the best level is the last element
 * (bids ascending, asks by descending price): updates cluster near the top of the book, so inserting
 * and removing there moves few elements. Index 0 of the public API is the best level, as in the
 * reference (bids SortedDict keyed by -price, asks by price).
 *
 * Documentation followed (checked 2026-12-05): extension types and the mapping protocol,
 * https://docs.python.org/3/extending/newtypes_tutorial.html and
 * https://docs.python.org/3/c-api/typeobj.html; garbage-collector support (tp_traverse/tp_clear,
 * PyObject_GC_UnTrack, PyObject_GC_IsTracked), https://docs.python.org/3/c-api/gcsupport.html;
 * string to float (PyOS_string_to_double), https://docs.python.org/3/c-api/conversion.html.
 *
 * Two more hot spots live here with the same rule (the Python code is the reference, None means "run
 * it"): book_crc32 (collectors/checksum.py) and json_too_deep (collectors/events.py). The CRC is the
 * one zlib.crc32 computes, https://docs.python.org/3/library/zlib.html#zlib.crc32; buffers are read
 * through the buffer protocol, https://docs.python.org/3/c-api/buffer.html (checked 2026-12-05).
 *
 * TimeFlags is collectors/base.py's TimeFlagger (the reference, TICKTAPE_PURE_PYTHON=1) with its state
 * in C, and BinanceScanner the fast path of the Binance family's normaliser
 * (collectors/venues/binance.py): both are described where they are defined below. The scanner accepts
 * a strict subset of JSON (RFC 8259, https://www.rfc-editor.org/rfc/rfc8259: no escapes, ASCII only,
 * plain numbers), so a frame it takes is one orjson decodes to the same values; the frames' fields
 * are the venue modules' (their docstrings cite Binance's stream pages). Slots are read through their
 * member descriptors' offsets (PyMemberDef: name, type, offset, flags; T_OBJECT_EX, READONLY),
 * https://docs.python.org/3/c-api/structures.html#c.PyMemberDef and CPython's Include/descrobject.h
 * (PyMemberDescrObject.d_member) (checked 2026-12-06).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_columnrows.h"
#include "_frameblock.h"

/* ------------------------------------------------------------------------------------------------ */
/* Levels                                                                                            */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n;
    Py_ssize_t cap;
    double *keys;     /* rank keys, ascending: price for bids, -price for asks; the best is last */
    PyObject **kobjs; /* the price objects given as keys (owned), returned as the keys */
    PyObject **vals;  /* owned references */
    int bids;         /* 1: best = highest price */
} Levels;

static PyTypeObject LevelsType;

static inline double rank_of(const Levels *L, double price) { return L->bids ? price : -price; }
static inline double price_of(const Levels *L, double rank) { return L->bids ? rank : -rank; }

/* A level the frame scanner set, held without Python objects until something reads it: its size and
 * the texts of its price and size. vals[j] then holds the record's address with bit 0 set (a tagged
 * pointer: PyMem_Malloc's blocks are 8-byte aligned) and kobjs[j] may be NULL (the price float not
 * made yet). realize() turns both into the objects the reference holds (the value tuple (size,
 * price_str, size_str) and the price float) before any reader sees them; a level of the book of a
 * steady Binance stream is mostly set, changed and removed without ever being read. */
#define LAZY_TEXT 30
typedef struct Lazy {
    double size;
    uint8_t pn, sn;
    char ps[LAZY_TEXT], ss[LAZY_TEXT];
} Lazy;

/* Freed records, reused (the GIL guards the list): their first bytes hold the next one. */
static Lazy *lazy_pool;

static inline int is_lazy(PyObject *v) { return ((uintptr_t)v & 1u) != 0; }
static inline Lazy *lazy_of(PyObject *v) { return (Lazy *)((uintptr_t)v & ~(uintptr_t)1u); }
static inline PyObject *lazy_tag(Lazy *z) { return (PyObject *)((uintptr_t)z | 1u); }

static Lazy *lazy_new(void) {
    Lazy *z = lazy_pool;
    if (z) {
        memcpy(&lazy_pool, z, sizeof(Lazy *));
        return z;
    }
    z = PyMem_Malloc(sizeof(Lazy));
    if (!z) PyErr_NoMemory();
    return z;
}

static void lazy_free(Lazy *z) {
    memcpy(z, &lazy_pool, sizeof(Lazy *));
    lazy_pool = z;
}

/* Releases a held value: a record goes back to the pool, an object is decref'd. */
static inline void val_release(PyObject *v) {
    if (is_lazy(v))
        lazy_free(lazy_of(v));
    else
        Py_DECREF(v);
}

static PyObject *ascii_str(const char *s, Py_ssize_t n);

/* Gives level j the objects the reference holds (see Lazy). 0, or -1 with an exception (the levels
 * changed under the one allocation that may run a collection, or no memory). */
static int realize(Levels *L, Py_ssize_t j) {
    if (L->kobjs[j] && !is_lazy(L->vals[j])) return 0;
    double rk = L->keys[j];
    if (is_lazy(L->vals[j])) {
        PyObject *t = PyTuple_New(3); /* may collect, and so run code that changes these levels */
        if (!t) return -1;
        if (j >= L->n || L->keys[j] != rk || !is_lazy(L->vals[j])) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_RuntimeError, "price levels changed while they were read");
            return -1;
        }
        Lazy *z = lazy_of(L->vals[j]);
        PyObject *a = PyFloat_FromDouble(z->size), *b = ascii_str(z->ps, z->pn), *c = ascii_str(z->ss, z->sn);
        if (!a || !b || !c) {
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_XDECREF(c);
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(t, 0, a);
        PyTuple_SET_ITEM(t, 1, b);
        PyTuple_SET_ITEM(t, 2, c);
        PyObject_GC_UnTrack(t); /* a float and two str */
        lazy_free(z);
        L->vals[j] = t;
    }
    if (!L->kobjs[j]) {
        PyObject *k = PyFloat_FromDouble(price_of(L, rk));
        if (!k) return -1;
        L->kobjs[j] = k;
    }
    return 0;
}

/* First index whose key is >= rk. */
/* The first index in [lo, hi] whose key is >= rk, given that the answer lies in [lo, hi]. */
static Py_ssize_t search_between(const Levels *L, double rk, Py_ssize_t lo, Py_ssize_t hi) {
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (L->keys[mid] < rk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static Py_ssize_t lower_bound(const Levels *L, double rk) {
    Py_ssize_t n = L->n;
    /* Most changes are near the best level (the end): check there first. */
    if (n > 0 && L->keys[n - 1] < rk) return n;
    return search_between(L, rk, 0, n);
}

/* lower_bound, searched outward from ``hint`` (the index the previous level of the same update went
 * to; -1: none). A venue lists an update's levels in price order, so the next one is usually a few
 * places away: an exponential search from there reads O(log distance) keys, close together, where the
 * full search reads O(log n) spread over the book. Any order is still answered exactly. */
static Py_ssize_t lower_bound_near(const Levels *L, double rk, Py_ssize_t hint) {
    Py_ssize_t n = L->n, lo, hi, step = 1;
    if (hint < 0 || hint > n) return lower_bound(L, rk);
    if (hint < n && L->keys[hint] < rk) { /* the answer is after hint */
        lo = hint + 1;
        hi = n;
        for (Py_ssize_t p = lo; p < n; p = lo + step - 1, step <<= 1) {
            if (L->keys[p] >= rk) {
                hi = p;
                break;
            }
            lo = p + 1;
        }
    } else { /* keys[hint] >= rk (or hint == n): the answer is at or before hint */
        hi = hint;
        lo = 0;
        for (Py_ssize_t p = hint - 1; p >= 0; p = hi - step, step <<= 1) {
            if (L->keys[p] < rk) {
                lo = p + 1;
                break;
            }
            hi = p;
        }
    }
    return search_between(L, rk, lo, hi);
}

/* Index of rk, or -1. */
static Py_ssize_t find(const Levels *L, double rk) {
    Py_ssize_t j = lower_bound(L, rk);
    return (j < L->n && L->keys[j] == rk) ? j : -1;
}

static int reserve(Levels *L, Py_ssize_t need) {
    if (need <= L->cap) return 0;
    Py_ssize_t cap = L->cap ? L->cap : 16;
    while (cap < need) cap *= 2;
    double *k = PyMem_Realloc(L->keys, (size_t)cap * sizeof(double));
    if (!k) {
        PyErr_NoMemory();
        return -1;
    }
    L->keys = k;
    PyObject **ko = PyMem_Realloc(L->kobjs, (size_t)cap * sizeof(PyObject *));
    if (!ko) {
        PyErr_NoMemory();
        return -1;
    }
    L->kobjs = ko;
    PyObject **v = PyMem_Realloc(L->vals, (size_t)cap * sizeof(PyObject *));
    if (!v) {
        PyErr_NoMemory();
        return -1;
    }
    L->vals = v;
    L->cap = cap;
    return 0;
}

/* Inserts rank rk at index j, which must be its sorted place among keys it is not in, taking the
 * caller's references to key (NULL: made when read) and value (an object, or a tagged Lazy record);
 * on failure (-1) nothing is taken. */
static int levels_insert_owned(Levels *L, Py_ssize_t j, double rk, PyObject *key, PyObject *value) {
    if (reserve(L, L->n + 1) < 0) return -1;
    if (j < L->n) {
        memmove(L->keys + j + 1, L->keys + j, (size_t)(L->n - j) * sizeof(double));
        memmove(L->kobjs + j + 1, L->kobjs + j, (size_t)(L->n - j) * sizeof(PyObject *));
        memmove(L->vals + j + 1, L->vals + j, (size_t)(L->n - j) * sizeof(PyObject *));
    }
    L->keys[j] = rk;
    L->kobjs[j] = key;
    L->vals[j] = value;
    L->n++;
    return 0;
}

/* levels_insert_owned with new references to key and value. */
static int levels_insert_at(Levels *L, Py_ssize_t j, double rk, PyObject *key, PyObject *value) {
    if (levels_insert_owned(L, j, rk, key, value) < 0) return -1;
    Py_INCREF(key);
    Py_INCREF(value);
    return 0;
}

/* Sets price -> value (new references are taken). A held level keeps its key object, as a dict does. */
static int levels_set(Levels *L, double price, PyObject *key, PyObject *value) {
    double rk = rank_of(L, price);
    Py_ssize_t j = lower_bound(L, rk);
    if (j < L->n && L->keys[j] == rk) {
        PyObject *old = L->vals[j];
        Py_INCREF(value);
        L->vals[j] = value;
        val_release(old);
        if (!L->kobjs[j]) { /* the key a held level had: the float of its price (see Lazy) */
            L->kobjs[j] = PyFloat_FromDouble(price_of(L, rk));
            if (!L->kobjs[j]) return -1; /* realize() makes it on the next read */
        }
        return 0;
    }
    return levels_insert_at(L, j, rk, key, value);
}

/* Removes internal index j; returns its value (maybe a Lazy record: realize first, or val_release it)
 * and (when key is not NULL) its key object (maybe NULL): references the caller owns. */
static PyObject *levels_take(Levels *L, Py_ssize_t j, PyObject **key) {
    PyObject *v = L->vals[j];
    PyObject *k = L->kobjs[j];
    Py_ssize_t tail = L->n - j - 1;
    if (tail > 0) {
        memmove(L->keys + j, L->keys + j + 1, (size_t)tail * sizeof(double));
        memmove(L->kobjs + j, L->kobjs + j + 1, (size_t)tail * sizeof(PyObject *));
        memmove(L->vals + j, L->vals + j + 1, (size_t)tail * sizeof(PyObject *));
    }
    L->n--;
    if (key)
        *key = k;
    else
        Py_XDECREF(k);
    return v;
}

static void levels_remove(Levels *L, double price) {
    Py_ssize_t j = find(L, rank_of(L, price));
    if (j >= 0) val_release(levels_take(L, j, NULL));
}

static void levels_clear_all(Levels *L) {
    /* Detach first: a value's destructor could reach back into this object. */
    Py_ssize_t n = L->n;
    PyObject **vals = L->vals, **kobjs = L->kobjs;
    L->n = 0;
    L->cap = 0;
    L->vals = NULL;
    L->kobjs = NULL;
    PyMem_Free(L->keys);
    L->keys = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(kobjs[i]);
        val_release(vals[i]);
    }
    PyMem_Free(vals);
    PyMem_Free(kobjs);
}

/* A mapping key as a price: 1 and *price set; 0 when the key cannot be held (not a real number, or
 * NaN: nothing equal to it is ever stored); -1 on error. */
static int key_price(PyObject *key, double *price) {
    double p;
    if (PyFloat_Check(key)) {
        p = PyFloat_AS_DOUBLE(key);
    } else if (PyLong_Check(key)) {
        p = PyLong_AsDouble(key);
        if (p == -1.0 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                return 0; /* no held price equals it */
            }
            return -1;
        }
    } else {
        return 0;
    }
    if (isnan(p)) return 0;
    *price = p;
    return 1;
}

static PyObject *levels_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"bids", NULL};
    int bids = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p", kwlist, &bids)) return NULL;
    Levels *L = (Levels *)type->tp_alloc(type, 0);
    if (!L) return NULL;
    L->bids = bids;
    return (PyObject *)L;
}

static int levels_traverse(Levels *L, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < L->n; i++) {
        Py_VISIT(L->kobjs[i]);
        if (!is_lazy(L->vals[i])) Py_VISIT(L->vals[i]);
    }
    return 0;
}

static int levels_tp_clear(Levels *L) {
    levels_clear_all(L);
    return 0;
}

static void levels_dealloc(Levels *L) {
    PyObject_GC_UnTrack(L);
    levels_clear_all(L);
    Py_TYPE(L)->tp_free((PyObject *)L);
}

static Py_ssize_t levels_len(Levels *L) { return L->n; }

static PyObject *key_error(PyObject *key) {
    PyObject *t = PyTuple_Pack(1, key);
    if (t) {
        PyErr_SetObject(PyExc_KeyError, t);
        Py_DECREF(t);
    }
    return NULL;
}

static PyObject *levels_subscript(Levels *L, PyObject *key) {
    double p;
    int k = key_price(key, &p);
    if (k < 0) return NULL;
    Py_ssize_t j = k ? find(L, rank_of(L, p)) : -1;
    if (j < 0) return key_error(key);
    if (realize(L, j) < 0) return NULL;
    Py_INCREF(L->vals[j]);
    return L->vals[j];
}

static int levels_ass_subscript(Levels *L, PyObject *key, PyObject *value) {
    double p;
    int k = key_price(key, &p);
    if (k < 0) return -1;
    if (value == NULL) {
        Py_ssize_t j = k ? find(L, rank_of(L, p)) : -1;
        if (j < 0) {
            key_error(key);
            return -1;
        }
        val_release(levels_take(L, j, NULL));
        return 0;
    }
    if (!k) {
        PyErr_Format(PyExc_TypeError, "a price level key must be a real, non-NaN number, not %R", key);
        return -1;
    }
    return levels_set(L, p, key, value);
}

static int levels_contains(Levels *L, PyObject *key) {
    double p;
    int k = key_price(key, &p);
    if (k <= 0) return k;
    return find(L, rank_of(L, p)) >= 0;
}

/* A copy of the best `limit` levels (prices and held values, best first), taken before any Python
 * object is allocated: an allocation may run the garbage collector, and so finalisers that could
 * change this side while a result is being built. */
typedef struct {
    Py_ssize_t n;
    PyObject **kobjs; /* owned */
    PyObject **vals;  /* owned */
} Snap;

static int snap_take(Levels *L, Py_ssize_t limit, Snap *s) {
    Py_ssize_t n = L->n < limit ? L->n : limit;
    s->n = 0;
    for (Py_ssize_t i = 0; i < n && i < L->n; i++)
        if (realize(L, L->n - 1 - i) < 0) return -1;
    for (Py_ssize_t i = 0; i < n && i < L->n; i++) {
        if (!L->kobjs[L->n - 1 - i] || is_lazy(L->vals[L->n - 1 - i])) {
            PyErr_SetString(PyExc_RuntimeError, "price levels changed while they were read");
            return -1;
        }
    }
    if (n > L->n) n = L->n;
    s->kobjs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(PyObject *));
    s->vals = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(PyObject *));
    if (!s->kobjs || !s->vals) {
        PyMem_Free(s->kobjs);
        PyMem_Free(s->vals);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t j = L->n - 1 - i;
        s->kobjs[i] = L->kobjs[j];
        Py_INCREF(s->kobjs[i]);
        s->vals[i] = L->vals[j];
        Py_INCREF(s->vals[i]);
    }
    s->n = n;
    return 0;
}

static void snap_free(Snap *s) {
    for (Py_ssize_t i = 0; i < s->n; i++) {
        Py_DECREF(s->kobjs[i]);
        Py_DECREF(s->vals[i]);
    }
    PyMem_Free(s->kobjs);
    PyMem_Free(s->vals);
}

/* what: 0 keys, 1 values, 2 items; up to `limit` levels, best first. */
static PyObject *levels_list(Levels *L, int what, Py_ssize_t limit) {
    Snap s;
    if (snap_take(L, limit, &s) < 0) return NULL;
    PyObject *list = PyList_New(s.n);
    for (Py_ssize_t i = 0; list && i < s.n; i++) {
        PyObject *item;
        if (what == 1) {
            item = s.vals[i];
            Py_INCREF(item);
        } else if (what == 0) {
            item = s.kobjs[i];
            Py_INCREF(item);
        } else {
            item = PyTuple_Pack(2, s.kobjs[i], s.vals[i]);
        }
        if (!item) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, item);
    }
    snap_free(&s);
    return list;
}

static PyObject *levels_iter(Levels *L) {
    PyObject *keys = levels_list(L, 0, PY_SSIZE_T_MAX);
    if (!keys) return NULL;
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *levels_keys(Levels *L, PyObject *Py_UNUSED(ignored)) {
    return levels_list(L, 0, PY_SSIZE_T_MAX);
}
static PyObject *levels_values(Levels *L, PyObject *Py_UNUSED(ignored)) {
    return levels_list(L, 1, PY_SSIZE_T_MAX);
}
static PyObject *levels_items(Levels *L, PyObject *Py_UNUSED(ignored)) {
    return levels_list(L, 2, PY_SSIZE_T_MAX);
}

static PyObject *levels_get(Levels *L, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get() takes a key and an optional default");
        return NULL;
    }
    double p;
    int k = key_price(args[0], &p);
    if (k < 0) return NULL;
    Py_ssize_t j = k ? find(L, rank_of(L, p)) : -1;
    if (j >= 0 && realize(L, j) < 0) return NULL;
    PyObject *r = j >= 0 ? L->vals[j] : (nargs == 2 ? args[1] : Py_None);
    Py_INCREF(r);
    return r;
}

static PyObject *levels_pop(Levels *L, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "pop() takes a key and an optional default");
        return NULL;
    }
    double p;
    int k = key_price(args[0], &p);
    if (k < 0) return NULL;
    Py_ssize_t j = k ? find(L, rank_of(L, p)) : -1;
    if (j >= 0) {
        if (realize(L, j) < 0) return NULL;
        return levels_take(L, j, NULL);
    }
    if (nargs == 2) {
        Py_INCREF(args[1]);
        return args[1];
    }
    return key_error(args[0]);
}

/* Public index (0 = best, negative from the worst) -> internal index, or -1. */
static Py_ssize_t public_index(Levels *L, Py_ssize_t index) {
    if (index < 0) index += L->n;
    if (index < 0 || index >= L->n) return -1;
    return L->n - 1 - index;
}

static PyObject *index_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *index, const char *name) {
    *index = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most one argument", name);
        return NULL;
    }
    if (nargs == 1) {
        *index = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
        if (*index == -1 && PyErr_Occurred()) return NULL;
    }
    return Py_None;
}

static PyObject *levels_popitem(Levels *L, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t index;
    if (!index_arg(args, nargs, &index, "popitem")) return NULL;
    if (L->n == 0) {
        PyErr_SetString(PyExc_KeyError, "popitem(): dictionary is empty");
        return NULL;
    }
    Py_ssize_t j = public_index(L, index);
    if (j < 0) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    if (realize(L, j) < 0) return NULL;
    PyObject *key;
    PyObject *value = levels_take(L, j, &key);
    PyObject *r = PyTuple_Pack(2, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return r;
}

static PyObject *levels_peekitem(Levels *L, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t index;
    if (!index_arg(args, nargs, &index, "peekitem")) return NULL;
    Py_ssize_t j = public_index(L, index);
    if (j < 0) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    if (realize(L, j) < 0) return NULL;
    PyObject *value = L->vals[j], *key = L->kobjs[j];
    Py_INCREF(value);
    Py_INCREF(key);
    PyObject *r = PyTuple_Pack(2, key, value);
    Py_DECREF(key);
    Py_DECREF(value);
    return r;
}

static PyObject *levels_clear_method(Levels *L, PyObject *Py_UNUSED(ignored)) {
    levels_clear_all(L);
    Py_RETURN_NONE;
}

/* top(depth): the best `depth` levels as (price, size, price_str, size_str), values being 3-tuples. */
static PyObject *levels_top(Levels *L, PyObject *arg) {
    Py_ssize_t depth = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (depth == -1 && PyErr_Occurred()) return NULL;
    Snap s;
    if (snap_take(L, depth < 0 ? 0 : depth, &s) < 0) return NULL;
    PyObject *list = PyList_New(s.n);
    for (Py_ssize_t i = 0; list && i < s.n; i++) {
        PyObject *v = s.vals[i];
        PyObject *price = s.kobjs[i];
        Py_INCREF(price);
        PyObject *item = NULL;
        if (price) {
            if (PyTuple_CheckExact(v) && PyTuple_GET_SIZE(v) >= 3) {
                item = PyTuple_Pack(4, price, PyTuple_GET_ITEM(v, 0), PyTuple_GET_ITEM(v, 1),
                                    PyTuple_GET_ITEM(v, 2));
            } else {
                PyObject *a = PySequence_GetItem(v, 0), *b = a ? PySequence_GetItem(v, 1) : NULL,
                         *c = b ? PySequence_GetItem(v, 2) : NULL;
                if (c) item = PyTuple_Pack(4, price, a, b, c);
                Py_XDECREF(a);
                Py_XDECREF(b);
                Py_XDECREF(c);
            }
            Py_DECREF(price);
        }
        if (!item) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, item);
    }
    snap_free(&s);
    return list;
}

/* best(): the best price, or None. */
static PyObject *levels_best(Levels *L, PyObject *Py_UNUSED(ignored)) {
    if (L->n == 0) Py_RETURN_NONE;
    if (realize(L, L->n - 1) < 0) return NULL;
    Py_INCREF(L->kobjs[L->n - 1]);
    return L->kobjs[L->n - 1];
}

static PyObject *levels_repr(Levels *L) {
    PyObject *items = levels_list(L, 2, PY_SSIZE_T_MAX);
    if (!items) return NULL;
    PyObject *r = PyUnicode_FromFormat("Levels(bids=%s, %R)", L->bids ? "True" : "False", items);
    Py_DECREF(items);
    return r;
}

static PyObject *levels_get_bids(Levels *L, void *Py_UNUSED(closure)) { return PyBool_FromLong(L->bids); }

static PyMethodDef levels_methods[] = {
    {"get", (PyCFunction)(void (*)(void))levels_get, METH_FASTCALL, "get(price, default=None)"},
    {"pop", (PyCFunction)(void (*)(void))levels_pop, METH_FASTCALL, "pop(price[, default])"},
    {"popitem", (PyCFunction)(void (*)(void))levels_popitem, METH_FASTCALL,
     "popitem(index=-1): removes and returns (price, value); 0 is the best level, -1 the worst"},
    {"peekitem", (PyCFunction)(void (*)(void))levels_peekitem, METH_FASTCALL,
     "peekitem(index=-1): (price, value); 0 is the best level, -1 the worst"},
    {"keys", (PyCFunction)levels_keys, METH_NOARGS, "prices, best first (a list)"},
    {"values", (PyCFunction)levels_values, METH_NOARGS, "values, best first (a list)"},
    {"items", (PyCFunction)levels_items, METH_NOARGS, "(price, value), best first (a list)"},
    {"clear", (PyCFunction)levels_clear_method, METH_NOARGS, "removes every level"},
    {"top", (PyCFunction)levels_top, METH_O, "top(depth): [(price, size, price_str, size_str)], best first"},
    {"best", (PyCFunction)levels_best, METH_NOARGS, "the best price, or None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef levels_getset[] = {
    {"bids", (getter)levels_get_bids, NULL, "True for the bid side", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMappingMethods levels_as_mapping = {
    (lenfunc)levels_len,
    (binaryfunc)levels_subscript,
    (objobjargproc)levels_ass_subscript,
};

static PySequenceMethods levels_as_sequence = {
    .sq_contains = (objobjproc)levels_contains,
};

static PyTypeObject LevelsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._booknative.Levels",
    .tp_basicsize = sizeof(Levels),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Price levels of one book side: price -> value, best first (Levels(bids=True) for bids).",
    .tp_new = levels_new,
    .tp_dealloc = (destructor)levels_dealloc,
    .tp_traverse = (traverseproc)levels_traverse,
    .tp_clear = (inquiry)levels_tp_clear,
    .tp_as_mapping = &levels_as_mapping,
    .tp_as_sequence = &levels_as_sequence,
    .tp_iter = (getiterfunc)levels_iter,
    .tp_methods = levels_methods,
    .tp_getset = levels_getset,
    .tp_repr = (reprfunc)levels_repr,
};

/* ------------------------------------------------------------------------------------------------ */
/* Level parsing                                                                                     */

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Reads the run of ASCII digits at p (before end) into *m (m = m * 10 + digit for each; wraps past 19
 * digits, which callers check) and returns where the run ends. */
static inline const unsigned char *digit_run(const unsigned char *p, const unsigned char *end, uint64_t *m) {
    uint64_t acc = *m;
    while (p < end && (unsigned)(*p - '0') < 10u) acc = acc * 10 + (uint64_t)(*p++ - '0');
    *m = acc;
    return p;
}

/* A plain decimal ([0-9]*.?[0-9]*, at least one digit) as the correctly rounded double, which is
 * what float() returns for it: exact when the digits fit in 53 bits and the scale is a power of ten
 * that is itself exact (both operands exact, one IEEE division rounds once); otherwise the same
 * routine float() uses. 1: parsed; 0: not a plain decimal (the caller asks float() itself). */
static int plain_decimal(const char *s, Py_ssize_t len, double *out) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    uint64_t m = 0; /* exact while there are at most 19 digits */
    p = digit_run(p, end, &m);
    Py_ssize_t digits = p - (const unsigned char *)s, frac = 0;
    if (p < end && *p == '.') {
        const unsigned char *f = ++p;
        p = digit_run(p, end, &m);
        frac = p - f;
        digits += frac;
    }
    if (p != end || !digits) return 0;
    if (digits <= 19 && m <= (1ULL << 53) && frac <= 22) {
        *out = frac ? (double)m / POW10[frac] : (double)m;
        return 1;
    }
    char *stop = NULL;
    double v = PyOS_string_to_double(s, &stop, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (stop != s + len) return 0;
    *out = v;
    return 1;
}

/* One parsed level; pobj/sobj are new float objects, pstr/sstr new references. */
typedef struct {
    double price, size;
    PyObject *pobj, *sobj, *pstr, *sstr;
} Lv;

static void lv_release(Lv *lv, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(lv[i].pobj);
        Py_XDECREF(lv[i].sobj);
        Py_XDECREF(lv[i].pstr);
        Py_XDECREF(lv[i].sstr);
    }
}

/* A wire number (the first or second element of a level). 1: *value, *text (a new reference: the
 * string itself, repr() of a number for a price, str() for a size); 0: not handled here (fallback);
 * -1: error. */
static int wire_number(PyObject *obj, int is_price, double *value, PyObject **text) {
    if (PyUnicode_CheckExact(obj)) {
        double v;
        int ok = 0;
        if (PyUnicode_IS_ASCII(obj)) ok = plain_decimal((const char *)PyUnicode_DATA(obj), PyUnicode_GET_LENGTH(obj), &v);
        if (!ok) {
            /* exponents, signs, spaces, underscores, inf/nan...: float() itself */
            PyObject *f = PyNumber_Float(obj);
            if (!f) {
                PyErr_Clear();
                return 0;
            }
            v = PyFloat_AS_DOUBLE(f);
            Py_DECREF(f);
        }
        *value = v;
        Py_INCREF(obj);
        *text = obj;
        return 1;
    }
    if (PyFloat_CheckExact(obj)) {
        *value = PyFloat_AS_DOUBLE(obj);
    } else if (PyLong_CheckExact(obj)) {
        double v = PyLong_AsDouble(obj);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        *value = v;
    } else {
        return 0;
    }
    *text = is_price ? PyObject_Repr(obj) : PyObject_Str(obj);
    return *text ? 1 : -1;
}

/* Parses and validates a list/tuple of levels into lv[0..n). 1: all good; 0: fallback (nothing kept);
 * -1: error. The caller sized lv to the sequence length. */
static int parse_into(PyObject *levels, double max_price, double max_size, Lv *lv) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(levels);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Sizes are checked again at every step and the items held while they are read: nothing
         * here runs Python code, but that must not be what memory safety rests on. */
        if (i >= PySequence_Fast_GET_SIZE(levels)) {
            lv_release(lv, i);
            return 0;
        }
        PyObject *level = PySequence_Fast_ITEMS(levels)[i];
        PyObject *a, *b;
        if (PyList_CheckExact(level) && PyList_GET_SIZE(level) >= 2) {
            a = PyList_GET_ITEM(level, 0);
            b = PyList_GET_ITEM(level, 1);
        } else if (PyTuple_CheckExact(level) && PyTuple_GET_SIZE(level) >= 2) {
            a = PyTuple_GET_ITEM(level, 0);
            b = PyTuple_GET_ITEM(level, 1);
        } else {
            lv_release(lv, i);
            return 0;
        }
        Py_INCREF(a);
        Py_INCREF(b);
        Lv *x = &lv[i];
        memset(x, 0, sizeof(Lv));
        int r = wire_number(a, 1, &x->price, &x->pstr);
        if (r == 1) r = wire_number(b, 0, &x->size, &x->sstr);
        Py_DECREF(a);
        Py_DECREF(b);
        if (r == 1 && !((0.0 < x->price && x->price < max_price) && (0.0 <= x->size && x->size < max_size)))
            r = 0; /* out of range (NaN included): the reference raises its error */
        if (r == 1) {
            x->pobj = PyFloat_FromDouble(x->price);
            x->sobj = x->pobj ? PyFloat_FromDouble(x->size) : NULL;
            if (!x->sobj) r = -1;
        }
        if (r != 1) {
            lv_release(lv, i + 1);
            return r;
        }
    }
    return 1;
}

/* Limits as doubles: 1 when both are exact floats (else the reference compares them). */
static int limits_of(PyObject *max_price, PyObject *max_size, double *mp, double *ms) {
    if (!PyFloat_CheckExact(max_price) || !PyFloat_CheckExact(max_size)) return 0;
    *mp = PyFloat_AS_DOUBLE(max_price);
    *ms = PyFloat_AS_DOUBLE(max_size);
    return 1;
}

static void maybe_untrack(PyObject *t);

static PyObject *lv_tuple(const Lv *x) {
    PyObject *t = PyTuple_Pack(4, x->pobj, x->sobj, x->pstr, x->sstr);
    if (t) maybe_untrack(t);
    return t;
}

/* parse_levels(levels, max_price, max_size) -> list of (price, size, price_str, size_str), or None
 * when the reference must parse them (not a list/tuple of plain levels, or invalid). */
static PyObject *parse_levels(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_levels(levels, max_price, max_size)");
        return NULL;
    }
    PyObject *levels = args[0];
    double mp, ms;
    if (!(PyList_CheckExact(levels) || PyTuple_CheckExact(levels)) || !limits_of(args[1], args[2], &mp, &ms))
        Py_RETURN_NONE;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(levels);
    Lv stack[32];
    Lv *lv = n <= 32 ? stack : PyMem_Malloc((size_t)n * sizeof(Lv));
    if (!lv) return PyErr_NoMemory();
    PyObject *result = NULL;
    int r = parse_into(levels, mp, ms, lv);
    if (r == 0) {
        Py_INCREF(Py_None);
        result = Py_None;
    } else if (r == 1) {
        result = PyList_New(n);
        for (Py_ssize_t i = 0; result && i < n; i++) {
            PyObject *t = lv_tuple(&lv[i]);
            if (!t) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, t);
        }
        lv_release(lv, n);
    }
    if (lv != stack) PyMem_Free(lv);
    return result;
}

/* ------------------------------------------------------------------------------------------------ */
/* Applying levels and emitting rows                                                                 */

static PyObject *str_append; /* "append" */

static int append_row(PyObject *rows, PyObject *row) {
    if (PyList_CheckExact(rows)) return PyList_Append(rows, row);
    if (ColumnRows_CheckExact(rows))
        return column_rows_append_objects(rows, &PyTuple_GET_ITEM(row, 0), PyTuple_GET_SIZE(row));
    PyObject *r = PyObject_CallMethodOneArg(rows, str_append, row);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

/* Untracks a new tuple from the garbage collector when none of its items can be part of a cycle
 * (the rule CPython applies to every tuple at its first collection): row and level tuples hold
 * strings, numbers and None, and millions of them would otherwise be traversed in young collections
 * for nothing. */
static void maybe_untrack(PyObject *t) {
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PyTuple_GET_ITEM(t, i);
        if (PyObject_IS_GC(x) && (!PyTuple_CheckExact(x) || PyObject_GC_IsTracked(x))) return;
    }
    PyObject_GC_UnTrack(t);
}

/* The constant columns of one call's rows. */
typedef struct {
    PyObject *rows, *ex, *sym, *ts_exchange, *ts_recv, *side, *is_snapshot, *seq, *epoch, *flags;
    /* 1: the caller has checked once that none of the constant columns can be part of a cycle and
     * passes exact floats as price and size, so every row is untracked without looking at it again
     * (0: maybe_untrack checks each row) */
    int untracked;
    /* rows held as columns: the row's cells, the constant ones made once per side (cells_state 0:
     * not yet, 1: made, 2: a constant column is not taken as is: every row goes as objects) */
    int cells_state;
    CRCell cells[11];
} RowCtx;

/* 1 when none of the constant columns of c can be part of a cycle (maybe_untrack's rule). */
static int ctx_untrackable(const RowCtx *c) {
    PyObject *cols[9] = {c->ex, c->sym, c->ts_exchange, c->ts_recv, c->side, c->is_snapshot, c->seq, c->epoch, c->flags};
    for (int i = 0; i < 9; i++) {
        PyObject *x = cols[i];
        if (PyObject_IS_GC(x) && (!PyTuple_CheckExact(x) || PyObject_GC_IsTracked(x))) return 0;
    }
    return 1;
}

/* 1 when c's row cells are made for its current side: a row is then its price and size. */
static inline int cells_made(const RowCtx *c) { return c->cells_state == 1 && c->cells[4].obj == c->side; }

static inline int append_made_row(RowCtx *c, double price, double size) {
    c->cells[5].d = price;
    c->cells[6].d = size;
    return column_rows_append_made(c->rows, c->cells);
}

static int emit_row(RowCtx *c, PyObject *price, PyObject *size) {
    PyObject *cols[11] = {c->ex,   c->sym,         c->ts_exchange, c->ts_recv, c->side, price,
                          size,    c->is_snapshot, c->seq,         c->epoch,   c->flags};
    if (ColumnRows_CheckExact(c->rows)) {
        /* callers move side between a message's bids and asks: the cells are made again then */
        if (c->cells_state != 2 && !cells_made(c))
            c->cells_state = column_rows_cells_of(c->rows, cols, 11, c->cells) ? 1 : 2;
        if (c->cells_state == 1 && PyFloat_CheckExact(price) && PyFloat_CheckExact(size)) {
            double p = PyFloat_AS_DOUBLE(price), z = PyFloat_AS_DOUBLE(size);
            if (p == p && z == z) return append_made_row(c, p, z); /* not NaN */
        }
        return column_rows_append_objects(c->rows, cols, 11);
    }
    PyObject *row = PyTuple_New(11);
    if (!row) return -1;
    for (int i = 0; i < 11; i++) {
        Py_INCREF(cols[i]);
        PyTuple_SET_ITEM(row, i, cols[i]);
    }
    if (c->untracked)
        PyObject_GC_UnTrack(row);
    else
        maybe_untrack(row);
    int r = append_row(c->rows, row);
    Py_DECREF(row);
    return r;
}

/* Sets (size != 0) or removes (size == 0) one level and emits its row. snapshot: size-0 levels are
 * skipped entirely (a snapshot's empty levels do not exist). */
static int apply_one(Levels *L, RowCtx *c, double price, double size, PyObject *pobj, PyObject *sobj,
                     PyObject *pstr, PyObject *sstr, int snapshot) {
    if (size == 0.0) {
        if (snapshot) return 0;
        levels_remove(L, price);
    } else {
        PyObject *value = PyTuple_Pack(3, sobj, pstr, sstr);
        if (!value) return -1;
        maybe_untrack(value);
        int r = levels_set(L, price, pobj, value);
        Py_DECREF(value);
        if (r < 0) return -1;
    }
    return emit_row(c, pobj, sobj);
}

/* A book position (sequence number or exchange time): None or an exact int within 64 bits. */
static int plain_position(PyObject *v) {
    if (v == Py_None) return 1;
    if (!PyLong_CheckExact(v)) return 0;
    int overflow = 0;
    (void)PyLong_AsLongLongAndOverflow(v, &overflow);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return overflow == 0;
}

/* apply_update(bid_levels, ask_levels, rows, exchange, symbol, ts_exchange, ts_recv, bids, asks, seq,
 *              epoch, flags, max_price, max_size, bid, ask) -> bool
 * SyncedBook.apply_update after its position check: parses and validates both sides, then applies
 * them (bids first) emitting one row per level. False (nothing done) when the reference must run. */
static PyObject *apply_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 16) {
        PyErr_SetString(PyExc_TypeError, "apply_update takes 16 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &LevelsType) || !PyObject_TypeCheck(args[1], &LevelsType)) {
        PyErr_SetString(PyExc_TypeError, "apply_update needs two Levels");
        return NULL;
    }
    Levels *sides[2] = {(Levels *)args[0], (Levels *)args[1]};
    PyObject *bids = args[7], *asks = args[8];
    double mp, ms;
    if (!plain_position(args[9]) || !plain_position(args[5]) ||
        !(PyList_CheckExact(bids) || PyTuple_CheckExact(bids)) ||
        !(PyList_CheckExact(asks) || PyTuple_CheckExact(asks)) || !limits_of(args[12], args[13], &mp, &ms))
        Py_RETURN_FALSE;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(bids), na = PySequence_Fast_GET_SIZE(asks);
    Lv stack[64];
    Lv *lv = nb + na <= 64 ? stack : PyMem_Malloc((size_t)(nb + na) * sizeof(Lv));
    if (!lv) return PyErr_NoMemory();
    PyObject *result = NULL;
    int r = parse_into(bids, mp, ms, lv);
    if (r == 1) {
        r = parse_into(asks, mp, ms, lv + nb);
        if (r != 1) lv_release(lv, nb);
    }
    if (r == 0) {
        Py_INCREF(Py_False);
        result = Py_False;
    } else if (r == 1) {
        RowCtx c = {args[2], args[3], args[4], args[5], args[6], args[14], Py_False, args[9], args[10], args[11]};
        int ok = 0;
        for (Py_ssize_t i = 0; i < nb + na && ok == 0; i++) {
            int s = i >= nb;
            c.side = s ? args[15] : args[14];
            Lv *x = &lv[i];
            ok = apply_one(sides[s], &c, x->price, x->size, x->pobj, x->sobj, x->pstr, x->sstr, 0);
        }
        lv_release(lv, nb + na);
        if (ok == 0) {
            Py_INCREF(Py_True);
            result = Py_True;
        }
    }
    if (lv != stack) PyMem_Free(lv);
    return result;
}

/* apply_parsed(levels, rows, exchange, symbol, ts_exchange, ts_recv, side, parsed, seq, epoch, flags,
 *              is_snapshot) -> bool
 * Applies levels already parsed ((price, size, price_str, size_str) tuples of floats) to one side and
 * emits their rows; with is_snapshot, size-0 levels are skipped. False (nothing done) when the
 * reference must run (a position that is not a plain 64-bit integer, items of other shapes). */
static PyObject *apply_parsed(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "apply_parsed takes 12 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &LevelsType)) {
        PyErr_SetString(PyExc_TypeError, "apply_parsed needs Levels");
        return NULL;
    }
    Levels *L = (Levels *)args[0];
    PyObject *parsed = args[7];
    if (!plain_position(args[8]) || !plain_position(args[4]) ||
        !(PyList_CheckExact(parsed) || PyTuple_CheckExact(parsed)))
        Py_RETURN_FALSE;
    int snapshot = PyObject_IsTrue(args[11]);
    if (snapshot < 0) return NULL;
    /* A tuple copy: appending a row may run code (a collection, a non-list row store) that could
     * change a list while it is being read. */
    PyObject *items = PySequence_Tuple(parsed);
    if (!items) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 4 || !PyFloat_CheckExact(PyTuple_GET_ITEM(t, 0)) ||
            !PyFloat_CheckExact(PyTuple_GET_ITEM(t, 1)) || isnan(PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(t, 0)))) {
            Py_DECREF(items);
            Py_RETURN_FALSE;
        }
    }
    RowCtx c = {args[1], args[2], args[3], args[4], args[5], args[6], snapshot ? Py_True : Py_False,
                args[8], args[9], args[10]};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(items, i);
        PyObject *p = PyTuple_GET_ITEM(t, 0), *s = PyTuple_GET_ITEM(t, 1);
        if (apply_one(L, &c, PyFloat_AS_DOUBLE(p), PyFloat_AS_DOUBLE(s), p, s, PyTuple_GET_ITEM(t, 2),
                      PyTuple_GET_ITEM(t, 3), snapshot) < 0) {
            Py_DECREF(items);
            return NULL;
        }
    }
    Py_DECREF(items);
    Py_RETURN_TRUE;
}

/* crossed(bid_levels, ask_levels) -> bool: best bid >= best ask (False when a side is empty). */
static PyObject *crossed(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &LevelsType) || !PyObject_TypeCheck(args[1], &LevelsType)) {
        PyErr_SetString(PyExc_TypeError, "crossed(bid_levels, ask_levels)");
        return NULL;
    }
    Levels *b = (Levels *)args[0], *a = (Levels *)args[1];
    if (b->n == 0 || a->n == 0) Py_RETURN_FALSE;
    return PyBool_FromLong(price_of(b, b->keys[b->n - 1]) >= price_of(a, a->keys[a->n - 1]));
}

/* ------------------------------------------------------------------------------------------------ */
/* Book checksums (collectors/checksum.py book_crc32 is the reference)                               */

/* CRC-32 as zlib.crc32 computes it (IEEE 802.3, reflected polynomial 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF), table-driven, fed piece by piece so no joined string is ever built. */
static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static inline uint32_t crc_feed(uint32_t c, const char *p, Py_ssize_t n) {
    const unsigned char *s = (const unsigned char *)p;
    for (Py_ssize_t i = 0; i < n; i++) c = crc_table[(c ^ s[i]) & 0xFF] ^ (c >> 8);
    return c;
}

static inline uint32_t crc_byte(uint32_t c, unsigned char b) { return crc_table[(c ^ b) & 0xFF] ^ (c >> 8); }

/* Level renderings (the styles of collectors/checksum.py):
 *   0 COLON          price ":" size                    (OKX, Bitget)
 *   1 DIGITS         digits of price then of size, '.' removed, leading '0's stripped (Kraken)
 *   2 PADDED_DIGITS  as DIGITS after padding each to price/qty decimals (Kraken, padded)
 *   3 COLON_NEG_ASK  bids price ":" size, asks price ":-" size (Bitfinex) */
enum { ST_COLON = 0, ST_DIGITS = 1, ST_PADDED = 2, ST_COLON_NEG_ASK = 3 };

/* DIGITS rendering of text followed by `zeros` '0's (the padding): '.' skipped, leading '0's skipped. */
static uint32_t crc_digits(uint32_t c, const char *s, Py_ssize_t n, Py_ssize_t zeros) {
    int leading = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') continue;
        if (leading && ch == '0') continue;
        leading = 0;
        c = crc_byte(c, (unsigned char)ch);
    }
    if (!leading)
        for (Py_ssize_t i = 0; i < zeros; i++) c = crc_byte(c, '0');
    return c;
}

/* The zeros kraken's _pad appends: decimals counted in code points after the first '.' (UTF-8 lead
 * bytes only); when text has no '.', "." + zeros is appended, and the '.' vanishes in DIGITS. */
static Py_ssize_t pad_zeros(const char *s, Py_ssize_t n, long decimals) {
    const char *dot = memchr(s, '.', (size_t)n);
    Py_ssize_t have = 0;
    if (dot)
        for (const char *p = dot + 1; p < s + n; p++)
            if ((*p & 0xC0) != 0x80) have++;
    return have >= decimals ? 0 : (Py_ssize_t)(decimals - have);
}

/* The UTF-8 of a level's price and size strings: exact str in a tuple of >= 3; else -1 (no error set:
 * the reference runs and raises what it raises). */
static int level_strings(PyObject *v, const char **p, Py_ssize_t *pn, const char **s, Py_ssize_t *sn) {
    if (!PyTuple_CheckExact(v) || PyTuple_GET_SIZE(v) < 3) return -1;
    PyObject *po = PyTuple_GET_ITEM(v, 1), *so = PyTuple_GET_ITEM(v, 2);
    if (!PyUnicode_CheckExact(po) || !PyUnicode_CheckExact(so)) return -1;
    *p = PyUnicode_AsUTF8AndSize(po, pn);
    if (!*p) {
        PyErr_Clear();
        return -1;
    }
    *s = PyUnicode_AsUTF8AndSize(so, sn);
    if (!*s) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

typedef struct {
    int style;
    long pd, qd;
    const char *sep;
    Py_ssize_t sepn;
    int started; /* a level has been written: the next one is preceded by the separator */
    uint32_t c;
} CrcCtx;

static int crc_level(CrcCtx *x, PyObject *v, int ask) {
    const char *p, *s;
    Py_ssize_t pn, sn;
    if (level_strings(v, &p, &pn, &s, &sn) < 0) return -1;
    if (x->started) x->c = crc_feed(x->c, x->sep, x->sepn);
    x->started = 1;
    switch (x->style) {
    case ST_COLON:
    case ST_COLON_NEG_ASK:
        x->c = crc_feed(x->c, p, pn);
        x->c = crc_byte(x->c, ':');
        if (ask && x->style == ST_COLON_NEG_ASK) x->c = crc_byte(x->c, '-');
        x->c = crc_feed(x->c, s, sn);
        break;
    case ST_DIGITS:
        x->c = crc_digits(x->c, p, pn, 0);
        x->c = crc_digits(x->c, s, sn, 0);
        break;
    default:
        x->c = crc_digits(x->c, p, pn, pad_zeros(p, pn, x->pd));
        x->c = crc_digits(x->c, s, sn, pad_zeros(s, sn, x->qd));
        break;
    }
    return 0;
}

/* book_crc32(bid_levels, ask_levels, depth, style, interleave, separator, asks_first, price_decimals,
 * qty_decimals) -> the unsigned CRC32 book_crc32 computes, or None when the reference must run (a
 * level that is not a tuple of exact str, a string that does not encode). */
static PyObject *book_crc32(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9 || !PyObject_TypeCheck(args[0], &LevelsType) || !PyObject_TypeCheck(args[1], &LevelsType) ||
        !PyUnicode_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "book_crc32(bid_levels, ask_levels, depth, style, interleave, "
                                         "separator, asks_first, price_decimals, qty_decimals)");
        return NULL;
    }
    Py_ssize_t depth = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    if (depth == -1 && PyErr_Occurred()) return NULL;
    long style = PyLong_AsLong(args[3]);
    if (style == -1 && PyErr_Occurred()) return NULL;
    int interleave = PyObject_IsTrue(args[4]);
    int asks_first = PyObject_IsTrue(args[6]);
    if (interleave < 0 || asks_first < 0) return NULL;
    CrcCtx x = {0};
    x.style = (int)style;
    if (style == ST_PADDED) {
        x.pd = PyLong_AsLong(args[7]);
        if (x.pd == -1 && PyErr_Occurred()) return NULL;
        x.qd = PyLong_AsLong(args[8]);
        if (x.qd == -1 && PyErr_Occurred()) return NULL;
    } else if (style < 0 || style > ST_COLON_NEG_ASK) {
        PyErr_SetString(PyExc_ValueError, "unknown checksum style");
        return NULL;
    }
    x.sep = PyUnicode_AsUTF8AndSize(args[5], &x.sepn);
    if (!x.sep) return NULL;
    x.c = 0xFFFFFFFFu;
    if (depth < 0) depth = 0;
    Snap b, a;
    if (snap_take((Levels *)args[0], depth, &b) < 0) return NULL;
    if (snap_take((Levels *)args[1], depth, &a) < 0) {
        snap_free(&b);
        return NULL;
    }
    int rc = 0;
    if (interleave) {
        Py_ssize_t n = b.n > a.n ? b.n : a.n;
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            if (i < b.n) rc = crc_level(&x, b.vals[i], 0);
            if (rc == 0 && i < a.n) rc = crc_level(&x, a.vals[i], 1);
        }
    } else {
        Snap *first = asks_first ? &a : &b, *second = asks_first ? &b : &a;
        for (Py_ssize_t i = 0; rc == 0 && i < first->n; i++) rc = crc_level(&x, first->vals[i], first == &a);
        for (Py_ssize_t i = 0; rc == 0 && i < second->n; i++) rc = crc_level(&x, second->vals[i], second == &a);
    }
    snap_free(&b);
    snap_free(&a);
    if (rc < 0) Py_RETURN_NONE;
    return PyLong_FromUnsignedLong((unsigned long)(x.c ^ 0xFFFFFFFFu));
}

/* ------------------------------------------------------------------------------------------------ */
/* JSON nesting depth (collectors/events.py json_too_deep is the reference)                          */

/* json_too_deep(data, limit) -> bool. One pass over the bytes: '[' and '{' outside strings open a
 * level, ']' and '}' close one; inside a string a backslash escapes the next byte and '"' ends it.
 * True as soon as the depth exceeds limit; False at the end, or as soon as a close has no open (the
 * frame is malformed and the decoder reports it). Exact for valid JSON; any bytes are accepted. */
static unsigned char json_class[256]; /* 1 open, 2 close, 3 quote */

static PyObject *json_too_deep(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "json_too_deep(data, limit)");
        return NULL;
    }
    long limit = PyLong_AsLong(args[1]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    const unsigned char *s;
    Py_ssize_t len;
    int is_bytes = PyBytes_CheckExact(args[0]);
    if (is_bytes) {
        s = (const unsigned char *)PyBytes_AS_STRING(args[0]);
        len = PyBytes_GET_SIZE(args[0]);
    } else {
        if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
        s = view.buf;
        len = view.len;
    }
    const unsigned char *end = s + len;
    long depth = 0;
    int deep = 0;
    while (s < end) {
        unsigned char k = json_class[*s++];
        if (!k) continue;
        if (k == 1) {
            if (++depth > limit) {
                deep = 1;
                break;
            }
        } else if (k == 2) {
            if (--depth < 0) break;
        } else {
            /* a string: to the next '"' not escaped by a backslash (or the end); strings in frames
             * are short (prices, names), so a plain loop beats a memchr call per string */
            for (;;) {
                while (s < end && *s != '"' && *s != '\\') s++;
                if (s >= end) break;
                if (*s == '"') {
                    s++;
                    break;
                }
                if (end - s < 2) { /* a backslash as the last byte */
                    s = end;
                    break;
                }
                s += 2;
            }
        }
    }
    if (!is_bytes) PyBuffer_Release(&view);
    return PyBool_FromLong(deep);
}

/* ------------------------------------------------------------------------------------------------ */
/* Time flags (collectors/base.py TimeFlagger is the reference)                                      */

/* schemas.Flags */
#define F_OUTDATED 1
#define F_MAYBE_BAD_BOOK 2
#define F_NEG_LATENCY 8
#define F_BAD_TS_RECV 32
#define F_BAD_TS_EXCHANGE 64
/* TimeFlagger.FLOOR_SECONDS, collectors.base.PLAUSIBLE_RECV_NS */
#define FLOOR_SECONDS 8
#define PLAUSIBLE_RECV_NS (1262304000LL * 1000000000LL)

/* Latencies are differences of two int64 values: 128-bit arithmetic holds them exactly, as Python's
 * integers do (the floor is one of them). */
typedef __int128 i128;

typedef struct {
    PyObject_HEAD
    long long outdated_cutoff_ns;
    long long clock_tolerance_ns;
    long long max_skew_ns;
    Py_ssize_t skewed;
    long long skew_exchange, skew_recv; /* skew_last */
    i128 floor_ns;
    i128 minima[FLOOR_SECONDS + 1]; /* oldest first */
    int n_minima;
    long long second;
    i128 second_min;
} TimeFlags;

static PyTypeObject TimeFlagsType;

static inline long long floor_div_1e9(long long v) {
    long long q = v / 1000000000LL;
    if ((v % 1000000000LL) != 0 && v < 0) q--;
    return q;
}

static inline int tf_outside(const TimeFlags *t, i128 latency) {
    return !(-(i128)t->max_skew_ns < latency && latency < (i128)t->max_skew_ns);
}

static void tf_close_second(TimeFlags *t, long long second, i128 latency) {
    if (t->second >= 0) {
        t->minima[t->n_minima++] = t->second_min;
        if (t->n_minima > FLOOR_SECONDS) {
            memmove(t->minima, t->minima + 1, (size_t)FLOOR_SECONDS * sizeof(i128));
            t->n_minima = FLOOR_SECONDS;
        }
        i128 m = t->minima[0];
        for (int i = 1; i < t->n_minima; i++)
            if (t->minima[i] > m) m = t->minima[i];
        t->floor_ns = m;
    } else {
        t->floor_ns = latency;
    }
    t->second = second;
    t->second_min = latency;
    if (t->n_minima < FLOOR_SECONDS && latency < t->floor_ns) t->floor_ns = latency;
}

/* TimeFlagger.flags after its skew test, for a latency inside the skew bounds or a receive time that
 * is not plausible (the state moves). */
static long tf_track(TimeFlags *t, long long ts_recv, i128 latency) {
    int host_behind = t->floor_ns < -(i128)t->clock_tolerance_ns;
    long long second = floor_div_1e9(ts_recv);
    if (second != t->second) {
        tf_close_second(t, second, latency);
        host_behind = t->floor_ns < -(i128)t->clock_tolerance_ns;
    } else if (latency < t->second_min) {
        t->second_min = latency;
        if (latency < t->floor_ns && t->n_minima < FLOOR_SECONDS) {
            t->floor_ns = latency;
            host_behind = t->floor_ns < -(i128)t->clock_tolerance_ns;
        }
    }
    long flags = 0;
    if (latency < 0) flags |= F_NEG_LATENCY;
    if (host_behind) {
        flags |= F_BAD_TS_RECV;
        if (latency - t->floor_ns > (i128)t->outdated_cutoff_ns) flags |= F_OUTDATED;
    } else if (latency > (i128)t->outdated_cutoff_ns) {
        flags |= F_OUTDATED;
    }
    return flags;
}

static long tf_skewed(TimeFlags *t, long long ts_exchange, long long ts_recv, i128 latency) {
    int host_behind = t->floor_ns < -(i128)t->clock_tolerance_ns;
    t->skewed++;
    t->skew_exchange = ts_exchange;
    t->skew_recv = ts_recv;
    long flags = F_BAD_TS_EXCHANGE;
    if (latency < 0) flags |= F_NEG_LATENCY;
    else if (latency > (i128)t->outdated_cutoff_ns) flags |= F_OUTDATED;
    if (host_behind) flags |= F_BAD_TS_RECV;
    return flags;
}

/* The whole TimeFlagger.flags for int64 timestamps (has_exchange 0: ts_exchange is None). */
static long tf_flags(TimeFlags *t, int has_exchange, long long ts_exchange, long long ts_recv, int history) {
    if (!has_exchange) return t->floor_ns < -(i128)t->clock_tolerance_ns ? F_BAD_TS_RECV : 0;
    i128 latency = (i128)ts_recv - (i128)ts_exchange;
    if (tf_outside(t, latency)) {
        if (history && latency > 0)
            return F_OUTDATED | (t->floor_ns < -(i128)t->clock_tolerance_ns ? F_BAD_TS_RECV : 0);
        if (ts_recv >= PLAUSIBLE_RECV_NS) return tf_skewed(t, ts_exchange, ts_recv, latency);
    }
    return tf_track(t, ts_recv, latency);
}

static PyObject *events_check_int64; /* collectors.events.check_int64, imported at first need */

/* Raises the reference's error for an exchange time that is not an int64 integer (check_int64). */
static PyObject *raise_check_int64(PyObject *value) {
    if (!events_check_int64) {
        PyObject *mod = PyImport_ImportModule("collectors.events");
        if (!mod) return NULL;
        events_check_int64 = PyObject_GetAttrString(mod, "check_int64");
        Py_DECREF(mod);
        if (!events_check_int64) return NULL;
    }
    PyObject *r = PyObject_CallFunction(events_check_int64, "Os", value, "exchange timestamp");
    if (!r) return NULL;
    Py_DECREF(r);
    /* check_int64 accepted it: the reference would go on with a value this type does not hold */
    PyErr_SetString(PyExc_OverflowError, "exchange timestamp outside int64");
    return NULL;
}

static PyObject *tf_call(TimeFlags *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *history_obj = NULL;
    if (nargs == 3 && nkw == 0) {
        history_obj = args[2];
    } else if (nargs == 2 && nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "history") == 0) {
        history_obj = args[2];
    } else if (!(nargs == 2 && nkw == 0)) {
        PyErr_SetString(PyExc_TypeError, "flags(ts_exchange, ts_recv, history=False)");
        return NULL;
    }
    int history = 0;
    if (history_obj) {
        history = PyObject_IsTrue(history_obj);
        if (history < 0) return NULL;
    }
    PyObject *ex = args[0], *recv = args[1];
    if (!PyLong_Check(recv)) {
        PyErr_Format(PyExc_TypeError, "receive time is not an integer: %R", recv);
        return NULL;
    }
    long long ts_recv = PyLong_AsLongLong(recv);
    if (ts_recv == -1 && PyErr_Occurred()) return NULL;
    if (ex == Py_None) return PyLong_FromLong(tf_flags(t, 0, 0, ts_recv, history));
    if (!PyLong_Check(ex)) return raise_check_int64(ex);
    int overflow = 0;
    long long ts_exchange = PyLong_AsLongLongAndOverflow(ex, &overflow);
    if (ts_exchange == -1 && PyErr_Occurred()) return NULL;
    if (overflow) return raise_check_int64(ex); /* far outside any skew bound: the reference raises */
    i128 latency = (i128)ts_recv - (i128)ts_exchange;
    if (tf_outside(t, latency) && !PyLong_CheckExact(ex)) return raise_check_int64(ex); /* a bool */
    return PyLong_FromLong(tf_flags(t, 1, ts_exchange, ts_recv, history));
}

static PyObject *tf_flags_method(TimeFlags *t, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return tf_call(t, args, nargs, kwnames);
}

static PyObject *i128_to_long(i128 v) {
    if (v >= (i128)LLONG_MIN && v <= (i128)LLONG_MAX) return PyLong_FromLongLong((long long)v);
    char buf[64];
    int neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    int i = 63;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (neg) buf[--i] = '-';
    return PyLong_FromString(buf + i, NULL, 10);
}

static PyObject *tf_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"outdated_cutoff_ns", "clock_tolerance_ns", "max_skew_ns", NULL};
    long long cutoff, tolerance, skew;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLL", kwlist, &cutoff, &tolerance, &skew)) return NULL;
    TimeFlags *t = (TimeFlags *)type->tp_alloc(type, 0);
    if (!t) return NULL;
    t->outdated_cutoff_ns = cutoff;
    t->clock_tolerance_ns = tolerance;
    t->max_skew_ns = skew;
    t->second = -1;
    return (PyObject *)t;
}

static PyObject *tf_get_floor(TimeFlags *t, void *Py_UNUSED(c)) { return i128_to_long(t->floor_ns); }
static PyObject *tf_get_skew_last(TimeFlags *t, void *Py_UNUSED(c)) {
    return Py_BuildValue("(LL)", t->skew_exchange, t->skew_recv);
}
static PyObject *tf_get_minima(TimeFlags *t, void *Py_UNUSED(c)) {
    PyObject *list = PyList_New(t->n_minima);
    for (int i = 0; list && i < t->n_minima; i++) {
        PyObject *v = i128_to_long(t->minima[i]);
        if (!v) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, v);
    }
    return list;
}
static PyObject *tf_get_second(TimeFlags *t, void *Py_UNUSED(c)) { return PyLong_FromLongLong(t->second); }
static PyObject *tf_get_second_min(TimeFlags *t, void *Py_UNUSED(c)) { return i128_to_long(t->second_min); }

static PyMethodDef tf_methods[] = {
    {"flags", (PyCFunction)(void (*)(void))tf_flags_method, METH_FASTCALL | METH_KEYWORDS,
     "flags(ts_exchange, ts_recv, history=False): TimeFlagger.flags"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef tf_members[] = {
    {"outdated_cutoff_ns", T_LONGLONG, offsetof(TimeFlags, outdated_cutoff_ns), 0, "OUTDATED above this latency"},
    {"clock_tolerance_ns", T_LONGLONG, offsetof(TimeFlags, clock_tolerance_ns), 0, "host clock tolerance"},
    {"max_skew_ns", T_LONGLONG, offsetof(TimeFlags, max_skew_ns), 0, "BAD_TS_EXCHANGE from this distance"},
    {"skewed", T_PYSSIZET, offsetof(TimeFlags, skewed), 0, "records flagged BAD_TS_EXCHANGE so far"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef tf_getset[] = {
    {"floor_ns", (getter)tf_get_floor, NULL, "current latency floor (ns)", NULL},
    {"skew_last", (getter)tf_get_skew_last, NULL, "(ts_exchange, ts_recv) of the latest skewed record", NULL},
    {"_minima", (getter)tf_get_minima, NULL, "per-second latency minima, oldest first", NULL},
    {"_second", (getter)tf_get_second, NULL, "the current second of receive time", NULL},
    {"_second_min", (getter)tf_get_second_min, NULL, "the current second's minimum latency", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TimeFlagsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._booknative.TimeFlags",
    .tp_basicsize = sizeof(TimeFlags),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "collectors.base.TimeFlagger in C: TimeFlags(outdated_cutoff_ns, clock_tolerance_ns, max_skew_ns).",
    .tp_new = tf_new,
    .tp_methods = tf_methods,
    .tp_members = tf_members,
    .tp_getset = tf_getset,
};

/* ------------------------------------------------------------------------------------------------ */
/* Binance-family frame scanner (collectors/venues/binance.py BinanceFamilyNormaliser.handle is the  */
/* reference)                                                                                        */
/*
 * scan(ts_recv, frame, out, subscribed) reads a combined-stream frame's bytes directly (no decode to
 * dicts) and handles the steady state of the three market streams: a depth update that continues a
 * synced book, a trade with a new id, a bookTicker. It appends exactly the rows the reference appends
 * and applies levels to the book's Levels. Anything else - a snapshot, a gap, an unsynced book, a
 * duplicate, an unknown symbol or stream, other top-level keys, escapes or non-ASCII bytes in a
 * string, numbers that are not plain, values out of range, a crossed bbo, a symbol outside the
 * subscription, an exchange time a skew bound away - returns False before any state has changed, and
 * the reference runs on the same frame. The JSON grammar accepted here is a strict subset of what
 * orjson accepts (a frame taken here is one orjson decodes to the same values).
 *
 * Returns True (done), False (not handled), or the SyncedBook whose book is crossed after the update
 * (done; the caller emits the reference's crossed_book event through SyncedBook.check_crossed).
 */

static PyObject *s_synced, *s_last_seq, *s_maybe_bad, *s_epoch, *s_book, *s_bids, *s_asks, *s_native,
    *s_max_price, *s_max_size, *s_trades, *s_bbo, *s_buy, *s_sell, *s_bid, *s_ask;

typedef struct {
    char *key;
    Py_ssize_t len;
    Py_hash_t h;
    PyObject *native; /* str */
    PyObject *symbol; /* normalised str */
    PyObject *book;   /* SyncedBook or NULL */
    Levels *bids, *asks; /* its native sides, or NULL */
} ScanSym;

typedef struct {
    double price, size;
    const char *ps, *ss;
    Py_ssize_t pn, sn;
} RawLv;

typedef struct {
    RawLv *v;
    Py_ssize_t n, cap;
} RawSide;

typedef struct {
    PyObject_HEAD
    PyObject *exchange;
    int futures;
    PyObject *last_trade_id;  /* dict: native -> last trade id */
    PyObject *awaiting_first; /* set of natives (futures), or None */
    PyObject *limits;
    TimeFlags *tf;
    ScanSym *syms;
    Py_ssize_t nsyms, capsyms;
    Py_ssize_t *table; /* index + 1 of syms, 0 empty; open addressing */
    Py_ssize_t tcap;
    RawSide side[2];
    PyObject *owner;    /* the normaliser (on_frame); a cycle through its on_frame, which the GC clears */
    PyObject *fallback; /* Normaliser.on_frame: the reference path of a frame not taken */
    long long offered, taken;
} Scanner;

static PyTypeObject ScannerType;

static Py_hash_t key_hash(const char *s, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return (Py_hash_t)(h >> 1);
}

static ScanSym *sym_find(const Scanner *S, const char *s, Py_ssize_t n) {
    if (!S->tcap) return NULL;
    Py_hash_t h = key_hash(s, n);
    Py_ssize_t mask = S->tcap - 1;
    for (Py_ssize_t i = h & mask;; i = (i + 1) & mask) {
        Py_ssize_t k = S->table[i];
        if (!k) return NULL;
        ScanSym *e = &S->syms[k - 1];
        if (e->h == h && e->len == n && memcmp(e->key, s, (size_t)n) == 0) return e;
    }
}

static int table_rebuild(Scanner *S, Py_ssize_t cap) {
    Py_ssize_t *t = PyMem_Calloc((size_t)cap, sizeof(Py_ssize_t));
    if (!t) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < S->nsyms; k++) {
        Py_ssize_t i = S->syms[k].h & (cap - 1);
        while (t[i]) i = (i + 1) & (cap - 1);
        t[i] = k + 1;
    }
    PyMem_Free(S->table);
    S->table = t;
    S->tcap = cap;
    return 0;
}

static void scanner_clear_refs(Scanner *S) {
    for (Py_ssize_t k = 0; k < S->nsyms; k++) {
        ScanSym *e = &S->syms[k];
        PyMem_Free(e->key);
        Py_XDECREF(e->native);
        Py_XDECREF(e->symbol);
        Py_XDECREF(e->book);
        Py_XDECREF(e->bids);
        Py_XDECREF(e->asks);
    }
    PyMem_Free(S->syms);
    PyMem_Free(S->table);
    S->syms = NULL;
    S->table = NULL;
    S->nsyms = S->capsyms = S->tcap = 0;
    PyMem_Free(S->side[0].v);
    PyMem_Free(S->side[1].v);
    S->side[0].v = S->side[1].v = NULL;
    S->side[0].cap = S->side[1].cap = 0;
    Py_CLEAR(S->exchange);
    Py_CLEAR(S->last_trade_id);
    Py_CLEAR(S->awaiting_first);
    Py_CLEAR(S->limits);
    Py_CLEAR(S->tf);
    Py_CLEAR(S->owner);
    Py_CLEAR(S->fallback);
}

static int scanner_traverse(Scanner *S, visitproc visit, void *arg) {
    for (Py_ssize_t k = 0; k < S->nsyms; k++) {
        Py_VISIT(S->syms[k].book);
        Py_VISIT(S->syms[k].bids);
        Py_VISIT(S->syms[k].asks);
    }
    Py_VISIT(S->last_trade_id);
    Py_VISIT(S->awaiting_first);
    Py_VISIT(S->limits);
    Py_VISIT(S->tf);
    Py_VISIT(S->fallback);
    Py_VISIT(S->owner);
    return 0;
}

static int scanner_tp_clear(Scanner *S) {
    scanner_clear_refs(S);
    return 0;
}

static void scanner_dealloc(Scanner *S) {
    PyObject_GC_UnTrack(S);
    scanner_clear_refs(S);
    Py_TYPE(S)->tp_free((PyObject *)S);
}

/* BinanceScanner(exchange, futures, last_trade_id, awaiting_first, limits, time_flags, owner, fallback) */
static PyObject *scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *exchange, *last, *awaiting, *limits, *tf, *owner, *fallback;
    int futures;
    if (!PyArg_ParseTuple(args, "UpO!OOO!OO", &exchange, &futures, &PyDict_Type, &last, &awaiting, &limits,
                          &TimeFlagsType, &tf, &owner, &fallback))
        return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    PyObject *ref = Py_NewRef(owner);
    if (awaiting != Py_None && !PySet_Check(awaiting)) {
        PyErr_SetString(PyExc_TypeError, "awaiting_first must be a set or None");
        return NULL;
    }
    Scanner *S = (Scanner *)type->tp_alloc(type, 0);
    if (!S) {
        Py_DECREF(ref);
        return NULL;
    }
    S->owner = ref;
    S->fallback = Py_NewRef(fallback);
    S->futures = futures;
    Py_INCREF(exchange);
    S->exchange = exchange;
    Py_INCREF(last);
    S->last_trade_id = last;
    Py_INCREF(awaiting);
    S->awaiting_first = awaiting;
    Py_INCREF(limits);
    S->limits = limits;
    Py_INCREF(tf);
    S->tf = (TimeFlags *)tf;
    return (PyObject *)S;
}

/* register(native, symbol): a native symbol (its data "s") and its normalised name. Natives that are
 * not ASCII str are not kept (their frames take the reference path). */
static PyObject *scanner_register(Scanner *S, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "register(native, symbol)");
        return NULL;
    }
    PyObject *native = args[0], *symbol = args[1];
    if (!PyUnicode_CheckExact(native) || !PyUnicode_IS_ASCII(native) || !PyUnicode_CheckExact(symbol))
        Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(native);
    Py_ssize_t n = PyUnicode_GET_LENGTH(native);
    ScanSym *e = sym_find(S, s, n);
    if (e) {
        Py_INCREF(symbol);
        Py_SETREF(e->symbol, symbol);
        Py_RETURN_NONE;
    }
    if (S->nsyms + 1 > S->capsyms) {
        Py_ssize_t cap = S->capsyms ? S->capsyms * 2 : 8;
        ScanSym *v = PyMem_Realloc(S->syms, (size_t)cap * sizeof(ScanSym));
        if (!v) return PyErr_NoMemory();
        S->syms = v;
        S->capsyms = cap;
    }
    char *key = PyMem_Malloc((size_t)(n ? n : 1));
    if (!key) return PyErr_NoMemory();
    memcpy(key, s, (size_t)n);
    e = &S->syms[S->nsyms++];
    memset(e, 0, sizeof(ScanSym));
    e->key = key;
    e->len = n;
    e->h = key_hash(s, n);
    Py_INCREF(native);
    e->native = native;
    Py_INCREF(symbol);
    e->symbol = symbol;
    if ((S->nsyms + 1) * 2 > S->tcap) {
        if (table_rebuild(S, S->tcap ? S->tcap * 2 : 16) < 0) return NULL;
    } else {
        Py_ssize_t i = e->h & (S->tcap - 1);
        while (S->table[i]) i = (i + 1) & (S->tcap - 1);
        S->table[i] = S->nsyms;
    }
    Py_RETURN_NONE;
}

/* set_book(native, book): the SyncedBook of a registered native symbol (its L2Book's sides are kept
 * when they are Levels). */
static PyObject *scanner_set_book(Scanner *S, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_book(native, book)");
        return NULL;
    }
    PyObject *native = args[0], *book = args[1];
    if (!PyUnicode_CheckExact(native) || !PyUnicode_IS_ASCII(native)) Py_RETURN_NONE;
    ScanSym *e = sym_find(S, (const char *)PyUnicode_DATA(native), PyUnicode_GET_LENGTH(native));
    if (!e) Py_RETURN_NONE;
    PyObject *l2 = PyObject_GetAttr(book, s_book);
    if (!l2) return NULL;
    PyObject *bids = PyObject_GetAttr(l2, s_bids);
    PyObject *asks = bids ? PyObject_GetAttr(l2, s_asks) : NULL;
    Py_DECREF(l2);
    if (!asks) {
        Py_XDECREF(bids);
        return NULL;
    }
    Py_CLEAR(e->bids);
    Py_CLEAR(e->asks);
    if (Py_IS_TYPE(bids, &LevelsType) && Py_IS_TYPE(asks, &LevelsType)) {
        e->bids = (Levels *)bids;
        e->asks = (Levels *)asks;
    } else {
        Py_DECREF(bids);
        Py_DECREF(asks);
    }
    Py_INCREF(book);
    Py_XSETREF(e->book, book);
    Py_RETURN_NONE;
}

/* -- the JSON subset ------------------------------------------------------------------------------ */

typedef struct {
    const unsigned char *p, *end;
} Cur;

static inline void skip_ws(Cur *c) {
    /* every whitespace byte is <= ' ': one comparison for the usual next byte */
    while (c->p < c->end && *c->p <= ' ' && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static inline int take(Cur *c, unsigned char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Bytes that end or disqualify a plain string: the quote, the backslash, control and non-ASCII bytes. */
static unsigned char str_stop[256];

/* A string without escapes, control or non-ASCII bytes: its span. */
static inline int str_span(Cur *c, const char **s, Py_ssize_t *n) {
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"') return 0;
    const unsigned char *b = ++c->p, *p = b, *end = c->end;
    while (p < end && !str_stop[*p]) p++;
    c->p = p;
    if (p >= end || *p != '"') return 0;
    *s = (const char *)b;
    *n = p - b;
    c->p = p + 1;
    return 1;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* A JSON integer within int64 (no fraction, no exponent), with its text. */
static int int_tok(Cur *c, long long *v, const char **s, Py_ssize_t *n) {
    skip_ws(c);
    const unsigned char *b = c->p;
    int neg = 0;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    if (c->p >= c->end || !is_digit(*c->p)) return 0;
    if (*c->p == '0' && c->p + 1 < c->end && is_digit(c->p[1])) return 0;
    unsigned long long m = 0;
    int digits = 0;
    while (c->p < c->end && is_digit(*c->p)) {
        if (++digits > 18) return 0; /* conservative: every 18-digit value fits */
        m = m * 10 + (unsigned long long)(*c->p - '0');
        c->p++;
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) return 0;
    if (neg && m == 0) return 0; /* -0: the reference's text would be "0" */
    *v = neg ? -(long long)m : (long long)m;
    if (s) {
        *s = (const char *)b;
        *n = c->p - b;
    }
    return 1;
}

static int lit_tok(Cur *c, const char *word, Py_ssize_t n) {
    skip_ws(c);
    if (c->end - c->p < n || memcmp(c->p, word, (size_t)n) != 0) return 0;
    c->p += n;
    return 1;
}

/* A plain JSON number: -?(0|[1-9][0-9]{0,17})(.[0-9]{1,30})? */
static int skip_number(Cur *c) {
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p >= c->end || !is_digit(*c->p)) return 0;
    int digits = 0;
    if (*c->p == '0') {
        c->p++;
    } else {
        while (c->p < c->end && is_digit(*c->p)) {
            if (++digits > 18) return 0;
            c->p++;
        }
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        int frac = 0;
        while (c->p < c->end && is_digit(*c->p)) {
            if (++frac > 30) return 0;
            c->p++;
        }
        if (!frac) return 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E' || is_digit(*c->p))) return 0;
    return 1;
}

/* Any value of the subset, nested at most `depth` more levels. */
static int skip_value(Cur *c, int depth) {
    skip_ws(c);
    if (c->p >= c->end) return 0;
    unsigned char ch = *c->p;
    const char *s;
    Py_ssize_t n;
    switch (ch) {
    case '"':
        return str_span(c, &s, &n);
    case 't':
        return lit_tok(c, "true", 4);
    case 'f':
        return lit_tok(c, "false", 5);
    case 'n':
        return lit_tok(c, "null", 4);
    case '[':
        if (depth <= 0) return 0;
        c->p++;
        if (take(c, ']')) return 1;
        for (;;) {
            if (!skip_value(c, depth - 1)) return 0;
            if (take(c, ',')) continue;
            return take(c, ']');
        }
    case '{':
        if (depth <= 0) return 0;
        c->p++;
        if (take(c, '}')) return 1;
        for (;;) {
            if (!str_span(c, &s, &n) || !take(c, ':') || !skip_value(c, depth - 1)) return 0;
            if (take(c, ',')) continue;
            return take(c, '}');
        }
    default:
        return skip_number(c);
    }
}

/* A quoted plain decimal ([0-9.], see plain_decimal) as float() reads it: the string's span and its
 * digits read in one pass (any other byte, an escape or a control byte included, is "not handled"). */
static inline int dec_tok(Cur *c, double *v, const char **s, Py_ssize_t *n) {
    skip_ws(c);
    const unsigned char *p = c->p, *end = c->end;
    if (p >= end || *p != '"') return 0;
    const unsigned char *b = ++p;
    uint64_t m = 0; /* exact while there are at most 19 digits */
    p = digit_run(p, end, &m);
    Py_ssize_t digits = p - b, frac = 0;
    if (p < end && *p == '.') {
        const unsigned char *f = ++p;
        p = digit_run(p, end, &m);
        frac = p - f;
        digits += frac;
    }
    if (p >= end || *p != '"' || !digits || p - b > 64) return 0;
    c->p = p + 1;
    *s = (const char *)b;
    *n = p - b;
    if (digits <= 19 && m <= (1ULL << 53) && frac <= 22) {
        *v = frac ? (double)m / POW10[frac] : (double)m;
        return 1;
    }
    return plain_decimal(*s, *n, v);
}

static int raw_push(RawSide *r, const RawLv *x) {
    if (r->n == r->cap) {
        Py_ssize_t cap = r->cap ? r->cap * 2 : 64;
        RawLv *v = PyMem_Realloc(r->v, (size_t)cap * sizeof(RawLv));
        if (!v) return -1;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = *x;
    return 0;
}

/* [["price","size"], ...]: every level exactly two plain decimals within the limits. 1 ok, 0 not
 * handled, -1 error. */
static int levels_tok(Cur *c, RawSide *r, double mp, double ms) {
    r->n = 0;
    if (!take(c, '[')) return 0;
    if (take(c, ']')) return 1;
    for (;;) {
        RawLv x;
        if (!take(c, '[') || !dec_tok(c, &x.price, &x.ps, &x.pn) || !take(c, ',') ||
            !dec_tok(c, &x.size, &x.ss, &x.sn) || !take(c, ']'))
            return 0;
        if (!(0.0 < x.price && x.price < mp) || !(0.0 <= x.size && x.size < ms)) return 0;
        if (raw_push(r, &x) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        if (take(c, ',')) continue;
        return take(c, ']') ? 1 : 0;
    }
}

static PyObject *ascii_str(const char *s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127);
    if (u) memcpy(PyUnicode_DATA(u), s, (size_t)n);
    return u;
}

static inline int key_is(const char *k, Py_ssize_t n, const char *want) {
    return (Py_ssize_t)strlen(want) == n && memcmp(k, want, (size_t)n) == 0;
}

/* -- one frame ------------------------------------------------------------------------------------ */

enum { K_TRADE = 1, K_DEPTH, K_TICKER };

/* Field bits of the data object. */
enum {
    B_E_LOWER = 1 << 0, B_S = 1 << 1, B_T_ID = 1 << 2, B_P = 1 << 3, B_Q = 1 << 4, B_T = 1 << 5,
    B_M = 1 << 6, B_X = 1 << 7, B_U_FIRST = 1 << 8, B_U = 1 << 9, B_E = 1 << 10, B_BIDS = 1 << 11,
    B_ASKS = 1 << 12, B_PU = 1 << 13, B_BQ = 1 << 14, B_AQ = 1 << 15,
};

typedef struct {
    unsigned seen;
    const char *sym;
    Py_ssize_t sym_n;
    long long t_id, T, U, u, E, pu;
    const char *t_text;
    Py_ssize_t t_n;
    double p, q, bp, bq, ap, aq;
    int m;
} Fields;

static int ms_ok(long long ms) { return ms > 0 && ms <= LLONG_MAX / 1000000; }

/* Reads the data object of one kind into f. 1 ok, 0 not handled, -1 error. */
static int read_data(Scanner *S, Cur *c, int kind, Fields *f, double mp, double ms) {
    if (!take(c, '{')) return 0;
    f->seen = 0;
    if (take(c, '}')) return 1;
    for (;;) {
        const char *k, *s;
        Py_ssize_t kn, n;
        if (!str_span(c, &k, &kn) || !take(c, ':')) return 0;
        unsigned bit = 0;
        int ok = 1;
        if (kn == 1) {
            switch (k[0]) {
            case 'e': {
                bit = B_E_LOWER;
                Cur save = *c;
                if (str_span(c, &s, &n)) {
                    if (key_is(s, n, "serverShutdown")) return 0;
                } else {
                    *c = save;
                    ok = skip_value(c, 2);
                }
                break;
            }
            case 's':
                bit = B_S;
                ok = str_span(c, &f->sym, &f->sym_n);
                break;
            case 't':
                if (kind != K_TRADE) break;
                bit = B_T_ID;
                ok = int_tok(c, &f->t_id, &f->t_text, &f->t_n) && f->t_id >= 0;
                break;
            case 'p':
                if (kind != K_TRADE) break;
                bit = B_P;
                ok = dec_tok(c, &f->p, &s, &n);
                break;
            case 'q':
                if (kind != K_TRADE) break;
                bit = B_Q;
                ok = dec_tok(c, &f->q, &s, &n);
                break;
            case 'T':
                if (kind != K_TRADE) break;
                bit = B_T;
                ok = int_tok(c, &f->T, NULL, NULL);
                break;
            case 'm':
                if (kind != K_TRADE) break;
                bit = B_M;
                if (lit_tok(c, "true", 4)) f->m = 1;
                else if (lit_tok(c, "false", 5)) f->m = 0;
                else ok = 0;
                break;
            case 'X':
                if (kind != K_TRADE || !S->futures) break;
                bit = B_X;
                ok = str_span(c, &s, &n) && key_is(s, n, "MARKET");
                break;
            case 'U':
                if (kind != K_DEPTH) break;
                bit = B_U_FIRST;
                ok = int_tok(c, &f->U, NULL, NULL);
                break;
            case 'u':
                if (kind == K_TRADE) break;
                bit = B_U;
                ok = int_tok(c, &f->u, NULL, NULL);
                break;
            case 'E':
                if (kind == K_TRADE || (kind == K_TICKER && !S->futures)) break;
                bit = B_E;
                ok = int_tok(c, &f->E, NULL, NULL);
                break;
            case 'b':
                if (kind == K_DEPTH) {
                    bit = B_BIDS;
                    ok = levels_tok(c, &S->side[0], mp, ms);
                } else if (kind == K_TICKER) {
                    bit = B_P;
                    ok = dec_tok(c, &f->bp, &s, &n);
                }
                break;
            case 'a':
                if (kind == K_DEPTH) {
                    bit = B_ASKS;
                    ok = levels_tok(c, &S->side[1], mp, ms);
                } else if (kind == K_TICKER) {
                    bit = B_Q;
                    ok = dec_tok(c, &f->ap, &s, &n);
                }
                break;
            case 'B':
                if (kind != K_TICKER) break;
                bit = B_BQ;
                ok = dec_tok(c, &f->bq, &s, &n);
                break;
            case 'A':
                if (kind != K_TICKER) break;
                bit = B_AQ;
                ok = dec_tok(c, &f->aq, &s, &n);
                break;
            }
        } else if (kn == 2 && k[0] == 'p' && k[1] == 'u' && kind == K_DEPTH && S->futures) {
            bit = B_PU;
            ok = int_tok(c, &f->pu, NULL, NULL);
        }
        if (ok < 0) return -1;
        if (!bit) ok = skip_value(c, 2);
        if (!ok || (f->seen & bit)) return 0;
        f->seen |= bit;
        if (take(c, ',')) continue;
        return take(c, '}') ? 1 : 0;
    }
}

/* Attributes of __slots__ classes (SyncedBook, Limits, RecordBuffer) read and written the way their
 * member descriptors do it, from the offset the descriptor names, once a type is seen to resolve the
 * name to a plain object slot (generic attribute access, a member descriptor of type T_OBJECT_EX);
 * any other object goes through PyObject_GetAttr/SetAttr. */
typedef struct {
    PyTypeObject *type; /* owned */
    Py_ssize_t offset;
    int readonly;
} SlotCache;

static PyObject **slot_of(SlotCache *c, PyObject *obj, PyObject *name, int write) {
    PyTypeObject *t = Py_TYPE(obj);
    if (t != c->type) {
        if (t->tp_getattro != PyObject_GenericGetAttr || t->tp_setattro != PyObject_GenericSetAttr) return NULL;
        PyObject *d = _PyType_Lookup(t, name);
        if (!d || !Py_IS_TYPE(d, &PyMemberDescr_Type)) return NULL;
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX) return NULL;
        Py_INCREF(t);
        Py_XSETREF(c->type, t);
        c->offset = m->offset;
        c->readonly = (m->flags & READONLY) != 0;
    }
    if (write && c->readonly) return NULL;
    return (PyObject **)((char *)obj + c->offset);
}

/* getattr(obj, name) as a new reference (NULL with an error set when it is missing). */
static PyObject *slot_get(SlotCache *c, PyObject *obj, PyObject *name) {
    PyObject **slot = slot_of(c, obj, name, 0);
    if (!slot || !*slot) return PyObject_GetAttr(obj, name);
    return Py_NewRef(*slot);
}

/* setattr(obj, name, value). */
static int slot_set(SlotCache *c, PyObject *obj, PyObject *name, PyObject *value) {
    PyObject **slot = slot_of(c, obj, name, 1);
    if (!slot) return PyObject_SetAttr(obj, name, value);
    PyObject *old = *slot;
    *slot = Py_NewRef(value);
    Py_XDECREF(old);
    return 0;
}

static SlotCache sc_synced, sc_maybe_bad, sc_last_seq, sc_set_last_seq, sc_epoch, sc_max_price, sc_max_size,
    sc_rows_book, sc_rows_bbo, sc_rows_trades;

/* The rows `name` of out (an exact list or a ColumnRows), a new reference, or NULL (not handled /
 * error). */
static PyObject *rows_of(PyObject *out, PyObject *name) {
    SlotCache *c = name == s_book ? &sc_rows_book : name == s_bbo ? &sc_rows_bbo : &sc_rows_trades;
    PyObject *rows = slot_get(c, out, name);
    if (!rows) return NULL;
    if (!PyList_CheckExact(rows) && !ColumnRows_CheckExact(rows)) {
        Py_DECREF(rows);
        return NULL;
    }
    return rows;
}

static int append_tuple(PyObject *rows, PyObject *row) {
    if (!row) return -1;
    maybe_untrack(row);
    int r = append_row(rows, row);
    Py_DECREF(row);
    return r;
}

/* Exact int within int64 -> 1 and *v; else 0 (also when an error is pending: cleared). */
static int plain_int64(PyObject *o, long long *v) {
    if (!PyLong_CheckExact(o)) return 0;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow) return 0;
    *v = x;
    return 1;
}


/* Reads book.<name> as an exact int64. */
static int book_int(PyObject *book, PyObject *name, long long *v) {
    PyObject *o = slot_get(&sc_last_seq, book, name);
    if (!o) {
        PyErr_Clear();
        return 0;
    }
    int ok = plain_int64(o, v);
    Py_DECREF(o);
    return ok;
}

/* book.<name> is exactly `want` (True/False). */
static int book_is(PyObject *book, PyObject *name, PyObject *want) {
    PyObject *o = slot_get(name == s_synced ? &sc_synced : &sc_maybe_bad, book, name);
    if (!o) {
        PyErr_Clear();
        return 0;
    }
    int ok = o == want;
    Py_DECREF(o);
    return ok;
}

static PyObject *do_trade(Scanner *S, ScanSym *e, const Fields *f, PyObject *out, PyObject *recv,
                          long long ts_recv, double mp, double ms) {
    const unsigned need = B_S | B_T_ID | B_P | B_Q | B_T | B_M;
    if ((f->seen & need) != need || !ms_ok(f->T)) Py_RETURN_FALSE;
    if (!(0.0 < f->p && f->p < mp && 0.0 < f->q && f->q < ms)) Py_RETURN_FALSE;
    PyObject *last = PyDict_GetItemWithError(S->last_trade_id, e->native);
    if (last) {
        long long lv;
        if (!plain_int64(last, &lv) || f->t_id <= lv) Py_RETURN_FALSE;
    } else if (PyErr_Occurred()) {
        return NULL;
    }
    long long ts_ex = f->T * 1000000LL;
    if (tf_outside(S->tf, (i128)ts_recv - ts_ex)) Py_RETURN_FALSE;
    PyObject *rows = rows_of(out, s_trades);
    if (!rows) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    PyObject *result = NULL;
    PyObject *tid = PyLong_FromLongLong(f->t_id);
    if (ColumnRows_CheckExact(rows)) {
        /* rows held as columns: the row's cells as they are, no number objects (the same steps and
         * state changes as the tuple below) */
        PyObject *text = tid ? ascii_str(f->t_text, f->t_n) : NULL;
        if (text && PyDict_SetItem(S->last_trade_id, e->native, tid) == 0) {
            CRCell cells[9] = {{S->exchange, 0, 0.0},
                               {e->symbol, 0, 0.0},
                               {NULL, ts_ex, 0.0},
                               {NULL, ts_recv, 0.0},
                               {text, 0, 0.0},
                               {NULL, 0, f->p},
                               {NULL, 0, f->q},
                               {f->m ? s_sell : s_buy, 0, 0.0},
                               {NULL, tf_flags(S->tf, 1, ts_ex, ts_recv, 0), 0.0}};
            if (column_rows_append_cells(rows, cells, 9) == 0) result = Py_NewRef(Py_True);
        }
        Py_XDECREF(text);
        Py_XDECREF(tid);
        Py_DECREF(rows);
        return result;
    }
    PyObject *row = PyTuple_New(9);
    if (tid && row) {
        PyTuple_SET_ITEM(row, 0, Py_NewRef(S->exchange));
        PyTuple_SET_ITEM(row, 1, Py_NewRef(e->symbol));
        PyTuple_SET_ITEM(row, 2, PyLong_FromLongLong(ts_ex));
        PyTuple_SET_ITEM(row, 3, Py_NewRef(recv));
        PyTuple_SET_ITEM(row, 4, ascii_str(f->t_text, f->t_n));
        PyTuple_SET_ITEM(row, 5, PyFloat_FromDouble(f->p));
        PyTuple_SET_ITEM(row, 6, PyFloat_FromDouble(f->q));
        PyTuple_SET_ITEM(row, 7, Py_NewRef(f->m ? s_sell : s_buy));
        int complete = 1;
        for (int i = 0; i < 8; i++)
            if (!PyTuple_GET_ITEM(row, i)) complete = 0;
        if (complete && PyDict_SetItem(S->last_trade_id, e->native, tid) == 0) {
            PyObject *flags = PyLong_FromLong(tf_flags(S->tf, 1, ts_ex, ts_recv, 0));
            if (flags) {
                PyTuple_SET_ITEM(row, 8, flags);
                Py_INCREF(row);
                if (append_tuple(rows, row) == 0) result = Py_NewRef(Py_True);
            }
        }
    }
    Py_XDECREF(tid);
    Py_XDECREF(row);
    Py_DECREF(rows);
    return result;
}

static PyObject *do_ticker(Scanner *S, ScanSym *e, const Fields *f, PyObject *out, PyObject *recv,
                           long long ts_recv, double mp, double ms) {
    const unsigned need = B_S | B_U | B_P | B_BQ | B_Q | B_AQ | (S->futures ? B_E : 0);
    if ((f->seen & need) != need) Py_RETURN_FALSE;
    double bp = f->bp, bq = f->bq, ap = f->ap, aq = f->aq;
    int has_bid = bp != 0.0, has_ask = ap != 0.0;
    if ((!has_bid && bq != 0.0) || (!has_ask && aq != 0.0)) Py_RETURN_FALSE;
    if (has_bid && !(bp < mp && bq < ms)) Py_RETURN_FALSE;
    if (has_ask && !(ap < mp && aq < ms)) Py_RETURN_FALSE;
    if (has_bid && has_ask && bp >= ap) Py_RETURN_FALSE; /* crossed: the reference reports it */
    long long ts_ex = 0;
    if (S->futures) {
        if (!ms_ok(f->E)) Py_RETURN_FALSE;
        ts_ex = f->E * 1000000LL;
        if (tf_outside(S->tf, (i128)ts_recv - ts_ex)) Py_RETURN_FALSE;
    }
    PyObject *rows = rows_of(out, s_bbo);
    if (!rows) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    PyObject *result = NULL;
    if (ColumnRows_CheckExact(rows)) {
        /* rows held as columns: the row's cells as they are, no number objects */
        CRCell cells[10] = {{S->exchange, 0, 0.0},
                            {e->symbol, 0, 0.0},
                            {S->futures ? NULL : Py_None, ts_ex, 0.0},
                            {NULL, ts_recv, 0.0},
                            {has_bid ? NULL : Py_None, 0, bp},
                            {has_bid ? NULL : Py_None, 0, bq},
                            {has_ask ? NULL : Py_None, 0, ap},
                            {has_ask ? NULL : Py_None, 0, aq},
                            {NULL, f->u, 0.0},
                            {NULL, tf_flags(S->tf, S->futures, ts_ex, ts_recv, 0), 0.0}};
        if (column_rows_append_cells(rows, cells, 10) == 0) result = Py_NewRef(Py_True);
        Py_DECREF(rows);
        return result;
    }
    PyObject *row = PyTuple_New(10);
    if (row) {
        PyTuple_SET_ITEM(row, 0, Py_NewRef(S->exchange));
        PyTuple_SET_ITEM(row, 1, Py_NewRef(e->symbol));
        PyTuple_SET_ITEM(row, 2, S->futures ? PyLong_FromLongLong(ts_ex) : Py_NewRef(Py_None));
        PyTuple_SET_ITEM(row, 3, Py_NewRef(recv));
        PyTuple_SET_ITEM(row, 4, has_bid ? PyFloat_FromDouble(bp) : Py_NewRef(Py_None));
        PyTuple_SET_ITEM(row, 5, has_bid ? PyFloat_FromDouble(bq) : Py_NewRef(Py_None));
        PyTuple_SET_ITEM(row, 6, has_ask ? PyFloat_FromDouble(ap) : Py_NewRef(Py_None));
        PyTuple_SET_ITEM(row, 7, has_ask ? PyFloat_FromDouble(aq) : Py_NewRef(Py_None));
        PyTuple_SET_ITEM(row, 8, PyLong_FromLongLong(f->u));
        int complete = 1;
        for (int i = 0; i < 9; i++)
            if (!PyTuple_GET_ITEM(row, i)) complete = 0;
        if (complete) {
            PyObject *flags = PyLong_FromLong(tf_flags(S->tf, S->futures, ts_ex, ts_recv, 0));
            if (flags) {
                PyTuple_SET_ITEM(row, 9, flags);
                Py_INCREF(row);
                if (append_tuple(rows, row) == 0) result = Py_NewRef(Py_True);
            }
        }
        Py_DECREF(row);
    }
    Py_DECREF(rows);
    return result;
}

static PyObject *zero_float; /* 0.0: the size of every removed level's row */

/* 1 when o is an exact ASCII str whose text is s[:n]. */
static inline int same_text(PyObject *o, const char *s, Py_ssize_t n) {
    return PyUnicode_CheckExact(o) && PyUnicode_IS_COMPACT_ASCII(o) && PyUnicode_GET_LENGTH(o) == n &&
           memcmp(PyUnicode_DATA(o), s, (size_t)n) == 0;
}

/* One level of a scanned update: set (size != 0) or removed (size 0), and its row, as apply_one does
 * for the reference's parsed level; objects the book already holds are shared instead of made anew
 * (the held price key when it is a float, the held price text when it is the same text, and the
 * whole held value - size float, price text, size text - when both texts are the same): equal values
 * of the same types. c->untracked is set (the rows hold exact floats as price and size). */
static int scan_level_objects(Levels *L, RowCtx *c, const RawLv *x) {
    double rk = rank_of(L, x->price);
    Py_ssize_t j = lower_bound(L, rk);
    int found = j < L->n && L->keys[j] == rk;
    PyObject *p = found && L->kobjs[j] && PyFloat_CheckExact(L->kobjs[j]) ? Py_NewRef(L->kobjs[j]) : PyFloat_FromDouble(x->price);
    if (!p) return -1;
    PyObject *z;
    if (x->size == 0.0) {
        z = Py_NewRef(zero_float);
        if (found) val_release(levels_take(L, j, NULL));
    } else {
        PyObject *ps = NULL, *old = found && !is_lazy(L->vals[j]) ? L->vals[j] : NULL;
        if (old && PyTuple_CheckExact(old) && PyTuple_GET_SIZE(old) == 3) {
            PyObject *o = PyTuple_GET_ITEM(old, 1);
            if (same_text(o, x->ps, x->pn)) {
                PyObject *oz = PyTuple_GET_ITEM(old, 0);
                if (PyFloat_CheckExact(oz) && PyFloat_AS_DOUBLE(oz) == x->size &&
                    same_text(PyTuple_GET_ITEM(old, 2), x->ss, x->sn)) {
                    /* the level is unchanged: its held value stays, and its size is the row's */
                    int r = emit_row(c, p, oz);
                    Py_DECREF(p);
                    return r;
                }
                ps = Py_NewRef(o);
            }
        }
        z = PyFloat_FromDouble(x->size);
        if (!ps) ps = ascii_str(x->ps, x->pn);
        PyObject *zs = ascii_str(x->ss, x->sn);
        PyObject *value = z && ps && zs ? PyTuple_New(3) : NULL;
        if (value) {
            PyTuple_SET_ITEM(value, 0, Py_NewRef(z));
            PyTuple_SET_ITEM(value, 1, ps);
            PyTuple_SET_ITEM(value, 2, zs);
            PyObject_GC_UnTrack(value); /* a float and two str */
        } else {
            Py_XDECREF(ps);
            Py_XDECREF(zs);
        }
        int r = -1;
        if (value) {
            /* allocating may have run code (a collection): the place found above is checked again */
            if (found && j < L->n && L->keys[j] == rk) {
                PyObject *held = L->vals[j];
                L->vals[j] = value;
                val_release(held);
                r = 0;
                if (!L->kobjs[j]) L->kobjs[j] = Py_NewRef(p); /* p is the float of this price */
            } else if (!found && j <= L->n && (j == 0 || L->keys[j - 1] < rk) && (j == L->n || L->keys[j] > rk)) {
                r = levels_insert_at(L, j, rk, p, value);
                Py_DECREF(value);
            } else {
                r = levels_set(L, x->price, p, value);
                Py_DECREF(value);
            }
        }
        if (r < 0) {
            Py_DECREF(p);
            Py_XDECREF(z);
            return -1;
        }
    }
    int r = z ? emit_row(c, p, z) : -1;
    Py_DECREF(p);
    Py_XDECREF(z);
    return r;
}

/* A scanned level's row from its price and size (the cells made for the rows held as columns, else
 * float objects as the reference's rows hold them; a size of 0 is the shared 0.0). */
static int emit_row_d(RowCtx *c, double price, double size) {
    if (ColumnRows_CheckExact(c->rows) && cells_made(c)) return append_made_row(c, price, size);
    PyObject *p = PyFloat_FromDouble(price);
    PyObject *z = size == 0.0 ? Py_NewRef(zero_float) : PyFloat_FromDouble(size);
    int r = p && z ? emit_row(c, p, z) : -1;
    Py_XDECREF(p);
    Py_XDECREF(z);
    return r;
}

static inline void lazy_fill(Lazy *z, const RawLv *x) {
    z->size = x->size;
    z->pn = (uint8_t)x->pn;
    z->sn = (uint8_t)x->sn;
    memcpy(z->ps, x->ps, (size_t)x->pn);
    memcpy(z->ss, x->ss, (size_t)x->sn);
}

/* One level of a scanned update: set (size != 0) or removed (size 0), and its row, as apply_one does
 * for the reference's parsed level. The level is held as a Lazy record (no Python object is made; a
 * reader gets the very objects the reference would hold); texts longer than a record holds take
 * scan_level_objects. A level whose size and texts are those held is left as it is. */
/* ``hint``: in, where the previous level of this side went (-1: none); out, where this one went. */
static int scan_level(Levels *L, RowCtx *c, const RawLv *x, Py_ssize_t *hint) {
    if (x->pn > LAZY_TEXT || x->sn > LAZY_TEXT) {
        *hint = -1;
        return scan_level_objects(L, c, x);
    }
    double rk = rank_of(L, x->price);
    Py_ssize_t j = lower_bound_near(L, rk, *hint);
    *hint = j;
    int found = j < L->n && L->keys[j] == rk;
    if (x->size == 0.0) {
        if (found) val_release(levels_take(L, j, NULL));
        return emit_row_d(c, x->price, 0.0);
    }
    if (found) {
        PyObject *old = L->vals[j];
        if (is_lazy(old)) {
            Lazy *z = lazy_of(old);
            if (!(z->size == x->size && z->pn == x->pn && z->sn == x->sn && memcmp(z->ps, x->ps, (size_t)x->pn) == 0 &&
                  memcmp(z->ss, x->ss, (size_t)x->sn) == 0))
                lazy_fill(z, x);
            return emit_row_d(c, x->price, x->size);
        }
        if (PyTuple_CheckExact(old) && PyTuple_GET_SIZE(old) == 3) {
            PyObject *oz = PyTuple_GET_ITEM(old, 0);
            if (PyFloat_CheckExact(oz) && PyFloat_AS_DOUBLE(oz) == x->size && same_text(PyTuple_GET_ITEM(old, 1), x->ps, x->pn) &&
                same_text(PyTuple_GET_ITEM(old, 2), x->ss, x->sn))
                return emit_row_d(c, x->price, x->size); /* unchanged: the held value stays */
        }
        Lazy *z = lazy_new();
        if (!z) return -1;
        lazy_fill(z, x);
        L->vals[j] = lazy_tag(z);
        val_release(old); /* a value the reference's code set: may be any object, so released last */
        return emit_row_d(c, x->price, x->size);
    }
    Lazy *z = lazy_new();
    if (!z) return -1;
    lazy_fill(z, x);
    if (levels_insert_owned(L, j, rk, NULL, lazy_tag(z)) < 0) { /* the price float: made when read */
        lazy_free(z);
        return -1;
    }
    return emit_row_d(c, x->price, x->size);
}

static PyObject *do_depth(Scanner *S, ScanSym *e, const Fields *f, PyObject *out, PyObject *recv,
                          long long ts_recv) {
    const unsigned need = B_S | B_U_FIRST | B_U | B_E | B_BIDS | B_ASKS | (S->futures ? B_PU : 0);
    if ((f->seen & need) != need || !ms_ok(f->E)) Py_RETURN_FALSE;
    if ((i128)f->U > (i128)f->u + 1) Py_RETURN_FALSE; /* the reference's ParseError */
    PyObject *book = e->book;
    if (!book || !e->bids || !e->asks) Py_RETURN_FALSE;
    long long prev;
    if (!book_is(book, s_synced, Py_True) || !book_is(book, s_maybe_bad, Py_False) ||
        !book_int(book, s_last_seq, &prev))
        Py_RETURN_FALSE;
    if (S->futures) {
        if (S->awaiting_first != Py_None) {
            int waiting = PySet_Contains(S->awaiting_first, e->native);
            if (waiting < 0) return NULL;
            if (waiting) Py_RETURN_FALSE;
        }
        if (f->pu != prev) Py_RETURN_FALSE;
    } else {
        if (f->u <= prev || (i128)f->U > (i128)prev + 1) Py_RETURN_FALSE;
    }
    long long ts_ex = f->E * 1000000LL;
    if (tf_outside(S->tf, (i128)ts_recv - ts_ex)) Py_RETURN_FALSE;
    PyObject *epoch = slot_get(&sc_epoch, book, s_epoch);
    if (!epoch) return NULL;
    PyObject *rows = rows_of(out, s_book);
    if (!rows) {
        Py_DECREF(epoch);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_FALSE;
    }
    /* Hold the sides: the book (and so its levels) stays alive whatever runs below. */
    Levels *sides[2] = {e->bids, e->asks};
    Py_INCREF(book);
    Py_INCREF(sides[0]);
    Py_INCREF(sides[1]);
    PyObject *result = NULL;
    PyObject *ts_obj = PyLong_FromLongLong(ts_ex);
    PyObject *seq = PyLong_FromLongLong(f->u);
    PyObject *flags = NULL;
    if (ts_obj && seq) flags = PyLong_FromLong(tf_flags(S->tf, 1, ts_ex, ts_recv, 0));
    if (flags) {
        RowCtx c = {rows, S->exchange, e->symbol, ts_obj, recv, s_bid, Py_False, seq, epoch, flags, 0};
        c.untracked = ctx_untrackable(&c) && PyUnicode_CheckExact(s_ask); /* s_bid is checked above */
        int ok = 0;
        for (int s = 0; s < 2 && ok == 0; s++) {
            RawSide *r = &S->side[s];
            c.side = s ? s_ask : s_bid;
            Py_ssize_t hint = -1;
            for (Py_ssize_t i = 0; i < r->n && ok == 0; i++) ok = scan_level(sides[s], &c, &r->v[i], &hint);
        }
        if (ok == 0 && slot_set(&sc_set_last_seq, book, s_last_seq, seq) == 0) {
            Levels *b = sides[0], *a = sides[1];
            int crossed = b->n && a->n && price_of(b, b->keys[b->n - 1]) >= price_of(a, a->keys[a->n - 1]);
            result = Py_NewRef(crossed ? book : Py_True);
        }
    }
    Py_XDECREF(flags);
    Py_XDECREF(seq);
    Py_XDECREF(ts_obj);
    Py_DECREF(rows);
    Py_DECREF(epoch);
    Py_DECREF(sides[0]);
    Py_DECREF(sides[1]);
    Py_DECREF(book);
    return result;
}

/* The text of a frame object the scanner reads (bytes, or ASCII str), or NULL. */
static const unsigned char *frame_text(PyObject *frame, Py_ssize_t *len) {
    if (PyBytes_CheckExact(frame)) {
        *len = PyBytes_GET_SIZE(frame);
        return (const unsigned char *)PyBytes_AS_STRING(frame);
    }
    if (PyUnicode_CheckExact(frame) && PyUnicode_IS_COMPACT_ASCII(frame)) {
        *len = PyUnicode_GET_LENGTH(frame);
        return (const unsigned char *)PyUnicode_DATA(frame);
    }
    return NULL;
}

/* scan_frame over a frame's text where it lies (``recv``: the int object of ``ts_recv``). */
static PyObject *scan_text(Scanner *S, PyObject *recv, long long ts_recv, const unsigned char *buf, Py_ssize_t len,
                           PyObject *out, PyObject *subscribed) {
    double mp = 0.0, ms = 0.0;
    {
        PyObject *a = slot_get(&sc_max_price, S->limits, s_max_price);
        PyObject *b = a ? slot_get(&sc_max_size, S->limits, s_max_size) : NULL;
        int ok = b && limits_of(a, b, &mp, &ms);
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (!ok) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
    }
    Cur c = {buf, buf + len};
    const char *k, *stream;
    Py_ssize_t kn, sn;
    if (!take(&c, '{') || !str_span(&c, &k, &kn) || !key_is(k, kn, "stream") || !take(&c, ':') ||
        !str_span(&c, &stream, &sn) || !take(&c, ',') || !str_span(&c, &k, &kn) || !key_is(k, kn, "data") ||
        !take(&c, ':'))
        Py_RETURN_FALSE;
    const char *at = memchr(stream, '@', (size_t)sn);
    if (!at || at == stream) Py_RETURN_FALSE;
    const char *kind_s = at + 1;
    Py_ssize_t kind_n = sn - (kind_s - stream);
    int kind;
    if (key_is(kind_s, kind_n, "trade")) kind = K_TRADE;
    else if (key_is(kind_s, kind_n, "bookTicker")) kind = K_TICKER;
    else if (kind_n >= 5 && memcmp(kind_s, "depth", 5) == 0 && !key_is(kind_s, kind_n, "depthSnapshot")) kind = K_DEPTH;
    else Py_RETURN_FALSE;
    Fields f;
    memset(&f, 0, sizeof(f));
    int r = read_data(S, &c, kind, &f, mp, ms);
    if (r < 0) return NULL;
    if (!r || !take(&c, '}')) Py_RETURN_FALSE;
    skip_ws(&c);
    if (c.p != c.end || !(f.seen & B_S)) Py_RETURN_FALSE;
    ScanSym *e = sym_find(S, f.sym, f.sym_n);
    if (!e) Py_RETURN_FALSE;
    if (subscribed != Py_None) {
        if (!PyAnySet_Check(subscribed)) Py_RETURN_FALSE;
        int in = PySet_Contains(subscribed, e->symbol);
        if (in < 0) return NULL;
        if (!in) Py_RETURN_FALSE;
    }
    switch (kind) {
    case K_TRADE:
        return do_trade(S, e, &f, out, recv, ts_recv, mp, ms);
    case K_TICKER:
        return do_ticker(S, e, &f, out, recv, ts_recv, mp, ms);
    default:
        return do_depth(S, e, &f, out, recv, ts_recv);
    }
}

static PyObject *scan_frame(Scanner *S, PyObject *recv, PyObject *frame, PyObject *out, PyObject *subscribed) {
    long long ts_recv;
    Py_ssize_t len;
    const unsigned char *buf = frame_text(frame, &len);
    if (!buf || !plain_int64(recv, &ts_recv)) Py_RETURN_FALSE;
    return scan_text(S, recv, ts_recv, buf, len, out, subscribed);
}

/* scan(ts_recv, frame, out, subscribed) -> True | False | SyncedBook (see above). */
static PyObject *scanner_scan(Scanner *S, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan(ts_recv, frame, out, subscribed)");
        return NULL;
    }
    S->offered++;
    PyObject *r = scan_frame(S, args[0], args[1], args[2], args[3]);
    if (r && r != Py_False) S->taken++;
    return r;
}

static PyObject *s_max_frame_bytes, *s_subscribed, *s_frames, *s_time_flags_skewed_reported, *s_report_skew,
    *s_check_crossed, *s_u;

/* What on_frame reads of its owner, read once and kept while no Python code runs: the scanner's own
 * work runs none, so the values only change when the fallback, check_crossed or _report_skew runs;
 * each of those is preceded by frames_flush and followed by a fresh read. Frames taken here are
 * counted into the owner's ``frames`` in one addition before any such call and at the end. */
typedef struct {
    int loaded;
    int max_ok;             /* max_frame_bytes is a plain int (else every frame goes to the fallback) */
    long long max_frame;
    PyObject *subscribed;   /* owned while loaded */
    int reported_ok;        /* _skew_reported is a plain int */
    long long reported;
    long long pending;      /* frames taken and not yet added to owner.frames */
} OwnerView;

static void view_drop(OwnerView *v) {
    Py_CLEAR(v->subscribed);
    v->loaded = 0;
}

static int view_load(PyObject *owner, OwnerView *v) {
    PyObject *max = PyObject_GetAttr(owner, s_max_frame_bytes);
    if (!max) return -1;
    v->max_ok = plain_int64(max, &v->max_frame);
    Py_DECREF(max);
    PyObject *reported = PyObject_GetAttr(owner, s_time_flags_skewed_reported);
    if (!reported) return -1;
    v->reported_ok = plain_int64(reported, &v->reported);
    Py_DECREF(reported);
    v->subscribed = PyObject_GetAttr(owner, s_subscribed);
    if (!v->subscribed) return -1;
    v->loaded = 1;
    return 0;
}

/* owner.frames += the frames taken since the last flush. */
static int frames_flush(PyObject *owner, OwnerView *v) {
    if (v->pending == 0) return 0;
    PyObject *frames = PyObject_GetAttr(owner, s_frames);
    if (!frames) return -1;
    long long f;
    PyObject *more;
    if (plain_int64(frames, &f) && f <= LLONG_MAX - v->pending) {
        more = PyLong_FromLongLong(f + v->pending);
    } else {
        PyObject *n = PyLong_FromLongLong(v->pending);
        more = n ? PyNumber_Add(frames, n) : NULL;
        Py_XDECREF(n);
    }
    Py_DECREF(frames);
    if (!more) return -1;
    int r = PyObject_SetAttr(owner, s_frames, more);
    Py_DECREF(more);
    if (r == 0) v->pending = 0;
    return r;
}

/* Before Python code runs: the owner sees every frame counted, and is read again after. */
static int view_release(PyObject *owner, OwnerView *v) {
    view_drop(v);
    return frames_flush(owner, v);
}

/* The scanner's owner (a new reference), or NULL with ReferenceError once the scanner was cleared. */
static PyObject *owner_of(Scanner *S) {
    if (!S->owner) {
        PyErr_SetString(PyExc_ReferenceError, "this scanner was cleared");
        return NULL;
    }
    return Py_NewRef(S->owner);
}

/* The end of on_frame and on_frames: the frames taken are counted into the owner also after an error
 * (rc -1), and the error raised stays the one returned. None, or NULL. */
static PyObject *view_finish(PyObject *owner, OwnerView *v, int rc) {
    view_drop(v);
    if (rc < 0) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (frames_flush(owner, v) < 0) PyErr_Clear();
        PyErr_Restore(et, ev, tb);
    } else if (frames_flush(owner, v) < 0) {
        rc = -1;
    }
    Py_DECREF(owner);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* One frame through the owner's Normaliser.on_frame with this scanner first - a frame taken here
 * counts in the owner's frames, a crossed book gets SyncedBook.check_crossed's event and a held-back
 * skew report is made (Normaliser.on_frame's _report_skew); every other frame (and an oversized one)
 * goes to the fallback, Normaliser.on_frame itself. 0, or -1 with an exception set.
 *
 * ``frame`` is the frame object, or NULL for a frame read in place (a FrameBlock's): then the fallback
 * gets a bytes object made of ``text``. ``text`` is what the scanner reads (NULL: nothing it can read,
 * straight to the fallback), ``len`` the frame's length (-1: neither str nor bytes). */
static int text_through(Scanner *S, PyObject *owner, OwnerView *v, PyObject *recv, long long ts_recv, PyObject *frame,
                        const unsigned char *text, Py_ssize_t len, PyObject *out) {
    if (!v->loaded && view_load(owner, v) < 0) return -1;
    PyObject *done = NULL;
    if (len >= 0 && v->max_ok && len <= v->max_frame) {
        S->offered++;
        if (text) {
            done = scan_text(S, recv, ts_recv, text, len, out, v->subscribed);
            if (!done) return -1;
        }
    }
    if (!done || done == Py_False) {
        Py_XDECREF(done);
        if (view_release(owner, v) < 0) return -1;
        PyObject *made = NULL;
        if (!frame) { /* a frame read in place: the fallback gets it as the bytes object it would have had */
            frame = made = PyBytes_FromStringAndSize((const char *)text, len);
            if (!made) return -1;
        }
        PyObject *call[4] = {owner, recv, frame, out};
        PyObject *r = PyObject_Vectorcall(S->fallback, call, 4, NULL);
        Py_XDECREF(made);
        if (!r) return -1;
        Py_DECREF(r);
        return 0;
    }
    S->taken++;
    v->pending++;
    if (done != Py_True) { /* the book it updated is crossed: the reference's crossed_book event */
        PyObject *book = done;
        if (view_release(owner, v) < 0) {
            Py_DECREF(book);
            return -1;
        }
        PyObject *seq = PyObject_GetAttr(book, s_last_seq);
        PyObject *detail = seq ? PyDict_New() : NULL;
        if (!detail || PyDict_SetItem(detail, s_u, seq) < 0) {
            Py_XDECREF(seq);
            Py_XDECREF(detail);
            Py_DECREF(book);
            return -1;
        }
        Py_DECREF(seq);
        PyObject *r = PyObject_CallMethodObjArgs(book, s_check_crossed, out, recv, detail, NULL);
        Py_DECREF(detail);
        Py_DECREF(book);
        if (!r) return -1;
        Py_DECREF(r);
        if (view_load(owner, v) < 0) return -1;
    } else {
        Py_DECREF(done);
    }
    if (!(v->reported_ok && v->reported == (long long)S->tf->skewed)) {
        /* an earlier frame's skew report, held back by the throttle */
        if (view_release(owner, v) < 0) return -1;
        PyObject *r = PyObject_CallMethodObjArgs(owner, s_report_skew, out, recv, NULL);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* text_through for a frame object (a (ts_recv, frame) pair's). */
static int frame_through(Scanner *S, PyObject *owner, OwnerView *v, PyObject *recv, PyObject *frame, PyObject *out) {
    Py_ssize_t len = PyBytes_CheckExact(frame) ? PyBytes_GET_SIZE(frame)
                     : PyUnicode_CheckExact(frame) ? PyUnicode_GET_LENGTH(frame)
                                                    : -1;
    long long ts_recv = 0;
    Py_ssize_t text_len;
    const unsigned char *text = plain_int64(recv, &ts_recv) ? frame_text(frame, &text_len) : NULL;
    return text_through(S, owner, v, recv, ts_recv, frame, text, len, out);
}

/* on_frame(ts_recv, frame, out): see text_through. */
static PyObject *scanner_on_frame(Scanner *S, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "on_frame(ts_recv, frame, out)");
        return NULL;
    }
    PyObject *owner = owner_of(S);
    if (!owner) return NULL;
    OwnerView v = {0};
    return view_finish(owner, &v, frame_through(S, owner, &v, args[0], args[1], args[2]));
}

/* collectors._capturenative's FrameBlock type (its capsule), looked up at the first FrameBlock;
 * NULL where that module is not built. */
static FrameBlockAPI *frameblock_api;
static int frameblock_api_tried;

static int is_frame_block(PyObject *items) {
    if (!frameblock_api_tried) {
        frameblock_api_tried = 1;
        frameblock_api = PyCapsule_Import(FRAMEBLOCK_CAPSULE, 0);
        if (!frameblock_api) PyErr_Clear();
    }
    return frameblock_api && Py_TYPE(items) == frameblock_api->type;
}

/* on_frames(items, start, stop, out): on_frame(ts_recv, frame, out) for each (ts_recv, frame) pair of
 * items[start:stop] (a list, or a FrameBlock whose plain frames are read in place; the bounds as a
 * slice's), in one call: the owner's attributes are read once per run of frames the scanner takes,
 * not per frame (see OwnerView). The list is read by index as it goes; an item that is not a pair
 * raises TypeError, as the unpacking in a Python loop would, with the frames before it handled and
 * counted. */
static PyObject *scanner_on_frames(Scanner *S, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "on_frames(items, start, stop, out)");
        return NULL;
    }
    PyObject *items = args[0], *out = args[3];
    FrameBlock *block = NULL;
    if (!PyList_CheckExact(items)) {
        if (!is_frame_block(items)) {
            PyErr_SetString(PyExc_TypeError, "on_frames: items must be a list or a FrameBlock");
            return NULL;
        }
        block = (FrameBlock *)items; /* never changes once made */
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), stop = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || stop == -1) && PyErr_Occurred()) return NULL;
    PyObject *owner = owner_of(S);
    if (!owner) return NULL;
    Py_INCREF(items);
    OwnerView v = {0};
    int rc = 0;
    PySlice_AdjustIndices(block ? block->n : PyList_GET_SIZE(items), &start, &stop, 1); /* as items[start:stop] */
    for (Py_ssize_t i = start; rc == 0 && i < stop && i < (block ? block->n : PyList_GET_SIZE(items)); i++) {
        PyObject *item;
        if (block) {
            const FrameEntry *e = &block->entries[i];
            if (!e->obj) { /* a plain frame, read where it lies in the block */
                PyObject *recv = PyLong_FromLongLong(e->ts);
                if (!recv) {
                    rc = -1;
                    break;
                }
                rc = text_through(S, owner, &v, recv, e->ts, NULL, (const unsigned char *)block->view.buf + e->off,
                                  e->len, out);
                Py_DECREF(recv);
                continue;
            }
            item = e->obj;
        } else {
            item = PyList_GET_ITEM(items, i);
        }
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "on_frames: item %zd is not a (ts_recv, frame) pair", i);
            rc = -1;
            break;
        }
        Py_INCREF(item); /* the fallback may change the list: the pair stays alive */
        rc = frame_through(S, owner, &v, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), out);
        Py_DECREF(item);
    }
    Py_DECREF(items);
    return view_finish(owner, &v, rc);
}

static PyObject *scanner_get_offered(Scanner *S, void *Py_UNUSED(c)) { return PyLong_FromLongLong(S->offered); }
static PyObject *scanner_get_taken(Scanner *S, void *Py_UNUSED(c)) { return PyLong_FromLongLong(S->taken); }

static PyGetSetDef scanner_getset[] = {
    {"offered", (getter)scanner_get_offered, NULL, "frames offered to the scanner", NULL},
    {"taken", (getter)scanner_get_taken, NULL, "frames the scanner handled", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *scanner_symbols(Scanner *S, PyObject *Py_UNUSED(ignored)) {
    PyObject *d = PyDict_New();
    for (Py_ssize_t k = 0; d && k < S->nsyms; k++) {
        ScanSym *e = &S->syms[k];
        PyObject *v = PyTuple_Pack(2, e->symbol, e->book ? e->book : Py_None);
        if (!v || PyDict_SetItem(d, e->native, v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyMethodDef scanner_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scanner_scan, METH_FASTCALL,
     "scan(ts_recv, frame, out, subscribed) -> True | False | SyncedBook to check for crossing"},
    {"register", (PyCFunction)(void (*)(void))scanner_register, METH_FASTCALL,
     "register(native, symbol): a native symbol and its normalised name"},
    {"set_book", (PyCFunction)(void (*)(void))scanner_set_book, METH_FASTCALL,
     "set_book(native, book): the SyncedBook of a registered native symbol"},
    {"symbols", (PyCFunction)scanner_symbols, METH_NOARGS, "native -> (symbol, book or None)"},
    {"on_frame", (PyCFunction)(void (*)(void))scanner_on_frame, METH_FASTCALL,
     "on_frame(ts_recv, frame, out): the owner's Normaliser.on_frame with this scanner first"},
    {"on_frames", (PyCFunction)(void (*)(void))scanner_on_frames, METH_FASTCALL,
     "on_frames(items, start, stop, out): on_frame for each (ts_recv, frame) pair of items[start:stop]"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._booknative.BinanceScanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Binance-family frame fast path: BinanceScanner(exchange, futures, last_trade_id, awaiting_first, "
              "limits, time_flags).",
    .tp_new = scanner_new,
    .tp_dealloc = (destructor)scanner_dealloc,
    .tp_traverse = (traverseproc)scanner_traverse,
    .tp_clear = (inquiry)scanner_tp_clear,
    .tp_methods = scanner_methods,
    .tp_getset = scanner_getset,
};

static PyMethodDef module_methods[] = {
    {"keep_freed_memory", keep_freed_memory, METH_O,
     "keep_freed_memory(on) -> bool: glibc keeps freed memory for reuse (on) or returns it (off)"},
    {"parse_levels", (PyCFunction)(void (*)(void))parse_levels, METH_FASTCALL,
     "parse_levels(levels, max_price, max_size) -> [(price, size, price_str, size_str)] or None"},
    {"apply_update", (PyCFunction)(void (*)(void))apply_update, METH_FASTCALL,
     "SyncedBook.apply_update's parse, validate, apply and emit; False when the reference must run"},
    {"apply_parsed", (PyCFunction)(void (*)(void))apply_parsed, METH_FASTCALL,
     "applies parsed levels to one side and emits their rows; False when the reference must run"},
    {"crossed", (PyCFunction)(void (*)(void))crossed, METH_FASTCALL, "best bid >= best ask"},
    {"book_crc32", (PyCFunction)(void (*)(void))book_crc32, METH_FASTCALL,
     "collectors.checksum.book_crc32 over two Levels for a known level style; None when the reference must run"},
    {"json_too_deep", (PyCFunction)(void (*)(void))json_too_deep, METH_FASTCALL,
     "json_too_deep(data, limit): JSON nesting outside strings deeper than limit (one pass)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "collectors._booknative",
    "Compiled price-level store, level parsing, book checksums and the JSON depth guard (the Python code is the reference).",
    -1, module_methods,
};

PyMODINIT_FUNC PyInit__booknative(void) {
    crc_init();
    json_class['['] = json_class['{'] = 1;
    json_class[']'] = json_class['}'] = 2;
    json_class['"'] = 3;
    for (int ch = 0; ch < 256; ch++) str_stop[ch] = ch < 0x20 || ch >= 0x80 || ch == '"' || ch == '\\';
    if (PyType_Ready(&LevelsType) < 0 || PyType_Ready(&TimeFlagsType) < 0 || PyType_Ready(&ScannerType) < 0 ||
        PyType_Ready(&ColumnRowsType) < 0 || PyType_Ready(&ColumnRowsIterType) < 0)
        return NULL;
    str_append = PyUnicode_InternFromString("append");
    if (!str_append) return NULL;
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {{&s_synced, "synced"},       {&s_last_seq, "last_seq"}, {&s_maybe_bad, "maybe_bad"},
                 {&s_epoch, "epoch"},         {&s_book, "book"},         {&s_bids, "bids"},
                 {&s_asks, "asks"},           {&s_native, "native"},     {&s_max_price, "max_price"},
                 {&s_max_size, "max_size"},   {&s_trades, "trades"},     {&s_bbo, "bbo"},
                 {&s_buy, "buy"},             {&s_sell, "sell"},         {&s_bid, "bid"},
                 {&s_ask, "ask"},             {&s_max_frame_bytes, "max_frame_bytes"},
                 {&s_subscribed, "subscribed"}, {&s_frames, "frames"},
                 {&s_time_flags_skewed_reported, "_skew_reported"}, {&s_report_skew, "_report_skew"},
                 {&s_check_crossed, "check_crossed"}, {&s_u, "u"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (!*names[i].slot) return NULL;
    }
    zero_float = PyFloat_FromDouble(0.0);
    if (!zero_float) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&LevelsType);
    if (PyModule_AddObject(m, "Levels", (PyObject *)&LevelsType) < 0) {
        Py_DECREF(&LevelsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TimeFlagsType);
    if (PyModule_AddObject(m, "TimeFlags", (PyObject *)&TimeFlagsType) < 0) {
        Py_DECREF(&TimeFlagsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "BinanceScanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "ColumnRows", (PyObject *)&ColumnRowsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
