/* The one place that knows each CPython version's layout (3.9-3.14).
 *
 * Safety contract: compiled as C with Py_BUILD_CORE so offsets come from the interpreter's own
 * internal headers; runs only inside spprof_layout_init(), with the GIL held. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030F0000
#error "spprof supports CPython 3.9 to 3.14"
#endif

#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_gil.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_code.h"
#include "internal/pycore_interpframe.h"
#include "internal/pycore_stackref.h"
#endif

#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_dict.h"
#include "internal/pycore_object.h"
#endif
#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_tstate.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe_structs.h"
#endif

#include "opcode.h"

#include "layout.h"

#define OFF(type, field) ((uint32_t)offsetof(type, field))

/* Bit position and mask of a bitfield of PyASCIIObject.state, learnt by setting it. */
#define STATE_BITS(field, value, out_mask)                              \
    do {                                                                \
        PyASCIIObject probe;                                            \
        uint32_t raw = 0;                                               \
        memset(&probe, 0, sizeof probe);                                \
        probe.state.field = (value);                                    \
        memcpy(&raw, (char *)&probe + offsetof(PyASCIIObject, state), sizeof raw); \
        (out_mask) = raw;                                               \
    } while (0)

#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
/* Once a call of a class with a Python __init__ is specialised, the interpreter pushes a frame of
 * _Py_InitCleanup under the __init__ frame. note_init_caller(), called from such an __init__,
 * takes the code object of the frame under it when that is the trampoline: the probe's own
 * module code has another file name. */
static uint64_t init_cleanup_found;

static PyObject *note_init_caller(PyObject *self, PyObject *unused)
{
    _PyInterpreterFrame *init = PyThreadState_Get()->current_frame;
    PyObject *code = init != NULL && init->previous != NULL ? init->previous->f_executable : NULL;
    if (code != NULL && PyCode_Check(code) &&
        PyUnicode_CompareWithASCIIString(((PyCodeObject *)code)->co_filename, "__init__") == 0)
        init_cleanup_found = (uint64_t)(uintptr_t)code;
    Py_RETURN_NONE;
}
#endif

void spprof_layout_find_init_cleanup(void)
{
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    static PyMethodDef def = {"note", note_init_caller, METH_NOARGS, NULL};
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *note = PyCFunction_New(&def, NULL);
    PyObject *globals = PyDict_New();
    PyObject *code = Py_CompileString("class C:\n    def __init__(self):\n        note()\n"
                                      "for _ in range(64):\n    C()\n", "<spprof init probe>", Py_file_input);
    if (note && globals && code && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0 &&
        PyDict_SetItemString(globals, "note", note) == 0) {
        PyObject *r = PyEval_EvalCode(code, globals, globals);
        Py_XDECREF(r);
    }
    PyErr_Clear();  /* without it, the trampoline is merely not hidden */
    Py_XDECREF(code);
    Py_XDECREF(globals);
    Py_XDECREF(note);
    PyErr_SetRaisedException(exc);
#endif
}

static void fill_strings(struct spprof_layout *l)
{
    uint32_t kind_mask;
    l->str_length = OFF(PyASCIIObject, length);
    l->str_state = OFF(PyASCIIObject, state);
    l->str_ascii_data = (uint32_t)sizeof(PyASCIIObject);
    l->str_compact_data = (uint32_t)sizeof(PyCompactUnicodeObject);
    STATE_BITS(kind, 7, kind_mask);
    l->str_kind_mask = kind_mask;
    l->str_kind_shift = 0;
    while (kind_mask && !(kind_mask & 1u)) {
        kind_mask >>= 1;
        l->str_kind_shift++;
    }
    STATE_BITS(compact, 1, l->str_compact_bit);
    STATE_BITS(ascii, 1, l->str_ascii_bit);
    l->bytes_sval = OFF(PyBytesObject, ob_sval);
}

static void fill_code(struct spprof_layout *l)
{
    l->ob_type = OFF(PyObject, ob_type);
    l->ob_size = OFF(PyVarObject, ob_size);
    l->co_firstlineno = OFF(PyCodeObject, co_firstlineno);
    l->co_name = OFF(PyCodeObject, co_name);
    l->co_filename = OFF(PyCodeObject, co_filename);
#if PY_VERSION_HEX >= 0x030A0000
    l->co_linetable = OFF(PyCodeObject, co_linetable);
#else
    l->co_linetable = OFF(PyCodeObject, co_lnotab);
#endif
#if PY_VERSION_HEX >= 0x030B0000
    /* the header up to the inline bytecode */
    l->co_qualname = OFF(PyCodeObject, co_qualname);
    l->co_code_adaptive = OFF(PyCodeObject, co_code_adaptive);
    l->co_size = l->co_code_adaptive;
    {
        /* Only the forms that check the eval breaker and call nothing else; the instrumented
         * ones call monitoring callbacks, which may block. */
        static const int ops[] = {RESUME, JUMP_BACKWARD,
#if PY_VERSION_HEX < 0x030C0000
                                  RESUME_QUICK, JUMP_BACKWARD_QUICK,
#endif
#if PY_VERSION_HEX >= 0x030D0000
                                  RESUME_CHECK,
#endif
#if PY_VERSION_HEX >= 0x030E0000
                                  JUMP_BACKWARD_JIT, JUMP_BACKWARD_NO_JIT,
#endif
        };
        size_t k;
        for (k = 0; k < sizeof ops / sizeof ops[0] && k < sizeof l->handover_ops; ++k)
            l->handover_ops[k] = (uint8_t)ops[k];
        l->n_handover_ops = (int)k;
    }
    l->linetable_format = SPPROF_LOCATIONS;
#else
    l->co_code = OFF(PyCodeObject, co_code);
    l->co_size = (uint32_t)sizeof(PyCodeObject);
    l->linetable_format = PY_VERSION_HEX >= 0x030A0000 ? SPPROF_LINETABLE : SPPROF_LNOTAB;
#endif
#if PY_VERSION_HEX >= 0x030C0000
    l->co_version = OFF(PyCodeObject, co_version);
#endif
}

