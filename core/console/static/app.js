// mcpruntime console: a hash-routed single page over the public HTTP API.
// Everything a session or a model produced is put in the page as text
// (textContent), images as data: URLs, HTML outputs in sandboxed iframes;
// the page's CSP forbids inline script anyway.
'use strict';

const $main = () => document.getElementById('main');
let viewToken = 0; // bumped on every navigation: stale pollers stop

// el builds an element: el('td', {class: 'num'}, 'text', child, ...).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// put replaces node's children with kids (arrays flattened, empty
// values dropped, strings as text).
function put(node, ...kids) {
  node.replaceChildren(...kids.flat(Infinity).filter((k) => k !== undefined && k !== null && k !== false)
    .map((k) => (k instanceof Node ? k : document.createTextNode(String(k)))));
}

function svgEl(tag, attrs, ...kids) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function toast(msg, isError) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = isError ? 'error' : '';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, isError ? 8000 : 3000);
}

class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// api calls the HTTP API; the login cookie goes along (same origin).
async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401 && path !== '/v1/login') {
    location.hash = '#/login';
    throw new HTTPError(401, 'log in first');
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new HTTPError(resp.status, (data && data.error) || resp.statusText);
  return data;
}

const enc = encodeURIComponent;
const fmtMs = (ms) => ms >= 1000 ? (ms / 1000).toFixed(2) + ' s' : ms.toFixed(1) + ' ms';
function age(t) {
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.floor(s) + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}
const badge = (s) => el('span', { class: 'badge ' + s }, s);

// rendered marks a view as drawn, for the Performance API (the browser
// tests read these marks).
function rendered(name) {
  performance.mark('rendered:' + name);
  document.body.dataset.view = name;
}

// ---- rich outputs ------------------------------------------------------

// displayNode renders one mime bundle {data: {mime: value}}: images as
// data: URLs, HTML in a sandboxed iframe (no scripts, no same origin),
// the rest as text.
function displayNode(d) {
  const data = (d && d.data) || {};
  const box = el('div', { class: 'output' });
  for (const mime of ['image/png', 'image/jpeg', 'image/gif', 'image/svg+xml']) {
    if (data[mime]) {
      let b64 = data[mime];
      if (mime === 'image/svg+xml' && b64.trimStart().startsWith('<')) b64 = btoa(unescape(encodeURIComponent(b64)));
      box.append(el('img', { class: 'output', alt: data['text/plain'] || mime, src: 'data:' + mime + ';base64,' + b64 }));
      return box;
    }
  }
  if (data['text/html']) {
    const f = el('iframe', { class: 'html-output', sandbox: '', referrerpolicy: 'no-referrer', title: 'HTML output' });
    f.srcdoc = data['text/html'];
    box.append(f);
    return box;
  }
  const text = data['text/markdown'] || (data['application/json'] !== undefined ? JSON.stringify(data['application/json'], null, 2) : null) || data['text/plain'] || '';
  box.append(el('pre', { class: 'display-text' }, text));
  return box;
}

function hostCallsNode(calls) {
  if (!calls || !calls.length) return null;
  return el('div', { class: 'hostcalls' }, el('h3', {}, 'Host calls'),
    el('ul', {}, calls.filter(Boolean).map((c) => el('li', {}, el('code', {}, c.method), ' ', c.detail || '',
      c.duration ? ' (' + fmtMs(c.duration / 1e6) + ')' : '', c.error ? el('span', { class: 'fail' }, ' ' + c.error) : null))));
}

// ---- charts ------------------------------------------------------------

