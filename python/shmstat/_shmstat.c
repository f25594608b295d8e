/*
 * _shmstat.c — the CPython binding of libshmstat: segments, counters,
 * gauges and the cache as C types, so that the hot calls (Counter.inc,
 * Cache.get) cost one method call and the library's inline code.
 * The pure-Python layer (shmstat/__init__.py) adds the error classes,
 * fetch with in-process single flight, the decorator and the documents.
 *
 * The GIL
 *   - Counter.inc and the gauge calls keep the GIL: they are a few
 *     instructions, and holding it makes the threads of one process take
 *     turns on the handle's row (the row has one writer at a time).
 *   - Every call that may wait (a stripe lock of the cache, a lease, a
 *     concurrent creator, a sequence lock) releases the GIL, so other
 *     threads and the asyncio loop of another thread keep running. No call
 *     waits longer than the library's own bounds (100 ms for a lock,
 *     wait_ms for a lease or a creator).
 *   - A handle in use by a call without the GIL cannot be closed: close()
 *     raises Busy then (inflight count, changed only under the GIL).
 *
 * Every call into the library is in this file, most of them through the
 * few wrappers just below, so that renames in the library touch one place.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmstat.h"

#ifndef SHMSTAT_PY_VERSION
#define SHMSTAT_PY_VERSION "0"
#endif

/* Values up to this size are copied through a stack buffer; larger ones
 * are read again into a buffer of the size the library reports. */
#define GET_STACK 16384

/* cache_read(): a Python error is set. */
#define PY_ERROR INT_MIN

/* Set by shmstat/__init__.py: the base class and {code: class}. */
static PyObject *error_base;
static PyObject *error_map;

/* Raise the shmstat.Error subclass of code rc with the library's reason. */
static PyObject *raise_code(int rc, const char *reason)
{
	PyObject *cls = NULL, *key, *exc;

	if (!reason || !*reason)
		reason = shmstat_strerror(rc);
	if (error_map && (key = PyLong_FromLong(rc))) {
		cls = PyDict_GetItemWithError(error_map, key);
		Py_DECREF(key);
		if (!cls && PyErr_Occurred())
			return NULL;
	}
	if (!cls)
		cls = error_base ? error_base : PyExc_RuntimeError;
	exc = PyObject_CallFunction(cls, "is", rc, reason);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

/* ---------------------------------------------------------------- Segment */

typedef struct {
	PyObject_HEAD
	shmstat_t *h;
	int inflight; /* calls running without the GIL; under the GIL */
	PyObject *weakrefs;
	char name[SHMSTAT_SEGNAME_MAX + 1];
} SegmentObject;

static PyTypeObject Segment_Type;

/* The reason of the last failure on s (copied before the GIL is taken
 * again, as another thread may use the handle next). */
typedef struct {
	char text[SHMSTAT_ERRSTR_LEN];
} reason_t;

static void reason_save(reason_t *r, const shmstat_t *h)
{
	snprintf(r->text, sizeof(r->text), "%s", shmstat_errstr(h));
}

static int seg_ready(SegmentObject *s)
{
	if (s && s->h)
		return 0;
	raise_code(SHMSTAT_EINVAL, "segment is closed");
	return -1;
}

/* Around a call without the GIL: the handle stays open meanwhile. */
#define SEG_UNLOCKED(s, ...)                                                   \
	do {                                                                   \
		(s)->inflight++;                                               \
		Py_BEGIN_ALLOW_THREADS __VA_ARGS__;                            \
		Py_END_ALLOW_THREADS                                           \
		(s)->inflight--;                                               \
	} while (0)

static int Segment_init(SegmentObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name",	"flags",	   "mode",
				  "size",	"max_counters",	   "max_workers",
				  "cache_max_value", "wait_ms",
				  "cache_home_pct", NULL };
	const char *name;
	unsigned flags = 0, mode = 0;
	unsigned long long size = 0, cmax = 0;
	unsigned max_counters = 0, max_workers = 0, wait_ms = 0, home = 0;
	shmstat_options_t o;
	shmstat_t *h = NULL;
	reason_t why = { "" };
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|IIKIIKII", kwlist, &name,
					 &flags, &mode, &size, &max_counters,
					 &max_workers, &cmax, &wait_ms, &home))
		return -1;
	if (self->h) {
		PyErr_SetString(PyExc_RuntimeError, "segment already open");
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.flags = flags;
	o.mode = mode;
	o.size = (size_t)size;
	o.max_counters = max_counters;
	o.max_workers = max_workers;
	o.cache_max_value = (size_t)cmax;
	o.cache_home_pct = home;
	o.wait_ms = wait_ms;
	Py_BEGIN_ALLOW_THREADS
	rc = shmstat_open(name, &o, &h);
	if (rc < 0)
		reason_save(&why, NULL);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		raise_code(rc, why.text);
		return -1;
	}
	self->h = h;
	snprintf(self->name, sizeof(self->name), "%s", name);
	return 0;
}

static void Segment_dealloc(SegmentObject *self)
{
	if (self->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)self);
	shmstat_close(&self->h);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Segment_close(SegmentObject *self, PyObject *unused)
{
	(void)unused;
	if (self->inflight)
		return raise_code(SHMSTAT_EBUSY,
				  "segment is in use by another thread");
	shmstat_close(&self->h);
	Py_RETURN_NONE;
}

/* The UTF-8 of str o; a str that has none (a lone surrogate) is the
 * library's InvalidArgument, as any other bad name or key. */
static const char *utf8_of(PyObject *o, Py_ssize_t *n, const char *what)
{
	const char *p = PyUnicode_AsUTF8AndSize(o, n);

	if (!p && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
		char why[160];
		PyErr_Clear();
		snprintf(why, sizeof(why),
			 "%s is not valid UTF-8: it holds a lone surrogate", what);
		raise_code(SHMSTAT_EINVAL, why);
	}
	return p;
}

/* A name argument as a NUL-terminated UTF-8 string (str or bytes). */
static const char *name_arg(PyObject *o, const char *what)
{
	const char *p;
	Py_ssize_t n;

	if (PyUnicode_Check(o)) {
		if (!(p = utf8_of(o, &n, what)))
			return NULL;
	} else if (PyBytes_Check(o)) {
		p = PyBytes_AS_STRING(o);
		n = PyBytes_GET_SIZE(o);
	} else {
		PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %s",
			     what, Py_TYPE(o)->tp_name);
		return NULL;
	}
	if ((Py_ssize_t)strlen(p) != n) {
		PyErr_Format(PyExc_ValueError, "%s contains a NUL byte", what);
		return NULL;
	}
	return p;
}

/* An optional glob: None or a name. */
static int pattern_arg(PyObject *o, const char **out)
{
	*out = NULL;
	if (!o || o == Py_None)
		return 0;
	return (*out = name_arg(o, "pattern")) ? 0 : -1;
}

/* ---------------------------------------------------------------- Counter */

/* What counters, gauges and histograms start with: their segment (kept
 * alive by them) and their name. One set of GC functions for the three. */
typedef struct {
	PyObject_HEAD
	SegmentObject *seg;
	PyObject *name;
} MetricObject;

static PyObject *metric_repr(PyObject *o, const char *kind)
{
	MetricObject *m = (MetricObject *)o;
	return PyUnicode_FromFormat("<shmstat.%s %R in %s>", kind, m->name,
				    m->seg ? m->seg->name : "?");
}

static int metric_traverse(PyObject *o, visitproc visit, void *arg)
{
	Py_VISIT(((MetricObject *)o)->seg);
	return 0;
}

static int metric_clear(PyObject *o)
{
	Py_CLEAR(((MetricObject *)o)->seg);
	return 0;
}

static void metric_dealloc(PyObject *o)
{
	MetricObject *m = (MetricObject *)o;
	PyObject_GC_UnTrack(o);
	Py_CLEAR(m->seg);
	Py_CLEAR(m->name);
	Py_TYPE(o)->tp_free(o);
}

typedef struct {
	PyObject_HEAD
	SegmentObject *seg;
	PyObject *name;
	shmstat_counter_t c;
} CounterObject;

static PyTypeObject Counter_Type;