static void fill_threads(struct spprof_layout *l, PyInterpreterState *interp)
{
    l->interp = (uint64_t)(uintptr_t)interp;
    l->interp_size = (uint32_t)sizeof(PyInterpreterState);
    l->ts_size = (uint32_t)sizeof(PyThreadState);
    l->ts_next = OFF(PyThreadState, next);
    l->ts_interp = OFF(PyThreadState, interp);
    l->ts_thread_id = OFF(PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030B0000
    l->interp_threads_head = OFF(PyInterpreterState, threads.head);
#else
    l->interp_threads_head = OFF(PyInterpreterState, tstate_head);
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    l->trampoline_code = (uint64_t)(uintptr_t)interp->interpreter_trampoline;
#endif
#if PY_VERSION_HEX >= 0x030E0000
    l->init_cleanup_code = (uint64_t)(uintptr_t)&_Py_InitCleanup;
#elif PY_VERSION_HEX >= 0x030D0000
    l->init_cleanup_code = init_cleanup_found;
#endif
#if PY_VERSION_HEX >= 0x030C0000
    l->gil = (uint64_t)(uintptr_t)interp->ceval.gil;
#else
    l->gil = (uint64_t)(uintptr_t)&_PyRuntime.ceval.gil;
#endif
    l->gil_size = (uint32_t)sizeof(struct _gil_runtime_state);
    l->gil_last_holder = OFF(struct _gil_runtime_state, last_holder);
    l->gil_locked = OFF(struct _gil_runtime_state, locked);
    l->gil_switch_number = OFF(struct _gil_runtime_state, switch_number);
#ifdef Py_GIL_DISABLED
    l->has_gil_switches = 0;
#else
    l->has_gil_switches = 1;
#endif
#if PY_VERSION_HEX >= 0x030B0000
    l->has_native_thread_id = 1;
    l->ts_native_thread_id = OFF(PyThreadState, native_thread_id);
    l->ts_datastack_chunk = OFF(PyThreadState, datastack_chunk);
    l->ts_datastack_top = OFF(PyThreadState, datastack_top);
    l->ts_datastack_limit = OFF(PyThreadState, datastack_limit);
    l->chunk_header = OFF(_PyStackChunk, data);
    l->chunk_previous = OFF(_PyStackChunk, previous);
#endif
}

#if PY_VERSION_HEX < 0x030B0000
/* The walker copies a frame object up to its last field read, plus a word: not the whole object,
 * whose block stack it never reads. */
static uint32_t frame_copy_bytes(const struct spprof_layout *l)
{
    uint32_t last = l->fo_back;
    const uint32_t others[] = {l->fo_code, l->fo_lasti, l->fo_state, l->fo_gen};
    size_t i;
    for (i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] > last) last = others[i];
    return last + 8;
}
#endif

static void fill_frames(struct spprof_layout *l)
{
    l->owner_thread = l->owner_generator = l->owner_cstack = l->owner_interpreter = -1;
#if PY_VERSION_HEX >= 0x030B0000
    l->owner_thread = FRAME_OWNED_BY_THREAD;
    l->if_size = (uint32_t)sizeof(_PyInterpreterFrame);
    l->if_previous = OFF(_PyInterpreterFrame, previous);
    l->if_owner = OFF(_PyInterpreterFrame, owner);
    l->owner_generator = FRAME_OWNED_BY_GENERATOR;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    l->frame_model = SPPROF_FRAMES_CURRENT;
    l->ts_frame = OFF(PyThreadState, current_frame);
    l->if_code = OFF(_PyInterpreterFrame, f_executable);
    l->if_instr = OFF(_PyInterpreterFrame, instr_ptr);
    l->owner_cstack = FRAME_OWNED_BY_CSTACK;
#elif PY_VERSION_HEX >= 0x030B0000
    l->frame_model = SPPROF_FRAMES_CFRAME;
    l->ts_frame = OFF(PyThreadState, cframe);
    l->cframe_size = (uint32_t)sizeof(_PyCFrame);
    l->cframe_current_frame = OFF(_PyCFrame, current_frame);
    l->if_code = OFF(_PyInterpreterFrame, f_code);
    l->if_instr = OFF(_PyInterpreterFrame, prev_instr);
#if PY_VERSION_HEX >= 0x030C0000
    l->owner_cstack = FRAME_OWNED_BY_CSTACK;
#else
    l->cframe_previous = OFF(_PyCFrame, previous);
    l->if_is_entry = OFF(_PyInterpreterFrame, is_entry);
#endif
#else
    l->frame_model = SPPROF_FRAMES_OBJECTS;
    l->ts_frame = OFF(PyThreadState, frame);
    l->fo_back = OFF(PyFrameObject, f_back);
    l->fo_code = OFF(PyFrameObject, f_code);
    l->fo_lasti = OFF(PyFrameObject, f_lasti);
    l->fo_gen = OFF(PyFrameObject, f_gen);
    l->fo_size = (uint32_t)sizeof(PyFrameObject);
    l->fo_valuestack = OFF(PyFrameObject, f_valuestack);
    l->yield_from_op = YIELD_FROM;
#if PY_VERSION_HEX >= 0x030A0000
    l->fo_state = OFF(PyFrameObject, f_state);
    l->fo_running = FRAME_EXECUTING;
    l->fo_lasti_scale = 2;
    l->fo_stackdepth = OFF(PyFrameObject, f_stackdepth);
#else
    l->fo_state = OFF(PyFrameObject, f_executing);
    l->fo_running = 1;
    l->fo_lasti_scale = 1;
    l->fo_stacktop = OFF(PyFrameObject, f_stacktop);
#endif
    l->fo_copy = frame_copy_bytes(l);
#endif
#if PY_VERSION_HEX >= 0x030E0000
    l->owner_interpreter = FRAME_OWNED_BY_INTERPRETER;
    l->if_code_tag_mask = Py_TAG_BITS;
    /* clear_thread_frame() (Python/ceval.c) does PyStackRef_CLEAR(f_executable) after
     * RETURN_VALUE has made the caller current; 3.11-3.13 only drop the reference. */
    l->if_code_cleared = 1;
#endif
}

#if PY_VERSION_HEX >= 0x030D0000
/* The interpreter publishes its own offsets for out-of-process tools; a build made against other
 * headers than the running interpreter's would read garbage, so refuse it. */
