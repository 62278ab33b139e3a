// The run page: live updates from the server (server-sent events, no
// polling), the graph drawn with Mermaid, approvals.
(function () {
  'use strict';
  const body = document.body;
  const run = body.dataset.run;
  if (!run) return;
  const rows = new Map();
  document.querySelectorAll('#steps tr.step').forEach(function (tr) { rows.set(tr.dataset.address, tr); });
  const nodeState = new Map(); // graph node → state (most pressing instance)
  const stepInfo = new Map();  // address → {node, state}
  const rank = {undo_failed: 9, failed: 8, running: 7, undoing: 6, cancelled: 5, pending: 4, undone: 3, undo_waived: 2, succeeded: 1, skipped: 0};

  function setClass(el, state) { // el may be an SVG element: classList, not className
    Array.from(el.classList).forEach(function (c) { if (c.indexOf('st-') === 0) el.classList.remove(c); });
    el.classList.add('st-' + state);
  }
  function paintNode(node) {
    if (!node) return;
    let best = null;
    stepInfo.forEach(function (s) {
      if (s.node === node && (best === null || rank[s.state] > rank[best])) best = s.state;
    });
    if (best === null) return;
    nodeState.set(node, best);
    document.querySelectorAll('#graph g.node').forEach(function (g) {
      const m = /flowchart-(n\d+)-/.exec(g.id);
      if (m && m[1] === node) setClass(g, best);
    });
  }
  function paintGraph() {
    document.querySelectorAll('#graph g.node').forEach(function (g) {
      const m = /flowchart-(n\d+)-/.exec(g.id);
      if (m && nodeState.has(m[1])) setClass(g, nodeState.get(m[1]));
    });
  }

  // Approvals: a form per waiting core.approve step.
  const approvals = document.getElementById('approvals');
  const tpl = document.getElementById('approve-tpl');
  function approvalForm(address, waiting) {
    let form = null;
    approvals.querySelectorAll('form.approve').forEach(function (f) { if (f.dataset.step === address) form = f; });
    if (waiting && !form && tpl) {
      const f = tpl.content.firstElementChild.cloneNode(true);
      f.dataset.step = address;
      f.querySelector('input[name=step]').value = address;
      f.querySelector('.astep').textContent = address;
      approvals.appendChild(f);
    } else if (!waiting && form) {
      form.remove();
    }
    approvals.querySelector('.none').hidden = approvals.querySelectorAll('form.approve').length > 0;
  }

  // A step the page did not list yet (it started since): a new row, on
  // the first page of the unfiltered list.
  function newRow(sv) {
    const tbody = document.querySelector('#steps tbody');
    if (!tbody || body.dataset.appendRows !== 'true') return null;
    const tr = document.createElement('tr');
    tr.className = 'step';
    tr.dataset.address = sv.address;
    ['addr', 'action', 'state', 'attempt', 'started', 'dur', 'err', 'vals'].forEach(function (c) {
      const td = document.createElement('td');
      td.className = c;
      tr.appendChild(td);
    });
    tr.querySelector('.addr').textContent = sv.address;
    tr.querySelector('.action').textContent = sv.action || '';
    tr.querySelector('.started').textContent = sv.started_at ? sv.started_at.substring(11, 23) : '';
    tbody.appendChild(tr);
    rows.set(sv.address, tr);
    return tr;
  }

  // The timeline is laid out by the server; it is fetched again after
  // changes (at most once a second), never on a timer.
  let timelineDue = null;
  function refreshTimeline() {
    if (timelineDue) return;
    timelineDue = setTimeout(function () {
      timelineDue = null;
      fetch('/api/runs/' + encodeURIComponent(run) + '/timeline' + (/timeline=all/.test(location.search) ? '?all=1' : '')).then(function (r) { return r.json(); }).then(function (t) {
        const box = document.getElementById('timeline');
        box.textContent = '';
        (t.rows || []).forEach(function (row) {
          const div = document.createElement('div');
          div.className = 'trow';
          const name = document.createElement('span');
          name.className = 'tname';
          name.textContent = row.address;
          name.title = row.address;
          const bar = document.createElement('span');
          bar.className = 'tbar';
          (row.spans || []).forEach(function (sp) {
            const i = document.createElement('i');
            i.className = 'span sp-' + sp.kind;
            i.style.left = sp.left.toFixed(2) + '%';
            i.style.width = sp.width.toFixed(2) + '%';
            i.title = sp.label;
            bar.appendChild(i);
          });
          div.appendChild(name);
          div.appendChild(bar);
          box.appendChild(div);
        });
      });
    }, 1000);
  }

  function onStep(sv) {
    stepInfo.set(sv.address, {node: sv.node, state: sv.state});
    refreshTimeline();
    const tr = rows.get(sv.address) || newRow(sv);
    if (tr) {
      setClass(tr, sv.state);
      tr.querySelector('.state').textContent = sv.state;
      tr.querySelector('.attempt').textContent = sv.attempt || '';
      const err = tr.querySelector('.err');
      err.textContent = '';
      if (sv.error) {
        const b = document.createElement('b');
        b.textContent = sv.error.kind || '';
        err.appendChild(b);
        err.appendChild(document.createTextNode(' ' + sv.error.message + (sv.error.hint ? ' (hint: ' + sv.error.hint + ')' : '')));
      }
      if (sv.duration_ms) tr.querySelector('.dur').textContent = (sv.duration_ms / 1000).toFixed(3) + 's';
    }
    paintNode(sv.node);
    approvalForm(sv.address, !!sv.approvable);
  }
  function onRun(r) {
    const badge = document.getElementById('run-state');
    badge.textContent = r.state;
    setClass(badge, r.state);
    document.getElementById('run-duration').textContent = (r.duration_ms / 1000).toFixed(1) + 's';
    const next = document.getElementById('next');
    if (next) {
      next.hidden = !(r.resume_command || r.rollback_command);
      [['cmd-resume', r.resume_command], ['cmd-rollback', r.rollback_command]].forEach(function (c) {
        const code = document.getElementById(c[0]);
        code.textContent = c[1] || '';
        code.parentNode.hidden = !c[1];
      });
    }
  }
  function onLog(l) {
    const pre = document.getElementById('logs');
    pre.appendChild(document.createTextNode(l.time.substring(11, 23) + ' ' + l.step + ' ' + l.level + ': ' + l.message + '\n'));
    pre.scrollTop = pre.scrollHeight;
  }
  function onProgress(p) {
    const box = document.getElementById('progress');
    let div = null;
    box.querySelectorAll('.prog').forEach(function (d) { if (d.dataset.step === p.step) div = d; });
    if (!div) {
      div = document.createElement('div');
      div.className = 'prog';
      div.dataset.step = p.step;
      div.innerHTML = '<span class="pname"></span> <progress max="100"></progress> <span class="ptext"></span>';
      div.querySelector('.pname').textContent = p.step;
      box.appendChild(div);
    }
    div.querySelector('progress').value = p.percent || 0;
    let t = p.current + (p.total ? '/' + p.total : '') + ' ' + (p.unit || '');
    if (p.rate) t += ' · ' + p.rate.toFixed(1) + ' ' + (p.unit || '') + '/s';
    if (p.eta_s) t += ' · ETA ' + Math.round(p.eta_s) + 's';
    div.querySelector('.ptext').textContent = t;
  }

  const es = new EventSource('/api/runs/' + encodeURIComponent(run) + '/events?since=' + body.dataset.seq);
  es.addEventListener('step', function (e) { onStep(JSON.parse(e.data)); });
  es.addEventListener('run', function (e) { onRun(JSON.parse(e.data)); });
  es.addEventListener('log', function (e) { onLog(JSON.parse(e.data)); });
  es.addEventListener('progress', function (e) { onProgress(JSON.parse(e.data)); });
  es.addEventListener('reload', function () { es.close(); location.reload(); });
  window.runbookEvents = es;

  // The graph: Mermaid (embedded, loaded on first use).
  let mermaidLoaded = null;
  function loadMermaid() {
    if (!mermaidLoaded) {
      mermaidLoaded = new Promise(function (ok, fail) {
        const s = document.createElement('script');
        s.src = '/third_party/mermaid/mermaid.min.js';
        s.onload = function () {
          window.mermaid.initialize({startOnLoad: false, securityLevel: 'strict', maxTextSize: 10000000, maxEdges: 100000, flowchart: {htmlLabels: false}});
          ok(window.mermaid);
        };
        s.onerror = fail;
        document.head.appendChild(s);
      });
    }
    return mermaidLoaded;
  }
  let graphData = null;
  function drawGraph(rollback) {
    const box = document.getElementById('graph');
    if (!box) return;
    box.textContent = 'drawing…';
    const data = graphData ? Promise.resolve(graphData) : fetch('/api/runs/' + encodeURIComponent(run) + '/graph').then(function (r) { return r.json(); });
    Promise.all([loadMermaid(), data]).then(function (res) {
      const mermaid = res[0];
      graphData = res[1];
      if (graphData.error) { box.textContent = graphData.error; return; }
      Object.keys(graphData.nodes || {}).forEach(function (n) { if (!nodeState.has(n)) nodeState.set(n, graphData.nodes[n]); });
      return mermaid.render('dag' + (rollback ? 'r' : 'f') + Date.now(), rollback ? graphData.rollback : graphData.mermaid).then(function (out) {
        box.innerHTML = out.svg;
        box.dataset.drawn = rollback ? 'rollback' : 'forward';
        if (!rollback) paintGraph();
      });
    }).catch(function (err) { box.textContent = 'The graph cannot be drawn: ' + err; });
  }
  const fwd = document.getElementById('graph-forward');
  const rb = document.getElementById('graph-rollback');
  if (fwd) fwd.addEventListener('click', function () { drawGraph(false); });
  if (rb) rb.addEventListener('click', function () { drawGraph(true); });
  if (body.dataset.autoGraph === 'true') drawGraph(false);
})();
