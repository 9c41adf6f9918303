/* The compiled half of collectors/capture.py: splitting decompressed capture blocks into items.
 *
 * collectors/capture.py is the reference (parse_lines; TICKTAPE_PURE_PYTHON=1 selects it). One call
 * turns a block of capture text into the items parse_lines yields for its lines, in one list:
 * ``(ts_recv, frame)`` tuples, ``None`` for an empty line (a disconnect), nothing for ``#`` lines
 * (unless ``meta`` is set and the line is a ``# subscription`` line). Only the plain line is decided
 * here: a receive time of 1 to 19 ASCII digits followed by a space. Every other non-empty line
 * (no space, a sign, underscores, whitespace, more digits, a subscription line) goes to the
 * reference's per-line function ``fallback(line_no, line)``, which returns the item (a CaptureError,
 * a CaptureSubscription, a frame whose receive time Python's int() reads) or the ``skip`` object.
 * No error message is therefore ever composed here.
 *
 * index_block does the same into a FrameBlock (collectors/_frameblock.h): the items by index, a plain
 * frame held as where it lies in the block until an item is asked for, so that the Binance scanner
 * (collectors._booknative) reads frames where they are and no frame costs a tuple, an int and a bytes
 * object (0.15 s of CPU per 504k frames, made and freed). split_block is its items in a list.
 *
 * Documentation followed (checked 2026-12-06): argument parsing with METH_FASTCALL and
 * PyArg_ParseTuple-free access, https://docs.python.org/3/c-api/structures.html#c.METH_FASTCALL;
 * buffers read through the buffer protocol, https://docs.python.org/3/c-api/buffer.html; list and
 * tuple construction, https://docs.python.org/3/c-api/list.html, https://docs.python.org/3/c-api/tuple.html.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_frameblock.h"

static const char SUBSCRIPTION_PREFIX[] = "# subscription ";
#define SUBSCRIPTION_PREFIX_LEN ((Py_ssize_t)(sizeof(SUBSCRIPTION_PREFIX) - 1))
/* 19 decimal digits always fit an unsigned 64-bit integer (10^19 - 1 < 2^64). */
#define MAX_TS_DIGITS 19

/* Appends ``obj`` (a new reference, stolen) to ``list``; -1 on error (obj released). */
static int append_new(PyObject *list, PyObject *obj) {
    if (obj == NULL) return -1;
    int rc = PyList_Append(list, obj);
    Py_DECREF(obj);
    return rc;
}

/* What one line is: a plain frame (LINE_FRAME: its receive time and where the frame starts), another
 * item (LINE_OBJECT: *obj, a new reference), nothing (LINE_SKIP), or an error (-1). */
enum { LINE_SKIP = 0, LINE_FRAME = 1, LINE_OBJECT = 2 };

static int classify_line(const char *p, Py_ssize_t len, Py_ssize_t line_no, int meta, PyObject *fallback,
                         PyObject *skip, uint64_t *ts_out, Py_ssize_t *frame_at, PyObject **obj) {
    if (len == 0) { /* a disconnect */
        *obj = Py_NewRef(Py_None);
        return LINE_OBJECT;
    }
    if (p[0] == '#') {
        if (!meta || len < SUBSCRIPTION_PREFIX_LEN || memcmp(p, SUBSCRIPTION_PREFIX, SUBSCRIPTION_PREFIX_LEN) != 0)
            return LINE_SKIP; /* written by ticktape and not asked for: skipped, as the reference does */
    } else {
        Py_ssize_t i = 0;
        uint64_t ts = 0;
        while (i < len && i < MAX_TS_DIGITS && p[i] >= '0' && p[i] <= '9') {
            ts = ts * 10 + (uint64_t)(p[i] - '0');
            i++;
        }
        if (i > 0 && i < len && p[i] == ' ') {
            *ts_out = ts;
            *frame_at = i + 1;
            return LINE_FRAME;
        }
    }
    /* Anything else: the reference decides (its item, or skip). */
    PyObject *line = PyBytes_FromStringAndSize(p, len);
    if (line == NULL) return -1;
    PyObject *no = PyLong_FromSsize_t(line_no);
    if (no == NULL) {
        Py_DECREF(line);
        return -1;
    }
    PyObject *args[2] = {no, line};
    PyObject *item = PyObject_Vectorcall(fallback, args, 2, NULL);
    Py_DECREF(no);
    Py_DECREF(line);
    if (item == NULL) return -1;
    if (item == skip) {
        Py_DECREF(item);
        return LINE_SKIP;
    }
    *obj = item;
    return LINE_OBJECT;
}