static int check_debug_offsets(const struct spprof_layout *l, char *err, size_t errlen)
{
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    struct { const char *what; uint64_t runtime; uint64_t built; } checks[] = {
        {"interpreter_state.threads_head", d->interpreter_state.threads_head, l->interp_threads_head},
        {"thread_state.next", d->thread_state.next, l->ts_next},
        {"thread_state.interp", d->thread_state.interp, l->ts_interp},
        {"thread_state.current_frame", d->thread_state.current_frame, l->ts_frame},
        {"thread_state.thread_id", d->thread_state.thread_id, l->ts_thread_id},
        {"thread_state.native_thread_id", d->thread_state.native_thread_id, l->ts_native_thread_id},
        {"thread_state.datastack_chunk", d->thread_state.datastack_chunk, l->ts_datastack_chunk},
        {"interpreter_frame.previous", d->interpreter_frame.previous, l->if_previous},
        {"interpreter_frame.executable", d->interpreter_frame.executable, l->if_code},
        {"interpreter_frame.instr_ptr", d->interpreter_frame.instr_ptr, l->if_instr},
        {"interpreter_frame.owner", d->interpreter_frame.owner, l->if_owner},
        {"code_object.filename", d->code_object.filename, l->co_filename},
        {"code_object.name", d->code_object.name, l->co_name},
        {"code_object.qualname", d->code_object.qualname, l->co_qualname},
        {"code_object.linetable", d->code_object.linetable, l->co_linetable},
        {"code_object.firstlineno", d->code_object.firstlineno, l->co_firstlineno},
        {"code_object.co_code_adaptive", d->code_object.co_code_adaptive, l->co_code_adaptive},
#if PY_VERSION_HEX < 0x030E0000
        {"interpreter_frame.localsplus", d->interpreter_frame.localsplus, OFF(_PyInterpreterFrame, localsplus)},
#endif
#if PY_VERSION_HEX >= 0x030E0000
        {"interpreter_frame.stackpointer", d->interpreter_frame.stackpointer, OFF(_PyInterpreterFrame, stackpointer)},
        {"gen_object.gi_iframe", d->gen_object.gi_iframe, OFF(PyGenObject, gi_iframe)},
        {"gen_object.gi_frame_state", d->gen_object.gi_frame_state, OFF(PyGenObject, gi_frame_state)},
#endif
    };
    size_t i;
    if (memcmp(d->cookie, "xdebugpy", 8) != 0) {
        snprintf(err, errlen, "spprof: _PyRuntime.debug_offsets has no cookie; "
                 "this interpreter's layout is unknown");
        return -1;
    }
    if ((d->version >> 16) != (PY_VERSION_HEX >> 16)) {
        snprintf(err, errlen, "spprof: built for CPython %d.%d but running %d.%d; reinstall spprof",
                 PY_MAJOR_VERSION, PY_MINOR_VERSION, (int)(d->version >> 24),
                 (int)((d->version >> 16) & 0xff));
        return -1;
    }
    for (i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].runtime != checks[i].built) {
            snprintf(err, errlen, "spprof: interpreter layout mismatch at %s (built %llu, running %llu); "
                     "reinstall spprof for this interpreter", checks[i].what,
                     (unsigned long long)checks[i].built, (unsigned long long)checks[i].runtime);
            return -1;
        }
    }
    return 0;
}
#endif


/* ---- asyncio tasks ---------------------------------------------------------------------- */

#if PY_VERSION_HEX < 0x030B0000
/* Objects/dict-common.h of 3.9 and 3.10, which is not installed with the headers. */
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} PyDictKeyEntry;

struct spprof_dictkeys {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
};
#endif

static struct {
    int state;  /* 0: not tried, 1: trying (on a thread that runs Python meanwhile), 2: done */
    int model;
    char off[160];
    uint64_t task_type, current_tasks;
    uint32_t task_size, task_coro, task_name, task_awaited_by, task_node, task_loop;
    uint64_t scheduled_tasks;
    uint64_t running_loop_key, loop_holder_type;  /* 3.11 */
    uint32_t holder_loop;
    uint32_t fut_callback0, fut_callbacks, task_fut_waiter, wakeup_task, wakeup_tag_off;  /* 3.9-3.13 */
    uint64_t future_type, wakeup_type, wakeup_tag, partial_type;
    uint32_t partial_args;
    int32_t values_at, values_valid_at;  /* 3.11-3.13; the `valid` byte 3.13 */
    int values_kind;
} tasks_found;

/* The one offset in the first `size` bytes of `obj` that holds `target`; -1 when none or several. */
static long only_slot(PyObject *obj, size_t size, PyObject *target)
{
    long found = -1;
    size_t off;
    for (off = sizeof(PyObject); off + sizeof(void *) <= size; off += sizeof(void *)) {
        void *v;
        memcpy(&v, (char *)obj + off, sizeof v);
        if (v == (void *)target) {
            if (found >= 0) return -1;
            found = (long)off;
        }
    }
    return found;
}

/* A Task on a stand-in loop whose two methods the Task calls are C functions, so making it runs
 * no code of the program; its coroutine is closed and the Task is not logged as pending. */
static const char probe_src[] =
    "import _asyncio, types\n"
    "async def _spprof_probe():\n"
    "    pass\n"
    "_loop = types.SimpleNamespace(get_debug=bool, call_soon=''.format)\n"
    "def make(name):\n"
    "    coro = _spprof_probe()\n"
    "    return _asyncio.Task(coro, loop=_loop, name=name), coro\n"
    "def done(task, coro):\n"
    "    task._log_destroy_pending = False\n"
    "    coro.close()\n"
    /* 3.9-3.13: a Task stepped once by hand on a loop of ours, so that it awaits a future; and a
     * future given two callbacks (the second goes into its list) */
    "class _StepLoop:\n"
    "    def __init__(self):\n"
    "        self.ready = []\n"
    "    def get_debug(self):\n"
    "        return False\n"
    "    def call_soon(self, callback, *args, context=None):\n"
    "        self.ready.append((callback, args))\n"
    "async def _spprof_await(fut):\n"
    "    await fut\n"
    "def _spprof_first(): pass\n"
    "def _spprof_second(): pass\n"
    "def awaiting(name):\n"
    "    import gc\n"
    "    loop = _StepLoop()\n"
    "    fut = _asyncio.Future(loop=loop)\n"
    "    coro = _spprof_await(fut)\n"
    "    task = _asyncio.Task(coro, loop=loop, name=name)\n"
    "    step, args = loop.ready.pop()\n"
    "    step(*args)\n"
    "    both = _asyncio.Future(loop=loop)\n"
    "    both.add_done_callback(_spprof_first)\n"
    "    both.add_done_callback(_spprof_second)\n"
    "    lists = [r for r in gc.get_referents(both) if type(r) is list and len(r) == 1\n"
    "             and type(r[0]) is tuple and r[0][0] is _spprof_second]\n"
    "    import functools\n"
    "    part = functools.partial(_spprof_first, both)\n"
    "    return task, coro, fut, both, _spprof_first, lists[0] if len(lists) == 1 else None, part\n"
    "def group():\n"
    "    import asyncio\n"
    "    return asyncio.TaskGroup() if hasattr(asyncio, 'TaskGroup') else None\n";

#if PY_VERSION_HEX >= 0x030E0000
/* 3.14 links a task to the one awaiting it (gather, TaskGroup, `await task`): made the awaiter
 * of one probe Task, the other is found in exactly one slot, then unlinked. */