// timelineChart draws one bar per step: sandbox time, and LLM time where
// known (runs), stacked.
function timelineChart(bars, title) {
  const w = 720, h = 160, pad = 28;
  const max = Math.max(1, ...bars.map((b) => (b.sandbox || 0) + (b.llm || 0)));
  const bw = Math.max(1, (w - pad * 2) / Math.max(1, bars.length));
  const svg = svgEl('svg', { class: 'chart', width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': title });
  bars.forEach((b, i) => {
    const x = pad + i * bw;
    const hs = (h - pad * 2) * (b.sandbox || 0) / max;
    const hl = (h - pad * 2) * (b.llm || 0) / max;
    const r1 = svgEl('rect', { x, y: h - pad - hs, width: Math.max(1, bw - 1), height: Math.max(0.5, hs), class: b.failed ? 'failed' : 'sbx' });
    r1.append(svgEl('title', {}, `step ${b.label}: sandbox ${fmtMs(b.sandbox || 0)}`));
    svg.append(r1);
    if (hl > 0) {
      const r2 = svgEl('rect', { x, y: h - pad - hs - hl, width: Math.max(1, bw - 1), height: hl, class: 'llm' });
      r2.append(svgEl('title', {}, `step ${b.label}: model ${fmtMs(b.llm)}`));
      svg.append(r2);
    }
  });
  svg.append(svgEl('text', { x: pad, y: 14 }, `${title} — max ${fmtMs(max)}`));
  svg.append(svgEl('text', { x: pad, y: h - 8 }, '1'));
  svg.append(svgEl('text', { x: w - pad, y: h - 8, 'text-anchor': 'end' }, String(bars.length)));
  const legend = el('div', { class: 'legend muted' }, el('span', {}, el('span', { class: 'sw sbx' }), 'sandbox'),
    bars.some((b) => b.llm) ? el('span', {}, el('span', { class: 'sw llm' }), 'model') : null);
  return el('div', { class: 'timeline' }, svg, legend);
}

// ---- views ---------------------------------------------------------------

const views = {};

views.login = async (main) => {
  const input = el('input', { type: 'password', id: 'token', autocomplete: 'current-password', placeholder: 'server.token' });
  const form = el('form', { class: 'panel login', id: 'login-form' },
    el('h1', {}, 'Log in'), el('p', { class: 'muted' }, 'This server needs its token (server.token in runtime.hcl).'),
    el('div', { class: 'row' }, input, el('button', { class: 'primary', type: 'submit' }, 'Log in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', '/v1/login', { token: input.value });
      location.hash = '#/sessions';
    } catch (e) { toast(e.message, true); }
  });
  put(main, form);
  rendered('login');
};

views.sessions = async (main) => {
  const [live, recorded] = await Promise.all([api('GET', '/v1/sessions'), api('GET', '/v1/replay').catch(() => [])]);
  const backend = el('input', { type: 'text', id: 'new-backend', placeholder: 'backend (default)' });
  const create = el('button', { class: 'primary', id: 'new-session', onclick: async () => {
    try {
      const s = await api('POST', '/v1/sessions', backend.value ? { backend: backend.value } : {});
      location.hash = '#/session/' + enc(s.id);
    } catch (e) { toast(e.message, true); }
  } }, 'New session');
  const liveIds = new Set(live.map((s) => s.id));
  const ended = recorded.filter((r) => !liveIds.has(r.session));
  const tbody = el('tbody', { id: 'live-sessions' });
  for (const s of live) {
    tbody.append(el('tr', { 'data-session': s.id },
      el('td', {}, el('a', { href: '#/session/' + enc(s.id) }, s.id)), el('td', {}, s.backend), el('td', {}, age(s.created)),
      el('td', {}, badge(s.state)), el('td', { class: 'num' }, s.execs),
      el('td', {}, el('button', { class: 'danger', onclick: async () => {
        try { await api('DELETE', '/v1/sessions/' + enc(s.id)); route(); } catch (e) { toast(e.message, true); }
      } }, 'End'))));
  }
  put(main, el('h1', {}, 'Sessions'), el('div', { class: 'row' }, backend, create),
    el('table', {}, el('thead', {}, el('tr', {}, ['id', 'backend', 'age', 'state', 'execs', ''].map((h) => el('th', {}, h)))), tbody),
    live.length ? null : el('p', { class: 'muted' }, 'No live sessions.'),
    el('h2', {}, `Recorded sessions (${ended.length} ended)`), recordedTable(ended));
  rendered('sessions');
};

function recordedTable(list) {
  const tbody = el('tbody', { id: 'recorded-sessions' });
  const frag = document.createDocumentFragment();
  for (const r of list.slice().reverse()) {
    frag.append(el('tr', {},
      el('td', {}, el('a', { href: '#/replay/' + enc(r.session) }, r.session)), el('td', {}, r.backend),
      el('td', { class: 'num' }, r.steps), el('td', { class: 'num' }, r.failed),
      el('td', {}, r.last ? age(r.last) : ''), el('td', { class: 'muted' }, r.task || ''),
      el('td', { class: 'muted' }, r.resumed_from ? `${r.resumed_from.fork ? 'forked' : 'resumed'} from ${r.resumed_from.session} step ${r.resumed_from.step}` : '')));
  }
  tbody.append(frag);
  return el('table', {}, el('thead', {}, el('tr', {}, ['session', 'backend', 'steps', 'failed', 'last', 'task', 'from'].map((h) => el('th', {}, h)))), tbody);
}

views.session = async (main, id) => {
  const code = el('textarea', { id: 'code', spellcheck: 'false', placeholder: 'Python code; Ctrl+Enter runs it' });
  const out = el('pre', { id: 'out', class: 'stream' });
  const outputs = el('div', { id: 'outputs' });
  const result = el('div', { id: 'result', class: 'muted' });
  const state = el('div', { id: 'state' });
  const run = el('button', { class: 'primary', id: 'run' }, 'Run');
  const token = viewToken;
  // refreshState shows the latest step's variables and files; the
  // variables are saved just after a step ends, so a missing save is
  // asked for again a few times.
  async function refreshState(retries = 0) {
    try {
      const st = await api('GET', '/v1/sessions/' + enc(id) + '/state');
      if (token !== viewToken) return;
      if (!st.variables && retries > 0) { setTimeout(() => refreshState(retries - 1), 250); }
      const vars = (st.variables && st.variables.saved) || [];
      put(state, el('h2', {}, `Variables (after step ${st.step})`),
        el('p', { id: 'variables' }, vars.length ? vars.map((v) => el('code', { class: 'var' }, v, ' ')) : el('span', { class: 'muted' }, 'none saved')),
        el('h2', {}, 'Workspace files'),
        el('table', { id: 'files' }, el('tbody', {}, st.files.filter((f) => f.type !== 'dir').map((f) =>
          el('tr', {}, el('td', {}, f.path), el('td', { class: 'num' }, f.size || 0))))),
        st.files.some((f) => f.type !== 'dir') ? null : el('p', { class: 'muted' }, 'none'),
        ...(st.problems || []).map((p) => el('p', { class: 'muted' }, p)));
    } catch (e) {
      if (token === viewToken) put(state, el('p', { class: 'muted' }, 'No recorded steps yet.'));
    }
  }
  async function exec() {
    run.disabled = true;
    put(out);
    put(outputs);
    result.textContent = 'running…';
    const t0 = performance.now();
    try {
      const resp = await fetch('/v1/sessions/' + enc(id) + '/execute', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/x-ndjson' },
        body: JSON.stringify({ code: code.value }),
      });
      if (!resp.ok) {
        const e = await resp.json().catch(() => ({}));
        throw new Error(e.error || resp.statusText);
      }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) onEvent(JSON.parse(line));
        }
      }
    } catch (e) {
      put(result, el('span', { class: 'fail' }, 'error: ' + e.message));
    } finally {
      run.disabled = false;
      refreshState(20);
    }
    function onEvent(ev) {
      switch (ev.type) {
        case 'stdout': out.append(el('span', { class: 'stdout' }, ev.data)); break;
        case 'stderr': out.append(el('span', { class: 'stderr' }, ev.data)); break;
        case 'display': outputs.append(displayNode(ev.display)); break;
        case 'host_call': out.append(el('span', { class: 'muted' }, `[${ev.host_call.method}] ${ev.host_call.detail || ''}\n`)); break;
        case 'error': put(result, el('span', { class: 'fail' }, 'error: ' + ev.error)); break;
        case 'result': {
          const r = ev.result;
          const ok = r.exit_code === 0 && !r.error;
          put(result, el('span', { class: ok ? 'ok' : 'fail', id: 'exit' }, `exit ${r.exit_code}`),
            ` · ${fmtMs(r.duration / 1e6)} · wall ${fmtMs(performance.now() - t0)}`, r.message ? el('span', { class: 'fail' }, ' · ' + r.message) : null);
          break;
        }
      }
    }
  }
  run.addEventListener('click', exec);
  code.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); exec(); } });
  put(main, el('h1', {}, 'Session ', el('code', { id: 'session-id' }, id)),
    el('div', { class: 'row' }, el('a', { href: '#/replay/' + enc(id) }, 'Replay timeline')),
    el('div', { class: 'cols' }, el('div', {}, state), el('div', {}, code, el('div', { class: 'row' }, run, result), out, outputs)));
  await refreshState();
  rendered('session');
};