/* A plain frame as the reference's item: (ts_recv, frame). */
static PyObject *frame_tuple(uint64_t ts, const char *frame, Py_ssize_t len) {
    PyObject *tuple = PyTuple_New(2);
    if (tuple == NULL) return NULL;
    PyObject *ts_obj = PyLong_FromUnsignedLongLong(ts);
    PyObject *bytes = PyBytes_FromStringAndSize(frame, len);
    if (ts_obj == NULL || bytes == NULL) {
        Py_XDECREF(ts_obj);
        Py_XDECREF(bytes);
        Py_DECREF(tuple);
        return NULL;
    }
    PyTuple_SET_ITEM(tuple, 0, ts_obj);
    PyTuple_SET_ITEM(tuple, 1, bytes);
    return tuple;
}

/* ``specials`` lists the indices of the items that are not (ts_recv, frame) tuples. */
static int note_special(PyObject *specials, Py_ssize_t index, PyObject *item) {
    if (item->ob_type == &PyTuple_Type) return 0;
    return append_new(specials, PyLong_FromSsize_t(index));
}

/* -- FrameBlock: a block's items without an object per plain frame (see _frameblock.h) -------------- */

static PyTypeObject FrameBlockType;

static void fb_dealloc(FrameBlock *b) {
    for (Py_ssize_t i = 0; i < b->n; i++) Py_XDECREF(b->entries[i].obj);
    PyMem_Free(b->entries);
    if (b->view.obj) PyBuffer_Release(&b->view);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static Py_ssize_t fb_length(FrameBlock *b) { return b->n; }

/* The item at i (0 <= i < n), as the reference's list holds it: a new reference. */
static PyObject *fb_item_at(FrameBlock *b, Py_ssize_t i) {
    FrameEntry *e = &b->entries[i];
    if (e->obj) return Py_NewRef(e->obj);
    return frame_tuple((uint64_t)e->ts, (const char *)b->view.buf + e->off, e->len);
}

static PyObject *fb_item(FrameBlock *b, Py_ssize_t i) {
    if (i < 0 || i >= b->n) {
        PyErr_SetString(PyExc_IndexError, "FrameBlock index out of range");
        return NULL;
    }
    return fb_item_at(b, i);
}

static PyObject *fb_subscript(FrameBlock *b, PyObject *key) {
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (i < 0) i += b->n;
        return fb_item(b, i);
    }
    if (!PySlice_Check(key)) {
        PyErr_Format(PyExc_TypeError, "FrameBlock indices must be integers or slices, not %.100s", Py_TYPE(key)->tp_name);
        return NULL;
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) return NULL;
    Py_ssize_t count = PySlice_AdjustIndices(b->n, &start, &stop, step);
    PyObject *out = PyList_New(count);
    for (Py_ssize_t k = 0, i = start; out && k < count; k++, i += step) {
        PyObject *item = fb_item_at(b, i);
        if (!item) Py_CLEAR(out);
        else PyList_SET_ITEM(out, k, item);
    }
    return out;
}

static PySequenceMethods fb_as_sequence = {
    .sq_length = (lenfunc)fb_length,
    .sq_item = (ssizeargfunc)fb_item,
};

static PyMappingMethods fb_as_mapping = {
    .mp_length = (lenfunc)fb_length,
    .mp_subscript = (binaryfunc)fb_subscript,
};

static PyTypeObject FrameBlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collectors._capturenative.FrameBlock",
    .tp_basicsize = sizeof(FrameBlock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A capture block's items, indexed (index_block): a sequence equal to split_block's list.",
    .tp_dealloc = (destructor)fb_dealloc,
    .tp_as_sequence = &fb_as_sequence,
    .tp_as_mapping = &fb_as_mapping,
};

static int fb_push(FrameBlock *b, int64_t ts, Py_ssize_t off, Py_ssize_t len, PyObject *obj) {
    if (b->n == b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 1024;
        FrameEntry *grown = PyMem_Realloc(b->entries, (size_t)cap * sizeof(FrameEntry));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        b->entries = grown;
        b->cap = cap;
    }
    b->entries[b->n++] = (FrameEntry){ts, off, len, obj};
    return 0;
}

typedef struct {
    int meta;
    PyObject *fallback, *skip, *specials;
    FrameBlock *block;
} BlockCtx;

