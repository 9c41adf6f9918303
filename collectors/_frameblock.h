/* The layout of collectors._capturenative.FrameBlock, shared with collectors._booknative (whose frame
 * scanner reads a block's frames in place) through a capsule: the usual way one extension uses
 * another's C type, https://docs.python.org/3/extending/extending.html#providing-a-c-api-for-an-extension-module
 * (checked 2026-12-06).
 *
 * A FrameBlock is one decompressed block of a capture, indexed: the items collectors.capture's reader
 * gives for its lines, without a Python object per frame. A plain frame line (receive time, a space,
 * the frame) is an entry of its receive time and where the frame lies in the block; every other item
 * (a disconnect, a subscription, a CaptureError, a frame whose receive time only Python reads) is
 * held as the object the reference made. Indexing the block gives the items the list would hold. */
#ifndef TICKTAPE_FRAMEBLOCK_H
#define TICKTAPE_FRAMEBLOCK_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    int64_t ts;       /* receive time (ns) of a plain frame */
    Py_ssize_t off;   /* where its frame starts in the block */
    Py_ssize_t len;   /* its length in bytes */
    PyObject *obj;    /* the item itself when it is not a plain frame (owned), else NULL */
} FrameEntry;

typedef struct {
    PyObject_HEAD
    Py_buffer view;   /* the block, held while the FrameBlock lives */
    Py_ssize_t n;
    Py_ssize_t cap;
    FrameEntry *entries;
} FrameBlock;

typedef struct {
    PyTypeObject *type;
} FrameBlockAPI;

#define FRAMEBLOCK_CAPSULE "collectors._capturenative._frameblock_api"

#endif