static int calibrate_awaited_by(PyObject *mod, PyObject *awaited, PyObject *awaiter)
{
    PyObject *add = PyObject_GetAttrString(mod, "future_add_to_awaited_by");
    PyObject *discard = PyObject_GetAttrString(mod, "future_discard_from_awaited_by");
    PyObject *r = NULL;
    long at = -1;
    if (add != NULL && discard != NULL && (r = PyObject_CallFunctionObjArgs(add, awaited, awaiter, NULL)) != NULL) {
        Py_DECREF(r);
        at = only_slot(awaited, (size_t)Py_TYPE(awaited)->tp_basicsize, awaiter);
        r = PyObject_CallFunctionObjArgs(discard, awaited, awaiter, NULL);
        if (r == NULL || only_slot(awaited, (size_t)Py_TYPE(awaited)->tp_basicsize, awaiter) >= 0) at = -1;
        Py_XDECREF(r);
    }
    Py_XDECREF(add);
    Py_XDECREF(discard);
    if (at < 0) return 0;
    tasks_found.task_awaited_by = (uint32_t)at;
    return 1;
}

/* 3.14 links each Task into its thread's list as it is made (tail insertion): the second probe
 * Task's link is the one slot whose `prev` is the first's link at the same offset, whose `next`
 * is the thread state's list head, and which the first's `next` points at. */
static int calibrate_task_node(PyObject *first, PyObject *second)
{
    const uint64_t head = (uint64_t)(uintptr_t)PyThreadState_Get() + OFF(_PyThreadStateImpl, asyncio_tasks_head);
    size_t off, size = (size_t)Py_TYPE(second)->tp_basicsize;
    long found = -1;
    for (off = sizeof(PyObject); off + 2 * sizeof(void *) <= size; off += sizeof(void *)) {
        uint64_t next, prev, first_next;
        memcpy(&next, (char *)second + off, 8);
        memcpy(&prev, (char *)second + off + 8, 8);
        memcpy(&first_next, (char *)first + off, 8);
        if (next == head && prev == (uint64_t)(uintptr_t)first + off && first_next == (uint64_t)(uintptr_t)second + off) {
            if (found >= 0) return 0;
            found = (long)off;
        }
    }
    if (found < 0) return 0;
    tasks_found.task_node = (uint32_t)found;
    return 1;
}
#endif

#if PY_VERSION_HEX < 0x030E0000
/* 3.11-3.13: where a TaskGroup keeps its attributes' values, checked on one: its `_tasks` set
 * among the first values. Without it, a group's tasks are not followed. */
static void calibrate_group_values(PyObject *globals)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *group = PyObject_CallNoArgs(PyDict_GetItemString(globals, "group"));
    PyObject *tasks = group != NULL && group != Py_None ? PyObject_GetAttrString(group, "_tasks") : NULL;
    PyObject **values = NULL;
    int kind = 0, i;
    if (tasks == NULL || !(Py_TYPE(group)->tp_flags & Py_TPFLAGS_MANAGED_DICT)) goto out;
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_TYPE(group)->tp_flags & Py_TPFLAGS_INLINE_VALUES) {
        values = _PyObject_InlineValues(group)->values;
        kind = 3;
    }
#elif PY_VERSION_HEX >= 0x030C0000
    {
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(group);
        if (_PyDictOrValues_IsValues(dorv)) {
            values = _PyDictOrValues_GetValues(dorv)->values;
            kind = 2;
        }
    }
#else
    if (*_PyObject_ValuesPointer(group) != NULL) {
        values = (*_PyObject_ValuesPointer(group))->values;
        kind = 1;
    }
#endif
    for (i = 0; values != NULL && i < 16; i++) {
        if (values[i] != tasks) continue;
        tasks_found.values_kind = kind;
#if PY_VERSION_HEX >= 0x030D0000
        tasks_found.values_at = (int32_t)((char *)values - (char *)group);
        tasks_found.values_valid_at = (int32_t)((char *)&_PyObject_InlineValues(group)->valid - (char *)group);
#elif PY_VERSION_HEX >= 0x030C0000
        tasks_found.values_at = (int32_t)((char *)_PyObject_DictOrValuesPointer(group) - (char *)group);
#else
        tasks_found.values_at = (int32_t)((char *)_PyObject_ValuesPointer(group) - (char *)group);
#endif
        break;
    }
out:
    Py_XDECREF(tasks);
    Py_XDECREF(group);
    PyErr_Clear();
#else
    (void)globals;
#endif
}

/* Before 3.14 a task keeps no link to the task awaiting it; the way back is the callback the
 * awaiter left on what it awaits (its wakeup, on the task itself or on a future that a gather,
 * TaskGroup, shield, wait or wait_for made, which their callback on the task holds). Found on a
 * Task stepped once so that it awaits a future: the future's slot in the Task, the wakeup it was
 * given and the Task's slot in that; then where a future keeps its callbacks, a partial its args
 * and a TaskGroup its attributes. */
