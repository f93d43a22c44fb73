/* The interpreter's memory layout, as numbers.
 *
 * Safety contract: spprof_layout_init() runs once per start() with the GIL held and may call the
 * C API. Everything it fills is plain data that the GIL-free sampler reads; no other file knows a
 * CPython struct. This header is C so the C translation unit that includes CPython's internal
 * headers (which do not all compile as C++) can define it. */
#ifndef SPPROF_LAYOUT_H
#define SPPROF_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How a thread's frames are chained. */
enum spprof_frame_model {
    SPPROF_FRAMES_OBJECTS = 0,      /* 3.9/3.10: PyFrameObject via tstate->frame and f_back */
    SPPROF_FRAMES_CFRAME = 1,       /* 3.11/3.12: _PyInterpreterFrame via tstate->cframe->current_frame */
    SPPROF_FRAMES_CURRENT = 2       /* 3.13+: _PyInterpreterFrame via tstate->current_frame */
};

/* How a code object maps instruction offsets to lines. */
enum spprof_linetable_format {
    SPPROF_LNOTAB = 0,      /* 3.9 co_lnotab, byte offsets */
    SPPROF_LINETABLE = 1,   /* 3.10 co_linetable (PEP 626), byte offsets */
    SPPROF_LOCATIONS = 2    /* 3.11+ co_linetable location table, code units */
};

struct spprof_layout {
    int py_major, py_minor;
    int frame_model;
    int linetable_format;
    int has_native_thread_id;

    /* addresses, valid for the life of the process */
    uint64_t interp;            /* the main interpreter */
    uint32_t interp_size;
    uint64_t gil;               /* its struct _gil_runtime_state */
    uint64_t code_type, frame_type, unicode_type, bytes_type;

    uint32_t interp_threads_head;

    uint32_t gil_size, gil_last_holder, gil_locked;
    uint32_t gil_switch_number; /* counts changes of last_holder: unchanged, no other thread ran Python */
    int has_gil_switches;       /* 0 where threads run without the GIL (a free-threaded build) */

    uint32_t ts_size, ts_next, ts_interp, ts_thread_id, ts_native_thread_id;
    uint32_t ts_frame;          /* frame (objects), cframe (cframe) or current_frame (current) */
    uint32_t ts_datastack_chunk, ts_datastack_top, ts_datastack_limit;
    uint32_t cframe_size, cframe_current_frame;
    uint32_t cframe_previous;   /* 3.11: the record around; 0 elsewhere */
    uint32_t chunk_header;      /* offset of a stack chunk's data */
    uint32_t chunk_previous;    /* offset of its link to the older chunk */

    /* PyFrameObject (SPPROF_FRAMES_OBJECTS) */
    uint32_t fo_size, fo_back, fo_code, fo_lasti, fo_state, fo_gen;
    uint32_t fo_copy;           /* bytes of a frame object the walker copies: up to its last field read */
    int fo_lasti_scale;         /* bytes per f_lasti unit: 2 on 3.10 (code units), 1 on 3.9 (bytes) */
    int fo_running;             /* value of the state field while the frame executes */
    uint32_t fo_valuestack;     /* a suspended frame's value stack (waiting_tasks.cpp) ... */
    uint32_t fo_stacktop;       /* ... up to f_stacktop (3.9, NULL while it runs) ... */
    uint32_t fo_stackdepth;     /* ... or f_stackdepth entries (3.10); 0 where absent */
    uint8_t yield_from_op;      /* the YIELD_FROM a generator suspended in `yield from` is at */

    /* _PyInterpreterFrame (3.11+) */
    uint32_t if_size, if_code, if_previous, if_instr, if_owner;
    uint32_t if_is_entry;       /* 3.11: set on a record's first frame; 0 elsewhere */
    uint64_t if_code_tag_mask;  /* 3.14 tags f_executable as a _PyStackRef */
    int if_code_cleared;        /* 3.14: a returning frame's f_executable is cleared once the frame is
                                   no longer current, and its instr_ptr is left as it was */
    int owner_thread;           /* 3.11+: a frame in the thread's stack chunk */
    int owner_generator, owner_cstack, owner_interpreter;   /* -1 where the version has none */
    uint64_t trampoline_code;   /* 3.12: the code object of every C-stack entry frame; 0 elsewhere */
    uint64_t init_cleanup_code; /* 3.13+: the code object of the frame a class's Python __init__
                                   runs under (_Py_InitCleanup); 0 elsewhere or when unknown */