views.runs = async (main) => {
  const runs = await api('GET', '/v1/runs');
  const task = el('textarea', { id: 'task', placeholder: 'Task for the agent' });
  const backend = el('input', { type: 'text', id: 'run-backend', placeholder: 'backend (default)' });
  const start = el('button', { class: 'primary', id: 'start-run', onclick: async () => {
    try {
      const body = { task: task.value };
      if (backend.value) body.backend = backend.value;
      const r = await api('POST', '/v1/runs', body);
      location.hash = '#/run/' + enc(r.id);
    } catch (e) { toast(e.message, true); }
  } }, 'Start run');
  const tbody = el('tbody', { id: 'runs' });
  for (const r of runs.slice().reverse()) {
    tbody.append(el('tr', {}, el('td', {}, el('a', { href: '#/run/' + enc(r.id) }, r.id)), el('td', {}, badge(r.status)),
      el('td', {}, r.task), el('td', {}, r.session ? el('a', { href: '#/replay/' + enc(r.session) }, r.session) : ''), el('td', {}, age(r.started))));
  }
  put(main, el('h1', {}, 'Agent runs'), task, el('div', { class: 'row' }, backend, start),
    el('table', {}, el('thead', {}, el('tr', {}, ['run', 'status', 'task', 'session', 'started'].map((h) => el('th', {}, h)))), tbody));
  rendered('runs');
};