static PyObject *Counter_inc(CounterObject *self, PyObject *const *args,
			     Py_ssize_t nargs)
{
	unsigned long long n = 1;

	if (nargs > 1)
		return PyErr_Format(PyExc_TypeError,
				    "inc() takes at most 1 argument");
	if (nargs == 1) {
		n = PyLong_AsUnsignedLongLong(args[0]);
		if (n == (unsigned long long)-1 && PyErr_Occurred()) {
			if (PyErr_ExceptionMatches(PyExc_OverflowError) &&
			    PyLong_Check(args[0]) &&
			    _PyLong_Sign(args[0]) < 0) {
				PyErr_SetString(PyExc_ValueError,
						"a counter only goes up: use "
						"a gauge for values that go "
						"down");
			}
			return NULL;
		}
	}
	if (!self->seg || !self->seg->h)
		return raise_code(SHMSTAT_EINVAL, "segment is closed");
	/* Under the GIL: one writer at a time on this process's row. */
	shmstat_counter_add(self->c, (uint64_t)n);
	Py_RETURN_NONE;
}

static PyObject *Counter_value(CounterObject *self, void *unused)
{
	int64_t v = 0;
	int rc;

	(void)unused;
	if (seg_ready(self->seg) < 0)
		return NULL;
	if ((rc = shmstat_counter_read(self->seg->h, self->c, &v)) < 0)
		return raise_code(rc, shmstat_errstr(self->seg->h));
	return PyLong_FromLongLong(v);
}

static PyObject *Counter_repr(PyObject *self)
{
	return metric_repr(self, "Counter");
}


