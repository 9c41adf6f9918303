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
 * Documentation followed (checked 2026-12-06): argument parsing with METH_FASTCALL and
 * PyArg_ParseTuple-free access, https://docs.python.org/3/c-api/structures.html#c.METH_FASTCALL;
 * buffers read through the buffer protocol, https://docs.python.org/3/c-api/buffer.html; list and
 * tuple construction, https://docs.python.org/3/c-api/list.html, https://docs.python.org/3/c-api/tuple.html.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

/* One line (without its newline and trailing carriage return): appends its item; -1 on error. */
static int line_item(const char *p, Py_ssize_t len, Py_ssize_t line_no, int meta, PyObject *fallback,
                     PyObject *skip, PyObject *items, PyObject *specials) {
    if (len == 0) { /* a disconnect */
        if (append_new(specials, PyLong_FromSsize_t(PyList_GET_SIZE(items))) < 0) return -1;
        Py_INCREF(Py_None);
        return append_new(items, Py_None);
    }
    if (p[0] == '#') {
        if (!meta || len < SUBSCRIPTION_PREFIX_LEN || memcmp(p, SUBSCRIPTION_PREFIX, SUBSCRIPTION_PREFIX_LEN) != 0)
            return 0; /* written by ticktape and not asked for: skipped, as the reference does */
    } else {
        Py_ssize_t i = 0;
        uint64_t ts = 0;
        while (i < len && i < MAX_TS_DIGITS && p[i] >= '0' && p[i] <= '9') {
            ts = ts * 10 + (uint64_t)(p[i] - '0');
            i++;
        }
        if (i > 0 && i < len && p[i] == ' ') {
            PyObject *tuple = PyTuple_New(2);
            if (tuple == NULL) return -1;
            PyObject *ts_obj = PyLong_FromUnsignedLongLong(ts);
            PyObject *frame = PyBytes_FromStringAndSize(p + i + 1, len - i - 1);
            if (ts_obj == NULL || frame == NULL) {
                Py_XDECREF(ts_obj);
                Py_XDECREF(frame);
                Py_DECREF(tuple);
                return -1;
            }
            PyTuple_SET_ITEM(tuple, 0, ts_obj);
            PyTuple_SET_ITEM(tuple, 1, frame);
            return append_new(items, tuple);
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
        return 0;
    }
    if (item->ob_type != &PyTuple_Type &&
        append_new(specials, PyLong_FromSsize_t(PyList_GET_SIZE(items))) < 0) {
        Py_DECREF(item);
        return -1;
    }
    return append_new(items, item);
}

/* split_block(block, first_line_no, meta, final, fallback, skip) -> (items, specials, consumed, lines)
 *
 * Splits ``block`` at newlines. Without ``final`` the text after the last newline is left (not
 * consumed: the caller prepends it to the next block); with ``final`` it is the file's last line.
 * ``specials`` lists the indices in ``items`` of everything that is not a (ts_recv, frame) tuple. */
static PyObject *split_block(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "split_block(block, first_line_no, meta, final, fallback, skip)");
        return NULL;
    }
    Py_ssize_t line_no = PyLong_AsSsize_t(args[1]);
    if (line_no == -1 && PyErr_Occurred()) return NULL;
    int meta = PyObject_IsTrue(args[2]);
    int final = PyObject_IsTrue(args[3]);
    if (meta < 0 || final < 0) return NULL;
    PyObject *fallback = args[4], *skip = args[5];
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *items = PyList_New(0), *specials = PyList_New(0);
    if (items == NULL || specials == NULL) goto fail;
    const char *buf = (const char *)view.buf;
    Py_ssize_t n = view.len, pos = 0, lines = 0;
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
        if (line_item(buf + pos, len, line_no + lines, meta, fallback, skip, items, specials) < 0) goto fail;
        lines++;
        pos = nl == NULL ? n : end + 1;
    }
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(NNnn)", items, specials, pos, lines);
    return result;
fail:
    Py_XDECREF(items);
    Py_XDECREF(specials);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_block", (PyCFunction)(void (*)(void))split_block, METH_FASTCALL,
     "split_block(block, first_line_no, meta, final, fallback, skip) -> (items, specials, consumed, lines)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "collectors._capturenative",
    "Capture blocks split into items in C (collectors/capture.py is the reference).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__capturenative(void) { return PyModule_Create(&moduledef); }
