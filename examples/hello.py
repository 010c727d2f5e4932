# The smallest mcpruntime job: run with `./bin/mcpruntime exec examples/hello.py`.
import json
import platform
import statistics

data = [3, 1, 4, 1, 5, 9, 2, 6]
print("hello from", platform.python_implementation(), platform.python_version(), "on", platform.system() or "wasi")
print(json.dumps({"mean": statistics.mean(data), "median": statistics.median(data)}))

with open("hello.txt", "w") as f:  # lands in the session workspace
    f.write("written inside the sandbox\n")
print("wrote", f.name, "in", __import__("os").getcwd())