static int calibrate_awaiter_links(PyObject *globals)
{
    PyObject *name = PyUnicode_FromString("spprof-probe-awaiting");
    PyObject *r = name != NULL ? PyObject_CallFunctionObjArgs(PyDict_GetItemString(globals, "awaiting"), name, NULL) : NULL;
    PyObject *task, *fut, *both, *first, *list, *wakeup, *d, *part, *args;
    long waiter_at, first_at, list_at = -1, task_at, args_at;
    int ok = 0;
    Py_XDECREF(name);
    if (r == NULL || !PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 7) goto out;
    task = PyTuple_GET_ITEM(r, 0);
    fut = PyTuple_GET_ITEM(r, 2);
    both = PyTuple_GET_ITEM(r, 3);
    first = PyTuple_GET_ITEM(r, 4);
    list = PyTuple_GET_ITEM(r, 5);
    waiter_at = only_slot(task, (size_t)Py_TYPE(task)->tp_basicsize, fut);
    first_at = only_slot(both, (size_t)Py_TYPE(both)->tp_basicsize, first);
    if (list != Py_None) list_at = only_slot(both, (size_t)Py_TYPE(both)->tp_basicsize, list);
    if (waiter_at < 0 || first_at < 0) goto out;
    memcpy(&wakeup, (char *)fut + first_at, sizeof wakeup);
    if (wakeup == NULL) goto out;
    task_at = only_slot(wakeup, (size_t)Py_TYPE(wakeup)->tp_basicsize, task);
    if (task_at < 0) goto out;
    tasks_found.task_fut_waiter = (uint32_t)waiter_at;
    tasks_found.fut_callback0 = (uint32_t)first_at;
    tasks_found.fut_callbacks = list_at > 0 ? (uint32_t)list_at : 0;  /* without it, a shield's is not followed */
    tasks_found.future_type = (uint64_t)(uintptr_t)Py_TYPE(both);  /* _asyncio's, held by the module */
    tasks_found.wakeup_type = (uint64_t)(uintptr_t)Py_TYPE(wakeup);
    tasks_found.wakeup_task = (uint32_t)task_at;
    /* 3.9-3.11's wait_for leaves a functools.partial holding the future its task waits on */
    part = PyTuple_GET_ITEM(r, 6);
    args = PyObject_GetAttrString(part, "args");
    args_at = args != NULL ? only_slot(part, (size_t)Py_TYPE(part)->tp_basicsize, args) : -1;
    Py_XDECREF(args);
    if (args_at > 0) {
        tasks_found.partial_type = (uint64_t)(uintptr_t)Py_TYPE(part);  /* a static type of _functools' */
        tasks_found.partial_args = (uint32_t)args_at;
    }
    /* a builtin method or a bound method is told from others of its type by what it calls */
    if (PyCFunction_Check(wakeup)) {
        tasks_found.wakeup_tag_off = OFF(PyCFunctionObject, m_ml);
        tasks_found.wakeup_tag = (uint64_t)(uintptr_t)((PyCFunctionObject *)wakeup)->m_ml;
    } else if (PyMethod_Check(wakeup)) {
        tasks_found.wakeup_tag_off = OFF(PyMethodObject, im_func);
        tasks_found.wakeup_tag = (uint64_t)(uintptr_t)PyMethod_GET_FUNCTION(wakeup);
    }
    calibrate_group_values(globals);
    ok = 1;
out:
    if (r != NULL && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 7) {
        d = PyObject_CallFunctionObjArgs(PyDict_GetItemString(globals, "done"), PyTuple_GET_ITEM(r, 0),
                                         PyTuple_GET_ITEM(r, 1), NULL);
        Py_XDECREF(d);
    }
    Py_XDECREF(r);
    PyErr_Clear();
    return ok;
}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* 3.9-3.11 keep a thread's running loop in its dict, in a holder object of _asyncio's with the pid
 * that set it. With the probe loop set running (or the loop that runs), the dict's entry gives
 * the key (an interned str, the same for every thread) and the holder; the loop is in one slot
 * of it, the pid right after. */
static int calibrate_loop_holder(PyObject *mod, PyObject *probe)
{
    PyObject *get = PyObject_GetAttrString(mod, "_get_running_loop");
    PyObject *set = PyObject_GetAttrString(mod, "_set_running_loop");
    PyObject *running = NULL, *loop, *dict, *key, *value, *r;
    Py_ssize_t pos = 0;
    int ok = 0, probed = 0;
    if (get == NULL || set == NULL || probe == NULL || (running = PyObject_CallNoArgs(get)) == NULL) goto out;
    loop = running;
    if (running == Py_None) {
        if ((r = PyObject_CallOneArg(set, probe)) == NULL) goto out;
        Py_DECREF(r);
        probed = 1;
        loop = probe;
    }
    dict = PyThreadState_GetDict();
    while (dict != NULL && PyDict_Next(dict, &pos, &key, &value)) {
        long at;
        size_t size;
        int pid;
        if (!PyUnicode_CheckExact(key) || PyUnicode_CompareWithASCIIString(key, "__asyncio_running_event_loop__") != 0)
            continue;
        size = (size_t)Py_TYPE(value)->tp_basicsize;
        at = only_slot(value, size, loop);
        if (at < 0 || (size_t)at + 8 + sizeof pid > size || !PyUnicode_CHECK_INTERNED(key)) break;
        memcpy(&pid, (char *)value + at + 8, sizeof pid);
        if (pid != (int)getpid()) break;
        tasks_found.running_loop_key = (uint64_t)(uintptr_t)key;
        tasks_found.loop_holder_type = (uint64_t)(uintptr_t)Py_TYPE(value);  /* a static type of _asyncio's */
        tasks_found.holder_loop = (uint32_t)at;
        ok = 1;
        break;
    }
    if (probed) {
        r = PyObject_CallOneArg(set, Py_None);
        Py_XDECREF(r);
    }
out:
    Py_XDECREF(running);
    Py_XDECREF(get);
    Py_XDECREF(set);
    PyErr_Clear();
    return ok;
}
#endif

static int calibrate(char *why, size_t n)
{
    PyObject *globals = PyDict_New(), *code = NULL, *r = NULL, *mod = NULL, *task_type = NULL;
    PyObject *made[2] = {NULL, NULL}, *names[2] = {NULL, NULL};
    long coro_at[2] = {-1, -1}, name_at[2] = {-1, -1}, loop_at[2] = {-1, -1};
    int ok = 0, i;
    if (globals == NULL || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) != 0) goto out;
    code = Py_CompileString(probe_src, "<spprof task probe>", Py_file_input);
    if (code == NULL || (r = PyEval_EvalCode(code, globals, globals)) == NULL) goto out;
    mod = PyImport_ImportModule("_asyncio");
    if (mod == NULL || (task_type = PyObject_GetAttrString(mod, "Task")) == NULL || !PyType_Check(task_type)) {
        snprintf(why, n, "asyncio's C Task is not available");
        goto out;
    }
    for (i = 0; i < 2; i++) {
        PyObject *task, *coro;
        names[i] = PyUnicode_FromFormat("spprof-probe-%d", i);
        if (names[i] == NULL) goto out;
        made[i] = PyObject_CallFunctionObjArgs(PyDict_GetItemString(globals, "make"), names[i], NULL);
        if (made[i] == NULL || !PyTuple_Check(made[i]) || PyTuple_GET_SIZE(made[i]) != 2) goto out;
        task = PyTuple_GET_ITEM(made[i], 0);
        coro = PyTuple_GET_ITEM(made[i], 1);
        if (Py_TYPE(task) != (PyTypeObject *)task_type) goto out;
        coro_at[i] = only_slot(task, (size_t)Py_TYPE(task)->tp_basicsize, coro);
        name_at[i] = only_slot(task, (size_t)Py_TYPE(task)->tp_basicsize, names[i]);
        loop_at[i] = only_slot(task, (size_t)Py_TYPE(task)->tp_basicsize, PyDict_GetItemString(globals, "_loop"));
    }
    if (coro_at[0] < 0 || name_at[0] < 0 || coro_at[0] != coro_at[1] || name_at[0] != name_at[1]) {
        snprintf(why, n, "asyncio's Task keeps its coroutine and name where spprof cannot find them "
                 "(offsets %ld/%ld, %ld/%ld)", coro_at[0], coro_at[1], name_at[0], name_at[1]);
        goto out;
    }
    tasks_found.task_type = (uint64_t)(uintptr_t)task_type;  /* the module stays imported */
    tasks_found.task_size = (uint32_t)((PyTypeObject *)task_type)->tp_basicsize;
    tasks_found.task_coro = (uint32_t)coro_at[0];
    tasks_found.task_name = (uint32_t)name_at[0];
