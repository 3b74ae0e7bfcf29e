/**
 * The live cluster page (GET /): plain HTML and JS, no build. It polls GET /cluster/state and
 * sends commands through POST /chargers/:identity/calls/:action. Every value from the cluster is
 * written with textContent, never as HTML: identities and payloads come from charge points.
 */
export const CLUSTER_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>OCPP cluster</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .muted { color: #aab; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  section { background: #fff; border-radius: 8px; padding: 12px 16px; box-shadow: 0 1px 2px #0002; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  #nodes { display: flex; flex-wrap: wrap; gap: 12px; }
  .node { border: 1px solid #dde; border-radius: 8px; padding: 10px 12px; min-width: 260px; }
  .node h3 { margin: 0 0 4px; font-size: 14px; display: flex; justify-content: space-between; gap: 8px; }
  .badge { border-radius: 10px; padding: 0 8px; font-size: 12px; color: #fff; }
  .up { background: #1a7f37; } .degraded { background: #bf8700; } .down, .stale { background: #cf222e; } .unknown { background: #6e7781; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
  .small { font-size: 12px; color: #57606a; }
  form { display: grid; grid-template-columns: repeat(4, auto) 1fr auto; gap: 8px; align-items: end; }
  label { display: grid; gap: 2px; font-size: 12px; color: #57606a; }
  input, textarea, button { font: inherit; padding: 4px 6px; }
  textarea { min-height: 32px; }
  pre { background: #f6f8fa; padding: 8px; border-radius: 6px; margin: 8px 0 0; white-space: pre-wrap; }
  .ok { color: #1a7f37; } .err { color: #cf222e; }
</style>
</head>
<body>
<header><h1>OCPP cluster</h1><span class="muted">viewed from node <b id="self">…</b></span><span class="muted" id="updated"></span>
  <label style="margin-left:auto;color:#aab">control token <input id="token" type="password" size="16" placeholder="CONTROL_TOKEN"></label></header>
<main>
  <section><h2>Nodes</h2><div id="nodes"></div><p class="small" id="state-error"></p></section>
  <section><h2>Send a command</h2>
    <form id="send">
      <label>charger <input id="identity" list="identities" required size="14"></label>
      <datalist id="identities"></datalist>
      <label>action <input id="action" value="Reset" required size="16"></label>
      <label>timeout ms <input id="timeout" value="10000" size="6"></label>
      <label>protocol <input id="protocol" placeholder="any" size="8"></label>
      <label>payload (JSON) <textarea id="payload">{"type":"Soft"}</textarea></label>
      <button type="submit">Send</button>
    </form>
    <pre id="reply">no command sent yet</pre>
  </section>
  <section><h2>Recent commands</h2>
    <table id="commands"><thead><tr><th>time</th><th>via node</th><th>charger</th><th>action</th><th>outcome</th><th>HTTP</th><th>latency</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
"use strict";
const STALE_MS = 5000;
const tokenInput = document.getElementById('token');
tokenInput.value = sessionStorage.getItem('controlToken') || '';
tokenInput.addEventListener('change', () => sessionStorage.setItem('controlToken', tokenInput.value));
function headers(extra) {
  const h = Object.assign({}, extra);
  if (tokenInput.value) h.authorization = 'Bearer ' + tokenInput.value;
  return h;
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function ago(ms) { return ms < 1000 ? 'just now' : Math.round(ms / 1000) + ' s ago'; }
function render(state) {
  document.getElementById('self').textContent = state.self;
  document.getElementById('updated').textContent = 'updated ' + new Date(state.now).toLocaleTimeString();
  const byNode = new Map();
  for (const node of state.nodes) byNode.set(node.nodeId, { status: node, chargers: [] });
  for (const charger of state.chargers) {
    if (!byNode.has(charger.nodeId)) byNode.set(charger.nodeId, { status: null, chargers: [] });
    byNode.get(charger.nodeId).chargers.push(charger);
  }
  const nodes = document.getElementById('nodes');
  nodes.replaceChildren();
  for (const [nodeId, entry] of [...byNode.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const seen = entry.status ? state.now - entry.status.at : null;
    const status = entry.status === null ? 'unknown' : seen > STALE_MS ? 'stale' : entry.status.status;
    const perProtocol = {};
    for (const charger of entry.chargers) perProtocol[charger.protocol] = (perProtocol[charger.protocol] || 0) + 1;
    const summary = Object.entries(perProtocol).map(([p, n]) => p + ': ' + n).join(', ') || 'no chargers';
    const rows = entry.chargers.sort((a, b) => a.identity.localeCompare(b.identity)).map((charger) =>
      el('tr', { 'data-charger': charger.identity }, el('td', {}, charger.identity), el('td', {}, charger.protocol), el('td', { class: 'small' }, new Date(charger.connectedAt).toLocaleTimeString())));
    nodes.append(el('div', { class: 'node', 'data-node': nodeId, 'data-status': status },
      el('h3', {}, el('span', {}, nodeId, nodeId === state.self ? ' (this node)' : ''), el('span', { class: 'badge ' + status }, status)),
      el('div', { class: 'small' }, (seen === null ? 'no status written' : 'status ' + ago(seen)) + (entry.status && entry.status.reason ? ' — ' + entry.status.reason : '')),
      el('div', { class: 'small protocols' }, summary),
      el('table', {}, el('tbody', {}, ...rows))));
  }
  const list = document.getElementById('identities');
  list.replaceChildren(...state.chargers.map((charger) => el('option', { value: charger.identity })));
  const body = document.querySelector('#commands tbody');
  body.replaceChildren(...state.commands.map((c) =>
    el('tr', { 'data-action': c.action, 'data-identity': c.identity },
      el('td', {}, new Date(c.at).toLocaleTimeString()), el('td', {}, c.via), el('td', {}, c.identity), el('td', {}, c.action),
      el('td', { class: c.outcome === 'result' ? 'ok outcome' : 'err outcome' }, c.outcome), el('td', {}, c.httpStatus), el('td', { class: 'latency' }, c.latencyMs + ' ms'))));
}
async function refresh() {
  const error = document.getElementById('state-error');
  try {
    const response = await fetch('/cluster/state', { headers: headers() });
    if (!response.ok) throw new Error('GET /cluster/state: HTTP ' + response.status + (response.status === 401 ? ' (enter the control token)' : ''));
    render(await response.json());
    error.textContent = '';
  } catch (e) {
    error.textContent = String(e.message || e);
  }
}
document.getElementById('send').addEventListener('submit', async (event) => {
  event.preventDefault();
  const reply = document.getElementById('reply');
  let payload;
  try { payload = JSON.parse(document.getElementById('payload').value || '{}'); }
  catch (e) { reply.className = 'err'; reply.textContent = 'payload is not JSON: ' + e.message; return; }
  const identity = document.getElementById('identity').value.trim();
  const action = document.getElementById('action').value.trim();
  const query = new URLSearchParams();
  const timeout = document.getElementById('timeout').value.trim();
  const protocol = document.getElementById('protocol').value.trim();
  if (timeout) query.set('timeoutMs', timeout);
  if (protocol) query.set('protocol', protocol);
  reply.className = ''; reply.textContent = 'sending ' + action + ' to ' + identity + '…';
  const started = performance.now();
  try {
    const response = await fetch('/chargers/' + encodeURIComponent(identity) + '/calls/' + encodeURIComponent(action) + '?' + query,
      { method: 'POST', headers: headers({ 'content-type': 'application/json' }), body: JSON.stringify(payload) });
    const text = await response.text();
    reply.className = response.ok ? 'ok' : 'err';
    reply.textContent = 'HTTP ' + response.status + ' in ' + Math.round(performance.now() - started) + ' ms\\n' + text;
  } catch (e) {
    reply.className = 'err'; reply.textContent = String(e.message || e);
  }
  refresh();
});
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