// stepCard shows one run step; recorded is its replay entry (host calls,
// rich outputs as bundles), when found.
function stepCard(s, recorded, session) {
  const outs = el('div', { class: 'step-outputs' });
  const same = recorded && recorded.code === s.code;
  if (same && recorded.outputs && recorded.outputs.length) {
    api('GET', `/v1/replay/${enc(session)}/steps/${recorded.step}/outputs`).then((list) => put(outs, list.map(displayNode)), () => null);
  } else {
    put(outs, (s.outputs || []).map((o) => el('pre', { class: 'display-text' }, o.text || (o.mime_types || []).join(', '))));
  }
  const ok = s.result ? s.result.exit_code === 0 && !s.result.error : !s.error;
  return el('div', { class: 'card step-card', 'data-step': s.step },
    el('h3', {}, `Step ${s.step}`, s.turn ? ` · turn ${s.turn}` : '', ' · ', el('span', { class: ok ? 'ok' : 'fail' }, ok ? 'ok' : 'failed'),
      s.duration_ns ? ' · ' + fmtMs(s.duration_ns / 1e6) : '', s.skill ? ' · skill: ' + s.skill : ''),
    s.reply ? el('details', {}, el('summary', {}, 'Model reply'), el('pre', { class: 'reply' }, s.reply)) : null,
    el('pre', { class: 'code' }, s.code),
    s.stdout ? el('pre', { class: 'stdout' }, s.stdout) : null,
    s.stderr ? el('pre', { class: 'stderr' }, s.stderr) : null,
    s.error ? el('p', { class: 'fail' }, s.error) : null,
    hostCallsNode(same ? recorded.host_calls : null), outs);
}