#if PY_VERSION_HEX >= 0x030E0000
    tasks_found.model = SPPROF_TASKS_THREAD_STATE;
    if (!calibrate_awaited_by(mod, PyTuple_GET_ITEM(made[0], 0), PyTuple_GET_ITEM(made[1], 0))) {
        snprintf(why, n, "asyncio's Task keeps the task awaiting it where spprof cannot find it");
        goto out;
    }
    /* Without it, only the running task is named: suspended tasks are not sampled. */
    (void)calibrate_task_node(PyTuple_GET_ITEM(made[0], 0), PyTuple_GET_ITEM(made[1], 0));
#else
    {
        PyObject *current = PyObject_GetAttrString(mod, "_current_tasks");
        if (current == NULL || !PyDict_CheckExact(current)) {
            Py_XDECREF(current);
            snprintf(why, n, "_asyncio has no dict of running tasks");
            goto out;
        }
        tasks_found.current_tasks = (uint64_t)(uintptr_t)current;  /* held by the module */
        Py_DECREF(current);
        tasks_found.model = SPPROF_TASKS_CURRENT_DICT;
    }
    /* Without it, a task is named without the tasks awaiting it. */
    (void)calibrate_awaiter_links(globals);
    /* Without these, only the running task is named: suspended tasks are not sampled. WeakSet
     * binds its set once (its methods change it in place), so the set's address holds while
     * the module does. 3.9-3.11 keep every task in _all_tasks, the running ones too (their
     * coroutines' state tells them apart). */
    {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *scheduled = PyObject_GetAttrString(mod, "_scheduled_tasks");
#else
        PyObject *scheduled = calibrate_loop_holder(mod, PyDict_GetItemString(globals, "_loop"))
                              ? PyObject_GetAttrString(mod, "_all_tasks") : NULL;
#endif
        PyObject *data = scheduled != NULL ? PyObject_GetAttrString(scheduled, "data") : NULL;
        if (data != NULL && Py_IS_TYPE(data, &PySet_Type) && loop_at[0] >= 0 && loop_at[0] == loop_at[1]) {
            tasks_found.scheduled_tasks = (uint64_t)(uintptr_t)data;
            tasks_found.task_loop = (uint32_t)loop_at[0];
        }
        Py_XDECREF(data);
        Py_XDECREF(scheduled);
        PyErr_Clear();
    }
#endif
    ok = 1;
out:
    if (!ok && why[0] == 0) snprintf(why, n, "asyncio's Task could not be made for calibration");
    for (i = 0; i < 2; i++) {
        if (made[i] != NULL && PyTuple_Check(made[i]) && PyTuple_GET_SIZE(made[i]) == 2) {
            PyObject *d = PyObject_CallFunctionObjArgs(PyDict_GetItemString(globals, "done"),
                                                       PyTuple_GET_ITEM(made[i], 0), PyTuple_GET_ITEM(made[i], 1), NULL);
            Py_XDECREF(d);
        }
        Py_XDECREF(made[i]);
        Py_XDECREF(names[i]);
    }
    PyErr_Clear();
    Py_XDECREF(task_type);
    Py_XDECREF(mod);
    Py_XDECREF(r);
    Py_XDECREF(code);
    Py_XDECREF(globals);
    return ok;
}

void spprof_layout_calibrate_tasks(void)
{
    PyObject *exc_type, *exc, *tb;
    if (tasks_found.state != 0) return;
    /* A program that has not imported asyncio runs no task yet; importing it here would cost it
     * some milliseconds and megabytes. A later start() tries again. */
    if (PyDict_GetItemString(PyImport_GetModuleDict(), "asyncio") == NULL) {
        snprintf(tasks_found.off, sizeof tasks_found.off, "asyncio was not imported when profiling started");
        return;
    }
    tasks_found.off[0] = 0;
    tasks_found.state = 1;  /* the GIL is held: a second caller, run while this one runs Python, returns */
    PyErr_Fetch(&exc_type, &exc, &tb);
    if (!calibrate(tasks_found.off, sizeof tasks_found.off)) tasks_found.model = SPPROF_TASKS_OFF;
    PyErr_Restore(exc_type, exc, tb);
    tasks_found.state = 2;
}

