/*
 * personas_warehouse._speedups: the compiled half of building an IdentifiesLog.
 *
 * Optional. setup.py builds it where a C compiler is present (Extension(optional=True)); the
 * log falls back to its pure-Python (and numpy) code otherwise, with the same result, held
 * equal by property tests (tests/test_speedups.py). Two functions, each the C twin of Python
 * code in personas_warehouse/log.py:
 *
 *   flatten(events, event_type, descriptors, codes, checks)
 *       _Keys.columns: events as flat columns, every value checked against the Space. Returns
 *       None whenever it cannot vouch for the batch (a subclass, an unknown key, a value whose
 *       type or range the table does not clear, a datetime not in UTC ...): the caller then
 *       runs the Python code, which raises the error naming the event and key.
 *
 *   layout(mids, uids, ts, recv, codes, values, bound, trait_names, audience_pairs,
 *          index_size, code_size)
 *       _drop_copies + _layout_python + the message-id buffer + _sync_pairs: the first index
 *       of an empty log. Returns None when an id is not an exact str, or a message id is not
 *       ASCII (the Python code then runs).
 *
 * Neither runs Python code while it holds borrowed references: only exact str, int, float,
 * bool, datetime and dict objects are touched, by their C API.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * flatten
 * ------------------------------------------------------------------------------------------ */

/* mappingproxy's layout (Objects/descrobject.c); checked when the module is imported. */
typedef struct {
    PyObject_HEAD
    PyObject *mapping;
} proxy_object;

static int proxy_layout_ok = 0;

/* The value tags, in the order log.py's _SPEEDUP_TYPES lists the types. */
enum { TAG_NONE, TAG_BOOL, TAG_INT, TAG_FLOAT, TAG_STR, TAG_DATETIME, TAG_COUNT };

/* checks[code * TAG_COUNT + tag]: log.py's check constants plus one; 0 = not cleared. */
enum { CHECK_NO, CHECK_OK, CHECK_FINITE, CHECK_INT53, CHECK_INT64, CHECK_NO_NUL, CHECK_UTC };

#define FLOAT_EXACT_INT (((long long)1) << 53)

static int
value_tag(PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (value == Py_None) return TAG_NONE;
    if (type == &PyBool_Type) return TAG_BOOL;
    if (type == &PyLong_Type) return TAG_INT;
    if (type == &PyFloat_Type) return TAG_FLOAT;
    if (type == &PyUnicode_Type) return TAG_STR;
    if (type == PyDateTimeAPI->DateTimeType) return TAG_DATETIME;
    return -1;
}

static int64_t
days_from_civil(int year, int month, int day)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date. */
    int y = year - (month <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

/* A datetime in UTC (exact type, tzinfo the UTC singleton) as epoch microseconds; 0 if not. */
static int
utc_micros(PyObject *moment, int64_t *out)
{
    if (Py_TYPE(moment) != PyDateTimeAPI->DateTimeType) return 0;
    if (PyDateTime_DATE_GET_TZINFO(moment) != PyDateTime_TimeZone_UTC) return 0;
    int64_t days = days_from_civil(
        PyDateTime_GET_YEAR(moment), PyDateTime_GET_MONTH(moment), PyDateTime_GET_DAY(moment));
    int64_t seconds = ((days * 24 + PyDateTime_DATE_GET_HOUR(moment)) * 60
                       + PyDateTime_DATE_GET_MINUTE(moment)) * 60
                      + PyDateTime_DATE_GET_SECOND(moment);
    *out = seconds * 1000000 + PyDateTime_DATE_GET_MICROSECOND(moment);
    return 1;
}

/* Whether `value` (of tag `tag`) passes check `check` unchanged: 1 yes, 0 no, -1 error. */
static int
passes(PyObject *value, int check)
{
    switch (check) {
    case CHECK_OK:
        return 1;
    case CHECK_FINITE:
        return isfinite(PyFloat_AS_DOUBLE(value)) ? 1 : 0;
    case CHECK_INT53:
    case CHECK_INT64: {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred()) return -1;
        if (overflow) return 0;
        if (check == CHECK_INT53) return number <= FLOAT_EXACT_INT && number >= -FLOAT_EXACT_INT;
        return 1;
    }
    case CHECK_NO_NUL: {
        Py_ssize_t found = PyUnicode_FindChar(value, 0, 0, PyUnicode_GET_LENGTH(value), 1);
        if (found == -2) return -1;
        return found == -1;
    }
    case CHECK_UTC:
        return PyDateTime_DATE_GET_TZINFO(value) == PyDateTime_TimeZone_UTC;
    default:
        return 0;
    }
}

typedef struct {
    Py_ssize_t size, capacity;
    int64_t *codes;
    PyObject **values; /* borrowed */
} pairs_t;

static int
pairs_push(pairs_t *pairs, int64_t code, PyObject *value)
{
    if (pairs->size == pairs->capacity) {
        Py_ssize_t capacity = pairs->capacity ? 2 * pairs->capacity : 1024;
        int64_t *codes = PyMem_Realloc(pairs->codes, capacity * sizeof(int64_t));
        if (codes == NULL) return -1;
        pairs->codes = codes;
        PyObject **values = PyMem_Realloc(pairs->values, capacity * sizeof(PyObject *));
        if (values == NULL) return -1;
        pairs->values = values;
        pairs->capacity = capacity;
    }
    pairs->codes[pairs->size] = code;
    pairs->values[pairs->size] = value;
    pairs->size++;
    return 0;
}

static PyObject *
bytes_of(const void *data, Py_ssize_t size)
{
    return PyBytes_FromStringAndSize((const char *)data, size);
}

/* A list of the objects at `items` (new references). */
static PyObject *
list_of(PyObject **items, Py_ssize_t count)
{
    PyObject *list = PyList_New(count);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_INCREF(items[i]);
        PyList_SET_ITEM(list, i, items[i]);
    }
    return list;
}

/* The offsets of `count` object slots of `type`, from their member descriptors (a tuple);
 * -1 with ValueError naming `what` unless each is an object slot of exactly that type. */
static int
slot_offsets(PyObject *descriptors, PyObject *type, Py_ssize_t count, Py_ssize_t *offsets,
             const char *what)
{
    if (PyTuple_GET_SIZE(descriptors) != count) {
        PyErr_Format(PyExc_ValueError, "%s needs %zd slot descriptors", what, count);
        return -1;
    }
    for (Py_ssize_t f = 0; f < count; f++) {
        PyObject *descriptor = PyTuple_GET_ITEM(descriptors, f);
        if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
            || PyDescr_TYPE(descriptor) != (PyTypeObject *)type
            || ((PyMemberDescrObject *)descriptor)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_ValueError, "%s needs the type's object slot descriptors", what);
            return -1;
        }
        offsets[f] = ((PyMemberDescrObject *)descriptor)->d_member->offset;
    }
    return 0;
}

enum { F_MESSAGE_ID, F_USER_ID, F_TIMESTAMP, F_RECEIVED_AT, F_VALUES, F_COUNT };