views.run = async (main, id) => {
  const token = viewToken;
  const head = el('div', {});
  const chart = el('div', {});
  const list = el('div', { id: 'run-steps' });
  let shown = 0;
  put(main, el('h1', {}, 'Run ', el('code', {}, id)), head, chart, list);
  async function poll() {
    if (token !== viewToken) return;
    let r;
    try { r = await api('GET', '/v1/runs/' + enc(id)); } catch (e) { toast(e.message, true); return; }
    if (token !== viewToken) return;
    // The replay log times each step's end; the time between the end of
    // one step (or the run's start) and the start of the next is the
    // model's (and the loop's) time.
    const rec = r.session ? await api('GET', '/v1/replay/' + enc(r.session)).catch(() => null) : null;
    if (token !== viewToken) return;
    const steps = r.steps || [];
    // Everything is drawn at once, after the last request: the status
    // never says done above steps not yet shown.
    put(head, el('p', {}, badge(r.status), ' ', el('span', { id: 'run-status' }, r.status), ' · ', r.task,
      r.session ? [' · session ', el('a', { href: '#/replay/' + enc(r.session), id: 'run-replay' }, r.session)] : null),
    el('div', { class: 'row' },
      r.status === 'running' ? el('button', { class: 'danger', id: 'cancel-run', onclick: () => api('DELETE', '/v1/runs/' + enc(id)).then(poll, (e) => toast(e.message, true)) }, 'Cancel') : null,
      ['interrupted', 'failed', 'cancelled'].includes(r.status) ? el('button', { id: 'resume-run', onclick: () => api('POST', '/v1/runs/' + enc(id) + '/resume', {}).then(poll, (e) => toast(e.message, true)) }, 'Resume') : null),
    r.result && r.result.answer ? el('div', { class: 'card' }, el('h3', {}, 'Answer'), el('pre', { id: 'answer' }, r.result.answer)) : null,
    r.error ? el('p', { class: 'fail' }, r.error) : null);
    const started = new Date(r.started).getTime();
    const mine = ((rec && rec.steps) || []).filter((e) => e.step > 0 && new Date(e.time).getTime() >= started);
    let prevEnd = started;
    const bars = mine.map((e) => {
      const end = new Date(e.time).getTime();
      const bar = { label: e.step, sandbox: e.duration_ms, llm: Math.max(0, end - e.duration_ms - prevEnd), failed: !e.ok };
      prevEnd = end;
      return bar;
    });
    put(chart, bars.length ? timelineChart(bars, 'Step time: model vs sandbox') : null);
    // Host calls (ask_llm, MCP tools) are in the step's replay entry.
    for (; shown < steps.length; shown++) list.append(stepCard(steps[shown], mine[shown], r.session));
    rendered('run');
    if (r.status === 'running') setTimeout(poll, 300);
  }
  await poll();
};