static void fill_tasks(struct spprof_layout *l)
{
    uint32_t last;
    l->tasks_model = tasks_found.state == 2 ? tasks_found.model : SPPROF_TASKS_OFF;
    snprintf(l->tasks_off, sizeof l->tasks_off, "%s",
             tasks_found.state == 1 ? "asyncio's Task was being calibrated by another thread's start()"
             : tasks_found.model == SPPROF_TASKS_OFF ? tasks_found.off : "");
    if (l->tasks_model == SPPROF_TASKS_OFF) return;
    l->task_type = tasks_found.task_type;
    l->type_base = OFF(PyTypeObject, tp_base);
    l->task_coro = tasks_found.task_coro;
    l->task_name = tasks_found.task_name;
    l->task_awaited_by = tasks_found.task_awaited_by;
    l->task_node = tasks_found.task_node;
    last = l->task_coro > l->task_name ? l->task_coro : l->task_name;
    if (l->task_awaited_by > last) last = l->task_awaited_by;
    if (l->task_node + 8 > last) last = l->task_node + 8;  /* its next and prev */
    if (tasks_found.scheduled_tasks != 0 && tasks_found.task_loop > last) last = tasks_found.task_loop;
    if (tasks_found.fut_callback0 != 0) {
        l->fut_callback0 = tasks_found.fut_callback0;
        l->fut_callbacks = tasks_found.fut_callbacks;
        l->task_fut_waiter = tasks_found.task_fut_waiter;
        l->future_type = tasks_found.future_type;
        l->wakeup_type = tasks_found.wakeup_type;
        l->wakeup_task = tasks_found.wakeup_task;
        l->wakeup_tag_off = tasks_found.wakeup_tag_off;
        l->wakeup_tag = tasks_found.wakeup_tag;
        l->function_type = (uint64_t)(uintptr_t)&PyFunction_Type;
        l->func_closure = OFF(PyFunctionObject, func_closure);
        l->tuple_type = (uint64_t)(uintptr_t)&PyTuple_Type;
        l->tuple_items = OFF(PyTupleObject, ob_item);
        l->cell_type = (uint64_t)(uintptr_t)&PyCell_Type;
        l->cell_ref = OFF(PyCellObject, ob_ref);
        l->list_type = (uint64_t)(uintptr_t)&PyList_Type;
        l->list_items = OFF(PyListObject, ob_item);
        l->partial_type = tasks_found.partial_type;
        l->partial_args = tasks_found.partial_args;
        if (tasks_found.values_kind != 0) {
            l->method_type = (uint64_t)(uintptr_t)&PyMethod_Type;
            l->method_self = OFF(PyMethodObject, im_self);
            l->values_at = tasks_found.values_at;
            l->values_valid_at = tasks_found.values_valid_at;
            l->values_kind = tasks_found.values_kind;
        }
        if (l->fut_callback0 > last) last = l->fut_callback0;
        if (l->fut_callbacks > last) last = l->fut_callbacks;
        if (l->task_fut_waiter > last) last = l->task_fut_waiter;
    }
    l->task_copy = last + 8 > l->ob_type + 8 ? last + 8 : l->ob_type + 8;
    l->coro_type = (uint64_t)(uintptr_t)&PyCoro_Type;
    l->long_type = (uint64_t)(uintptr_t)&PyLong_Type;
    l->current_tasks = tasks_found.current_tasks;
    l->dict_used = OFF(PyDictObject, ma_used);
    l->dict_keys = OFF(PyDictObject, ma_keys);
    l->dict_values = OFF(PyDictObject, ma_values);
    l->dk_entry_size = (uint32_t)sizeof(PyDictKeyEntry);
    l->dk_entry_key = OFF(PyDictKeyEntry, me_key);
    l->dk_entry_value = OFF(PyDictKeyEntry, me_value);
#if PY_VERSION_HEX >= 0x030B0000
    l->dk_size_log2 = 1;
    l->dk_size = OFF(PyDictKeysObject, dk_log2_size);
    l->dk_log2_index_bytes = OFF(PyDictKeysObject, dk_log2_index_bytes);
    l->dk_kind = OFF(PyDictKeysObject, dk_kind);
    l->coro_frame_inline = 1;
    l->dk_nentries = OFF(PyDictKeysObject, dk_nentries);
    l->dk_indices = OFF(PyDictKeysObject, dk_indices);
    l->coro_frame = OFF(PyGenObject, gi_iframe);
#else
    l->dk_size = OFF(struct spprof_dictkeys, dk_size);
    l->dk_nentries = OFF(struct spprof_dictkeys, dk_nentries);
    l->dk_indices = OFF(struct spprof_dictkeys, dk_indices);
    l->coro_frame = OFF(PyGenObject, gi_frame);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    l->long_tag = OFF(PyLongObject, long_value.lv_tag);
    l->long_digit = OFF(PyLongObject, long_value.ob_digit);
#endif
#if PY_VERSION_HEX >= 0x030E0000
    l->ts_running_task = OFF(_PyThreadStateImpl, asyncio_running_task);
    if (l->task_node != 0) {
        l->ts_tasks_head = OFF(_PyThreadStateImpl, asyncio_tasks_head);
        l->gen_type = (uint64_t)(uintptr_t)&PyGen_Type;
        l->gen_frame_state = OFF(PyGenObject, gi_frame_state);
        l->if_stackpointer = OFF(_PyInterpreterFrame, stackpointer);
        l->frame_created = FRAME_CREATED;
        l->frame_suspended = FRAME_SUSPENDED;
        l->frame_suspended_yield_from = FRAME_SUSPENDED_YIELD_FROM;
    }
#else
    if (tasks_found.scheduled_tasks != 0) {
        l->scheduled_tasks = tasks_found.scheduled_tasks;
        l->task_loop = tasks_found.task_loop;
        l->set_mask = OFF(PySetObject, mask);
        l->set_table = OFF(PySetObject, table);
        l->set_entry_size = (uint32_t)sizeof(setentry);
        l->set_entry_key = OFF(setentry, key);
        l->weakref_type = (uint64_t)(uintptr_t)&_PyWeakref_RefType;
        l->wr_object = OFF(PyWeakReference, wr_object);
#if PY_VERSION_HEX >= 0x030D0000
        l->ts_running_loop = OFF(_PyThreadStateImpl, asyncio_running_loop);
#else
        l->ts_dict = OFF(PyThreadState, dict);
#if PY_VERSION_HEX >= 0x030B0000
        l->dk_unicode_entry_size = (uint32_t)sizeof(PyDictUnicodeEntry);
        l->dk_unicode_key = OFF(PyDictUnicodeEntry, me_key);
        l->dk_unicode_value = OFF(PyDictUnicodeEntry, me_value);
        l->resume_ops[0] = RESUME;
#endif
#if PY_VERSION_HEX >= 0x030C0000
        l->running_loop_key = (uint64_t)(uintptr_t)&_Py_ID(__asyncio_running_event_loop__);
        l->resume_ops[1] = INSTRUMENTED_RESUME;
#else
        l->running_loop_key = tasks_found.running_loop_key;
        l->loop_holder_type = tasks_found.loop_holder_type;
        l->none_object = (uint64_t)(uintptr_t)Py_None;
        l->holder_loop = tasks_found.holder_loop;
        l->holder_pid = tasks_found.holder_loop + 8;
#if PY_VERSION_HEX >= 0x030B0000
        l->resume_ops[1] = RESUME_QUICK;  /* RESUME as 3.11 quickens it */
#endif
#endif
#endif
        l->gen_type = (uint64_t)(uintptr_t)&PyGen_Type;
#if PY_VERSION_HEX >= 0x030B0000
        l->gen_frame_state = OFF(PyGenObject, gi_frame_state);
        l->if_stacktop = OFF(_PyInterpreterFrame, stacktop);
        l->if_localsplus = OFF(_PyInterpreterFrame, localsplus);
        l->frame_created = FRAME_CREATED;
        l->frame_suspended = FRAME_SUSPENDED;
#if PY_VERSION_HEX >= 0x030D0000
        l->frame_suspended_yield_from = FRAME_SUSPENDED_YIELD_FROM;
#else
        l->frame_suspended_yield_from = FRAME_SUSPENDED;
#endif
#elif PY_VERSION_HEX >= 0x030A0000
        /* the frame object's f_state; 3.9 tells a suspended frame by its stack top (waiting_tasks.cpp) */
        l->frame_created = FRAME_CREATED;
        l->frame_suspended = l->frame_suspended_yield_from = FRAME_SUSPENDED;
#endif
    }
#endif
}

/* Widths of the readers' loads: load_u64, load_i32, one byte. */
enum { W8 = 8, W4 = 4, W1 = 1, W0 = 0 };

