// An MCP client built on the official TypeScript SDK, driven by the Go
// tests: node client.mjs SCENARIO, with
//   MCP_SDK      the SDK package dir (deps/npm/node_modules/@modelcontextprotocol/sdk)
//   MCP_COMMAND  a JSON array: the stdio server to start, or
//   MCP_URL      a streamable HTTP endpoint, with MCP_TOKEN its bearer token
//   MCP_ARGS     scenario arguments (JSON)
// It prints one JSON object with what it saw; the Go test asserts on it.
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const sdk = process.env.MCP_SDK;
const load = (p) => import(pathToFileURL(path.join(sdk, 'dist/esm', p)).href);
const { Client } = await load('client/index.js');
const { StdioClientTransport } = await load('client/stdio.js');
const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
const { CreateMessageRequestSchema } = await load('types.js');

const scenario = process.argv[2];
const args = JSON.parse(process.env.MCP_ARGS || '{}');

function transport() {
  if (process.env.MCP_COMMAND) {
    const [command, ...rest] = JSON.parse(process.env.MCP_COMMAND);
    return new StdioClientTransport({ command, args: rest, stderr: 'inherit' });
  }
  const headers = process.env.MCP_TOKEN ? { Authorization: `Bearer ${process.env.MCP_TOKEN}` } : {};
  return new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), { requestInit: { headers } });
}

const capabilities = scenario === 'sampling' ? { sampling: {} } : {};
const client = new Client({ name: 'mcpruntime-test', version: '1.0.0' }, { capabilities });
const sampled = [];
if (scenario === 'sampling') {
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    const text = req.params.messages[0].content.text;
    sampled.push({ text, maxTokens: req.params.maxTokens, system: req.params.systemPrompt ?? null });
    return { role: 'assistant', content: { type: 'text', text: `sampled(${text})` }, model: 'test-model' };
  });
}
await client.connect(transport());

const call = (name, a, opts) => client.callTool({ name, arguments: a }, undefined, opts);
const out = { server: client.getServerVersion() };
const t0 = Date.now();
try {
  switch (scenario) {
    case 'tools': {
      const { tools } = await client.listTools();
      out.tools = tools.map((t) => ({ name: t.name, outputSchema: t.outputSchema ?? null, annotations: t.annotations ?? null }));
      // callTool validates structuredContent against the outputSchema.
      out.exec = (await call('execute_python', { code: args.code, session_id: args.session })).structuredContent;
      out.list = (await call('list_sessions', {})).structuredContent;
      out.skills = (await call('list_skills', {})).structuredContent;
      break;
    }
    case 'exec': {
      const r = await call('execute_python', { code: args.code, session_id: args.session });
      out.exec = r.structuredContent;
      out.text = r.content.map((c) => c.text).join('');
      out.isError = !!r.isError;
      break;
    }
    case 'progress': {
      const notes = [];
      const r = await call('execute_python', { code: args.code }, {
        timeout: args.timeout, resetTimeoutOnProgress: true,
        onprogress: (p) => notes.push({ t: Date.now() - t0, progress: p.progress, message: p.message ?? '' }),
      });
      out.exec = r.structuredContent;
      out.notes = notes;
      break;
    }
    case 'concurrent': {
      const n = args.n;
      const started = Date.now();
      const cells = [];
      for (let i = 0; i < n; i++) {
        cells.push(call('execute_python', { code: args.code, session_id: `busy${i}` }, { timeout: 120000 })
          .then((r) => ({ ok: !r.isError, at: Date.now() - started, out: r.structuredContent.stdout })));
      }
      // Wait until every cell runs (each prints "started" first).
      let busy = 0;
      for (let i = 0; i < 400 && busy < n; i++) {
        const p0 = Date.now();
        const r = await call('list_sessions', {});
        if (i === 0) out.firstListMs = Date.now() - p0;
        busy = r.structuredContent.sessions.filter((s) => s.id.startsWith('busy') && s.execs >= 0).length;
        if (busy < n) await new Promise((res) => setTimeout(res, 50));
      }
      const q0 = Date.now();
      const list = await call('list_sessions', {});
      out.listMs = Date.now() - q0;
      out.listAt = q0 - started;
      out.listed = list.structuredContent.sessions.length;
      out.cells = await Promise.all(cells);
      out.totalMs = Date.now() - started;
      break;
    }
    case 'sampling': {
      const r = await call('execute_python', { code: args.code });
      out.exec = r.structuredContent;
      out.sampled = sampled;
      break;
    }
    case 'cancel': {
      // Abort a long cell, then use its session again.
      const ac = new AbortController();
      const long = call('execute_python', { code: 'import time\nprint("go", flush=True)\ntime.sleep(30)', session_id: args.session },
        { signal: ac.signal, onprogress: () => ac.abort() }).then(() => 'finished', (e) => `aborted: ${e}`);
      out.long = await long;
      const a0 = Date.now();
      const r = await call('execute_python', { code: 'print("after")', session_id: args.session });
      out.afterMs = Date.now() - a0;
      out.exec = r.structuredContent;
      break;
    }
    case 'restart': {
      // A session, the daemon stopped under the client, the session again.
      out.before = (await call('execute_python', { code: args.code, session_id: args.session })).structuredContent;
      execFileSync(args.stop[0], args.stop.slice(1), { stdio: 'ignore' });
      out.after = (await call('execute_python', { code: args.next, session_id: args.session })).structuredContent;
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
}
await client.close();
process.stdout.write(JSON.stringify(out) + '\n');