views.replay = async (main, id, stepText) => {
  if (!id) {
    const list = await api('GET', '/v1/replay');
    put(main, el('h1', {}, `Recorded sessions (${list.length})`), recordedTable(list));
    rendered('replay-list');
    return;
  }
  const data = await api('GET', '/v1/replay/' + enc(id));
  const steps = data.steps;
  const detail = el('div', { id: 'step-detail' });
  const listBox = el('div', { class: 'steps panel', id: 'timeline' });
  const max = Math.max(1, ...steps.map((s) => s.duration_ms));
  const frag = document.createDocumentFragment();
  for (const s of steps) {
    const bar = el('div', { class: 'bar' + (s.ok || s.step === 0 ? '' : ' failed') });
    bar.style.width = Math.round(120 * s.duration_ms / max) + 'px';
    frag.append(el('div', { class: 'step', 'data-step': s.step, onclick: () => { location.hash = `#/replay/${enc(id)}/${s.step}`; } },
      el('span', { class: 'num' }, s.step), bar, el('span', { class: 'muted' }, s.step === 0 && s.resumed_from ? `${s.resumed_from.fork ? 'forked' : 'resumed'} from ${s.resumed_from.session}` : fmtMs(s.duration_ms)),
      el('span', { class: 'muted' }, (s.code || '').split('\n')[0].slice(0, 40))));
  }
  listBox.append(frag);
  const real = steps.filter((s) => s.step > 0);
  put(main, el('h1', {}, 'Replay ', el('code', {}, id)),
    el('p', { class: 'muted' }, `${data.total} steps`, steps[0] && steps[0].task ? ' · task: ' + steps[0].task : ''),
    real.length ? timelineChart(real.map((s) => ({ label: s.step, sandbox: s.duration_ms, failed: !s.ok })), 'Step durations') : null,
    el('div', { class: 'cols' }, listBox, detail));
  const want = stepText !== undefined ? Number(stepText) : (real[0] ? real[0].step : 0);
  const sel = steps.find((s) => s.step === want) || steps[0];
  if (sel) {
    for (const n of listBox.querySelectorAll('.step')) n.classList.toggle('sel', Number(n.dataset.step) === sel.step);
    await showStep(detail, id, sel);
  }
  rendered('replay');
};

async function showStep(box, id, s) {
  const token = viewToken;
  const branch = (kind) => async () => {
    try {
      const rep = await api('POST', `/v1/replay/${enc(id)}/${kind}`, { step: s.step });
      toast(`${kind === 'fork' ? 'Forked' : 'Resumed'} as ${rep.session} (state: ${rep.state_source})`);
      location.hash = '#/session/' + enc(rep.session);
    } catch (e) { toast(e.message, true); }
  };
  const diffBox = el('div', { id: 'diff', class: 'diff' }, el('p', { class: 'muted' }, 'Loading the workspace diff…'));
  const outBox = el('div', { id: 'step-outputs' });
  put(box, el('div', { class: 'card' },
    el('h3', {}, `Step ${s.step}`, ' · ', el('span', { class: s.ok ? 'ok' : 'fail' }, s.ok ? 'ok' : `failed (exit ${s.exit})`), ` · ${fmtMs(s.duration_ms)} · ${s.backend}`),
    el('div', { class: 'row' },
      el('button', { class: 'primary', id: 'fork', onclick: branch('fork') }, 'Fork from here'),
      el('button', { id: 'resume', onclick: branch('resume') }, 'Resume from here')),
    s.task ? el('p', { class: 'muted' }, 'task: ' + s.task) : null,
    s.code ? el('pre', { class: 'code' }, s.code) : null,
    s.stdout ? el('pre', { class: 'stdout' }, s.stdout) : null,
    s.stderr ? el('pre', { class: 'stderr' }, s.stderr) : null,
    s.error ? el('p', { class: 'fail' }, s.error) : null,
    hostCallsNode(s.host_calls), outBox),
  el('div', { class: 'card' }, el('h3', {}, 'Workspace diff'), diffBox));
  const [diff, outs] = await Promise.all([
    api('GET', `/v1/replay/${enc(id)}/steps/${s.step}/diff`).catch((e) => ({ error: e.message })),
    s.outputs && s.outputs.length ? api('GET', `/v1/replay/${enc(id)}/steps/${s.step}/outputs`).catch(() => []) : [],
  ]);
  if (token !== viewToken) return;
  put(outBox, ...outs.map(displayNode));
  if (diff.error) { put(diffBox, el('p', { class: 'fail' }, diff.error)); return; }
  const section = (label, kind, files) => files.map((f) => el('div', { class: 'file ' + kind, 'data-path': f.path },
    el('p', {}, el('strong', {}, label + ' '), el('code', {}, f.path), el('span', { class: 'muted' }, ` ${f.size} bytes`)),
    f.diff ? diffPre(f.diff) : (f.binary ? el('p', { class: 'muted' }, 'binary or large: no text diff') : null)));
  const n = diff.added.length + diff.removed.length + diff.changed.length;
  put(diffBox, el('p', { class: 'muted' }, n ? `against step ${diff.from}: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed` : `no change against step ${diff.from}`),
    ...section('added', 'added', diff.added), ...section('removed', 'removed', diff.removed), ...section('changed', 'changed', diff.changed));
}

