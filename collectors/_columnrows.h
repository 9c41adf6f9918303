/* Column store of one dataset's rows (collectors/_columnrows.c), shared by the book engine and the
 * frame scanner of collectors._booknative. */
#ifndef TICKTAPE_COLUMNROWS_H
#define TICKTAPE_COLUMNROWS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

extern PyTypeObject ColumnRowsType;
extern PyTypeObject ColumnRowsIterType;

#define ColumnRows_CheckExact(o) (Py_TYPE(o) == &ColumnRowsType)

/* One cell given without a Python object for numbers: obj is the str/bytes of a string or bytes
 * column, Py_None for a null of any column, NULL for a number (i for long, int and boolean, d for
 * double). */
typedef struct {
    PyObject *obj;
    int64_t i;
    double d;
} CRCell;

/* Appends one row given as n cells (objects, as a tuple would hold them): 0, or -1 with an exception. */
int column_rows_append_objects(PyObject *rows, PyObject *const *cells, Py_ssize_t n);
/* Appends one row given as n typed cells: 0, or -1 with an exception. */
int column_rows_append_cells(PyObject *rows, const CRCell *cells, Py_ssize_t n);
/* Cells of n objects (a row of the store's width) as the columns hold them: 1, or 0 when one of them
 * is not taken as is (then append the objects). */
int column_rows_cells_of(PyObject *rows, PyObject *const *objs, Py_ssize_t n, CRCell *cells);
/* Appends a row of cells made by column_rows_cells_of (number cells changed only to values of their
 * column's type: a double that is not NaN in a double column). 0, or -1 with an exception. */
int column_rows_append_made(PyObject *rows, const CRCell *cells);

/* keep_freed_memory(on) -> bool (collectors._booknative): see _columnrows.c. */
PyObject *keep_freed_memory(PyObject *self, PyObject *arg);

#endif