int spprof_layout_check(const struct spprof_layout *l, char *err, size_t errlen)
{
    /* Each field a reader loads, the width of its load and the bytes of the copy it is loaded
     * from. A copy of size 0 is one this version never makes (cframe, frame objects, interpreter
     * frames); a field of a version that has none is 0, which any copy holds. */
    struct { const char *field; uint64_t offset, width; const char *copy; uint64_t size; } reads[] = {
        {"interp_threads_head", l->interp_threads_head, W8, "interpreter state", l->interp_size},
        {"gil_last_holder", l->gil_last_holder, W8, "GIL state", l->gil_size},
        {"gil_locked", l->gil_locked, W4, "GIL state", l->gil_size},
        {"gil_switch_number", l->gil_switch_number, W8, "GIL state", l->gil_size},
        {"ts_next", l->ts_next, W8, "thread state", l->ts_size},
        {"ts_interp", l->ts_interp, W8, "thread state", l->ts_size},
        {"ts_thread_id", l->ts_thread_id, W8, "thread state", l->ts_size},
        {"ts_native_thread_id", l->ts_native_thread_id, W8, "thread state", l->ts_size},
        {"ts_frame", l->ts_frame, W8, "thread state", l->ts_size},
        {"ts_datastack_chunk", l->ts_datastack_chunk, W8, "thread state", l->ts_size},
        {"ts_datastack_top", l->ts_datastack_top, W8, "thread state", l->ts_size},
        {"ts_datastack_limit", l->ts_datastack_limit, W8, "thread state", l->ts_size},
        {"cframe_current_frame", l->cframe_current_frame, W8, "cframe", l->cframe_size},
        {"cframe_previous", l->cframe_previous, W8, "cframe", l->cframe_size},
        {"chunk_previous", l->chunk_previous, W8, "stack chunk header", l->chunk_header},
        {"ob_type", l->ob_type, W8, "frame object copy", l->fo_copy},
        {"fo_back", l->fo_back, W8, "frame object copy", l->fo_copy},
        {"fo_code", l->fo_code, W8, "frame object copy", l->fo_copy},
        {"fo_lasti", l->fo_lasti, W4, "frame object copy", l->fo_copy},
        {"fo_state", l->fo_state, W1, "frame object copy", l->fo_copy},
        {"fo_gen", l->fo_gen, W8, "frame object copy", l->fo_copy},
        {"fo_valuestack", l->fo_valuestack, W8, "frame object", l->fo_size},
        {"fo_stacktop", l->fo_stacktop, W8, "frame object", l->fo_size},
        {"fo_stackdepth", l->fo_stackdepth, W4, "frame object", l->fo_size},
        {"fo_copy", l->fo_copy, W0, "frame object", l->fo_size},
        {"if_code", l->if_code, W8, "interpreter frame", l->if_size},
        {"if_previous", l->if_previous, W8, "interpreter frame", l->if_size},
        {"if_instr", l->if_instr, W8, "interpreter frame", l->if_size},
        {"if_owner", l->if_owner, W1, "interpreter frame", l->if_size},
        {"if_is_entry", l->if_is_entry, W1, "interpreter frame", l->if_size},
        {"ob_type", l->ob_type, W8, "code object header", l->co_size},
        {"ob_size", l->ob_size, W8, "code object header", l->co_size},
        {"co_firstlineno", l->co_firstlineno, W4, "code object header", l->co_size},
        {"co_name", l->co_name, W8, "code object header", l->co_size},
        {"co_qualname", l->co_qualname, W8, "code object header", l->co_size},
        {"co_filename", l->co_filename, W8, "code object header", l->co_size},
        {"co_linetable", l->co_linetable, W8, "code object header", l->co_size},
        {"co_code", l->co_code, W8, "code object header", l->co_size},
        {"co_version", l->co_version, W4, "code object header", l->co_size},
        /* a string is first copied up to its compact data, a bytes object up to its first byte */
        {"ob_type", l->ob_type, W8, "str header", l->str_compact_data},
        {"str_length", l->str_length, W8, "str header", l->str_compact_data},
        {"str_state", l->str_state, W4, "str header", l->str_compact_data},
        {"str_ascii_data", l->str_ascii_data, W0, "str header", l->str_compact_data},
        {"ob_type", l->ob_type, W8, "bytes header", l->bytes_sval},
        {"ob_size", l->ob_size, W8, "bytes header", l->bytes_sval},
        {"ob_type", l->ob_type, W8, "Task copy", l->task_copy},
        {"task_coro", l->task_coro, W8, "Task copy", l->task_copy},
        {"task_name", l->task_name, W8, "Task copy", l->task_copy},
        {"task_node", l->task_node + 8, W8, "Task copy", l->task_copy},
        {"task_loop", l->task_loop, W8, "Task copy", l->task_copy},
        {"fut_callback0", l->fut_callback0, W8, "Task copy", l->task_copy},
        {"fut_callbacks", l->fut_callbacks, W8, "Task copy", l->task_copy},
        {"task_fut_waiter", l->task_fut_waiter, W8, "Task copy", l->task_copy},
    };
    size_t i;
    for (i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        if (reads[i].size == 0) continue;
        if (reads[i].offset > reads[i].size || reads[i].size - reads[i].offset < reads[i].width) {
            snprintf(err, errlen, "spprof: interpreter layout unusable: %s at offset %llu (%llu bytes) "
                     "lies outside the %llu bytes of the %s copy; reinstall spprof for this interpreter",
                     reads[i].field, (unsigned long long)reads[i].offset, (unsigned long long)reads[i].width,
                     (unsigned long long)reads[i].size, reads[i].copy);
            return -1;
        }
    }
    return 0;
}

int spprof_layout_init(struct spprof_layout *l, char *err, size_t errlen)
{
    PyInterpreterState *interp = PyInterpreterState_Main();
    memset(l, 0, sizeof *l);
    l->py_major = PY_MAJOR_VERSION;
    l->py_minor = PY_MINOR_VERSION;
    fill_code(l);
    fill_strings(l);
    fill_threads(l, interp);
    fill_frames(l);
    l->code_type = (uint64_t)(uintptr_t)&PyCode_Type;
    l->frame_type = (uint64_t)(uintptr_t)&PyFrame_Type;
    l->unicode_type = (uint64_t)(uintptr_t)&PyUnicode_Type;
    l->bytes_type = (uint64_t)(uintptr_t)&PyBytes_Type;
    fill_tasks(l);
#if PY_VERSION_HEX >= 0x030D0000
    if (check_debug_offsets(l, err, errlen) != 0) return -1;
#endif
    return spprof_layout_check(l, err, errlen);
}