function diffPre(text) {
  const pre = el('pre', {});
  for (const line of text.split('\n')) {
    const cls = line.startsWith('@@') ? 'hunk' : line.startsWith('+') && !line.startsWith('+++') ? 'add' : line.startsWith('-') && !line.startsWith('---') ? 'del' : '';
    pre.append(el('span', { class: cls }, line + '\n'));
  }
  return pre;
}

views.skills = async (main) => {
  const list = await api('GET', '/v1/skills');
  put(main, el('h1', {}, `Skills (${list.length})`),
    list.length ? null : el('p', { class: 'muted' }, 'No skills saved yet: agent runs save working functions as skills.'),
    el('div', { id: 'skills' }, list.map((s) => el('div', { class: 'card skill', 'data-skill': s.name },
      el('h3', {}, el('code', {}, s.name + (s.signature || '').replace(/^run/, '')), s.version ? ` · v${s.version}` : ''),
      el('p', {}, s.description),
      s.source_task ? el('p', { class: 'muted' }, 'from task: ' + s.source_task) : null,
      el('details', {}, el('summary', {}, 'Source'), el('pre', {}, s.source || s.error || '')),
      el('button', { class: 'danger delete-skill', onclick: async () => {
        try { await api('DELETE', '/v1/skills/' + enc(s.name)); toast('Deleted ' + s.name); route(); } catch (e) { toast(e.message, true); }
      } }, 'Delete')))));
  rendered('skills');
};

views.backends = async (main) => {
  const plugins = await api('GET', '/v1/backends');
  const doctorBox = el('div', { id: 'doctor' });
  const run = el('button', { id: 'run-doctor', onclick: async () => {
    run.disabled = true;
    put(doctorBox, el('p', { class: 'muted' }, 'Running doctor (starts every backend)…'));
    try {
      const checks = await api('GET', '/v1/doctor');
      put(doctorBox, el('table', {}, el('tbody', {}, checks.map((c) => el('tr', {},
        el('td', { class: c.ok ? (c.warn ? '' : 'ok') : 'fail' }, c.ok ? (c.warn ? 'warn' : 'ok') : 'FAIL'), el('td', {}, c.name), el('td', {}, c.info, c.fix && (!c.ok || c.warn) ? el('div', { class: 'muted' }, 'fix: ' + c.fix) : null))))));
    } catch (e) { put(doctorBox, el('p', { class: 'fail' }, e.message)); }
    run.disabled = false;
  } }, 'Run doctor');
  put(main, el('h1', {}, 'Backends'),
    el('table', { id: 'plugins' }, el('thead', {}, el('tr', {}, ['name', 'version', 'protocol', 'isolation', 'snapshots', 'libraries', 'path'].map((h) => el('th', {}, h)))),
      el('tbody', {}, plugins.map((p) => {
        const caps = (p.info && p.info.capabilities) || {};
        return el('tr', {}, el('td', {}, p.name, p.default ? ' (default)' : ''), el('td', {}, p.info ? p.info.version : el('span', { class: 'fail' }, 'BROKEN')),
          el('td', {}, p.protocol || ''), el('td', {}, caps.isolation || ''), el('td', {}, caps.snapshots ? 'yes' : 'no'),
          el('td', { class: 'muted' }, (caps.libraries || []).join(', ')), el('td', { class: 'muted' }, p.path, p.error ? el('div', { class: 'fail' }, p.error) : null));
      }))),
    el('h2', {}, 'Doctor'), el('div', { class: 'row' }, run), doctorBox);
  rendered('backends');
};

// views.bench charts `mcpruntime bench --json` files the user picks (read
// in the page, sent nowhere): per backend, each operation's median and
// p90 on a log scale, with its ratio to the baseline.
views.bench = async (main) => {
  const charts = el('div', { id: 'bench-charts' });
  const input = el('input', { type: 'file', id: 'bench-file', accept: '.json,application/json', multiple: true });
  input.addEventListener('change', async () => {
    const runs = [];
    for (const f of input.files) {
      try {
        const v = JSON.parse(await f.text());
        for (const r of Array.isArray(v) ? v : [v]) if (r && Array.isArray(r.results)) runs.push(r);
      } catch (e) { toast(f.name + ': ' + e.message, true); }
    }
    put(charts, runs.map(benchChart));
    rendered('bench-chart');
  });
  put(main, el('h1', {}, 'Benchmarks'),
    el('p', { class: 'muted' }, 'Pick the output of ', el('code', {}, 'mcpruntime bench --json'), ' (one file per backend, or several at once) to chart it.'),
    el('div', { class: 'row' }, input), charts);
  rendered('bench');
};

function benchChart(run) {
  const rows = run.results;
  const w = 1000, left = 260, rowH = 22, h = rows.length * rowH + 40;
  const max = Math.max(1, ...rows.map((r) => r.p90_ms || r.median_ms || 0));
  const lo = Math.log10(0.1), hi = Math.log10(max * 1.2);
  const x = (ms) => left + (w - left - 260) * (Math.log10(Math.max(0.1, ms)) - lo) / (hi - lo); // labels to the right
  const svg = svgEl('svg', { class: 'chart bench', width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': 'bench ' + (run.backend || '') });
  rows.forEach((r, i) => {
    const y = 24 + i * rowH;
    svg.append(svgEl('text', { x: left - 8, y: y + 12, 'text-anchor': 'end' }, r.name));
    const bar = svgEl('rect', { x: left, y: y + 2, width: Math.max(1, x(r.median_ms) - left), height: rowH - 8, class: 'sbx' });
    bar.append(svgEl('title', {}, `${r.name}: median ${fmtMs(r.median_ms)}, p90 ${fmtMs(r.p90_ms || r.median_ms)} (n=${r.n})`));
    svg.append(bar);
    if (r.p90_ms) svg.append(svgEl('rect', { x: x(r.p90_ms) - 1, y: y, width: 2, height: rowH - 4, class: 'llm' }));
    svg.append(svgEl('text', { x: x(r.p90_ms || r.median_ms) + 6, y: y + 12 }, fmtMs(r.median_ms) + (r.ratio ? ` · ${r.ratio.toFixed(2)}× ${r.baseline}` : '')));
  });
  svg.append(svgEl('text', { x: left, y: 14 }, `${run.backend || 'bench'} — median (bar) and p90 (mark), log scale`));
  return el('div', { class: 'card bench-run', 'data-backend': run.backend || '' }, svg);
}

// ---- routing -----------------------------------------------------------

async function route() {
  viewToken++;
  const parts = (location.hash.replace(/^#\/?/, '') || 'sessions').split('/').map(decodeURIComponent);
  const name = parts[0];
  const nav = { session: 'sessions', run: 'runs' }[name] || name;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
  const view = views[name] || views.sessions;
  const main = $main();
  try {
    await view(main, ...parts.slice(1));
  } catch (e) {
    if (e.status !== 401) put(main, el('p', { class: 'fail', id: 'view-error' }, e.message));
  }
}

async function start() {
  const logout = document.getElementById('logout');
  logout.addEventListener('click', async () => { await api('POST', '/v1/logout', {}).catch(() => null); location.hash = '#/login'; });
  try {
    const who = await api('GET', '/v1/login');
    logout.hidden = !who.token_required;
  } catch (e) { /* 401: api() went to the login form */ }
  window.addEventListener('hashchange', route);
  route();
}

start();