static PyObject *
flatten(PyObject *module, PyObject *args)
{
    PyObject *events, *event_type, *descriptors, *code_of;
    Py_buffer checks;
    if (!PyArg_ParseTuple(args, "O!O!O!O!y*", &PyList_Type, &events, &PyType_Type, &event_type,
                          &PyTuple_Type, &descriptors, &PyDict_Type, &code_of, &checks))
        return NULL;

    PyObject *result = NULL;
    Py_ssize_t count = PyList_GET_SIZE(events);
    Py_ssize_t code_count = checks.len / TAG_COUNT;
    const unsigned char *check = checks.buf;
    Py_ssize_t offset[F_COUNT];
    PyObject *mid_list = NULL, *uid_list = NULL;
    int64_t *ts = NULL, *recv = NULL, *bound = NULL;
    pairs_t pairs = {0, 0, NULL, NULL};
    int late = 0;

    if (slot_offsets(descriptors, event_type, F_COUNT, offset, "flatten") < 0) goto done;
    if (!proxy_layout_ok) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    mid_list = PyList_New(count);
    uid_list = PyList_New(count);
    ts = PyMem_Malloc((count + 1) * sizeof(int64_t));
    recv = PyMem_Malloc((count + 1) * sizeof(int64_t));
    bound = PyMem_Malloc((count + 1) * sizeof(int64_t));
    if (!mid_list || !uid_list) goto done;
    if (!ts || !recv || !bound) {
        PyErr_NoMemory();
        goto done;
    }
    bound[0] = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *event = PyList_GET_ITEM(events, i);
        if (Py_TYPE(event) != (PyTypeObject *)event_type) goto fallback;
        if (i + 8 < count) { /* user ids are shared objects, scattered: fetch them early */
            PyObject *ahead = PyList_GET_ITEM(events, i + 8);
            if (Py_TYPE(ahead) == (PyTypeObject *)event_type) {
                PyObject *uid = *(PyObject **)((char *)ahead + offset[F_USER_ID]);
                if (uid != NULL) __builtin_prefetch(uid, 1);
            }
        }
        char *base = (char *)event;
        PyObject *field[F_COUNT];
        for (int f = 0; f < F_COUNT; f++) {
            field[f] = *(PyObject **)(base + offset[f]);
            if (field[f] == NULL) goto fallback;
        }
        if (!PyUnicode_CheckExact(field[F_MESSAGE_ID]) || !PyUnicode_CheckExact(field[F_USER_ID]))
            goto fallback;
        PyList_SET_ITEM(mid_list, i, Py_NewRef(field[F_MESSAGE_ID]));
        PyList_SET_ITEM(uid_list, i, Py_NewRef(field[F_USER_ID]));
        if (!utc_micros(field[F_TIMESTAMP], &ts[i])) goto fallback;
        if (field[F_RECEIVED_AT] == field[F_TIMESTAMP]) {
            recv[i] = ts[i];
        } else {
            if (!utc_micros(field[F_RECEIVED_AT], &recv[i])) goto fallback;
            late = 1;
        }
        PyObject *proxy = field[F_VALUES];
        if (!Py_IS_TYPE(proxy, &PyDictProxy_Type)) goto fallback;
        PyObject *values = ((proxy_object *)proxy)->mapping;
        if (!PyDict_CheckExact(values)) goto fallback;
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(values, &position, &key, &value)) {
            if (!PyUnicode_CheckExact(key)) goto fallback;
            PyObject *code_object = PyDict_GetItemWithError(code_of, key);
            if (code_object == NULL) {
                if (PyErr_Occurred()) goto done;
                goto fallback; /* an unknown key: the Python code names it */
            }
            long code = PyLong_AsLong(code_object);
            if (code == -1 && PyErr_Occurred()) goto done;
            if (code < 0 || code >= code_count) goto fallback;
            int tag = value_tag(value);
            if (tag < 0) goto fallback;
            int verdict = passes(value, check[code * TAG_COUNT + tag]);
            if (verdict < 0) goto done;
            if (verdict == 0) goto fallback;
            if (pairs_push(&pairs, code, value) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        }
        bound[i + 1] = pairs.size;
    }
    {
        PyObject *value_list = list_of(pairs.values, pairs.size);
        PyObject *ts_bytes = bytes_of(ts, count * sizeof(int64_t));
        PyObject *recv_bytes = late ? bytes_of(recv, count * sizeof(int64_t)) : Py_NewRef(Py_None);
        PyObject *code_bytes = bytes_of(pairs.codes ? (void *)pairs.codes : (void *)"", pairs.size * sizeof(int64_t));
        PyObject *bound_bytes = bytes_of(bound, (count + 1) * sizeof(int64_t));
        if (value_list && ts_bytes && recv_bytes && code_bytes && bound_bytes) {
            result = PyTuple_Pack(7, mid_list, uid_list, ts_bytes, recv_bytes, code_bytes,
                                  value_list, bound_bytes);
        }
        Py_XDECREF(value_list);
        Py_XDECREF(ts_bytes);
        Py_XDECREF(recv_bytes);
        Py_XDECREF(code_bytes);
        Py_XDECREF(bound_bytes);
    }
    goto done;
fallback:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(mid_list); /* a list filled in part releases what it holds */
    Py_XDECREF(uid_list);
    PyMem_Free(ts);
    PyMem_Free(recv);
    PyMem_Free(bound);
    PyMem_Free(pairs.codes);
    PyMem_Free(pairs.values);
    PyBuffer_Release(&checks);
    return result;
}

/* `source`'s buffer in `view`, which must hold 8-byte integers; -1 (view released, its obj
 * NULL) with ValueError naming `what` otherwise. */
static int
get_int64s(PyObject *source, Py_buffer *view, const char *what)
{
    if (PyObject_GetBuffer(source, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "%s is not a buffer of 8-byte integers", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * columns: the helpers of _Keys.columns_of (IdentifiesLog.from_columns)
 * ------------------------------------------------------------------------------------------ */

/* utc_micros(moments): epoch microseconds (int64 bytes) of a list or tuple of datetimes, or
 * None unless every one is an exact datetime in UTC (the Python code then checks them). */
static PyObject *
utc_micros_column(PyObject *module, PyObject *moments)
{
    if (!PyList_CheckExact(moments) && !PyTuple_CheckExact(moments)) Py_RETURN_NONE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(moments);
    PyObject **items = PySequence_Fast_ITEMS(moments);
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * sizeof(int64_t));
    if (out == NULL) return NULL;
    int64_t *micros = (int64_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!utc_micros(items[i], &micros[i])) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
    }
    return out;
}

/* present(column): the rows of a list or tuple whose cell is not None (int64 bytes) and those
 * cells (a list), or None for another kind of sequence. */
static PyObject *
present(PyObject *module, PyObject *column)
{
    if (!PyList_CheckExact(column) && !PyTuple_CheckExact(column)) Py_RETURN_NONE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(column);
    PyObject **items = PySequence_Fast_ITEMS(column);
    Py_ssize_t found = 0;
    for (Py_ssize_t i = 0; i < count; i++) found += items[i] != Py_None;
    PyObject *rows = PyBytes_FromStringAndSize(NULL, found * sizeof(int64_t));
    PyObject *cells = PyList_New(found);
    if (rows == NULL || cells == NULL) {
        Py_XDECREF(rows);
        Py_XDECREF(cells);
        return NULL;
    }
    int64_t *out = (int64_t *)PyBytes_AS_STRING(rows);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count && at < found; i++) {
        if (items[i] == Py_None) continue;
        out[at] = i;
        PyList_SET_ITEM(cells, at, Py_NewRef(items[i]));
        at++;
    }
    PyObject *result = PyTuple_Pack(2, rows, cells);
    Py_DECREF(rows);
    Py_DECREF(cells);
    return result;
}

/* cleared_rows(cleared, codes, code_count): the rows that clear each key, from a column of
 * None or lists/tuples of key names: {code: rows (int64 bytes, increasing)} with the codes in
 * order of first appearance; None when an entry is anything else or names an unknown key
 * (the Python code then reads the column and says what is wrong). */
