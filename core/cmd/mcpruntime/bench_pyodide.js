// mcpruntime bench: Pyodide as a peer baseline. Reads {loop, json, k} on
// stdin, loads Pyodide once (timed), runs each program k times in-process
// and prints {load_ms, loop: [s...], json: [s...]} (seconds timed inside
// Python, as for the sandbox and native python3).
const { loadPyodide } = require(process.argv[2]);

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const req = JSON.parse(input);
  const t0 = performance.now();
  const py = await loadPyodide();
  const load_ms = performance.now() - t0;
  const run = (code) => {
    let out = "";
    py.setStdout({ batched: (s) => { out += s + "\n"; } });
    py.runPython(code);
    return parseFloat(out.trim().split(/\s+/).pop());
  };
  const res = { load_ms, loop: [], json: [] };
  for (let i = 0; i < req.k; i++) {
    res.loop.push(run(req.loop));
    res.json.push(run(req.json));
  }
  process.stdout.write(JSON.stringify(res));
}

main().catch((e) => { console.error(e); process.exit(1); });
