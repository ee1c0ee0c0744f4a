/*
 * Keyed content-defined chunking: FastCDC (Xia et al., USENIX ATC 2016) with normalized chunking,
 * over a gear table that is secret (derived from the account's dedup secret), so chunk boundaries,
 * and therefore chunk sizes, say nothing about content to anyone without that secret.
 *
 * One function, cut(table, data, min_size, avg_bits, max_size, eof) -> int: the length of the
 * first chunk of data, or -1 when no boundary is found yet and more data may follow. The scan runs
 * without the GIL, so several threads chunk in parallel. The reference in chunker.py computes the
 * same boundaries in pure Python; tests compare the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *cdc_cut(PyObject *self, PyObject *args) {
    Py_buffer table, data;
    Py_ssize_t min_size, max_size;
    int avg_bits, eof;
    if (!PyArg_ParseTuple(args, "y*y*nini", &table, &data, &min_size, &avg_bits, &max_size, &eof))
        return NULL;
    if (table.len != 256 * 8 || avg_bits < 8 || avg_bits > 30 || min_size < 64 || max_size <= min_size) {
        PyBuffer_Release(&table);
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "bad chunker parameters");
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)data.buf;
    const uint8_t *t8 = (const uint8_t *)table.buf;
    uint64_t gear[256];
    for (int i = 0; i < 256; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v = (v << 8) | t8[i * 8 + j]; /* big-endian u64 */
        gear[i] = v;
    }
    /* Normalized chunking: a harder mask (2 more bits) before the average size, an easier one
       (2 fewer bits) after it. Masks take the top bits, which mix the most input. */
    const uint64_t mask_s = ~(uint64_t)0 << (64 - (avg_bits + 2));
    const uint64_t mask_l = ~(uint64_t)0 << (64 - (avg_bits - 2));
    Py_ssize_t n = data.len;
    Py_ssize_t result = -1;
    Py_BEGIN_ALLOW_THREADS
    if (n <= min_size) {
        result = eof ? n : -1;
    } else {
        Py_ssize_t limit = n < max_size ? n : max_size;
        Py_ssize_t normal = (Py_ssize_t)1 << avg_bits;
        if (normal > limit) normal = limit;
        uint64_t h = 0;
        Py_ssize_t i = min_size;
        for (; i < normal; i++) {
            h = (h << 1) + gear[p[i]];
            if (!(h & mask_s)) { result = i + 1; goto done; }
        }
        for (; i < limit; i++) {
            h = (h << 1) + gear[p[i]];
            if (!(h & mask_l)) { result = i + 1; goto done; }
        }
        if (limit == max_size || eof) result = limit;
    }
done:
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&table);
    PyBuffer_Release(&data);
    return PyLong_FromSsize_t(result);
}

static PyMethodDef methods[] = {
    {"cut", cdc_cut, METH_VARARGS, "Length of the first chunk of data, or -1 if more data is needed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdc", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cdc(void) { return PyModule_Create(&module); }