/* One line (without its newline and trailing carriage return) into the block: its entry; -1 on error. */
static int block_line(BlockCtx *c, const char *line, Py_ssize_t len, Py_ssize_t line_no) {
    FrameBlock *b = c->block;
    uint64_t ts = 0;
    Py_ssize_t at = 0;
    PyObject *obj = NULL;
    int kind = classify_line(line, len, line_no, c->meta, c->fallback, c->skip, &ts, &at, &obj);
    if (kind <= 0) return kind;
    if (kind == LINE_FRAME) {
        if (ts <= (uint64_t)INT64_MAX)
            return fb_push(b, (int64_t)ts, (line - (const char *)b->view.buf) + at, len - at, NULL);
        obj = frame_tuple(ts, line + at, len - at); /* past int64: held as the object */
        if (!obj) return -1;
    }
    if (note_special(c->specials, b->n, obj) < 0 || fb_push(b, 0, 0, 0, obj) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    return 0;
}

/* Indexes the lines of a block (the arguments of index_block and split_block) into a new FrameBlock:
 * the block is split at newlines (and one carriage return before one); without ``final`` the text
 * after the last newline is left, not consumed (the caller prepends it to the next block); with
 * ``final`` it is the file's last line. Sets *specials (the indices of the items that are not
 * (ts_recv, frame) tuples), *consumed and *lines; NULL with an exception on error. */
static FrameBlock *index_lines(PyObject *const *args, Py_ssize_t nargs, const char *usage, PyObject **specials,
                               Py_ssize_t *consumed, Py_ssize_t *lines) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    Py_ssize_t line_no = PyLong_AsSsize_t(args[1]);
    if (line_no == -1 && PyErr_Occurred()) return NULL;
    int meta = PyObject_IsTrue(args[2]);
    int final = PyObject_IsTrue(args[3]);
    if (meta < 0 || final < 0) return NULL;
    FrameBlock *b = PyObject_New(FrameBlock, &FrameBlockType);
    if (!b) return NULL;
    b->n = b->cap = 0;
    b->entries = NULL;
    b->view.obj = NULL;
    if (PyObject_GetBuffer(args[0], &b->view, PyBUF_SIMPLE) < 0) {
        b->view.obj = NULL;
        Py_DECREF(b);
        return NULL;
    }
    BlockCtx c = {meta, args[4], args[5], PyList_New(0), b};
    if (c.specials == NULL) {
        Py_DECREF(b);
        return NULL;
    }
    const char *buf = b->view.buf;
    Py_ssize_t n = b->view.len, pos = 0, count = 0;
    while (pos < n) {
        const char *nl = memchr(buf + pos, '\n', (size_t)(n - pos));
        Py_ssize_t end;
        if (nl == NULL) {
            if (!final) break;
            end = n;
        } else {
            end = nl - buf;
        }
        Py_ssize_t len = end - pos;
        if (len > 0 && buf[end - 1] == '\r') len--;
        if (block_line(&c, buf + pos, len, line_no + count) < 0) {
            Py_DECREF(c.specials);
            Py_DECREF(b);
            return NULL;
        }
        count++;
        pos = nl == NULL ? n : end + 1;
    }
    *specials = c.specials;
    *consumed = pos;
    *lines = count;
    return b;
}

/* index_block(block, first_line_no, meta, final, fallback, skip) -> (FrameBlock, specials, consumed, lines)
 *
 * The items of a block's lines as a FrameBlock over ``block`` (which it holds, through the buffer
 * protocol, while it lives): by index, no objects made for plain frames until asked. */
static PyObject *index_block(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    PyObject *specials;
    Py_ssize_t consumed, lines;
    FrameBlock *b = index_lines(args, nargs, "index_block(block, first_line_no, meta, final, fallback, skip)",
                                &specials, &consumed, &lines);
    if (!b) return NULL;
    return Py_BuildValue("(NNnn)", (PyObject *)b, specials, consumed, lines);
}

/* split_block(block, first_line_no, meta, final, fallback, skip) -> (items, specials, consumed, lines)
 *
 * index_block's items in a list (each plain frame a (ts_recv, frame) tuple of its own bytes). */
static PyObject *split_block(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    PyObject *specials;
    Py_ssize_t consumed, lines;
    FrameBlock *b = index_lines(args, nargs, "split_block(block, first_line_no, meta, final, fallback, skip)",
                                &specials, &consumed, &lines);
    if (!b) return NULL;
    PyObject *items = PyList_New(b->n);
    for (Py_ssize_t i = 0; items && i < b->n; i++) {
        PyObject *item = fb_item_at(b, i);
        if (!item) Py_CLEAR(items);
        else PyList_SET_ITEM(items, i, item);
    }
    Py_DECREF(b);
    if (!items) {
        Py_DECREF(specials);
        return NULL;
    }
    return Py_BuildValue("(NNnn)", items, specials, consumed, lines);
}

static PyMethodDef methods[] = {
    {"split_block", (PyCFunction)(void (*)(void))split_block, METH_FASTCALL,
     "split_block(block, first_line_no, meta, final, fallback, skip) -> (items, specials, consumed, lines)"},
    {"index_block", (PyCFunction)(void (*)(void))index_block, METH_FASTCALL,
     "index_block(block, first_line_no, meta, final, fallback, skip) -> (FrameBlock, specials, consumed, lines)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "collectors._capturenative",
    "Capture blocks split into items in C (collectors/capture.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

static FrameBlockAPI frameblock_api = {&FrameBlockType};

PyMODINIT_FUNC PyInit__capturenative(void) {
    if (PyType_Ready(&FrameBlockType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    PyObject *api = PyCapsule_New(&frameblock_api, FRAMEBLOCK_CAPSULE, NULL);
    if (!api || PyModule_AddObject(m, "_frameblock_api", api) < 0 ||
        PyModule_AddObjectRef(m, "FrameBlock", (PyObject *)&FrameBlockType) < 0) {
        Py_XDECREF(api);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