    /* PyCodeObject */
    uint32_t co_size, co_firstlineno, co_name, co_qualname, co_filename, co_linetable;
    uint32_t co_code;           /* 3.9/3.10: the bytes object holding the bytecode */
    uint32_t co_code_adaptive;  /* 3.11+: offset of the inline bytecode */
    uint32_t co_version;        /* 3.12+: unique per code object created; 0 where absent */
    /* 3.11+: the opcodes (base and specialised forms) of a loop's back edge and a function's entry,
     * where a thread gives the GIL up between instructions when asked (gil_waits.h); none before */
    uint8_t handover_ops[6];
    int n_handover_ops;
    uint32_t ob_size;           /* PyVarObject.ob_size */
    uint32_t ob_type;

    /* str and bytes */
    uint32_t str_length, str_state, str_ascii_data, str_compact_data;
    uint32_t str_kind_mask, str_kind_shift, str_compact_bit, str_ascii_bit;
    uint32_t bytes_sval;

    /* asyncio tasks (asyncio_tasks.cpp). tasks_model is SPPROF_TASKS_OFF when this interpreter's
     * Task could not be calibrated; tasks_off then says why. */
    int tasks_model;
    char tasks_off[160];
    uint64_t task_type, coro_type, long_type;
    uint32_t type_base;         /* PyTypeObject.tp_base: a subclass of Task is a task too */
    uint32_t task_copy;         /* bytes of a Task the reader copies: up to its last field read */
    uint32_t task_coro, task_name;          /* found on two Tasks at start (the C struct is private) */
    uint32_t task_awaited_by;   /* 3.14: the task (or set of tasks) awaiting it; 0 where absent */
    uint32_t coro_frame;        /* 3.9/3.10: gi_frame, a pointer; 3.11+: gi_iframe, the frame inside */
    int coro_frame_inline;
    uint64_t current_tasks;     /* 3.9-3.13: the dict _asyncio._current_tasks, loop -> running task */
    uint32_t dict_used, dict_keys, dict_values;
    uint32_t dk_size;           /* 3.9/3.10: dk_size; 3.11+: dk_log2_size (one byte) */
    int dk_size_log2;
    uint32_t dk_log2_index_bytes, dk_kind, dk_nentries, dk_indices, dk_entry_size;
    uint32_t dk_entry_key, dk_entry_value;
    uint32_t ts_running_task;   /* 3.14: _PyThreadStateImpl.asyncio_running_task */
    /* 3.14, where suspended tasks wait (waiting_tasks.cpp); 0 elsewhere */
    uint32_t ts_tasks_head;     /* _PyThreadStateImpl.asyncio_tasks_head: a circular list of its Tasks */
    uint32_t task_node;         /* TaskObj.task_node, the Task's link in that list (found at start) */
    uint64_t gen_type;          /* a generator-based coroutine's `yield from` chain is followed too */
    uint32_t gen_frame_state;   /* PyGenObject.gi_frame_state, an int8_t */
    uint32_t if_stackpointer;   /* _PyInterpreterFrame.stackpointer: a suspended frame's stack top */
    int frame_created, frame_suspended, frame_suspended_yield_from;  /* gi_frame_state values (3.10: f_state's) */
    uint32_t long_tag, long_digit;  /* 3.12+: a Task's default name is kept as its number */
    /* 3.9-3.13, the task awaiting another (asyncio_tasks.cpp), found at start like the Task's own
     * fields; 0 where absent */
    uint32_t fut_callback0, fut_callbacks;  /* FutureObj: its first done-callback, then a list of
                                             * (callback, context) tuples */
    uint32_t task_fut_waiter;   /* TaskObj.task_fut_waiter: the future a suspended task awaits */
    uint64_t future_type;       /* _asyncio.Future, the base of every future a task can await */
    uint64_t wakeup_type;       /* the callback a task adds to the future it awaits ... */
    uint32_t wakeup_task;       /* ... holds the task here ... */
    uint32_t wakeup_tag_off;    /* ... and, when its type is a generic one, this word there */
    uint64_t wakeup_tag;
    uint64_t function_type, tuple_type, cell_type, list_type;
    uint32_t func_closure, tuple_items, cell_ref, list_items;
    uint64_t partial_type;      /* functools.partial, whose args may hold the future */
    uint32_t partial_args;
    /* 3.11-3.13: a TaskGroup's task has the group's bound method, and the group's attribute
     * values (the future its task awaits among the first 16) are an array at `values_at` from the
     * object: 3.11 a pointer to it, 3.12 that pointer tagged (low bit set, less one), 3.13 the
     * array itself, whose `valid` byte at `values_valid_at` is cleared once they are not the
     * object's attributes any more */
    uint64_t method_type;
    uint32_t method_self;
    int32_t values_at, values_valid_at;
    int values_kind;            /* 0: not followed; 1: pointer; 2: tagged pointer; 3: inline */
    /* 3.9-3.13, where suspended tasks wait (task_sets.cpp); 0 elsewhere */
    uint64_t scheduled_tasks;   /* the plain set of weak references inside _asyncio._scheduled_tasks
                                 * (3.9-3.11: _asyncio._all_tasks) */
    uint32_t set_mask, set_table, set_entry_size, set_entry_key;  /* PySetObject, setentry */
    uint64_t weakref_type;      /* weakref.ref, of the set's entries */
    uint32_t wr_object;         /* PyWeakReference.wr_object: the task, or None once it is gone */
    uint32_t task_loop;         /* TaskObj.task_loop (found at start) */
    uint32_t ts_running_loop;   /* 3.13: _PyThreadStateImpl.asyncio_running_loop */
    uint32_t ts_dict;           /* 3.9-3.12: PyThreadState.dict, which holds the running loop ... */
    uint64_t running_loop_key;  /* ... under this interned str */
    /* 3.9-3.11: that entry holds _asyncio's holder object, the loop and the pid that set it in it */
    uint64_t loop_holder_type, none_object;
    uint32_t holder_loop, holder_pid;
    uint32_t dk_unicode_entry_size, dk_unicode_key, dk_unicode_value;  /* a dict of str keys' entries */
    /* 3.11-3.13: a suspended frame's stack top is localsplus[stacktop - 1], not at stackpointer */
    uint32_t if_stacktop, if_localsplus;
    /* 3.11/3.12 have one suspended state: the frame awaits when the RESUME after its last
     * instruction says it comes back from an await or yield from (oparg 2 or more); 0 elsewhere */
    uint8_t resume_ops[2];
};