static PyMethodDef Counter_methods[] = {
	{ "inc", (PyCFunction)(void (*)(void))Counter_inc, METH_FASTCALL,
	  "inc(n=1)\n--\n\nAdd n (an int >= 0, default 1) to the counter." },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef Counter_members[] = {
	{ "name", T_OBJECT, offsetof(CounterObject, name), READONLY,
	  "The counter's name." },
	{ NULL, 0, 0, 0, NULL },
};

static PyGetSetDef Counter_getset[] = {
	{ "value", (getter)Counter_value, NULL,
	  "The counter's value on this host: every process's increments "
	  "since the last reset.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject Counter_Type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmstat.Counter",
	.tp_basicsize = sizeof(CounterObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A counter of a segment: seg.counter(name). Exact across "
		  "processes and threads; .inc(n=1), .value.",
	.tp_dealloc = metric_dealloc,
	.tp_traverse = metric_traverse,
	.tp_clear = metric_clear,
	.tp_repr = Counter_repr,
	.tp_methods = Counter_methods,
	.tp_members = Counter_members,
	.tp_getset = Counter_getset,
};

/* -------------------------------------------------------------- Histogram */

typedef struct {
	PyObject_HEAD
	SegmentObject *seg;
	PyObject *name;
	shmstat_histogram_t hg;
} HistogramObject;

static PyTypeObject Histogram_Type;

static PyObject *Histogram_observe(HistogramObject *self, PyObject *arg)
{
	double v = PyFloat_AsDouble(arg);

	if (v == -1.0 && PyErr_Occurred())
		return NULL;
	/* What the tool refuses too: one inf would saturate the sum for
	 * good, NaN and negatives are no latency or size. */
	if (!(v >= 0) || !(v < SHMSTAT_HIST_VALUE_MAX))
		return PyErr_Format(PyExc_ValueError,
				    "a histogram observes numbers >= 0 and below "
				    "9.2e12 (its sum would saturate), not %R",
				    arg);
	if (!self->seg || !self->seg->h)
		return raise_code(SHMSTAT_EINVAL, "segment is closed");
	/* Under the GIL, as Counter.inc. */
	shmstat_histogram_observe(self->hg, v);
	Py_RETURN_NONE;
}

static PyObject *hist_dict(const shmstat_histogram_stat_t *hs, int global)
{
	const uint64_t *b = global ? hs->global_buckets : hs->buckets;
	PyObject *buckets = PyList_New(hs->nbuckets);
	uint64_t cum = 0;

	if (!buckets)
		return NULL;
	for (uint32_t k = 0; k < hs->nbuckets; k++) {
		cum += b[k];
		PyObject *t = Py_BuildValue("(dK)", hs->le[k],
					    (unsigned long long)cum);
		if (!t) {
			Py_DECREF(buckets);
			return NULL;
		}
		PyList_SET_ITEM(buckets, k, t);
	}
	return Py_BuildValue("{s:s,s:K,s:d,s:N}", "name", hs->name, "count",
			     (unsigned long long)(global ? hs->global_count
							 : hs->count),
			     "sum", global ? hs->global_sum : hs->sum,
			     "buckets", buckets);
}

static PyObject *Histogram_value(HistogramObject *self, void *unused)
{
	shmstat_histogram_stat_t hs;
	const char *name;
	int rc;

	(void)unused;
	if (seg_ready(self->seg) < 0 || !(name = name_arg(self->name, "name")))
		return NULL;
	if ((rc = shmstat_histogram_read(self->seg->h, name, &hs)) < 0)
		return raise_code(rc, shmstat_errstr(self->seg->h));
	return hist_dict(&hs, 0);
}

static PyObject *Histogram_quantile(HistogramObject *self, PyObject *arg)
{
	shmstat_histogram_stat_t hs;
	const char *name;
	double q = PyFloat_AsDouble(arg);
	int rc;

	if (q == -1.0 && PyErr_Occurred())
		return NULL;
	if (seg_ready(self->seg) < 0 || !(name = name_arg(self->name, "name")))
		return NULL;
	if ((rc = shmstat_histogram_read(self->seg->h, name, &hs)) < 0)
		return raise_code(rc, shmstat_errstr(self->seg->h));
	return PyFloat_FromDouble(shmstat_histogram_quantile(&hs, q, 0));
}

static PyObject *Histogram_repr(PyObject *self)
{
	return metric_repr(self, "Histogram");
}


static PyMethodDef Histogram_methods[] = {
	{ "observe", (PyCFunction)Histogram_observe, METH_O,
	  "observe(v)\n--\n\nCount v (a number >= 0 and below 9.2e12; "
	  "anything else is a ValueError) into its bucket and the sum." },
	{ "quantile", (PyCFunction)Histogram_quantile, METH_O,
	  "quantile(q)\n--\n\nThe q-quantile estimated from the buckets as "
	  "Prometheus' histogram_quantile() does (linear interpolation within "
	  "a bucket); NaN with no observations." },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef Histogram_members[] = {
	{ "name", T_OBJECT, offsetof(HistogramObject, name), READONLY,
	  "The histogram's name." },
	{ NULL, 0, 0, 0, NULL },
};

static PyGetSetDef Histogram_getset[] = {
	{ "value", (getter)Histogram_value, NULL,
	  "{'name', 'count', 'sum', 'buckets': [(le, cumulative count), "
	  "...]} on this host.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject Histogram_Type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmstat._Histogram",
	.tp_basicsize = sizeof(HistogramObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A histogram of a segment (see shmstat.Histogram).",
	.tp_dealloc = metric_dealloc,
	.tp_traverse = metric_traverse,
	.tp_clear = metric_clear,
	.tp_repr = Histogram_repr,
	.tp_methods = Histogram_methods,
	.tp_members = Histogram_members,
	.tp_getset = Histogram_getset,
};

/* ------------------------------------------------------------------ Gauge */

typedef struct {
	PyObject_HEAD
	SegmentObject *seg;
	PyObject *name;
	shmstat_gauge_t g;
} GaugeObject;

static PyTypeObject Gauge_Type;

static int gauge_arg(PyObject *const *args, Py_ssize_t nargs, long long dflt,
		     long long *out)
{
	*out = dflt;
	if (nargs > 1) {
		PyErr_SetString(PyExc_TypeError, "takes at most 1 argument");
		return -1;
	}
	if (nargs == 1) {
		*out = PyLong_AsLongLong(args[0]);
		if (*out == -1 && PyErr_Occurred())
			return -1;
	}
	return 0;
}

static PyObject *Gauge_set(GaugeObject *self, PyObject *const *args,
			   Py_ssize_t nargs)
{
	long long v;

	if (nargs != 1)
		return PyErr_Format(PyExc_TypeError,
				    "set() takes exactly 1 argument");
	if (gauge_arg(args, nargs, 0, &v) < 0 || seg_ready(self->seg) < 0)
		return NULL;
	shmstat_gauge_set(self->g, (int64_t)v);
	Py_RETURN_NONE;
}

static PyObject *Gauge_inc(GaugeObject *self, PyObject *const *args,
			   Py_ssize_t nargs)
{
	long long v;

	if (gauge_arg(args, nargs, 1, &v) < 0 || seg_ready(self->seg) < 0)
		return NULL;
	shmstat_gauge_add(self->g, (int64_t)v);
	Py_RETURN_NONE;
}

static PyObject *Gauge_dec(GaugeObject *self, PyObject *const *args,
			   Py_ssize_t nargs)
{
	long long v;

	if (gauge_arg(args, nargs, 1, &v) < 0 || seg_ready(self->seg) < 0)
		return NULL;
	if (v == LLONG_MIN)
		return PyErr_Format(PyExc_OverflowError, "dec() out of range");
	shmstat_gauge_add(self->g, -(int64_t)v);
	Py_RETURN_NONE;
}

static PyObject *Gauge_value(GaugeObject *self, void *unused)
{
	(void)unused;
	if (seg_ready(self->seg) < 0)
		return NULL;
	return PyLong_FromLongLong(shmstat_gauge_read(self->g));
}

static PyObject *Gauge_repr(PyObject *self)
{
	return metric_repr(self, "Gauge");
}


static PyMethodDef Gauge_methods[] = {
	{ "set", (PyCFunction)(void (*)(void))Gauge_set, METH_FASTCALL,
	  "set(v)\n--\n\nSet the gauge to the int v." },
	{ "inc", (PyCFunction)(void (*)(void))Gauge_inc, METH_FASTCALL,
	  "inc(n=1)\n--\n\nAdd n (may be negative) to the gauge." },
	{ "dec", (PyCFunction)(void (*)(void))Gauge_dec, METH_FASTCALL,
	  "dec(n=1)\n--\n\nSubtract n from the gauge." },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef Gauge_members[] = {
	{ "name", T_OBJECT, offsetof(GaugeObject, name), READONLY,
	  "The gauge's name." },
	{ NULL, 0, 0, 0, NULL },
};

static PyGetSetDef Gauge_getset[] = {
	{ "value", (getter)Gauge_value, NULL, "The gauge's value.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject Gauge_Type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmstat.Gauge",
	.tp_basicsize = sizeof(GaugeObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A gauge of a segment: seg.gauge(name). One value shared "
		  "by every process; .set(v), .inc(n=1), .dec(n=1), .value.",
	.tp_dealloc = metric_dealloc,
	.tp_traverse = metric_traverse,
	.tp_clear = metric_clear,
	.tp_repr = Gauge_repr,
	.tp_methods = Gauge_methods,
	.tp_members = Gauge_members,
	.tp_getset = Gauge_getset,
};

/* ------------------------------------------------------- Segment methods */

/* A new counter, histogram or gauge object of type tp for `name` (the
 * argument itself when a str, else decoded), holding its segment: the
 * caller sets its handle, then hands it to metric_done(). */
static MetricObject *metric_alloc(SegmentObject *self, PyObject *arg,
				  const char *name, PyTypeObject *tp)
{
	MetricObject *o = PyObject_GC_New(MetricObject, tp);

	if (!o)
		return NULL;
	Py_INCREF(self);
	o->seg = self;
	o->name = PyUnicode_Check(arg) ? Py_NewRef(arg)
				       : PyUnicode_DecodeUTF8(name, strlen(name),
							      "replace");
	return o;
}

/* Track o, or drop it when its name could not be made. */
static PyObject *metric_done(MetricObject *o)
{
	PyObject_GC_Track(o);
	if (!o->name) {
		Py_DECREF(o);
		return NULL;
	}
	return (PyObject *)o;
}

static PyObject *Segment_counter(SegmentObject *self, PyObject *arg)
{
	const char *name = name_arg(arg, "name");
	shmstat_counter_t c;
	reason_t why = { "" };
	CounterObject *o;
	int rc;

	if (!name || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_counter_open(self->h, name, &c);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!(o = (CounterObject *)metric_alloc(self, arg, name, &Counter_Type)))
		return NULL;
	o->c = c;
	return metric_done((MetricObject *)o);
}

static PyObject *Segment_histogram(SegmentObject *self, PyObject *args)
{
	PyObject *arg, *bounds = Py_None;
	double b[SHMSTAT_HIST_BOUNDS_MAX];
	Py_ssize_t n = 0;
	shmstat_histogram_t hg;
	reason_t why = { "" };
	HistogramObject *o;
	int rc;

	if (!PyArg_ParseTuple(args, "O|O", &arg, &bounds))
		return NULL;
	const char *name = name_arg(arg, "name");
	if (!name || seg_ready(self) < 0)
		return NULL;
	if (bounds != Py_None) {
		PyObject *seq = PySequence_Fast(bounds, "buckets must be a "
							"sequence of numbers");
		if (!seq)
			return NULL;
		n = PySequence_Fast_GET_SIZE(seq);
		if (n > SHMSTAT_HIST_BOUNDS_MAX) {
			Py_DECREF(seq);
			return raise_code(SHMSTAT_EINVAL,
					  "a histogram has at most 32 bounds");
		}
		for (Py_ssize_t k = 0; k < n; k++) {
			b[k] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, k));
			if (b[k] == -1.0 && PyErr_Occurred()) {
				Py_DECREF(seq);
				return NULL;
			}
		}
		Py_DECREF(seq);
	}
	SEG_UNLOCKED(self,
		     rc = shmstat_histogram_open(self->h, name,
						 bounds == Py_None ? NULL : b,
						 (size_t)n, &hg);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!(o = (HistogramObject *)metric_alloc(self, arg, name, &Histogram_Type)))
		return NULL;
	o->hg = hg;
	return metric_done((MetricObject *)o);
}

static PyObject *Segment_help(SegmentObject *self, PyObject *args)
{
	PyObject *arg, *text = Py_None;
	char buf[SHMSTAT_HELP_MAX + 1];
	reason_t why = { "" };
	int rc;

	if (!PyArg_ParseTuple(args, "O|O", &arg, &text))
		return NULL;
	const char *name = name_arg(arg, "name");
	if (!name || seg_ready(self) < 0)
		return NULL;
	if (text == Py_None) {
		SEG_UNLOCKED(self,
			     rc = shmstat_help_get(self->h, name, buf,
						   sizeof(buf));
			     if (rc < 0) reason_save(&why, self->h));
		if (rc == SHMSTAT_ENOTFOUND)
			Py_RETURN_NONE;
		if (rc < 0)
			return raise_code(rc, why.text);
		return PyUnicode_DecodeUTF8(buf, rc, "replace");
	}
	const char *t = name_arg(text, "text");
	if (!t)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_help_set(self->h, name, t);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	Py_RETURN_NONE;
}

static PyObject *Segment_histogram_value(SegmentObject *self, PyObject *args)
{
	PyObject *arg;
	int global = 0;
	shmstat_histogram_stat_t hs;
	reason_t why = { "" };
	int rc;

	if (!PyArg_ParseTuple(args, "O|p", &arg, &global))
		return NULL;
	const char *name = name_arg(arg, "name");
	if (!name || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_histogram_read(self->h, name, &hs);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	return hist_dict(&hs, global);
}

static PyObject *Segment_gauge(SegmentObject *self, PyObject *arg)
{
	const char *name = name_arg(arg, "name");
	shmstat_gauge_t g;
	reason_t why = { "" };
	GaugeObject *o;
	int rc;

	if (!name || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_gauge_open(self->h, name, &g);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!(o = (GaugeObject *)metric_alloc(self, arg, name, &Gauge_Type)))
		return NULL;
	o->g = g;
	return metric_done((MetricObject *)o);
}

static PyObject *stat_dict(const shmstat_stat_t *st)
{
	char d[SHMSTAT_NAME_MAX + 1];
	int dl = shmstat_name_canonical(st->name, d, sizeof(d));
	if (dl < 0) { /* another program's bytes: as stored */
		memcpy(d, st->name, st->name_len + 1);
		dl = (int)st->name_len;
	}
	PyObject *glob = st->global_ns ? PyLong_FromLongLong(st->global)
				       : (Py_INCREF(Py_None), Py_None);
	if (!glob)
		return NULL;
	return Py_BuildValue(
		"{s:s#,s:s,s:L,s:K,s:N,s:K}", "name", d, (Py_ssize_t)dl, "kind",
		st->kind == SHMSTAT_KIND_GAUGE       ? "gauge"
		: st->kind == SHMSTAT_KIND_HISTOGRAM ? "histogram"
		: st->kind == SHMSTAT_KIND_HBUCKET   ? "histogram bucket"
						     : "counter",
		"value",
		(long long)st->value, "total", (unsigned long long)st->total,
		"global", glob, "global_ns", (unsigned long long)st->global_ns);
}

static PyObject *Segment_stat(SegmentObject *self, PyObject *arg)
{
	const char *name = name_arg(arg, "name");
	shmstat_stat_t st;
	reason_t why = { "" };
	int rc;

	if (!name || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_stat_read(self->h, name, &st);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	return stat_dict(&st);
}

/* shmstat_iter() runs with the GIL (it takes no lock and builds objects). */
struct iter_ctx {
	PyObject *out;
	int full;
};

static int iter_one(const shmstat_stat_t *st, void *priv)
{
	struct iter_ctx *c = priv;
	PyObject *k, *v;
	int rc;

	/* Histograms are read with histogram_value(); their cells are not
	 * counters of their own. */
	if (st->kind == SHMSTAT_KIND_HISTOGRAM ||
	    st->kind == SHMSTAT_KIND_HBUCKET)
		return 0;
	if (c->full) {
		v = stat_dict(st);
		if (!v)
			return 1;
		rc = PyList_Append(c->out, v);
		Py_DECREF(v);
		return rc < 0;
	}
	char d[SHMSTAT_NAME_MAX + 1];
	int dl = shmstat_name_canonical(st->name, d, sizeof(d));
	if (dl < 0) {
		memcpy(d, st->name, st->name_len + 1);
		dl = (int)st->name_len;
	}
	k = PyUnicode_DecodeUTF8(d, dl, "replace");
	v = PyLong_FromLongLong(st->value);
	rc = k && v ? PyDict_SetItem(c->out, k, v) : -1;
	Py_XDECREF(k);
	Py_XDECREF(v);
	return rc < 0;
}

static PyObject *Segment_iter_stats(SegmentObject *self, PyObject *args,
				    PyObject *kw, int full)
{
	static char *kwlist[] = { "pattern", NULL };
	PyObject *pat = Py_None;
	const char *pattern;
	struct iter_ctx c;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &pat) ||
	    pattern_arg(pat, &pattern) < 0 || seg_ready(self) < 0)
		return NULL;
	c.full = full;
	if (!(c.out = full ? PyList_New(0) : PyDict_New()))
		return NULL;
	rc = shmstat_iter(self->h, pattern, iter_one, &c);
	if (PyErr_Occurred()) {
		Py_DECREF(c.out);
		return NULL;
	}
	if (rc < 0) {
		Py_DECREF(c.out);
		return raise_code(rc, shmstat_errstr(self->h));
	}
	return c.out;
}

static PyObject *Segment_values(SegmentObject *self, PyObject *args,
				PyObject *kw)
{
	return Segment_iter_stats(self, args, kw, 0);
}

static PyObject *Segment_stats_list(SegmentObject *self, PyObject *args,
				    PyObject *kw)
{
	return Segment_iter_stats(self, args, kw, 1);
}

static PyObject *Segment_reset(SegmentObject *self, PyObject *args,
			       PyObject *kw)
{
	static char *kwlist[] = { "pattern", NULL };
	PyObject *pat = Py_None;
	const char *pattern;
	uint64_t n = 0;
	reason_t why = { "" };
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &pat) ||
	    pattern_arg(pat, &pattern) < 0 || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_reset(self->h, pattern, &n);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLongLong(n);
}

/* _reset_global(pattern, timeout_ms): what `shmstat reset --global`
 * does (tools/sync_cmd.c), waiting with the GIL released. */
static PyObject *Segment_reset_global(SegmentObject *self, PyObject *args)
{
	PyObject *pat;
	unsigned timeout_ms;
	const char *glob;
	shmstat_sync_status_t st;
	uint64_t id = 0, n = 0;
	reason_t why = { "" };
	int rc;

	if (!PyArg_ParseTuple(args, "OI", &pat, &timeout_ms) ||
	    !(glob = name_arg(pat, "pattern")) || seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_sync_status_read(self->h, &st);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!st.alive)
		return raise_code(SHMSTAT_ENOTFOUND,
				  "reset_global: no shmstat-bridge is running "
				  "for this segment; start one (nothing was "
				  "changed)");
	SEG_UNLOCKED(self, rc = shmstat_sync_reset_request(self->h, glob, &id);
		     if (rc < 0) reason_save(&why, self->h);
		     else rc = shmstat_sync_reset_wait(self->h, id, timeout_ms,
						       &n);
		     if (rc < 0 && rc != SHMSTAT_EBUSY)
			     reason_save(&why, self->h));
	if (rc == SHMSTAT_EBUSY && id) {
		char t[200];
		snprintf(t, sizeof(t),
			 "reset_global: the bridge has not run the reset within "
			 "%.3g s (Redis unreachable?); it stays queued and runs "
			 "when the bridge reconnects",
			 timeout_ms / 1000.0);
		return raise_code(rc, t);
	}
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLongLong(n);
}

static PyObject *Segment_reap(SegmentObject *self, PyObject *unused)
{
	uint32_t n = 0;
	reason_t why = { "" };
	int rc;

	(void)unused;
	if (seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_reap(self->h, &n);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLong(n);
}

static PyObject *Segment_info(SegmentObject *self, PyObject *unused)
{
	shmstat_info_t in;
	reason_t why = { "" };
	PyObject *d, *regions;
	int rc;

	(void)unused;
	if (seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, rc = shmstat_info(self->h, &in);
		     if (rc < 0) reason_save(&why, self->h));
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!(regions = PyDict_New()))
		return NULL;
	for (uint32_t i = 0; i < in.nregions && i < SHMSTAT_MAX_REGIONS; i++) {
		PyObject *r = Py_BuildValue(
			"{s:K,s:K,s:K}", "offset",
			(unsigned long long)in.region[i].offset, "size",
			(unsigned long long)in.region[i].size, "used",
			(unsigned long long)in.region[i].used);
		if (!r || PyDict_SetItemString(regions, in.region[i].name, r)) {
			Py_XDECREF(r);
			Py_DECREF(regions);
			return NULL;
		}
		Py_DECREF(r);
	}
	d = Py_BuildValue(
		"{s:s,s:s,s:K,s:K,s:i,s:K,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:K,"
		"s:K,s:I,s:N}",
		"name", in.name, "layout",
		"", /* replaced below */
		"size", (unsigned long long)in.size, "created_ns",
		(unsigned long long)in.created_ns, "creator_pid",
		(int)in.creator_pid, "host_id", (unsigned long long)in.host_id,
		"host_name", in.host_name, "max_counters", in.max_counters,
		"counters_used", in.counters_used, "max_workers",
		in.max_workers, "workers_live", in.workers_live,
		"workers_dead", in.workers_dead, "workers_free",
		in.workers_free, "workers_hwm", in.workers_hwm,
		"row_overflows", (unsigned long long)in.row_overflows,
		"cache_max_value", (unsigned long long)in.cache_max_value,
		"page_size", in.page_size, "regions", regions);
	if (d) {
		PyObject *t = PyLong_FromUnsignedLong(in.cache_home_blocks);
		if (!t || PyDict_SetItemString(d, "cache_home_blocks", t) < 0)
			Py_CLEAR(d);
		Py_XDECREF(t);
	}
	if (d) {
		PyObject *t = PyLong_FromUnsignedLongLong(
			(unsigned long long)in.row_overflow_ns);
		if (!t || PyDict_SetItemString(d, "row_overflow_ns", t) < 0)
			Py_CLEAR(d);
		Py_XDECREF(t);
	}
	if (d) {
		PyObject *lay = PyUnicode_FromFormat("%u.%u",
						     (unsigned)in.layout_major,
						     (unsigned)in.layout_minor);
		if (!lay || PyDict_SetItemString(d, "layout", lay) < 0)
			Py_CLEAR(d);
		Py_XDECREF(lay);
	}
	return d;
}

static PyObject *Segment_source(SegmentObject *self, PyObject *unused)
{
	const char *src;

	(void)unused;
	if (seg_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self, src = shmstat_source(self->h));
	return PyUnicode_FromString(src);
}

/* ------------------------------------------------------------- documents
 *
 * The export functions write to a FILE *; export_text() is the one place
 * that turns that into a Python str (a memory stream today).
 */

enum doc { DOC_JSON, DOC_JSON_GLOBAL, DOC_PROMETHEUS, DOC_HEALTH };

static int doc_write(shmstat_t *h, enum doc d, const char *pattern,
		     unsigned flags, FILE *f)
{
	shmstat_health_t hs;
	int rc;

	switch (d) {
	case DOC_JSON:
		return shmstat_export_json(h, pattern, f);
	case DOC_JSON_GLOBAL:
		return shmstat_export_json_global(h, pattern, f);
	case DOC_PROMETHEUS:
		return shmstat_export_prometheus(h, pattern, f);
	case DOC_HEALTH:
		if ((rc = shmstat_health(h, flags, &hs)) < 0)
			return rc;
		return shmstat_export_health_json(h, &hs, f);
	}
	return SHMSTAT_EINVAL;
}

static PyObject *export_text(SegmentObject *s, enum doc d, const char *pattern,
			     unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	reason_t why = { "" };
	PyObject *out;
	int rc = 0;

	if (seg_ready(s) < 0)
		return NULL;
	SEG_UNLOCKED(s, {
		FILE *f = open_memstream(&buf, &len);
		if (!f) {
			rc = SHMSTAT_ENOMEM;
		} else {
			rc = doc_write(s->h, d, pattern, flags, f);
			if (rc < 0)
				reason_save(&why, s->h);
			if (fclose(f) != 0 && rc == 0)
				rc = SHMSTAT_ENOMEM;
		}
	});
	if (rc < 0) {
		free(buf);
		return raise_code(rc, why.text);
	}
	out = PyUnicode_DecodeUTF8(buf ? buf : "", (Py_ssize_t)len, "replace");
	free(buf);
	return out;
}

static PyObject *Segment_export(SegmentObject *self, PyObject *args,
				PyObject *kw, enum doc d)
{
	static char *kwlist[] = { "pattern", NULL };
	PyObject *pat = Py_None;
	const char *pattern;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &pat) ||
	    pattern_arg(pat, &pattern) < 0)
		return NULL;
	return export_text(self, d, pattern, 0);
}

static PyObject *Segment_export_json(SegmentObject *self, PyObject *args,
				     PyObject *kw)
{
	return Segment_export(self, args, kw, DOC_JSON);
}

static PyObject *Segment_export_json_global(SegmentObject *self,
					    PyObject *args, PyObject *kw)
{
	return Segment_export(self, args, kw, DOC_JSON_GLOBAL);
}

static PyObject *Segment_export_prometheus(SegmentObject *self,
					   PyObject *args, PyObject *kw)
{
	return Segment_export(self, args, kw, DOC_PROMETHEUS);
}

static PyObject *Segment_health_json(SegmentObject *self, PyObject *args,
				     PyObject *kw)
{
	static char *kwlist[] = { "require_bridge", NULL };
	int bridge = 1;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|p", kwlist, &bridge))
		return NULL;
	return export_text(self, DOC_HEALTH, NULL,
			   bridge ? 0 : SHMSTAT_HEALTH_NO_BRIDGE);
}

static PyObject *Segment_get_name(SegmentObject *self, void *unused)
{
	(void)unused;
	return PyUnicode_FromString(self->name);
}

static PyObject *Segment_get_closed(SegmentObject *self, void *unused)
{
	(void)unused;
	return PyBool_FromLong(self->h == NULL);
}

static PyMethodDef Segment_methods[] = {
	{ "counter", (PyCFunction)Segment_counter, METH_O,
	  "counter(name)\n--\n\nThe counter `name`, created when missing." },
	{ "gauge", (PyCFunction)Segment_gauge, METH_O,
	  "gauge(name)\n--\n\nThe gauge `name`, created (at 0) when missing." },
	{ "_histogram", (PyCFunction)Segment_histogram, METH_VARARGS,
	  "_histogram(name, bounds=None)\n--\n\nThe histogram `name`." },
	{ "_help", (PyCFunction)Segment_help, METH_VARARGS,
	  "_help(name, text=None)\n--\n\nGet or set a family's help text." },
	{ "histogram_value", (PyCFunction)Segment_histogram_value, METH_VARARGS,
	  "histogram_value(name, global_=False)\n--\n\n{'name', 'count', "
	  "'sum', 'buckets': [(le, cumulative count), ...]} of a histogram "
	  "(global_: the cluster-wide view the bridge wrote back)." },
	{ "stat", (PyCFunction)Segment_stat, METH_O,
	  "stat(name)\n--\n\nA dict about one counter or gauge: name, kind, "
	  "value, total, global (None until the bridge reconciled it), "
	  "global_ns. NotFound when it does not exist." },
	{ "values", (PyCFunction)(void (*)(void))Segment_values,
	  METH_VARARGS | METH_KEYWORDS,
	  "values(pattern=None)\n--\n\n{name: value} of every counter and "
	  "gauge matching the glob (None: all)." },
	{ "stats", (PyCFunction)(void (*)(void))Segment_stats_list,
	  METH_VARARGS | METH_KEYWORDS,
	  "stats(pattern=None)\n--\n\nA list of stat() dicts of every counter "
	  "and gauge matching the glob." },
	{ "reset", (PyCFunction)(void (*)(void))Segment_reset,
	  METH_VARARGS | METH_KEYWORDS,
	  "reset(pattern=None)\n--\n\nReset the matching counters to 0 on this "
	  "host (gauges are set to 0); returns how many." },
	{ "_reset_global", (PyCFunction)Segment_reset_global, METH_VARARGS,
	  "_reset_global(pattern, timeout_ms)\n--\n\nSee "
	  "Segment.reset_global()." },
	{ "reap", (PyCFunction)Segment_reap, METH_NOARGS,
	  "reap()\n--\n\nFree the rows of dead processes (their counts stay); "
	  "returns how many." },
	{ "info", (PyCFunction)Segment_info, METH_NOARGS,
	  "info()\n--\n\nA dict describing the segment: sizes, rows, regions." },
	{ "source", (PyCFunction)Segment_source, METH_NOARGS,
	  "source()\n--\n\n'redis' when the bridge reconciled the values "
	  "recently, else 'local'." },
	{ "export_json", (PyCFunction)(void (*)(void))Segment_export_json,
	  METH_VARARGS | METH_KEYWORDS,
	  "export_json(pattern=None)\n--\n\nThe live-stats JSON document." },
	{ "export_json_global",
	  (PyCFunction)(void (*)(void))Segment_export_json_global,
	  METH_VARARGS | METH_KEYWORDS,
	  "export_json_global(pattern=None)\n--\n\nThe cluster-wide live-stats JSON "
	  "document: each value as the bridge last read it from Redis." },
	{ "export_prometheus",
	  (PyCFunction)(void (*)(void))Segment_export_prometheus,
	  METH_VARARGS | METH_KEYWORDS,
	  "export_prometheus(pattern=None)\n--\n\nThe Prometheus text "
	  "exposition." },
	{ "health_json", (PyCFunction)(void (*)(void))Segment_health_json,
	  METH_VARARGS | METH_KEYWORDS,
	  "health_json(require_bridge=True)\n--\n\nThe health JSON document." },
	{ "close", (PyCFunction)Segment_close, METH_NOARGS,
	  "close()\n--\n\nRelease the handle (counts stay in the segment). "
	  "Counters and gauges taken from it stop working." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Segment_getset[] = {
	{ "name", (getter)Segment_get_name, NULL, "The segment's name.", NULL },
	{ "closed", (getter)Segment_get_closed, NULL,
	  "True after close().", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject Segment_Type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmstat._shmstat._Segment",
	.tp_basicsize = sizeof(SegmentObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "An open segment (use shmstat.open()).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Segment_init,
	.tp_dealloc = (destructor)Segment_dealloc,
	.tp_weaklistoffset = offsetof(SegmentObject, weakrefs),
	.tp_methods = Segment_methods,
	.tp_getset = Segment_getset,
};

/* ------------------------------------------------------------------ Cache */

typedef struct {
	PyObject_HEAD
	SegmentObject *seg;
} CacheObject;

/* A key: str (UTF-8) or any bytes-like object. */
typedef struct {
	const char *p;
	size_t n;
	Py_buffer view;
	int has_view;
} key_t_;

static int key_get(PyObject *o, key_t_ *k)
{
	Py_ssize_t n;

	k->has_view = 0;
	if (PyUnicode_Check(o)) {
		if (!(k->p = utf8_of(o, &n, "cache key")))
			return -1;
		k->n = (size_t)n;
		return 0;
	}
	if (PyBytes_Check(o)) {
		k->p = PyBytes_AS_STRING(o);
		k->n = (size_t)PyBytes_GET_SIZE(o);
		return 0;
	}
	if (PyObject_GetBuffer(o, &k->view, PyBUF_SIMPLE) < 0) {
		PyErr_Format(PyExc_TypeError,
			     "key must be str or bytes-like, not %s",
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	k->has_view = 1;
	k->p = k->view.buf;
	k->n = (size_t)k->view.len;
	return 0;
}

static void key_put(key_t_ *k)
{
	if (k->has_view)
		PyBuffer_Release(&k->view);
}

/* Seconds (None or a number > 0) to the library's milliseconds. */
static int ttl_arg(PyObject *o, const char *what, int none_ok,
		   uint64_t *ms)
{
	double s;

	*ms = 0;
	if (o == Py_None || !o) {
		if (none_ok)
			return 0;
		PyErr_Format(PyExc_TypeError, "%s must be a number", what);
		return -1;
	}
	/* True is an int, but never a number of seconds anyone meant. */
	if (PyBool_Check(o)) {
		PyErr_Format(PyExc_TypeError,
			     "%s must be a number of seconds, not a bool", what);
		return -1;
	}
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (isnan(s) || s < 0) {
		PyErr_Format(PyExc_ValueError,
			     "%s must be >= 0 seconds (0 or None: never "
			     "expires), not %R",
			     what, o);
		return -1;
	}
	if (s == 0) /* never expires, as in C and the tool */
		return 0;
	/* math.inf never expires; a finite TTL past the library's
	 * maximum is that maximum (as in C), not "never". */
	if (isinf(s))
		return 0;
	if (s * 1000.0 >= (double)SHMSTAT_CACHE_TTL_MAX) {
		*ms = SHMSTAT_CACHE_TTL_MAX;
		return 0;
	}
	*ms = (uint64_t)ceil(s * 1000.0);
	return 0;
}

static int cache_ready(CacheObject *self)
{
	if (!self->seg) {
		PyErr_SetString(PyExc_RuntimeError, "cache has no segment");
		return -1;
	}
	return seg_ready(self->seg);
}

/*
 * Copy a value out: kind 0 get, 1 fetch. A value larger than the stack
 * buffer is read again into a buffer of the reported size (it may change
 * in between: bounded retries, then the library's answer stands).
 */
struct read_args {
	int fetch;
	uint32_t lease_ms, wait_ms;
	int outcome;
};

static int cache_read(CacheObject *self, const key_t_ *k,
		      struct read_args *a, PyObject **value, reason_t *why)
{
	char stack[GET_STACK];
	char *buf = stack, *heap = NULL;
	size_t buflen = sizeof(stack), vlen = 0;
	shmstat_t *h = self->seg->h;
	int rc = 0;

	*value = NULL;
	SEG_UNLOCKED(self->seg, {
		for (int tries = 0; tries < 4; tries++) {
			if (a->fetch)
				rc = shmstat_cache_fetch(h, k->p, k->n, buf,
							 buflen, &vlen,
							 a->lease_ms,
							 a->wait_ms,
							 &a->outcome);
			else
				rc = shmstat_cache_get(h, k->p, k->n, buf,
						       buflen, &vlen);
			if (rc != SHMSTAT_ERANGE)
				break;
			free(heap);
			buflen = vlen;
			buf = heap = malloc(buflen ? buflen : 1);
			if (!buf) {
				rc = SHMSTAT_ENOMEM;
				break;
			}
		}
		if (rc < 0 && rc != SHMSTAT_ENOTFOUND)
			reason_save(why, h);
	});
	if (rc == 0 && (!a->fetch || a->outcome != SHMSTAT_CACHE_LEASED))
		*value = PyBytes_FromStringAndSize(buf, (Py_ssize_t)vlen);
	free(heap);
	if (rc == 0 && !*value && (!a->fetch ||
				   a->outcome != SHMSTAT_CACHE_LEASED))
		return PY_ERROR;
	return rc;
}

static PyObject *Cache_get(CacheObject *self, PyObject *const *args,
			   Py_ssize_t nargs)
{
	struct read_args a = { 0, 0, 0, 0 };
	reason_t why = { "" };
	key_t_ k;
	PyObject *v;
	int rc;

	if (nargs < 1 || nargs > 2)
		return PyErr_Format(PyExc_TypeError,
				    "get() takes a key and an optional default");
	if (cache_ready(self) < 0 || key_get(args[0], &k) < 0)
		return NULL;
	rc = cache_read(self, &k, &a, &v, &why);
	key_put(&k);
	if (rc == 0)
		return v;
	if (rc == SHMSTAT_ENOTFOUND)
		return Py_NewRef(nargs == 2 ? args[1] : Py_None);
	if (rc == PY_ERROR)
		return NULL;
	return raise_code(rc, why.text);
}

static PyObject *Cache__fetch(CacheObject *self, PyObject *args)
{
	struct read_args a = { 1, 0, 0, 0 };
	reason_t why = { "" };
	PyObject *key, *v;
	key_t_ k;
	int rc;

	if (!PyArg_ParseTuple(args, "OII", &key, &a.lease_ms, &a.wait_ms))
		return NULL;
	if (cache_ready(self) < 0 || key_get(key, &k) < 0)
		return NULL;
	rc = cache_read(self, &k, &a, &v, &why);
	key_put(&k);
	if (rc == PY_ERROR)
		return NULL;
	if (rc < 0)
		return raise_code(rc, why.text);
	if (!v)
		v = Py_NewRef(Py_None);
	return Py_BuildValue("(iN)", a.outcome, v);
}

static PyObject *Cache_set(CacheObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "key", "value", "ttl", "nx", "xx", NULL };
	PyObject *key, *value, *ttl = Py_None;
	Py_buffer val;
	int nx = 0, xx = 0, rc, mode;
	uint64_t ms;
	reason_t why = { "" };
	key_t_ k;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O$pp", kwlist, &key,
					 &value, &ttl, &nx, &xx))
		return NULL;
	if (nx && xx) {
		PyErr_SetString(PyExc_ValueError, "nx and xx exclude each other");
		return NULL;
	}
	if (PyUnicode_Check(value)) {
		PyErr_SetString(PyExc_TypeError,
				"cache values are bytes: encode the str first");
		return NULL;
	}
	mode = nx ? SHMSTAT_CACHE_NX : xx ? SHMSTAT_CACHE_XX
					  : SHMSTAT_CACHE_ALWAYS;
	if (ttl_arg(ttl, "ttl", 1, &ms) < 0 || cache_ready(self) < 0)
		return NULL;
	if (PyObject_GetBuffer(value, &val, PyBUF_SIMPLE) < 0)
		return NULL;
	if (key_get(key, &k) < 0) {
		PyBuffer_Release(&val);
		return NULL;
	}
	SEG_UNLOCKED(self->seg, {
		rc = shmstat_cache_set(self->seg->h, k.p, k.n, val.buf,
				       (size_t)val.len, ms, mode);
		if (rc < 0)
			reason_save(&why, self->seg->h);
	});
	key_put(&k);
	PyBuffer_Release(&val);
	if (rc == 0)
		Py_RETURN_TRUE;
	if ((nx && rc == SHMSTAT_EKEYEXISTS) || (xx && rc == SHMSTAT_ENOTFOUND))
		Py_RETURN_FALSE; /* the mode's condition was not met */
	return raise_code(rc, why.text);
}

/* Calls of the form f(key) -> rc, under one wrapper. */
enum keyop { KO_DELETE, KO_EXISTS, KO_TTL, KO_EXPIRE, KO_RELEASE };

static PyObject *cache_keyop(CacheObject *self, PyObject *key, enum keyop op,
			     uint64_t arg, int64_t *out)
{
	reason_t why = { "" };
	key_t_ k;
	int rc = 0;

	if (cache_ready(self) < 0 || key_get(key, &k) < 0)
		return NULL;
	SEG_UNLOCKED(self->seg, {
		shmstat_t *h = self->seg->h;
		switch (op) {
		case KO_DELETE:
			rc = shmstat_cache_delete(h, k.p, k.n);
			break;
		case KO_EXISTS:
			rc = shmstat_cache_exists(h, k.p, k.n);
			break;
		case KO_TTL:
			rc = shmstat_cache_ttl(h, k.p, k.n, out);
			break;
		case KO_EXPIRE:
			rc = shmstat_cache_expire(h, k.p, k.n, arg);
			break;
		case KO_RELEASE:
			rc = shmstat_cache_lease_release(h, k.p, k.n);
			break;
		}
		if (rc < 0 && rc != SHMSTAT_ENOTFOUND)
			reason_save(&why, h);
	});
	key_put(&k);
	if (rc == SHMSTAT_ENOTFOUND)
		Py_RETURN_FALSE;
	if (rc < 0)
		return raise_code(rc, why.text);
	if (op == KO_EXISTS)
		return PyBool_FromLong(rc == 1);
	Py_RETURN_TRUE;
}

static PyObject *Cache_delete(CacheObject *self, PyObject *const *args,
			      Py_ssize_t nargs)
{
	long n = 0;

	for (Py_ssize_t i = 0; i < nargs; i++) {
		PyObject *r = cache_keyop(self, args[i], KO_DELETE, 0, NULL);
		if (!r)
			return NULL;
		n += r == Py_True;
		Py_DECREF(r);
	}
	return PyLong_FromLong(n);
}

static PyObject *Cache_exists(CacheObject *self, PyObject *key)
{
	return cache_keyop(self, key, KO_EXISTS, 0, NULL);
}

static PyObject *Cache_ttl(CacheObject *self, PyObject *key)
{
	int64_t ms = 0;
	PyObject *r = cache_keyop(self, key, KO_TTL, 0, &ms);

	if (r == Py_False) {
		Py_DECREF(r);
		Py_RETURN_NONE; /* absent or expired */
	}
	if (!r)
		return NULL;
	Py_DECREF(r);
	if (ms < 0)
		return PyFloat_FromDouble(INFINITY);
	return PyFloat_FromDouble((double)ms / 1000.0);
}

static PyObject *Cache_expire(CacheObject *self, PyObject *args)
{
	PyObject *key, *ttl;
	uint64_t ms;

	if (!PyArg_ParseTuple(args, "OO", &key, &ttl) ||
	    ttl_arg(ttl, "ttl", 1, &ms) < 0)
		return NULL;
	return cache_keyop(self, key, KO_EXPIRE, ms, NULL);
}

static PyObject *Cache__lease_release(CacheObject *self, PyObject *key)
{
	return cache_keyop(self, key, KO_RELEASE, 0, NULL);
}

static PyObject *Cache_clear(CacheObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "pattern", NULL };
	PyObject *pat = Py_None;
	const char *pattern;
	reason_t why = { "" };
	uint64_t n = 0;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &pat) ||
	    pattern_arg(pat, &pattern) < 0 || cache_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self->seg, {
		rc = shmstat_cache_clear(self->seg->h, pattern, &n);
		if (rc < 0)
			reason_save(&why, self->seg->h);
	});
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLongLong(n);
}

static PyObject *Cache_flush(CacheObject *self, PyObject *unused)
{
	reason_t why = { "" };
	uint64_t n = 0;
	int rc;

	(void)unused;
	if (cache_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self->seg, {
		rc = shmstat_cache_flush(self->seg->h, &n);
		if (rc < 0)
			reason_save(&why, self->seg->h);
	});
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLongLong(n);
}

static PyObject *Cache_sweep(CacheObject *self, PyObject *args)
{
	unsigned buckets = 0;
	reason_t why = { "" };
	uint64_t n = 0;
	int rc;

	if (!PyArg_ParseTuple(args, "|I", &buckets) || cache_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self->seg, {
		rc = shmstat_cache_sweep(self->seg->h, buckets, &n);
		if (rc < 0)
			reason_save(&why, self->seg->h);
	});
	if (rc < 0)
		return raise_code(rc, why.text);
	return PyLong_FromUnsignedLongLong(n);
}

/* The iteration takes no lock: it runs with the GIL and builds the list. */
static int keys_one(const void *key, size_t klen, void *priv)
{
	PyObject *k = PyBytes_FromStringAndSize(key, (Py_ssize_t)klen);
	int rc = k ? PyList_Append(priv, k) : -1;

	Py_XDECREF(k);
	return rc < 0;
}

static PyObject *Cache_keys(CacheObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "pattern", NULL };
	PyObject *pat = Py_None, *out;
	const char *pattern;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &pat) ||
	    pattern_arg(pat, &pattern) < 0 || cache_ready(self) < 0)
		return NULL;
	if (!(out = PyList_New(0)))
		return NULL;
	rc = shmstat_cache_iter(self->seg->h, pattern, keys_one, out);
	if (PyErr_Occurred()) {
		Py_DECREF(out);
		return NULL;
	}
	if (rc < 0) {
		Py_DECREF(out);
		return raise_code(rc, shmstat_errstr(self->seg->h));
	}
	return out;
}

static PyObject *Cache_stats(CacheObject *self, PyObject *unused)
{
	shmstat_cache_stats_t st;
	reason_t why = { "" };
	int rc;

	(void)unused;
	if (cache_ready(self) < 0)
		return NULL;
	SEG_UNLOCKED(self->seg, {
		rc = shmstat_cache_stats(self->seg->h, &st);
		if (rc < 0)
			reason_save(&why, self->seg->h);
	});
	if (rc < 0)
		return raise_code(rc, why.text);
	return Py_BuildValue(
		"{s:K,s:K,s:d,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "hits",
		(unsigned long long)st.hits, "misses",
		(unsigned long long)st.misses, "hit_rate", st.hit_rate, "sets",
		(unsigned long long)st.sets, "deletes",
		(unsigned long long)st.deletes, "errors",
		(unsigned long long)st.errors, "evictions",
		(unsigned long long)st.evictions, "expirations",
		(unsigned long long)st.expirations, "entries",
		(unsigned long long)st.entries, "bytes_used",
		(unsigned long long)st.bytes_used, "bytes_free",
		(unsigned long long)st.bytes_free, "max_value",
		(unsigned long long)st.max_value);
}

static int Cache_init(CacheObject *self, PyObject *args, PyObject *kw)
{
	PyObject *seg;

	(void)kw;
	if (!PyArg_ParseTuple(args, "O!", &Segment_Type, &seg))
		return -1;
	Py_INCREF(seg);
	Py_XSETREF(self->seg, (SegmentObject *)seg);
	return 0;
}

static int Cache_traverse(CacheObject *self, visitproc visit, void *arg)
{
	Py_VISIT(self->seg);
	return 0;
}

static int Cache_clear_refs(CacheObject *self)
{
	Py_CLEAR(self->seg);
	return 0;
}

static void Cache_dealloc(CacheObject *self)
{
	PyObject_GC_UnTrack(self);
	Py_CLEAR(self->seg);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Cache_methods[] = {
	{ "get", (PyCFunction)(void (*)(void))Cache_get, METH_FASTCALL,
	  "get(key, default=None)\n--\n\nThe value of key (bytes), or default "
	  "when it is absent or expired." },
	{ "set", (PyCFunction)(void (*)(void))Cache_set,
	  METH_VARARGS | METH_KEYWORDS,
	  "set(key, value, ttl=None, *, nx=False, xx=False)\n--\n\nStore a "
	  "copy of the bytes value under key for ttl seconds (0 or None: "
	  "never expires, as math.inf; a finite ttl past the library's maximum "
	  "is that maximum; negative: ValueError; a bool: TypeError). nx: "
	  "only if absent; xx: only if present (False when the condition is "
	  "not met, where redis-py's set returns None). True when stored." },
	{ "delete", (PyCFunction)(void (*)(void))Cache_delete, METH_FASTCALL,
	  "delete(*keys)\n--\n\nRemove keys; returns how many were there." },
	{ "exists", (PyCFunction)Cache_exists, METH_O,
	  "exists(key)\n--\n\nTrue when key holds a live value (counts no "
	  "hit or miss)." },
	{ "ttl", (PyCFunction)Cache_ttl, METH_O,
	  "ttl(key)\n--\n\nSeconds left to live (float), math.inf when it "
	  "never expires, None when absent or expired." },
	{ "expire", (PyCFunction)Cache_expire, METH_VARARGS,
	  "expire(key, ttl)\n--\n\nGive a live entry a new ttl (seconds; 0, "
	  "None or math.inf: never expires, which removes its TTL; as set's "
	  "ttl otherwise). False when absent." },
	{ "clear", (PyCFunction)(void (*)(void))Cache_clear,
	  METH_VARARGS | METH_KEYWORDS,
	  "clear(pattern=None)\n--\n\nRemove every entry whose key matches the "
	  "glob (None: all); returns how many." },
	{ "flush", (PyCFunction)Cache_flush, METH_NOARGS,
	  "flush()\n--\n\nRemove every entry; returns how many." },
	{ "sweep", (PyCFunction)Cache_sweep, METH_VARARGS,
	  "sweep(buckets=0)\n--\n\nRemove expired entries from the next "
	  "buckets of the table; returns how many." },
	{ "keys", (PyCFunction)(void (*)(void))Cache_keys,
	  METH_VARARGS | METH_KEYWORDS,
	  "keys(pattern=None)\n--\n\nThe keys (bytes) of live entries matching "
	  "the glob." },
	{ "stats", (PyCFunction)Cache_stats, METH_NOARGS,
	  "stats()\n--\n\nThe cache's statistics summed over every process: "
	  "hits, misses, hit_rate, sets, deletes, errors, evictions, "
	  "expirations, entries, bytes_used, bytes_free, max_value." },
	{ "_fetch", (PyCFunction)Cache__fetch, METH_VARARGS,
	  "_fetch(key, lease_ms, wait_ms) -> (outcome, value)" },
	{ "_lease_release", (PyCFunction)Cache__lease_release, METH_O,
	  "_lease_release(key)" },
	{ NULL, NULL, 0, NULL },
};

static PyTypeObject Cache_Type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmstat._shmstat._Cache",
	.tp_basicsize = sizeof(CacheObject),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE |
		    Py_TPFLAGS_HAVE_GC,
	.tp_doc = "The TTL cache of a segment (use seg.cache).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Cache_init,
	.tp_dealloc = (destructor)Cache_dealloc,
	.tp_traverse = (traverseproc)Cache_traverse,
	.tp_clear = (inquiry)Cache_clear_refs,
	.tp_methods = Cache_methods,
};

/* ----------------------------------------------------------------- module */

static PyObject *mod_set_errors(PyObject *m, PyObject *args)
{
	PyObject *base, *map;

	(void)m;
	if (!PyArg_ParseTuple(args, "OO!", &base, &PyDict_Type, &map))
		return NULL;
	Py_INCREF(base);
	Py_INCREF(map);
	Py_XSETREF(error_base, base);
	Py_XSETREF(error_map, map);
	Py_RETURN_NONE;
}

static PyObject *mod_unlink(PyObject *m, PyObject *arg)
{
	const char *name = name_arg(arg, "name");
	int rc;

	(void)m;
	if (!name)
		return NULL;
	if ((rc = shmstat_unlink(name)) < 0)
		return raise_code(rc, NULL);
	Py_RETURN_NONE;
}

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
	long rc = PyLong_AsLong(arg);

	(void)m;
	if (rc == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(shmstat_strerror((int)rc));
}

static PyMethodDef module_methods[] = {
	{ "_set_errors", mod_set_errors, METH_VARARGS, NULL },
	{ "unlink", mod_unlink, METH_O,
	  "unlink(name)\n--\n\nRemove the segment's name; processes that have "
	  "it open keep it." },
	{ "strerror", mod_strerror, METH_O,
	  "strerror(code)\n--\n\nThe message of a library error code." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmstat._shmstat",
	.m_doc = "The C part of shmstat; use the shmstat package.",
	.m_size = -1,
	.m_methods = module_methods,
};

static int add_int(PyObject *d, const char *name, long v)
{
	PyObject *o = PyLong_FromLong(v);
	int rc = o ? PyDict_SetItemString(d, name, o) : -1;

	Py_XDECREF(o);
	return rc;
}

PyMODINIT_FUNC PyInit__shmstat(void)
{
	PyObject *m, *errors, *consts;

	if (PyType_Ready(&Segment_Type) < 0 || PyType_Ready(&Counter_Type) < 0 ||
	    PyType_Ready(&Gauge_Type) < 0 || PyType_Ready(&Cache_Type) < 0 ||
	    PyType_Ready(&Histogram_Type) < 0)
		return NULL;
	if (!(m = PyModule_Create(&module_def)))
		return NULL;
	/* The library's error table, by name: renames follow the header. */
	if (!(errors = PyDict_New()))
		goto fail;
#define ADD_ERR_(name, value, msg)                                             \
	if (add_int(errors, #name, value) < 0)                                 \
		goto fail_errors;
	SHMSTAT_ERRORS(ADD_ERR_)
#undef ADD_ERR_
	if (PyModule_AddObject(m, "ERRORS", errors) < 0)
		goto fail_errors;
	if (!(consts = PyDict_New()))
		goto fail;
	if (add_int(consts, "HIT", SHMSTAT_CACHE_HIT) < 0 ||
	    add_int(consts, "LEASED", SHMSTAT_CACHE_LEASED) < 0 ||
	    add_int(consts, "STALE", SHMSTAT_CACHE_STALE) < 0 ||
	    add_int(consts, "O_CREATE", SHMSTAT_O_CREATE) < 0 ||
	    add_int(consts, "O_EXCL", SHMSTAT_O_EXCL) < 0 ||
	    add_int(consts, "O_RDONLY", SHMSTAT_O_RDONLY) < 0 ||
	    add_int(consts, "NAME_MAX", SHMSTAT_NAME_MAX) < 0 ||
	    add_int(consts, "KEY_MAX", SHMSTAT_CACHE_KEY_MAX) < 0 ||
	    add_int(consts, "SEGNAME_MAX", SHMSTAT_SEGNAME_MAX) < 0 ||
	    PyModule_AddObject(m, "CONSTANTS", consts) < 0) {
		Py_DECREF(consts);
		goto fail;
	}
	if (PyModule_AddStringConstant(m, "__version__", SHMSTAT_PY_VERSION) <
		    0 ||
	    PyModule_AddObjectRef(m, "_Segment", (PyObject *)&Segment_Type) <
		    0 ||
	    PyModule_AddObjectRef(m, "_Cache", (PyObject *)&Cache_Type) < 0 ||
	    PyModule_AddObjectRef(m, "Counter", (PyObject *)&Counter_Type) <
		    0 ||
	    PyModule_AddObjectRef(m, "Gauge", (PyObject *)&Gauge_Type) < 0 ||
	    PyModule_AddObjectRef(m, "_Histogram",
				  (PyObject *)&Histogram_Type) < 0)
		goto fail;
	return m;
fail_errors:
	Py_DECREF(errors);
fail:
	Py_DECREF(m);
	return NULL;
}
