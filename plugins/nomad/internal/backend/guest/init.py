# mcpruntime nomad task init: process 1 of a session's allocation.
#
# It writes the kernel (from MCPRUNTIME_KERNEL_SOURCE) into the task's local
# directory, makes the kernel's channel there (two FIFOs, opened read-write
# so neither side ever sees end-of-file when a relay comes or goes), starts
# the kernel as its child and then only reaps and forwards signals:
#   SIGINT   -> the kernel (KeyboardInterrupt in the running cell)
#   SIGUSR1  -> kill every other process of the task but the kernel and the
#               relay (what timed-out code left running)
#   SIGTERM  -> kill everything and exit (Nomad's kill_signal for this task)
# It exits with the kernel's status when the kernel ends, which ends the
# task: the allocation is the kernel's lifetime.
import os, resource, signal, sys

local = os.environ.get("NOMAD_TASK_DIR", "/local")
d = os.path.join(local, "mcpruntime")
os.makedirs(d, exist_ok=True)
for sub in ("workspace", "lib"):
    os.makedirs(os.path.join(local, sub), exist_ok=True)
src = os.environ.pop("MCPRUNTIME_KERNEL_SOURCE")
boot = os.environ.pop("MCPRUNTIME_KERNEL_BOOT")
with open(os.path.join(d, "mcpruntime_kernel.py"), "w") as f:
    f.write(src)
for name in ("in", "out"):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        os.mkfifo(p, 0o600)
fin = os.open(os.path.join(d, "in"), os.O_RDWR)
fout = os.open(os.path.join(d, "out"), os.O_RDWR)
os.set_inheritable(fin, True)
os.set_inheritable(fout, True)
nproc = int(os.environ.pop("MCPRUNTIME_NPROC", "0") or 0)
if nproc > 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
env = dict(os.environ)
env["MCPRUNTIME_KERNEL_FDS"] = "%d,%d" % (fin, fout)
kernel = os.fork()
if kernel == 0:
    os.execve(sys.executable, [sys.executable, "-c", boot], env)
os.close(fin)
os.close(fout)


def relay_pid():
    try:
        with open(os.path.join(d, "relay.pid")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def others(keep):
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep and int(p) != me]


def kill_others(keep):
    # Stop first, so that a fork bomb cannot replace what is killed, then
    # kill; repeat until nothing is left (a process forked during a pass).
    for _ in range(100):
        pids = others(keep)
        if not pids:
            return
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass


def on_signal(sig, _frame):
    if sig == signal.SIGINT:
        try:
            os.kill(kernel, signal.SIGINT)
        except OSError:
            pass
    elif sig == signal.SIGUSR1:
        kill_others({kernel, relay_pid()})
    else:
        kill_others(set())
        os._exit(128 + signal.SIGTERM)


for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGTERM):
    signal.signal(s, on_signal)

while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        os._exit(1)
    except InterruptedError:
        continue
    if pid == kernel:
        code = os.waitstatus_to_exitcode(status)
        sys.stderr.write("mcpruntime-init: kernel ended (%d)\n" % code)
        kill_others(set())
        os._exit(128 - code if code < 0 else code)
