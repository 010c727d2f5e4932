/*
 * Pre-initialization entry points for python.wasm (plugins/wasm: sessions
 * start from a snapshot instead of from _start).
 *
 * The host instantiates python.wasm, calls mcpruntime_preinit() once, which
 * starts CPython and runs MCPRUNTIME_PREINIT (the kernel's imports), then
 * captures the instance's linear memory and globals into a new module. A
 * session's instance of that module calls mcpruntime_resume(), which runs
 * MCPRUNTIME_RESUME (the kernel's loop) in the interpreter the snapshot
 * holds. Both programs come from the environment of the pre-init run; the
 * resume program is copied into the heap so the snapshot carries it (the
 * environment a restored instance sees is the pre-init run's, by design:
 * per-session variables reach the kernel through its configure frame).
 */
#include "Python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *resume_program;

/* A command module's constructors run in _start; these entry points are
 * exported from the same module, so the pre-init run calls them itself
 * (once: a restored instance has them in its memory already). */
extern void __wasm_call_ctors(void);
/* wasi-libc: forget the preopened directories it found; the next path
 * operation asks the (new) instance for its own. */
extern void __wasilibc_reset_preopens(void);

__attribute__((export_name("mcpruntime_preinit")))
int mcpruntime_preinit(void)
{
    __wasm_call_ctors();
    const char *init = getenv("MCPRUNTIME_PREINIT");
    const char *resume = getenv("MCPRUNTIME_RESUME");
    if (init == NULL || resume == NULL) {
        fprintf(stderr, "preinit: MCPRUNTIME_PREINIT and MCPRUNTIME_RESUME must be set\n");
        return 2;
    }
    resume_program = strdup(resume);
    if (resume_program == NULL) {
        return 2;
    }

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.user_site_directory = 0; /* -s */
    config.write_bytecode = 0;      /* -B */
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, "python");
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "preinit: %s: %s\n", status.func ? status.func : "init",
                status.err_msg ? status.err_msg : "failed");
        return 3;
    }
    return PyRun_SimpleString(init) == 0 ? 0 : 1;
}

__attribute__((export_name("mcpruntime_resume")))
int mcpruntime_resume(void)
{
    if (resume_program == NULL || !Py_IsInitialized()) {
        fprintf(stderr, "resume: not a pre-initialized image\n");
        return 2;
    }
    /* The snapshot remembers the pre-init run's preopens; a session's
     * instance has its own (its workspace, its library mounts). */
    __wasilibc_reset_preopens();
    int rc = PyRun_SimpleString(resume_program) == 0 ? 0 : 1;
    fflush(stdout);
    fflush(stderr);
    return rc;
}