static PyObject *
cleared_rows(PyObject *module, PyObject *args)
{
    PyObject *cleared, *code_of;
    Py_ssize_t code_count;
    if (!PyArg_ParseTuple(args, "OO!n", &cleared, &PyDict_Type, &code_of, &code_count))
        return NULL;
    if ((!PyList_CheckExact(cleared) && !PyTuple_CheckExact(cleared)) || code_count < 0)
        Py_RETURN_NONE;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(cleared);
    PyObject **entries = PySequence_Fast_ITEMS(cleared);
    int64_t **rows = PyMem_Calloc(code_count + 1, sizeof(int64_t *));
    Py_ssize_t *size = PyMem_Calloc(code_count + 1, sizeof(Py_ssize_t));
    Py_ssize_t *capacity = PyMem_Calloc(code_count + 1, sizeof(Py_ssize_t));
    Py_ssize_t *first_seen = PyMem_Malloc((code_count + 1) * sizeof(Py_ssize_t));
    Py_ssize_t seen = 0;
    PyObject *result = NULL;
    if (!rows || !size || !capacity || !first_seen) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t row = 0; row < count; row++) {
        PyObject *entry = entries[row];
        if (entry == Py_None) continue;
        if (!PyList_CheckExact(entry) && !PyTuple_CheckExact(entry)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        Py_ssize_t names = PySequence_Fast_GET_SIZE(entry);
        PyObject **name = PySequence_Fast_ITEMS(entry);
        for (Py_ssize_t n = 0; n < names; n++) {
            if (!PyUnicode_CheckExact(name[n])) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            PyObject *code_object = PyDict_GetItemWithError(code_of, name[n]);
            if (code_object == NULL) {
                if (!PyErr_Occurred()) result = Py_NewRef(Py_None);
                goto done;
            }
            Py_ssize_t code = PyLong_AsSsize_t(code_object);
            if (code == -1 && PyErr_Occurred()) goto done;
            if (code < 0 || code >= code_count) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            if (size[code] > 0 && rows[code][size[code] - 1] == row) continue; /* named twice */
            if (size[code] == capacity[code]) {
                Py_ssize_t grown = capacity[code] ? 2 * capacity[code] : 64;
                int64_t *bigger = PyMem_Realloc(rows[code], grown * sizeof(int64_t));
                if (!bigger) {
                    PyErr_NoMemory();
                    goto done;
                }
                rows[code] = bigger;
                capacity[code] = grown;
            }
            if (size[code] == 0) first_seen[seen++] = code;
            rows[code][size[code]++] = row;
        }
    }
    result = PyDict_New();
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < seen; i++) {
        Py_ssize_t code = first_seen[i];
        PyObject *key = PyLong_FromSsize_t(code);
        PyObject *value = PyBytes_FromStringAndSize((const char *)rows[code], size[code] * 8);
        if (!key || !value || PyDict_SetItem(result, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
done:
    if (rows) {
        for (Py_ssize_t code = 0; code < code_count; code++) PyMem_Free(rows[code]);
    }
    PyMem_Free(rows);
    PyMem_Free(size);
    PyMem_Free(capacity);
    PyMem_Free(first_seen);
    return result;
}

/* check_pairs(codes, values, checks): whether every value passes its key's check unchanged
 * (flatten's table and rules); codes an int64 buffer as long as the values list. */
static PyObject *
check_pairs(PyObject *module, PyObject *args)
{
    PyObject *code_object, *values;
    Py_buffer checks, codes = {0};
    if (!PyArg_ParseTuple(args, "OO!y*", &code_object, &PyList_Type, &values, &checks))
        return NULL;
    PyObject *result = NULL;
    if (get_int64s(code_object, &codes, "check_pairs: codes") < 0) goto done;
    Py_ssize_t count = PyList_GET_SIZE(values);
    if (codes.len / 8 != count) {
        PyErr_SetString(PyExc_ValueError, "check_pairs: as many codes as values");
        goto done;
    }
    const int64_t *code = codes.buf;
    const unsigned char *check = checks.buf;
    Py_ssize_t code_count = checks.len / TAG_COUNT;
    int verdict = 1;
    for (Py_ssize_t j = 0; j < count && verdict == 1; j++) {
        PyObject *value = PyList_GET_ITEM(values, j);
        int tag = value_tag(value);
        if (tag < 0 || code[j] < 0 || code[j] >= code_count) {
            verdict = 0;
            break;
        }
        verdict = passes(value, check[code[j] * TAG_COUNT + tag]);
    }
    if (verdict >= 0) result = PyBool_FromLong(verdict);
done:
    if (codes.obj) PyBuffer_Release(&codes);
    PyBuffer_Release(&checks);
    return result;
}

/* in_event_order(count, rows, codes, values): pairs given a key at a time (rows[j], int64
 * buffers, the events carrying key codes[j] with cells values[j]) as flat codes (int64
 * bytes) and values (a list) in event order, and each event's bound (int64 bytes): a
 * counting sort, stable within an event in the order the keys are given. */
static PyObject *
in_event_order(PyObject *module, PyObject *args)
{
    Py_ssize_t count;
    PyObject *row_lists, *code_list, *value_lists;
    if (!PyArg_ParseTuple(args, "nO!O!O!", &count, &PyList_Type, &row_lists, &PyList_Type,
                          &code_list, &PyList_Type, &value_lists))
        return NULL;
    Py_ssize_t keys = PyList_GET_SIZE(row_lists);
    if (count < 0 || PyList_GET_SIZE(code_list) != keys || PyList_GET_SIZE(value_lists) != keys) {
        PyErr_SetString(PyExc_ValueError, "in_event_order: one rows, code and values per key");
        return NULL;
    }
    Py_buffer *views = PyMem_Calloc(keys + 1, sizeof(Py_buffer));
    int64_t *bound = PyMem_Calloc(count + 2, sizeof(int64_t));
    int64_t *codes = PyMem_Malloc((keys + 1) * sizeof(int64_t));
    int64_t *flat_codes = NULL;
    PyObject *flat = NULL, *result = NULL;
    Py_ssize_t opened = 0, total = 0;
    if (!views || !bound || !codes) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < keys; k++) {
        codes[k] = PyLong_AsLongLong(PyList_GET_ITEM(code_list, k));
        if (codes[k] == -1 && PyErr_Occurred()) goto done;
        PyObject *cells = PyList_GET_ITEM(value_lists, k);
        if (!PyList_CheckExact(cells)) {
            PyErr_SetString(PyExc_TypeError, "in_event_order: the values of a key are a list");
            goto done;
        }
        if (get_int64s(PyList_GET_ITEM(row_lists, k), &views[k], "in_event_order: rows") < 0)
            goto done;
        opened = k + 1;
        if (views[k].len / 8 != PyList_GET_SIZE(cells)) {
            PyErr_SetString(PyExc_ValueError, "in_event_order: rows and values differ in length");
            goto done;
        }
        const int64_t *rows = views[k].buf;
        for (Py_ssize_t i = 0; i < views[k].len / 8; i++) {
            if (rows[i] < 0 || rows[i] >= count) {
                PyErr_SetString(PyExc_ValueError, "in_event_order: a row out of range");
                goto done;
            }
            bound[rows[i] + 1]++;
        }
        total += views[k].len / 8;
    }
    for (Py_ssize_t i = 0; i < count; i++) bound[i + 1] += bound[i];
    flat_codes = PyMem_Malloc((total + 1) * sizeof(int64_t));
    flat = PyList_New(total);
    if (!flat_codes || !flat) {
        if (!flat_codes) PyErr_NoMemory();
        goto done;
    }
    {
        int64_t *free_at = bound + 1; /* reused as each event's next free pair, then restored */
        int64_t saved_first = bound[0];
        /* free_at[i - 1] is event i's start: shift by one to fill, then shift back */
        for (Py_ssize_t i = count; i > 0; i--) bound[i] = bound[i - 1];
        for (Py_ssize_t k = 0; k < keys; k++) {
            const int64_t *rows = views[k].buf;
            PyObject *cells = PyList_GET_ITEM(value_lists, k);
            for (Py_ssize_t i = 0; i < views[k].len / 8; i++) {
                int64_t at = free_at[rows[i]]++;
                flat_codes[at] = codes[k];
                PyList_SET_ITEM(flat, at, Py_NewRef(PyList_GET_ITEM(cells, i)));
            }
        }
        bound[0] = saved_first;
    }
    {
        PyObject *code_bytes = PyBytes_FromStringAndSize((const char *)flat_codes, total * 8);
        PyObject *bound_bytes = PyBytes_FromStringAndSize((const char *)bound, (count + 1) * 8);
        if (code_bytes && bound_bytes) result = PyTuple_Pack(3, code_bytes, flat, bound_bytes);
        Py_XDECREF(code_bytes);
        Py_XDECREF(bound_bytes);
    }
done:
    for (Py_ssize_t k = 0; k < opened; k++) PyBuffer_Release(&views[k]);
    PyMem_Free(views);
    PyMem_Free(bound);
    PyMem_Free(codes);
    PyMem_Free(flat_codes);
    Py_XDECREF(flat);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * layout
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    Py_hash_t hash;
    PyObject *key; /* borrowed: compared without another lookup */
    uint32_t row;  /* row (or user) + 1; 0 = empty */
} entry_t;

static int
same_str(PyObject *a, PyObject *b)
{
    return a == b || PyUnicode_Compare(a, b) == 0;
}

/* Sort context for one user's range (the GIL is held throughout, so a static is safe). */
static const int64_t *sort_ts, *sort_recv;
static PyObject **sort_mids;
static const uint32_t *sort_live;

/* Event order of two live rows: timestamp, received_at, message id (distinct: a total order). */
static int
event_order(uint32_t a, uint32_t b)
{
    uint32_t ra = sort_live[a], rb = sort_live[b];
    if (sort_ts[ra] != sort_ts[rb]) return sort_ts[ra] < sort_ts[rb] ? -1 : 1;
    if (sort_recv[ra] != sort_recv[rb]) return sort_recv[ra] < sort_recv[rb] ? -1 : 1;
    return PyUnicode_Compare(sort_mids[ra], sort_mids[rb]);
}

static int
event_order_qsort(const void *a, const void *b)
{
    return event_order(*(const uint32_t *)a, *(const uint32_t *)b);
}

static void
put_index(char *buffer, int size, Py_ssize_t i, uint64_t value)
{
    if (size == 4) ((uint32_t *)buffer)[i] = (uint32_t)value;
    else if (size == 2) ((uint16_t *)buffer)[i] = (uint16_t)value;
    else ((uint64_t *)buffer)[i] = value;
}


static PyObject *
layout(PyObject *module, PyObject *args)
{
    PyObject *mid_list, *uid_list, *value_list, *trait_names, *audience_pairs;
    PyObject *ts_object, *recv_object, *code_object, *bound_object;
    int index_size, code_size;
    if (!PyArg_ParseTuple(args, "O!O!OOOO!OO!O!ii", &PyList_Type, &mid_list, &PyList_Type,
                          &uid_list, &ts_object, &recv_object, &code_object, &PyList_Type,
                          &value_list, &bound_object, &PyTuple_Type, &trait_names,
                          &PyTuple_Type, &audience_pairs, &index_size, &code_size))
        return NULL;
    Py_ssize_t trait_count = PyTuple_GET_SIZE(trait_names);
    Py_ssize_t code_count = trait_count + PyTuple_GET_SIZE(audience_pairs) / 2;
    if ((index_size != 4 && index_size != 8) || (code_size != 2 && code_size != 4)) {
        PyErr_SetString(PyExc_ValueError, "layout: index_size is 4 or 8, code_size 2 or 4");
        return NULL;
    }
    Py_buffer ts_view = {0}, recv_view = {0}, code_view = {0}, bound_view = {0};
    int views = 0;
    PyObject *result = NULL;
    Py_hash_t *hashes = NULL;
    unsigned char *alive = NULL;
    uint32_t *live = NULL, *user_of = NULL, *order = NULL, *fill = NULL, *first_row = NULL;
    int64_t *starts = NULL;
    entry_t *table = NULL;
    PyObject *blob = NULL, *m_off = NULL, *u_ids = NULL, *t_values = NULL;
    PyObject *t_keys = NULL, *a_pairs = NULL;
    PyObject **encoded = NULL;
    Py_ssize_t live_count = 0;
    PyObject *u_range = NULL, *m_user = NULL, *e_slot = NULL, *e_ts = NULL, *e_recv = NULL;
    PyObject *ends = NULL, *t_codes = NULL, *a_codes = NULL;

    if (get_int64s(ts_object, &ts_view, "layout: ts") < 0) goto done;
    views = 1;
    if (get_int64s(recv_object, &recv_view, "layout: recv") < 0) goto done;
    views = 2;
    if (get_int64s(code_object, &code_view, "layout: codes") < 0) goto done;
    views = 3;
    if (get_int64s(bound_object, &bound_view, "layout: bound") < 0) goto done;
    views = 4;

    Py_ssize_t count = PyList_GET_SIZE(mid_list);
    Py_ssize_t pair_total = PyList_GET_SIZE(value_list);
    const int64_t *ts = ts_view.buf, *recv = recv_view.buf, *codes = code_view.buf;
    const int64_t *bound = bound_view.buf;
    PyObject **mids = ((PyListObject *)mid_list)->ob_item;
    PyObject **uids = ((PyListObject *)uid_list)->ob_item;
    PyObject **values = ((PyListObject *)value_list)->ob_item;
    if (PyList_GET_SIZE(uid_list) != count || ts_view.len / 8 != count
        || recv_view.len / 8 != count || bound_view.len / 8 != count + 1
        || code_view.len / 8 != pair_total || bound[0] != 0 || bound[count] != pair_total) {
        PyErr_SetString(PyExc_ValueError, "layout: columns of different lengths");
        goto done;
    }
    if (count >= ((Py_ssize_t)1 << 31) || pair_total >= ((Py_ssize_t)1 << 31)) {
        PyErr_SetString(PyExc_ValueError, "layout: too many events for the compiled index");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (bound[i + 1] < bound[i]) {
            PyErr_SetString(PyExc_ValueError, "layout: pair bounds decrease");
            goto done;
        }
    }
    for (Py_ssize_t j = 0; j < pair_total; j++) {
        if (codes[j] < 0 || codes[j] >= code_count) {
            PyErr_SetString(PyExc_ValueError, "layout: a key code out of range");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyUnicode_CheckExact(mids[i]) || !PyUnicode_CheckExact(uids[i])) {
            result = Py_NewRef(Py_None); /* a str subclass may hash in Python: not here */
            goto done;
        }
    }

    /* 1. Copies of a message id: the earliest received wins, then the earliest timestamp,
     *    then the smallest user id; on a full tie the first row. */
    hashes = PyMem_Malloc((count + 1) * sizeof(Py_hash_t));
    alive = PyMem_Malloc(count + 1);
    if (!hashes || !alive) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        hashes[i] = PyObject_Hash(mids[i]);
        if (hashes[i] == -1 && PyErr_Occurred()) goto done;
    }
    memset(alive, 1, count);
    size_t capacity = 16;
    while (capacity < 2 * (size_t)count) capacity *= 2;
    size_t mask = capacity - 1;
    table = PyMem_Calloc(capacity, sizeof(entry_t));
    if (!table) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t row = 0; row < count; row++) {
        if (row + 16 < count) __builtin_prefetch(&table[(size_t)hashes[row + 16] & mask]);
        size_t position = (size_t)hashes[row] & mask;
        for (;;) {
            entry_t *entry = &table[position];
            if (entry->row == 0) {
                entry->hash = hashes[row];
                entry->key = mids[row];
                entry->row = (uint32_t)row + 1;
                break;
            }
            if (entry->hash == hashes[row]) {
                Py_ssize_t other = entry->row - 1;
                if (same_str(entry->key, mids[row])) {
                    int better;
                    if (recv[row] != recv[other]) better = recv[row] < recv[other];
                    else if (ts[row] != ts[other]) better = ts[row] < ts[other];
                    else better = PyUnicode_Compare(uids[row], uids[other]) < 0;
                    if (better) {
                        alive[other] = 0;
                        entry->key = mids[row];
                        entry->row = (uint32_t)row + 1;
                    } else {
                        alive[row] = 0;
                    }
                    break;
                }
            }
            position = (position + 1) & mask;
        }
    }
    PyMem_Free(table);
    table = NULL;
    live = PyMem_Malloc((count + 1) * sizeof(uint32_t));
    if (!live) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t row = 0; row < count; row++) {
        if (alive[row]) live[live_count++] = (uint32_t)row;
    }

    /* 2. Users numbered in order of first appearance among the live rows. */
    user_of = PyMem_Malloc((live_count + 1) * sizeof(uint32_t));
    first_row = PyMem_Malloc((live_count + 1) * sizeof(uint32_t));
    if (!user_of || !first_row) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t user_count = 0;
    capacity = 1024;
    mask = capacity - 1;
    table = PyMem_Calloc(capacity, sizeof(entry_t));
    if (!table) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < live_count; k++) {
        PyObject *uid = uids[live[k]];
        if (k + 16 < live_count) __builtin_prefetch(uids[live[k + 16]]); /* scattered */
        Py_hash_t hash = PyObject_Hash(uid);
        if (hash == -1 && PyErr_Occurred()) goto done;
        size_t position = (size_t)hash & mask;
        for (;;) {
            entry_t *entry = &table[position];
            if (entry->row == 0) {
                entry->hash = hash;
                entry->key = uid;
                entry->row = (uint32_t)user_count + 1;
                first_row[user_count] = live[k];
                user_of[k] = (uint32_t)user_count++;
                break;
            }
            if (entry->hash == hash && same_str(entry->key, uid)) {
                user_of[k] = entry->row - 1;
                break;
            }
            position = (position + 1) & mask;
        }
        if (2 * (size_t)user_count > capacity) { /* grow: rehash the stored hashes */
            size_t grown = 2 * capacity;
            entry_t *bigger = PyMem_Calloc(grown, sizeof(entry_t));
            if (!bigger) {
                PyErr_NoMemory();
                goto done;
            }
            for (size_t e = 0; e < capacity; e++) {
                if (table[e].row == 0) continue;
                size_t p = (size_t)table[e].hash & (grown - 1);
                while (bigger[p].row != 0) p = (p + 1) & (grown - 1);
                bigger[p] = table[e];
            }
            PyMem_Free(table);
            table = bigger;
            capacity = grown;
            mask = capacity - 1;
        }
    }
    PyMem_Free(table);
    table = NULL;

    /* 3. Positions: a counting sort by user keeps arrival order; a user's range is then
     *    sorted on (timestamp, received_at, message id) unless it already is. */
    starts = PyMem_Calloc(user_count + 1, sizeof(int64_t));
    fill = PyMem_Malloc((user_count + 1) * sizeof(uint32_t));
    order = PyMem_Malloc((live_count + 1) * sizeof(uint32_t));
    if (!starts || !fill || !order) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < live_count; k++) starts[user_of[k] + 1]++;
    for (Py_ssize_t u = 0; u < user_count; u++) {
        starts[u + 1] += starts[u];
        fill[u] = (uint32_t)starts[u];
    }
    for (Py_ssize_t k = 0; k < live_count; k++) order[fill[user_of[k]]++] = (uint32_t)k;
    sort_ts = ts;
    sort_recv = recv;
    sort_mids = mids;
    sort_live = live;
    for (Py_ssize_t u = 0; u < user_count; u++) {
        Py_ssize_t low = starts[u], high = starts[u + 1];
        Py_ssize_t p = low + 1;
        while (p < high && event_order(order[p - 1], order[p]) < 0) p++;
        if (p >= high) continue;
        if (high - low <= 24) { /* insertion sort */
            for (Py_ssize_t i = low + 1; i < high; i++) {
                uint32_t item = order[i];
                Py_ssize_t j = i;
                while (j > low && event_order(order[j - 1], item) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = item;
            }
        } else {
            qsort(order + low, high - low, sizeof(uint32_t), event_order_qsort);
        }
    }
    sort_mids = NULL;

    /* 4. The columns, in position order; slots are live rows in arrival order. */
    Py_ssize_t trait_pairs = 0, audience_pairs_count = 0;
    for (Py_ssize_t k = 0; k < live_count; k++) {
        Py_ssize_t row = live[k];
        for (int64_t j = bound[row]; j < bound[row + 1]; j++) {
            if (codes[j] < trait_count) trait_pairs++;
            else audience_pairs_count++;
        }
    }
    /* Message ids as UTF-8 in one buffer (lone surrogates passed through, as in Python). */
    Py_ssize_t blob_size = 0;
    encoded = PyMem_Calloc(live_count + 1, sizeof(PyObject *));
    if (!encoded) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < live_count; k++) {
        PyObject *mid = mids[live[k]];
        if (PyUnicode_IS_ASCII(mid)) {
            blob_size += PyUnicode_GET_LENGTH(mid);
        } else {
            encoded[k] = PyUnicode_AsEncodedString(mid, "utf-8", "surrogatepass");
            if (encoded[k] == NULL) goto done;
            blob_size += PyBytes_GET_SIZE(encoded[k]);
        }
    }
    blob = PyByteArray_FromStringAndSize(NULL, blob_size);
    m_off = PyBytes_FromStringAndSize(NULL, (live_count + 1) * sizeof(int64_t));
    u_ids = PyList_New(user_count);
    t_values = PyList_New(trait_pairs);
    t_keys = PyList_New(trait_pairs);
    a_pairs = PyList_New(audience_pairs_count);
    u_range = PyBytes_FromStringAndSize(NULL, 2 * user_count * index_size);
    m_user = PyBytes_FromStringAndSize(NULL, live_count * index_size);
    e_slot = PyBytes_FromStringAndSize(NULL, live_count * index_size);
    e_ts = PyBytes_FromStringAndSize(NULL, live_count * sizeof(int64_t));
    e_recv = PyBytes_FromStringAndSize(NULL, live_count * sizeof(int64_t));
    ends = PyBytes_FromStringAndSize(NULL, 2 * (live_count + 1) * index_size);
    t_codes = PyBytes_FromStringAndSize(NULL, trait_pairs * code_size);
    a_codes = PyBytes_FromStringAndSize(NULL, audience_pairs_count * code_size);
    if (!blob || !m_off || !u_ids || !t_values || !t_keys || !a_pairs || !u_range || !m_user || !e_slot || !e_ts || !e_recv
        || !ends || !t_codes || !a_codes)
        goto done;
    {
        char *blob_out = PyByteArray_AS_STRING(blob);
        int64_t *offsets = (int64_t *)PyBytes_AS_STRING(m_off);
        int64_t at = 0;
        offsets[0] = 0;
        for (Py_ssize_t k = 0; k < live_count; k++) {
            PyObject *mid = mids[live[k]];
            Py_ssize_t length;
            if (encoded[k] == NULL) {
                length = PyUnicode_GET_LENGTH(mid);
                memcpy(blob_out + at, PyUnicode_DATA(mid), length);
            } else {
                length = PyBytes_GET_SIZE(encoded[k]);
                memcpy(blob_out + at, PyBytes_AS_STRING(encoded[k]), length);
            }
            at += length;
            offsets[k + 1] = at;
            put_index(PyBytes_AS_STRING(m_user), index_size, k, user_of[k]);
        }
    }
    for (Py_ssize_t u = 0; u < user_count; u++) {
        PyList_SET_ITEM(u_ids, u, Py_NewRef(uids[first_row[u]]));
        put_index(PyBytes_AS_STRING(u_range), index_size, 2 * u, starts[u]);
        put_index(PyBytes_AS_STRING(u_range), index_size, 2 * u + 1, starts[u + 1]);
    }
    {
        char *slot_out = PyBytes_AS_STRING(e_slot), *ends_out = PyBytes_AS_STRING(ends);
        char *t_out = PyBytes_AS_STRING(t_codes), *a_out = PyBytes_AS_STRING(a_codes);
        int64_t *ts_out = (int64_t *)PyBytes_AS_STRING(e_ts);
        int64_t *recv_out = (int64_t *)PyBytes_AS_STRING(e_recv);
        Py_ssize_t t = 0, a = 0;
        for (Py_ssize_t p = 0; p < live_count; p++) {
            Py_ssize_t k = order[p], row = live[k];
            /* Rows are visited in user order, scattered: fetch ahead in stages, each
             * reading only what an earlier stage brought into the cache. */
            if (p + 32 < live_count) __builtin_prefetch(&live[order[p + 32]]);
            if (p + 24 < live_count) {
                Py_ssize_t ahead = live[order[p + 24]];
                __builtin_prefetch(&ts[ahead]);
                __builtin_prefetch(&recv[ahead]);
                __builtin_prefetch(&bound[ahead]);
            }
            if (p + 12 < live_count) {
                int64_t first = bound[live[order[p + 12]]];
                __builtin_prefetch(&codes[first]);
                __builtin_prefetch(&values[first]);
            }
            if (p + 4 < live_count) {
                Py_ssize_t ahead = live[order[p + 4]];
                for (int64_t j = bound[ahead]; j < bound[ahead + 1]; j++)
                    __builtin_prefetch(values[j], 1);
            }
            put_index(slot_out, index_size, p, k);
            ts_out[p] = ts[row];
            recv_out[p] = recv[row];
            put_index(ends_out, index_size, 2 * p, t);
            put_index(ends_out, index_size, 2 * p + 1, a);
            for (int64_t j = bound[row]; j < bound[row + 1]; j++) {
                int64_t code = codes[j];
                if (code < trait_count) {
                    put_index(t_out, code_size, t, code);
                    PyList_SET_ITEM(t_values, t, Py_NewRef(values[j]));
                    PyList_SET_ITEM(t_keys, t, Py_NewRef(PyTuple_GET_ITEM(trait_names, code)));
                    t++;
                } else {
                    int truth = values[j] == Py_True ? 1 : values[j] == Py_False ? 0 : -2;
                    if (truth == -2) {
                        truth = PyObject_IsTrue(values[j]);
                        if (truth < 0) goto done;
                    }
                    Py_ssize_t pair = 2 * (code - trait_count) + truth;
                    put_index(a_out, code_size, a, pair);
                    PyList_SET_ITEM(a_pairs, a, Py_NewRef(PyTuple_GET_ITEM(audience_pairs, pair)));
                    a++;
                }
            }
        }
        put_index(ends_out, index_size, 2 * live_count, t);
        put_index(ends_out, index_size, 2 * live_count + 1, a);
    }
    result = PyTuple_Pack(14, blob, m_off, u_ids, u_range, m_user, e_slot, e_ts, e_recv, ends,
                          t_codes, t_values, a_codes, t_keys, a_pairs);