/* How the running task of a thread is found. */
enum spprof_tasks_model {
    SPPROF_TASKS_OFF = 0,
    SPPROF_TASKS_CURRENT_DICT = 1,  /* 3.9-3.13: _asyncio's dict of each loop's running task */
    SPPROF_TASKS_THREAD_STATE = 2   /* 3.14: the thread state's asyncio_running_task */
};

/* Fills *out for the running interpreter. Returns 0, or -1 with a message in err when the
 * interpreter does not match the layout spprof was built for, or spprof_layout_check() refuses
 * it. Call with the GIL held. */
int spprof_layout_init(struct spprof_layout *out, char *err, size_t errlen);

/* Finds, once per process, where asyncio's C Task keeps its coroutine and its name, by making
 * two Tasks and looking for the addresses of the objects they were given; only once the program
 * has imported asyncio (until then, each start() tries again).
 * spprof_layout_init() copies the result (or the reason it failed) into the layout. It runs
 * Python code: call it before start() checks whether a profile is running. */
void spprof_layout_calibrate_tasks(void);

/* Returns 0 when every field the GIL-free readers load (its offset plus the width of the load)
 * lies inside the bytes of the copy it is loaded from, as CPython's remote debugging module
 * validates its debug offsets; else -1 with the first field that does not in err. Pure. */
int spprof_layout_check(const struct spprof_layout *l, char *err, size_t errlen);

/* 3.13 does not export _Py_InitCleanup: this finds it by running one specialised __init__ call,
 * for spprof_layout_init() to fill init_cleanup_code with. It runs Python code, which may switch
 * threads: call it once where that is safe (the module's import), not from start(). */
void spprof_layout_find_init_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif
