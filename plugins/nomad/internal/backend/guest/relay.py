# mcpruntime nomad channel relay, run through Nomad's alloc exec stream:
# copies the stream's stdin into the kernel's input FIFO and the kernel's
# output FIFO to the stream's stdout. A new relay (a restarted plugin)
# ends the previous one first, so that only one ever reads the kernel.
import os, signal, sys, threading

d = sys.argv[1]
pidfile = os.path.join(d, "relay.pid")
try:
    with open(pidfile) as f:
        old = int(f.read().strip() or 0)
    if old > 1 and old != os.getpid():
        os.kill(old, signal.SIGKILL)
except (OSError, ValueError):
    pass
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(pidfile + ".tmp", pidfile)
fin = os.open(os.path.join(d, "in"), os.O_WRONLY)
fout = os.open(os.path.join(d, "out"), os.O_RDONLY)


def write_all(fd, b):
    while b:
        n = os.write(fd, b)
        b = b[n:]


def up():
    try:
        while True:
            b = os.read(0, 1 << 16)
            if not b:
                break
            write_all(fin, b)
    finally:
        os._exit(0)


threading.Thread(target=up, daemon=True).start()
try:
    while True:
        b = os.read(fout, 1 << 16)
        if not b:
            break
        write_all(1, b)
finally:
    os._exit(0)