done:
    sort_mids = NULL;
    Py_XDECREF(blob);
    Py_XDECREF(m_off);
    Py_XDECREF(t_keys);
    Py_XDECREF(a_pairs);
    Py_XDECREF(u_ids);
    Py_XDECREF(t_values);
    Py_XDECREF(u_range);
    Py_XDECREF(m_user);
    Py_XDECREF(e_slot);
    Py_XDECREF(e_ts);
    Py_XDECREF(e_recv);
    Py_XDECREF(ends);
    Py_XDECREF(t_codes);
    Py_XDECREF(a_codes);
    PyMem_Free(hashes);
    PyMem_Free(alive);
    PyMem_Free(live);
    PyMem_Free(user_of);
    PyMem_Free(first_row);
    PyMem_Free(order);
    PyMem_Free(fill);
    PyMem_Free(starts);
    PyMem_Free(table);
    if (encoded != NULL) {
        for (Py_ssize_t k = 0; k < live_count; k++) Py_XDECREF(encoded[k]);
        PyMem_Free(encoded);
    }
    if (views >= 4) PyBuffer_Release(&bound_view);
    if (views >= 3) PyBuffer_Release(&code_view);
    if (views >= 2) PyBuffer_Release(&recv_view);
    if (views >= 1) PyBuffer_Release(&ts_view);
    return result;
}

