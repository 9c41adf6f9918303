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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* First index whose key is >= rk. */
static Py_ssize_t lower_bound(const Levels *L, double rk) {
    Py_ssize_t lo = 0, hi = L->n;
    /* Most changes are near the best level (the end): check there first. */
    if (hi > 0 && L->keys[hi - 1] < rk) return hi;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (L->keys[mid] < rk)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
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

/* Sets price -> value (new references are taken). A held level keeps its key object, as a dict does. */
static int levels_set(Levels *L, double price, PyObject *key, PyObject *value) {
    double rk = rank_of(L, price);
    Py_ssize_t j = lower_bound(L, rk);
    if (j < L->n && L->keys[j] == rk) {
        PyObject *old = L->vals[j];
        Py_INCREF(value);
        L->vals[j] = value;
        Py_DECREF(old);
        return 0;
    }
    if (reserve(L, L->n + 1) < 0) return -1;
    if (j < L->n) {
        memmove(L->keys + j + 1, L->keys + j, (size_t)(L->n - j) * sizeof(double));
        memmove(L->kobjs + j + 1, L->kobjs + j, (size_t)(L->n - j) * sizeof(PyObject *));
        memmove(L->vals + j + 1, L->vals + j, (size_t)(L->n - j) * sizeof(PyObject *));
    }
    L->keys[j] = rk;
    Py_INCREF(key);
    L->kobjs[j] = key;
    Py_INCREF(value);
    L->vals[j] = value;
    L->n++;
    return 0;
}

/* Removes internal index j; returns its value and (when key is not NULL) its key object: references
 * the caller owns. */
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
        Py_DECREF(k);
    return v;
}

static void levels_remove(Levels *L, double price) {
    Py_ssize_t j = find(L, rank_of(L, price));
    if (j >= 0) Py_DECREF(levels_take(L, j, NULL));
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
        Py_DECREF(kobjs[i]);
        Py_DECREF(vals[i]);
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
        Py_VISIT(L->vals[i]);
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
        Py_DECREF(levels_take(L, j, NULL));
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
    if (j >= 0) return levels_take(L, j, NULL);
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

/* A plain decimal ([0-9]*.?[0-9]*, at least one digit) as the correctly rounded double, which is
 * what float() returns for it: exact when the digits fit in 53 bits and the scale is a power of ten
 * that is itself exact (both operands exact, one IEEE division rounds once); otherwise the same
 * routine float() uses. 1: parsed; 0: not a plain decimal (the caller asks float() itself). */
static int plain_decimal(const char *s, Py_ssize_t len, double *out) {
    uint64_t m = 0;
    int frac = 0, dot = 0, digits = 0, exact = 1;
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digits++;
            if (dot) frac++;
            if (m > ((1ULL << 53) - 9) / 10) exact = 0;
            else m = m * 10 + (uint64_t)(c - '0');
        } else if (c == '.' && !dot) {
            dot = 1;
        } else {
            return 0;
        }
    }
    if (!digits) return 0;
    if (exact && frac <= 22) {
        *out = frac ? (double)m / POW10[frac] : (double)m;
        return 1;
    }
    char *end = NULL;
    double v = PyOS_string_to_double(s, &end, NULL);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (end != s + len) return 0;
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
} RowCtx;

static int emit_row(const RowCtx *c, PyObject *price, PyObject *size) {
    PyObject *row = PyTuple_New(11);
    if (!row) return -1;
    PyObject *cols[11] = {c->ex,   c->sym,         c->ts_exchange, c->ts_recv, c->side, price,
                          size,    c->is_snapshot, c->seq,         c->epoch,   c->flags};
    for (int i = 0; i < 11; i++) {
        Py_INCREF(cols[i]);
        PyTuple_SET_ITEM(row, i, cols[i]);
    }
    maybe_untrack(row);
    int r = append_row(c->rows, row);
    Py_DECREF(row);
    return r;
}

/* Sets (size != 0) or removes (size == 0) one level and emits its row. snapshot: size-0 levels are
 * skipped entirely (a snapshot's empty levels do not exist). */
static int apply_one(Levels *L, const RowCtx *c, double price, double size, PyObject *pobj, PyObject *sobj,
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

static PyMethodDef module_methods[] = {
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
    if (PyType_Ready(&LevelsType) < 0) return NULL;
    str_append = PyUnicode_InternFromString("append");
    if (!str_append) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&LevelsType);
    if (PyModule_AddObject(m, "Levels", (PyObject *)&LevelsType) < 0) {
        Py_DECREF(&LevelsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
