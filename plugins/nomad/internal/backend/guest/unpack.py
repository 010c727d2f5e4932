# mcpruntime nomad file push, run through Nomad's alloc exec stream: reads
# a tar stream on stdin and unpacks it below ROOT (argv[1]). A member named
# .mcpruntime-delete lists (JSON) paths to remove first. With argv[2] "ro"
# the tree is made read-only afterwards (library mounts).
import json, os, shutil, stat, sys, tarfile

root = sys.argv[1]
ro = len(sys.argv) > 2 and sys.argv[2] == "ro"
os.makedirs(root, exist_ok=True)


def inside(rel):
    p = os.path.normpath(os.path.join(root, rel))
    return p if p.startswith(root.rstrip("/") + "/") else None


with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tf:
    for m in tf:
        if m.name == ".mcpruntime-delete":
            for rel in json.load(tf.extractfile(m)):
                p = inside(rel)
                if p is None:
                    continue
                try:
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    else:
                        os.unlink(p)
                except FileNotFoundError:
                    pass
            continue
        if not (m.isreg() or m.isdir()) or inside(m.name) is None:
            continue
        p = inside(m.name)
        if m.isreg() and os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif m.isdir() and os.path.lexists(p) and not os.path.isdir(p):
            os.unlink(p)
        try:
            tf.extract(m, root, filter="data")
        except TypeError:  # Python without extraction filters (< 3.11.4)
            tf.extract(m, root)
if ro:
    for d, dirs, files in os.walk(root):
        for f in files:
            os.chmod(os.path.join(d, f), 0o444)
        os.chmod(d, 0o555)