/* hash_table(blob, m_off, size, slot_bits, fingerprint_mask): IdentifiesLog._rehash's table
 * of `size` entries (a power of two) over the message ids blob[m_off[i]:m_off[i + 1]] (UTF-8,
 * lone surrogates passed), each entry fingerprint << slot_bits | (slot + 1) at its str hash's
 * linear-probing position; int64 bytes. Any valid probing order serves the lookups; this
 * one inserts in slot order. */
static PyObject *
hash_table(PyObject *module, PyObject *args)
{
    PyObject *blob_object, *offsets_object;
    Py_ssize_t size;
    int slot_bits;
    long long fingerprint_mask;
    if (!PyArg_ParseTuple(args, "OOniL", &blob_object, &offsets_object, &size, &slot_bits,
                          &fingerprint_mask))
        return NULL;
    if (size <= 0 || (size & (size - 1)) != 0 || slot_bits <= 0 || slot_bits >= 63) {
        PyErr_SetString(PyExc_ValueError, "hash_table: size is a power of two");
        return NULL;
    }
    Py_buffer blob = {0}, offsets = {0};
    PyObject *result = NULL;
    if (PyObject_GetBuffer(blob_object, &blob, PyBUF_SIMPLE) < 0) return NULL;
    if (get_int64s(offsets_object, &offsets, "hash_table: m_off") < 0) goto done;
    Py_ssize_t slots = offsets.len / 8 - 1;
    const int64_t *off = offsets.buf;
    if (slots < 0 || 2 * slots > size || off[0] != 0 || off[slots] > blob.len) {
        PyErr_SetString(PyExc_ValueError, "hash_table: offsets past the buffer, or too many ids");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, size * 8);
    if (result == NULL) goto done;
    int64_t *table = (int64_t *)PyBytes_AS_STRING(result);
    memset(table, 0, size * 8);
    uint64_t mask = (uint64_t)size - 1;
    for (Py_ssize_t slot = 0; slot < slots; slot++) {
        if (off[slot + 1] < off[slot]) {
            PyErr_SetString(PyExc_ValueError, "hash_table: offsets decrease");
            Py_CLEAR(result);
            goto done;
        }
        PyObject *mid = PyUnicode_DecodeUTF8((const char *)blob.buf + off[slot],
                                             off[slot + 1] - off[slot], "surrogatepass");
        if (mid == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        Py_hash_t digest = PyObject_Hash(mid);
        Py_DECREF(mid);
        if (digest == -1 && PyErr_Occurred()) {
            Py_CLEAR(result);
            goto done;
        }
        uint64_t position = (uint64_t)digest & mask;
        while (table[position] != 0) position = (position + 1) & mask;
        uint64_t fingerprint = ((uint64_t)digest >> 24) & (uint64_t)fingerprint_mask;
        table[position] = (int64_t)((fingerprint << slot_bits) | (uint64_t)(slot + 1));
    }
done:
    if (offsets.obj) PyBuffer_Release(&offsets);
    PyBuffer_Release(&blob);
    return result;
}

/* ------------------------------------------------------------------------------------------
 * state and snapshot: the fold of IdentifiesLog.reconstruct_state / snapshot
 * ------------------------------------------------------------------------------------------ */

/* The log's columns a fold reads (borrowed from the caller's arguments, buffers held). */
typedef struct {
    Py_buffer ends;
    int index_size;
    PyObject *t_key, *t_value, *a_pair; /* lists */
    PyObject *trait_template, *audience_template; /* dicts */
    Py_buffer recv; /* with known_at: each position's received_at; recv.obj NULL without */
    int64_t known;
} columns_t;

static uint64_t
get_index(const void *buffer, int size, Py_ssize_t i)
{
    if (size == 4) return ((const uint32_t *)buffer)[i];
    return ((const uint64_t *)buffer)[i];
}

static void
close_columns(columns_t *columns)
{
    PyBuffer_Release(&columns->ends);
    if (columns->recv.obj) PyBuffer_Release(&columns->recv);
}

/* With `known` not None, only positions whose received_at (in `e_recv`) is at or before it
 * count: what the warehouse knew then. */
static int
open_known(columns_t *columns, PyObject *known, PyObject *e_recv)
{
    columns->recv.obj = NULL;
    if (known == NULL || known == Py_None) return 0;
    long long moment = PyLong_AsLongLong(known);
    if (moment == -1 && PyErr_Occurred()) return -1;
    columns->known = moment;
    if (e_recv == NULL || e_recv == Py_None) {
        PyErr_SetString(PyExc_TypeError, "fold: known_at needs e_recv");
        return -1;
    }
    return get_int64s(e_recv, &columns->recv, "fold: e_recv");
}

static int
open_columns(columns_t *columns, PyObject *ends, PyObject *t_key, PyObject *t_value,
             PyObject *a_pair, PyObject *trait_template, PyObject *audience_template)
{
    columns->recv.obj = NULL;
    if (!PyList_CheckExact(t_key) || !PyList_CheckExact(t_value) || !PyList_CheckExact(a_pair)
        || !PyDict_CheckExact(trait_template) || !PyDict_CheckExact(audience_template)) {
        PyErr_SetString(PyExc_TypeError, "fold: the pair columns are lists, templates dicts");
        return -1;
    }
    if (PyObject_GetBuffer(ends, &columns->ends, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) return -1;
    columns->index_size = (int)columns->ends.itemsize;
    if (columns->index_size != 4 && columns->index_size != 8) {
        PyBuffer_Release(&columns->ends);
        PyErr_SetString(PyExc_ValueError, "fold: ends holds 4- or 8-byte integers");
        return -1;
    }
    columns->t_key = t_key;
    columns->t_value = t_value;
    columns->a_pair = a_pair;
    columns->trait_template = trait_template;
    columns->audience_template = audience_template;
    return 0;
}

/* Pairs [t_low, t_high) and [a_low, a_high) into the two dicts. */
static int
apply_pairs(columns_t *columns, PyObject *traits, PyObject *audiences, Py_ssize_t t_low,
            Py_ssize_t t_high, Py_ssize_t a_low, Py_ssize_t a_high)
{
    if (t_high > PyList_GET_SIZE(columns->t_key) || t_high > PyList_GET_SIZE(columns->t_value)
        || a_high > PyList_GET_SIZE(columns->a_pair) || t_low > t_high || a_low > a_high) {
        PyErr_SetString(PyExc_IndexError, "fold: pairs out of range");
        return -1;
    }
    for (Py_ssize_t j = t_low; j < t_high; j++) {
        if (PyDict_SetItem(traits, PyList_GET_ITEM(columns->t_key, j),
                           PyList_GET_ITEM(columns->t_value, j)) < 0)
            return -1;
    }
    for (Py_ssize_t j = a_low; j < a_high; j++) {
        PyObject *pair = PyList_GET_ITEM(columns->a_pair, j);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "fold: an audience pair is not a 2-tuple");
            return -1;
        }
        if (PyDict_SetItem(audiences, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0)
            return -1;
    }
    return 0;
}

/* Traits and audiences of the events at positions [start, end) (with known_at, of those
 * received by then): two new dicts, and how many positions counted. */
static int
fold_range(columns_t *columns, Py_ssize_t start, Py_ssize_t end, PyObject **traits_out,
           PyObject **audiences_out, Py_ssize_t *counted)
{
    const void *ends = columns->ends.buf;
    int size = columns->index_size;
    Py_ssize_t count = columns->ends.len / size;
    if (start < 0 || end < start || 2 * end + 1 >= count
        || (columns->recv.obj && end > columns->recv.len / 8)) {
        PyErr_SetString(PyExc_IndexError, "fold: positions out of range");
        return -1;
    }
    PyObject *traits = PyDict_Copy(columns->trait_template);
    if (traits == NULL) return -1;
    PyObject *audiences = PyDict_Copy(columns->audience_template);
    if (audiences == NULL) {
        Py_DECREF(traits);
        return -1;
    }
    if (columns->recv.obj == NULL) {
        *counted = end - start;
        if (apply_pairs(columns, traits, audiences, get_index(ends, size, 2 * start),
                        get_index(ends, size, 2 * end), get_index(ends, size, 2 * start + 1),
                        get_index(ends, size, 2 * end + 1)) < 0)
            goto fail;
    } else {
        const int64_t *recv = columns->recv.buf;
        *counted = 0;
        for (Py_ssize_t p = start; p < end; p++) {
            if (recv[p] > columns->known) continue;
            ++*counted;
            if (apply_pairs(columns, traits, audiences, get_index(ends, size, 2 * p),
                            get_index(ends, size, 2 * p + 2), get_index(ends, size, 2 * p + 1),
                            get_index(ends, size, 2 * p + 3)) < 0)
                goto fail;
        }
    }
    *traits_out = traits;
    *audiences_out = audiences;
    return 0;
fail:
    Py_DECREF(traits);
    Py_DECREF(audiences);
    return -1;
}

/* A UserState made as IdentifiesLog._user_state makes it: the object, its three slots set. */
static Py_ssize_t state_offsets[3];
static PyTypeObject *state_type = NULL;

static PyObject *
make_state(PyObject *user_id, PyObject *traits, PyObject *audiences)
{
    PyObject *state = state_type->tp_alloc(state_type, 0);
    if (state == NULL) return NULL;
    char *base = (char *)state;
    *(PyObject **)(base + state_offsets[0]) = Py_NewRef(user_id);
    *(PyObject **)(base + state_offsets[1]) = Py_NewRef(traits);
    *(PyObject **)(base + state_offsets[2]) = Py_NewRef(audiences);
    return state;
}

/* use_state(type, descriptors): the UserState class and its user_id, traits, audiences slots. */
static PyObject *
use_state(PyObject *module, PyObject *args)
{
    PyObject *type, *descriptors;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &type, &PyTuple_Type, &descriptors))
        return NULL;
    if (((PyTypeObject *)type)->tp_alloc == NULL) {
        PyErr_SetString(PyExc_ValueError, "use_state needs a type that allocates");
        return NULL;
    }
    Py_ssize_t offsets[3];
    if (slot_offsets(descriptors, type, 3, offsets, "use_state") < 0) return NULL;
    memcpy(state_offsets, offsets, sizeof(offsets));
    Py_XSETREF(state_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_NONE;
}

