#!/usr/bin/python3
"""The exported increment through an FFI (ctypes), the way a Python, PHP or
LuaJIT program calls libshmstat: threads sharing one handle lose nothing.
ctypes releases the GIL around each foreign call, so the threads really
run at once."""
import ctypes as C
import os
import sys
import threading

lib = C.CDLL(os.environ["SHMSTAT_LIB"])


class Options(C.Structure):
    _fields_ = [("flags", C.c_uint), ("mode", C.c_uint), ("size", C.c_size_t),
                ("max_counters", C.c_uint32), ("max_workers", C.c_uint32),
                ("cache_max_value", C.c_size_t), ("wait_ms", C.c_uint32),
                ("owner_uid", C.c_uint32), ("group_gid", C.c_uint32),
                ("reserved_", C.c_uint32 * 5)]


class Counter(C.Structure):
    _fields_ = [("row_", C.c_void_p), ("index_", C.c_uint32),
                ("reserved_", C.c_uint32)]


lib.shmstat_open.argtypes = [C.c_char_p, C.POINTER(Options), C.POINTER(C.c_void_p)]
lib.shmstat_counter_open.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(Counter)]
lib.shmstat_counter_add_ts.argtypes = [C.POINTER(Counter), C.c_uint64]
lib.shmstat_counter_add_ts.restype = None
lib.shmstat_counter_add_by_name.argtypes = [C.c_void_p, C.c_char_p, C.c_uint64]
lib.shmstat_counter_read.argtypes = [C.c_void_p, Counter, C.POINTER(C.c_int64)]
lib.shmstat_close.argtypes = [C.POINTER(C.c_void_p)]
lib.shmstat_unlink.argtypes = [C.c_char_p]
lib.shmstat_errstr.argtypes = [C.c_void_p]
lib.shmstat_errstr.restype = C.c_char_p

THREADS, PER = 4, 50000
name = b"ffi-%d" % os.getpid()
h = C.c_void_p()
o = Options(flags=0x3)  # CREATE | EXCL
if lib.shmstat_open(name, C.byref(o), C.byref(h)) != 0:
    sys.exit("open: %s" % lib.shmstat_errstr(None).decode())
try:
    c = Counter()
    assert lib.shmstat_counter_open(h, b"ffi:ts", C.byref(c)) == 0

    def by_handle():
        for _ in range(PER):
            lib.shmstat_counter_add_ts(C.byref(c), 1)

    def by_name():
        for _ in range(PER // 10):
            lib.shmstat_counter_add_by_name(h, b"ffi:name", 10)

    for fn, cname in ((by_handle, b"ffi:ts"), (by_name, b"ffi:name")):
        ts = [threading.Thread(target=fn) for _ in range(THREADS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        k = Counter()
        v = C.c_int64()
        assert lib.shmstat_counter_open(h, cname, C.byref(k)) == 0
        assert lib.shmstat_counter_read(h, k, C.byref(v)) == 0
        if v.value != THREADS * PER:
            sys.exit("%s: %d of %d" % (cname.decode(), v.value, THREADS * PER))
    print("ok: %d threads x %d through the exported increment" % (THREADS, PER))
finally:
    lib.shmstat_close(C.byref(h))
    lib.shmstat_unlink(name)