/* state(user_id, start, end, ends, t_key, t_value, a_pair, trait_template,
 *       audience_template[, known, e_recv]): the UserState folded from positions
 *       [start, end) (with known not None, of those received by then). */
static PyObject *
state(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9 && nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "state takes nine arguments, or eleven with known_at");
        return NULL;
    }
    if (state_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "state: use_state() was not called");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred()) return NULL;
    columns_t columns;
    if (open_columns(&columns, args[3], args[4], args[5], args[6], args[7], args[8]) < 0)
        return NULL;
    PyObject *traits, *audiences, *result = NULL;
    Py_ssize_t counted;
    if (nargs == 11 && open_known(&columns, args[9], args[10]) < 0) {
        close_columns(&columns);
        return NULL;
    }
    if (fold_range(&columns, start, end, &traits, &audiences, &counted) == 0) {
        result = make_state(args[0], traits, audiences);
        Py_DECREF(traits);
        Py_DECREF(audiences);
    }
    close_columns(&columns);
    return result;
}

/* snapshot(moment, u_ids, u_range, e_ts, ends, t_key, t_value, a_pair, trait_template,
 *          audience_template[, known, e_recv]): {user_id: state at moment} for every user with
 *          an event at or before it (with known not None, received by then). */
static PyObject *
snapshot(PyObject *module, PyObject *args)
{
    long long moment;
    PyObject *u_ids, *u_range_object, *e_ts_object, *ends, *t_key, *t_value, *a_pair;
    PyObject *trait_template, *audience_template, *known = Py_None, *e_recv = NULL;
    if (!PyArg_ParseTuple(args, "LO!OOOOOOOO|OO", &moment, &PyList_Type, &u_ids,
                          &u_range_object, &e_ts_object, &ends, &t_key, &t_value, &a_pair,
                          &trait_template, &audience_template, &known, &e_recv))
        return NULL;
    if (state_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "snapshot: use_state() was not called");
        return NULL;
    }
    columns_t columns;
    if (open_columns(&columns, ends, t_key, t_value, a_pair, trait_template, audience_template) < 0)
        return NULL;
    if (open_known(&columns, known, e_recv) < 0) {
        close_columns(&columns);
        return NULL;
    }
    Py_buffer ranges = {0}, times = {0};
    PyObject *result = NULL;
    int gc_was_enabled = 0;
    if (PyObject_GetBuffer(u_range_object, &ranges, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(e_ts_object, &times, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) goto done;
    if ((ranges.itemsize != 4 && ranges.itemsize != 8) || times.itemsize != 8) {
        PyErr_SetString(PyExc_ValueError, "snapshot: u_range of 4- or 8-byte, e_ts of 8-byte ints");
        goto done;
    }
    Py_ssize_t users = PyList_GET_SIZE(u_ids);
    Py_ssize_t positions = times.len / 8;
    if (ranges.len / ranges.itemsize != 2 * users) {
        PyErr_SetString(PyExc_ValueError, "snapshot: u_range is not two numbers per user");
        goto done;
    }
    const int64_t *e_ts = times.buf;
    /* A state per user, all kept: the collector's passes over them while they are made find
     * nothing to free. It is paused (the GIL is held throughout, so no other thread
     * allocates meanwhile) and resumed as it was. */
    gc_was_enabled = PyGC_Disable();
    result = PyDict_New();
    if (result == NULL) goto done;
    for (Py_ssize_t u = 0; u < users; u++) {
        Py_ssize_t start = get_index(ranges.buf, (int)ranges.itemsize, 2 * u);
        Py_ssize_t stop = get_index(ranges.buf, (int)ranges.itemsize, 2 * u + 1);
        if (stop <= start) continue;
        if (stop > positions) {
            PyErr_SetString(PyExc_IndexError, "snapshot: a user's range is out of range");
            Py_CLEAR(result);
            goto done;
        }
        if (e_ts[start] > moment) continue;
        Py_ssize_t end = stop;
        if (e_ts[stop - 1] > moment) { /* bisect_right over [start, stop) */
            Py_ssize_t low = start, high = stop;
            while (low < high) {
                Py_ssize_t middle = low + (high - low) / 2;
                if (moment < e_ts[middle]) high = middle;
                else low = middle + 1;
            }
            end = low;
        }
        PyObject *traits, *audiences;
        Py_ssize_t counted;
        if (fold_range(&columns, start, end, &traits, &audiences, &counted) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        if (counted == 0) { /* with known_at: nothing of this user's was received yet */
            Py_DECREF(traits);
            Py_DECREF(audiences);
            continue;
        }
        PyObject *user_id = PyList_GET_ITEM(u_ids, u);
        PyObject *made = make_state(user_id, traits, audiences);
        Py_DECREF(traits);
        Py_DECREF(audiences);
        if (made == NULL || PyDict_SetItem(result, user_id, made) < 0) {
            Py_XDECREF(made);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(made);
    }
done:
    if (gc_was_enabled) PyGC_Enable();
    if (times.obj) PyBuffer_Release(&times);
    if (ranges.obj) PyBuffer_Release(&ranges);
    close_columns(&columns);
    return result;
}

/* ------------------------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"flatten", flatten, METH_VARARGS,
     "flatten(events, event_type, descriptors, codes, checks): _Keys.columns in C, or None."},
    {"layout", layout, METH_VARARGS,
     "layout(mids, uids, ts, recv, codes, values, bound, trait_names, audience_pairs, "
     "index_size, code_size): the first index of an empty log in C, or None."},
    {"utc_micros", utc_micros_column, METH_O,
     "utc_micros(moments): epoch microseconds of UTC datetimes (int64 bytes), or None."},
    {"present", present, METH_O,
     "present(column): the rows whose cell is not None (int64 bytes) and those cells."},
    {"cleared_rows", cleared_rows, METH_VARARGS,
     "cleared_rows(cleared, codes, code_count): {code: the rows that clear it}, or None."},
    {"check_pairs", check_pairs, METH_VARARGS,
     "check_pairs(codes, values, checks): whether every value passes unchanged."},
    {"in_event_order", in_event_order, METH_VARARGS,
     "in_event_order(count, rows, codes, values): _in_event_order_python in C."},
    {"hash_table", hash_table, METH_VARARGS,
     "hash_table(blob, m_off, size, slot_bits, fingerprint_mask): the message-id table."},
    {"use_state", use_state, METH_VARARGS,
     "use_state(type, descriptors): the UserState class state() and snapshot() make."},
    {"state", (PyCFunction)(void (*)(void))state, METH_FASTCALL,
     "state(user_id, start, end, ends, t_key, t_value, a_pair, trait_template, "
     "audience_template[, known, e_recv]): the fold of one user's events [start, end)."},
    {"snapshot", snapshot, METH_VARARGS,
     "snapshot(moment, u_ids, u_range, e_ts, ends, t_key, t_value, a_pair, trait_template, "
     "audience_template[, known, e_recv]): IdentifiesLog.snapshot."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "personas_warehouse._speedups",
    "The compiled half of building an IdentifiesLog (optional; see personas_warehouse.log).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    /* The mappingproxy layout flatten reads: a proxy of a known dict must point at it. */
    PyObject *probe = PyDict_New();
    if (probe == NULL) return NULL;
    PyObject *proxy = PyDictProxy_New(probe);
    if (proxy == NULL) {
        Py_DECREF(probe);
        return NULL;
    }
    proxy_layout_ok = ((proxy_object *)proxy)->mapping == probe;
    Py_DECREF(proxy);
    Py_DECREF(probe);
    return PyModule_Create(&module_def);
}
