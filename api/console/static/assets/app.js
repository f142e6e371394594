// gridsettle analyst console (api/README.md "The analyst console"). Plain
// JavaScript, no build step, no library: the page is small, and every library
// would have to be vendored with its licence and audited against the CSP.
//
// Rules this file keeps:
//   - the API token lives in sessionStorage and travels only in the
//     Authorization header, never in a URL;
//   - text from the API enters the page as text (textContent, text nodes,
//     attributes), never as markup;
//   - every figure shown is the API's decimal string; numbers are parsed
//     only to place chart marks and to order rows, and sums are exact
//     (BigInt, see dec).
'use strict';

(() => {
  const API = '/api/v1';
  const TOKEN = 'gridsettle.token';
  const BASE = '/console';
  // The reasons an operator may replay (api/README.md: after a registry fix).
  const REPLAYABLE = ['unknown_meter', 'unknown_settlement_point'];
  // Bounds on what one page reads: lists come 1,000 items at a time.
  const PAGE = 1000;
  const MAX_PAGES = 20;

  let role = null;
  let generation = 0; // the render in progress; older renders drop their output

  // ---- API ----------------------------------------------------------

  class APIError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function call(path, { method = 'GET', body, accept = 'application/json' } = {}) {
    const headers = { Accept: accept, Authorization: 'Bearer ' + (sessionStorage.getItem(TOKEN) || '') };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(API + path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) {
      signOut('The token was refused (expired or revoked?): sign in again.');
      throw new APIError(401, null);
    }
    if (!res.ok) {
      throw new APIError(res.status, await res.json().catch(() => null));
    }
    return res;
  }

  async function get(path) {
    return (await call(path)).json();
  }

  // all follows a list's cursors, up to MAX_PAGES pages; more says whether
  // items were left.
  async function all(path) {
    const items = [];
    let cursor = '';
    for (let i = 0; i < MAX_PAGES; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await get(path + sep + 'limit=' + PAGE + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      items.push(...page.items);
      if (!page.next_cursor) return { items, more: false };
      cursor = page.next_cursor;
    }
    return { items, more: true };
  }

  // ---- exact decimals ---------------------------------------------------

  // dec works on the API's decimal strings as scaled BigInts, so totals
  // and ordering are exact and a sum prints with the operands' scale.
  const dec = {
    parse(s) {
      const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(s);
      if (!m) return null;
      const frac = m[3] || '';
      const v = BigInt(m[2] + frac);
      return { v: m[1] ? -v : v, scale: frac.length };
    },
    align(a, b) {
      const s = Math.max(a.scale, b.scale);
      return [a.v * 10n ** BigInt(s - a.scale), b.v * 10n ** BigInt(s - b.scale), s];
    },
    add(x, y) {
      const a = dec.parse(x), b = dec.parse(y);
      if (!a || !b) return null;
      const [p, q, s] = dec.align(a, b);
      return dec.format(p + q, s);
    },
    cmp(x, y) {
      const a = dec.parse(x), b = dec.parse(y);
      if (!a || !b) return String(x).localeCompare(String(y));
      const [p, q] = dec.align(a, b);
      return p < q ? -1 : p > q ? 1 : 0;
    },
    format(v, scale) {
      const neg = v < 0n;
      let digits = (neg ? -v : v).toString().padStart(scale + 1, '0');
      if (scale > 0) digits = digits.slice(0, -scale) + '.' + digits.slice(-scale);
      return (neg ? '-' : '') + digits;
    },
    // trim drops a fraction's trailing zeros: the same value, shorter (for
    // chart labels of 18-decimal interval figures).
    trim(s) {
      return /\./.test(s) ? s.replace(/\.?0+$/, '') : s;
    },
    sum(values) {
      return values.reduce((acc, v) => (acc === null ? null : dec.add(acc, v)), '0');
    },
  };

  // ---- DOM ----------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  // table builds a table from column specs {label, field, num, cell(row)}.
  function table(kind, columns, rows, rowAttrs) {
    const head = el('tr', null, columns.map((c) => el('th', { class: c.num ? 'num' : null, scope: 'col' }, c.label)));
    const body = rows.map((r) => el('tr', rowAttrs ? rowAttrs(r) : null, columns.map((c) => {
      const v = c.cell ? c.cell(r) : r[c.field];
      return el('td', { class: c.num ? 'num' : null, 'data-field': c.field || null }, v === null || v === undefined ? '' : v);
    })));
    return el('div', { class: 'scroll' }, el('table', { 'data-kind': kind }, el('thead', null, head), el('tbody', null, body)));
  }

  function errorBox(err) {
    return el('p', { class: 'error', 'data-kind': 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
  }

  function link(href, text) {
    return el('a', { href, 'data-nav': true }, text);
  }

  // ---- sign-in and navigation ------------------------------------------

  const $ = (id) => document.getElementById(id);

  function signOut(message) {
    sessionStorage.removeItem(TOKEN);
    role = null;
    generation++;
    $('nav').hidden = true;
    $('who').hidden = true;
    $('page').replaceChildren();
    $('sign-in').hidden = false;
    $('sign-in-error').textContent = message || '';
  }

  async function signIn() {
    let who;
    try {
      who = await get('/whoami');
    } catch (err) {
      if (err.status !== 401) signOut(err.message);
      return;
    }
    role = who.role;
    $('sign-in').hidden = true;
    $('role').textContent = role;
    $('role').setAttribute('data-role', role);
    $('who').hidden = false;
    for (const a of $('nav').querySelectorAll('a[data-page]')) {
      a.hidden = !pagesOf(role).includes(a.dataset.page);
    }
    $('nav').hidden = false;
    route();
  }

  // pagesOf is what a role may read (api/README.md roles): a regulator reads
  // exports only.
  function pagesOf(r) {
    return r === 'regulator' ? ['exports'] : ['day', 'inputs', 'quarantine', 'exports', 'status'];
  }

  function navigate(href, replace) {
    if (replace) history.replaceState(null, '', href);
    else history.pushState(null, '', href);
    route();
  }

  function route() {
    if (!role) return;
    const path = location.pathname.slice(BASE.length).replace(/\/+$/, '') || '/';
    const query = new URLSearchParams(location.search);
    let m;
    let page;
    let render;
    if (path === '/') {
      page = 'day';
      render = latestDay;
    } else if ((m = /^\/day\/(\d{4}-\d{2}-\d{2})\/line\/([^/]+)\/explain$/.exec(path))) {
      const line = safeDecode(m[2]);
      page = 'day';
      render = () => restatementPage(m[1], line, query.get('against'), query.get('limit'));
    } else if ((m = /^\/day\/(\d{4}-\d{2}-\d{2})(?:\/line\/([^/]+))?$/.exec(path))) {
      const line = m[2] ? safeDecode(m[2]) : null;
      page = 'day';
      render = () => dayPage(m[1], query.get('version'), line);
    } else if (path === '/inputs') {
      page = 'inputs';
      render = () => inputsPage(query);
    } else if (path === '/quarantine') {
      page = 'quarantine';
      render = () => quarantinePage(query.get('reason'));
    } else if (path === '/exports') {
      page = 'exports';
      render = () => exportsPage(query.get('operating_day'));
    } else if (path === '/status') {
      page = 'status';
      render = statusPage;
    } else {
      page = null;
      render = async () => [el('h1', null, 'Not found'), el('p', null, 'No console page at this address. ', link(BASE + '/', 'Go to the latest day'))];
    }
    if (page && !pagesOf(role).includes(page)) {
      navigate(BASE + '/' + pagesOf(role)[0], true);
      return;
    }
    for (const a of $('nav').querySelectorAll('a[data-page]')) {
      if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    show(render);
  }

  function safeDecode(s) {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  }

  // show runs a page's render and puts its nodes in place, unless another
  // navigation started meanwhile.
  async function show(render) {
    const mine = ++generation;
    const target = $('page');
    target.setAttribute('aria-busy', 'true');
    let nodes;
    try {
      nodes = await render();
    } catch (err) {
      nodes = [errorBox(err)];
    }
    if (mine !== generation) return;
    target.replaceChildren(...[nodes].flat());
    target.removeAttribute('aria-busy');
  }

  // ---- Day ------------------------------------------------------------------

  async function latestDay() {
    const { items } = await all('/runs');
    let latest = null;
    for (const r of items) {
      if (r.status === 'completed' && (!latest || r.operating_day > latest)) latest = r.operating_day;
    }
    if (!latest) return [el('h1', null, 'No settled day yet'), el('p', { class: 'muted' }, 'No run has completed.')];
    history.replaceState(null, '', BASE + '/day/' + latest);
    return dayPage(latest, null, null);
  }

  async function dayPage(day, version, lineID) {
    const v = version && /^\d{1,10}$/.test(version) ? version : null;
    const [runs, lines] = await Promise.all([
      all('/runs?operating_day=' + day),
      all('/statements?operating_day=' + day + (v ? '&version=' + v : '')),
    ]);
    const dayHref = BASE + '/day/' + day;
    const out = [el('h1', null, 'Operating day ' + day)];
    out.push(el('form', {
      class: 'inline', 'data-kind': 'pick-day', onsubmit: (ev) => {
        ev.preventDefault();
        const d = ev.target.elements.day.value;
        if (/^\d{4}-\d{2}-\d{2}$/.test(d)) navigate(BASE + '/day/' + d);
      },
    }, el('label', null, 'Operating day', el('input', { name: 'day', type: 'date', value: day, required: true })), el('button', { type: 'submit' }, 'Show')));

    out.push(el('h2', null, 'Runs'));
    out.push(table('runs', [
      { label: 'Run', field: 'run_id' },
      { label: 'Type', field: 'run_type' },
      { label: 'Version', field: 'version', num: true, cell: (r) => r.status === 'completed' ? link(dayHref + '?version=' + r.version, String(r.version)) : String(r.version) },
      { label: 'Status', field: 'status', cell: (r) => r.status + (r.error ? ': ' + r.error : '') },
      { label: 'Started', field: 'started_at' },
      { label: 'Finished', field: 'finished_at' },
    ], runs.items));

    const shown = lines.items.length ? lines.items[0].version : null;
    out.push(el('h2', null, 'Statement lines' + (shown === null ? '' : ` (version ${shown}${v ? '' : ', the latest'})`)));
    if (!lines.items.length) {
      out.push(el('p', { class: 'muted' }, 'No statement lines: no completed run of this day' + (v ? ' with this version.' : '.')));
      return out;
    }
    if (lines.more) out.push(el('p', { class: 'muted' }, `Showing the first ${lines.items.length} lines.`));
    out.push(statementsTable(lines.items, dayHref, v, lineID));

    out.push(el('h2', null, 'Totals per participant'));
    const byParticipant = new Map();
    for (const l of lines.items) {
      if (!byParticipant.has(l.participant_id)) byParticipant.set(l.participant_id, []);
      byParticipant.get(l.participant_id).push(l);
    }
    out.push(table('totals', [
      { label: 'Participant', field: 'participant_id' },
      { label: 'Energy MWh', field: 'energy_mwh', num: true },
      { label: 'Amount', field: 'amount', num: true },
      { label: 'Delta amount', field: 'delta_amount', num: true },
    ], [...byParticipant].map(([p, ls]) => ({
      participant_id: p,
      energy_mwh: dec.sum(ls.map((l) => l.energy_mwh)),
      amount: dec.sum(ls.map((l) => l.amount)),
      delta_amount: dec.sum(ls.map((l) => l.delta_amount)),
    }))));

    if (lineID) out.push(...await lineChart(lineID, dayHref));
    else out.push(el('p', { class: 'muted' }, 'Pick a line for its chart per settlement interval.'));
    return out;
  }

  function statementsTable(items, dayHref, version, selected) {
    const columns = [
      { label: 'Participant', field: 'participant_id', cell: (l) => link(dayHref + '/line/' + encodeURIComponent(l.statement_id) + (version ? '?version=' + version : ''), l.participant_id) },
      { label: 'Point', field: 'settlement_point' },
      { label: 'Energy MWh', field: 'energy_mwh', num: true },
      { label: 'Unpriced MWh', field: 'unpriced_energy_mwh', num: true },
      { label: 'Amount', field: 'amount', num: true },
      { label: 'Previous amount', field: 'previous_amount', num: true },
      { label: 'Delta amount', field: 'delta_amount', num: true },
      { label: 'Currency', field: 'currency' },
      { label: 'Priced intervals', field: 'priced_intervals', num: true, cell: (l) => `${l.priced_intervals} / ${l.intervals}` },
      { label: 'Restatement', field: 'explain', cell: (l) => l.version >= 2 ? explainLink(dayHref, l.statement_id, 'what changed') : '' },
    ];
    const rows = items.slice();
    const wrap = el('div');
    let sortField = null;
    let ascending = true;
    const render = () => {
      const t = table('statements', columns, rows, (l) => ({
        'data-statement-id': l.statement_id,
        class: l.statement_id === selected ? 'selected' : null,
      }));
      // Sortable headers: exact comparison of the decimal strings.
      t.querySelectorAll('th').forEach((th, i) => {
        const c = columns[i];
        const label = c.label + (sortField === c.field ? (ascending ? ' ▲' : ' ▼') : '');
        th.replaceChildren(el('button', {
          type: 'button', 'data-sort': c.field, onclick: () => {
            ascending = sortField === c.field ? !ascending : true;
            sortField = c.field;
            rows.sort((a, b) => {
              const r = c.num ? dec.cmp(String(a[c.field]), String(b[c.field])) : String(a[c.field]).localeCompare(String(b[c.field]));
              return ascending ? r : -r;
            });
            render();
          },
        }, label));
      });
      wrap.replaceChildren(t);
    };
    render();
    return wrap;
  }

  // explainLink is a link to the Restatement page of a line (against its
  // previous version).
  function explainLink(dayHref, statementID, text) {
    return el('a', { href: dayHref + '/line/' + encodeURIComponent(statementID) + '/explain', 'data-nav': true, 'data-kind': 'explain-link' }, text);
  }

  // versionOf is a statement line's version: its id ends in it
  // (point/participant/day/version); null when it does not.
  function versionOf(statementID) {
    const m = /\/(\d{1,10})$/.exec(statementID);
    return m ? Number(m[1]) : null;
  }

  async function lineChart(statementID, dayHref) {
    const out = [el('h2', null, 'Line ' + statementID + ': settled figures per settlement interval')];
    if (versionOf(statementID) >= 2) out.push(el('p', null, explainLink(dayHref, statementID, 'What changed against the previous version (restatement)')));
    let intervals;
    try {
      intervals = await all('/statements/' + encodeURIComponent(statementID) + '/intervals');
    } catch (err) {
      return [...out, errorBox(err)];
    }
    const items = intervals.items;
    const unpriced = items.filter((i) => i.price === null).length;
    const estimated = items.filter((i) => i.gridsettle_estimated_reads > 0).length;
    out.push(el('p', { class: 'legend' },
      el('span', { class: 'k-energy' }, '■ energy (MWh)'),
      el('span', { class: 'k-estimated' }, `■ of which estimated by gridsettle (${estimated} of ${items.length} intervals)`),
      el('span', { class: 'k-price' }, '● RT price'),
      el('span', { class: 'k-unpriced' }, `▮ unpriced (${unpriced} of ${items.length} intervals)`)));
    out.push(chart(items));
    return out;
  }

  // chart draws a line's intervals as SVG built here: energy as bars
  // against the left scale, the price as points joined by a line against
  // the right scale, unpriced intervals as grey bands. Hand-built SVG
  // because each interval must be an element carrying the API's strings
  // (data-interval, data-energy-mwh, data-price) for tests and tooltips, a
  // day has at most a few hundred intervals, and it needs no library, no
  // canvas and nothing the CSP forbids. Floats only place the marks;
  // every label is an API string.
  function chart(items) {
    const W = 1000, H = 360, left = 70, right = 70, top = 20, bottom = 40;
    const plotW = W - left - right, plotH = H - top - bottom;
    const n = Math.max(items.length, 1);
    const step = plotW / n;
    const extreme = (key, pick) => items.filter((i) => i[key] !== null)
      .reduce((best, i) => (best === null || pick(dec.cmp(i[key], best[key])) ? i : best), null);
    const eMax = extreme('energy_mwh', (c) => c > 0), eMin = extreme('energy_mwh', (c) => c < 0);
    const pMax = extreme('price', (c) => c > 0), pMin = extreme('price', (c) => c < 0);
    const scale = (lo, hi) => {
      const a = Math.min(0, lo), b = Math.max(0, hi);
      const span = b - a || 1;
      return (v) => top + plotH - ((v - a) / span) * plotH;
    };
    const ey = scale(eMin ? +eMin.energy_mwh : 0, eMax ? +eMax.energy_mwh : 0);
    const py = scale(pMin ? +pMin.price : 0, pMax ? +pMax.price : 0);
    const root = svg('svg', {
      'data-kind': 'interval-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', preserveAspectRatio: 'xMidYMid meet',
      'aria-label': `energy and price of ${items.length} settlement intervals`,
    });
    root.append(svg('line', { class: 'axis', x1: left, x2: left, y1: top, y2: top + plotH }));
    root.append(svg('line', { class: 'axis', x1: W - right, x2: W - right, y1: top, y2: top + plotH }));
    root.append(svg('line', { class: 'zero', x1: left, x2: W - right, y1: ey(0), y2: ey(0) }));
    const segments = [];
    let segment = [];
    items.forEach((i, k) => {
      const x = left + k * step;
      const g = svg('g', {
        'data-interval': i.settlement_interval, 'data-energy-mwh': i.energy_mwh, 'data-price': i.price === null ? '' : i.price,
        'data-estimated-mwh': i.estimated_energy_mwh,
      });
      const estimated = dec.cmp(i.estimated_energy_mwh, '0') !== 0
        ? `, of which ${i.estimated_energy_mwh} MWh estimated by gridsettle (${i.gridsettle_estimated_reads} estimates)` : '';
      g.append(svg('title', null, `${i.settlement_interval}: ${i.energy_mwh} MWh at ${i.price === null ? 'no price (unpriced)' : i.price}, amount ${i.amount === null ? '-' : i.amount}${estimated}`));
      if (i.price === null) g.append(svg('rect', { class: 'unpriced', x, y: top, width: step, height: plotH }));
      const e = +i.energy_mwh;
      const y0 = ey(0), y1 = ey(e);
      g.append(svg('rect', { class: e < 0 ? 'bar neg' : 'bar', x: x + step * 0.1, y: Math.min(y0, y1), width: step * 0.8, height: Math.max(Math.abs(y1 - y0), 0.5) }));
      if (estimated) {
        // The estimated share (settlement/README.md "Estimation of missing
        // reads (VEE)"), drawn over the bar from zero.
        const ye = ey(+i.estimated_energy_mwh);
        g.append(svg('rect', { class: 'bar est', x: x + step * 0.1, y: Math.min(y0, ye), width: step * 0.8, height: Math.max(Math.abs(ye - y0), 0.5) }));
      }
      if (i.price === null) {
        if (segment.length) segments.push(segment);
        segment = [];
      } else {
        const cx = x + step / 2, cy = py(+i.price);
        segment.push(`${cx.toFixed(1)},${cy.toFixed(1)}`);
        g.append(svg('circle', { class: +i.price < 0 ? 'price neg' : 'price', cx, cy, r: Math.min(3, step / 2) }));
      }
      root.append(g);
    });
    if (segment.length) segments.push(segment);
    for (const s of segments) {
      if (s.length > 1) root.insertBefore(svg('polyline', { class: 'price-line', points: s.join(' ') }), root.querySelector('g'));
    }
    const label = (x, y, anchor, text) => root.append(svg('text', { x, y, 'text-anchor': anchor }, text));
    if (eMax) label(left - 6, ey(+eMax.energy_mwh) + 4, 'end', dec.trim(eMax.energy_mwh));
    if (eMin && eMin !== eMax) label(left - 6, ey(+eMin.energy_mwh) + 4, 'end', dec.trim(eMin.energy_mwh));
    label(left - 6, top - 6, 'end', 'MWh');
    if (pMax) label(W - right + 6, py(+pMax.price) + 4, 'start', pMax.price);
    if (pMin && pMin !== pMax) label(W - right + 6, py(+pMin.price) + 4, 'start', pMin.price);
    label(W - right + 6, top - 6, 'start', 'price');
    if (items.length) {
      label(left, H - 12, 'start', items[0].settlement_interval);
      label(W - right, H - 12, 'end', items[items.length - 1].settlement_interval);
    }
    return el('div', { class: 'scroll' }, root);
  }

  // ---- Restatement ------------------------------------------------------------

  // EXPLAIN_PAGE is how many changes a page of the Restatement page shows
  // unless the address says (limit).
  const EXPLAIN_PAGE = 100;

  // restatementPage is the explanation (settlement/README.md "Explain a
  // statement line") of a line against an
  // earlier version: the two versions (a picker for the earlier), the
  // summary by kind whose total is the exact delta, the rounded delta and
  // its rounding, then the changes a page at a time (the API's cursor).
  async function restatementPage(day, statementID, against, limitParam) {
    const dayHref = BASE + '/day/' + day;
    const a = against !== null && /^\d{1,10}$/.test(against) ? against : null;
    const limit = limitParam && /^\d{1,4}$/.test(limitParam) ? Math.min(Math.max(Number(limitParam), 1), PAGE) : EXPLAIN_PAGE;
    const path = '/statements/' + encodeURIComponent(statementID) + '/explain?limit=' + limit + (a === null ? '' : '&against=' + a);
    const out = [el('h1', null, 'Restatement of ' + statementID),
      el('p', null, link(dayHref + '/line/' + encodeURIComponent(statementID), 'The line'), ' · ', link(dayHref, 'Operating day ' + day))];
    const [runs, e] = await Promise.all([all('/runs?operating_day=' + day), get(path)]);
    const version = versionOf(e.statement_id);
    const shownAgainst = versionOf(e.against);
    const versions = [...new Set(runs.items.filter((r) => r.status === 'completed' && (version === null || r.version < version)).map((r) => r.version))]
      .sort((x, y) => y - x);
    const here = location.pathname;
    out.push(el('form', {
      class: 'inline', 'data-kind': 'pick-against', onsubmit: (ev) => {
        ev.preventDefault();
        const p = new URLSearchParams({ against: ev.target.elements.against.value });
        if (limitParam) p.set('limit', String(limit));
        navigate(here + '?' + p);
      },
    },
    el('label', null, 'Version ' + (version === null ? '?' : version) + ' against',
      el('select', { name: 'against' }, [...versions, 0].map((v) => el('option', { value: String(v), selected: v === shownAgainst }, v === 0 ? 'nothing (0)' : 'version ' + v)))),
    el('button', { type: 'submit' }, 'Explain')));
    out.push(el('p', { 'data-kind': 'explain-versions' }, 'Line ', el('code', { 'data-field': 'statement_id' }, e.statement_id), ' against ', el('code', { 'data-field': 'against' }, e.against)));

    // The summary: read and price effects, and their total, which the
    // contract makes the exact delta (dec adds exactly).
    const rs = e.summary.read, ps = e.summary.price;
    const total = {
      kind: 'total', changes: String(rs.changes + ps.changes),
      energy_mwh_effect: dec.add(rs.energy_mwh_effect, ps.energy_mwh_effect), amount_effect: dec.add(rs.amount_effect, ps.amount_effect),
    };
    out.push(el('h2', null, 'Summary'));
    out.push(table('explain-summary', [
      { label: 'Changes of', field: 'kind' },
      { label: 'Changes', field: 'changes', num: true },
      { label: 'Energy MWh effect', field: 'energy_mwh_effect', num: true },
      { label: 'Amount effect', field: 'amount_effect', num: true },
    ], [{ kind: 'read', ...rs, changes: String(rs.changes) }, { kind: 'price', ...ps, changes: String(ps.changes) }, total],
    (r) => ({ 'data-kind': r.kind })));
    if (total.amount_effect !== e.exact_delta_amount || total.energy_mwh_effect !== e.exact_delta_energy_mwh) {
      out.push(errorBox(`The effects add up to ${total.amount_effect} (${total.energy_mwh_effect} MWh), the exact delta is ${e.exact_delta_amount} (${e.exact_delta_energy_mwh} MWh).`));
    }
    out.push(table('explain-delta', [
      { label: '', field: 'name' },
      { label: 'Energy MWh', field: 'energy_mwh', num: true },
      { label: 'Amount', field: 'amount', num: true },
    ], [
      { name: 'exact delta (the total above)', energy_mwh: e.exact_delta_energy_mwh, amount: e.exact_delta_amount, key: 'exact' },
      { name: 'delta of the rounded line figures', energy_mwh: e.delta_energy_mwh, amount: e.delta_amount, key: 'rounded' },
      { name: 'rounding (delta − exact delta)', energy_mwh: '', amount: e.rounding, key: 'rounding' },
    ], (r) => ({ 'data-row': r.key })));

    // The changes, a page at a time.
    out.push(el('h2', null, 'Changes'));
    out.push(el('p', { class: 'muted' }, 'A read change is one read in one settlement interval: its effect is its energy change × the new price. ' +
      'A price change is an interval whose settlement price changed: its effect is the old energy × the price change. Values are whole reads in kWh; LF is the loss factor.'));
    const body = el('tbody');
    const head = el('tr', null, ['Settlement interval', 'Kind', 'Read or point', 'Before', 'After', 'Energy MWh effect', 'Amount effect']
      .map((h, i) => el('th', { scope: 'col', class: i >= 5 ? 'num' : null }, h)));
    const status = el('p', { class: 'muted', 'data-kind': 'explain-count' });
    const more = el('button', { type: 'button', 'data-action': 'more-changes' }, 'More changes');
    let cursor = e.next_cursor || '';
    const gen = generation;
    const addPage = (p) => {
      body.append(...p.changes.map(changeRow));
      cursor = p.next_cursor || '';
      more.hidden = !cursor;
      const n = body.childElementCount;
      status.textContent = `${n} of ${rs.changes + ps.changes} changes shown` + (cursor ? '.' : ', all of them.');
      status.setAttribute('data-shown', String(n));
    };
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        const p = await get(path + '&cursor=' + encodeURIComponent(cursor));
        if (gen === generation) addPage(p);
      } catch (err) {
        status.textContent = 'Could not load more changes: ' + err.message;
      }
      more.disabled = false;
    });
    addPage(e);
    out.push(el('div', { class: 'scroll' }, el('table', { 'data-kind': 'changes' }, el('thead', null, head), body)), status, el('p', null, more));
    return out;
  }

  function changeRow(c) {
    const td = (field, v, num) => el('td', { 'data-field': field, class: num ? 'num' : null }, v);
    const what = c.kind === 'price' ? c.settlement_point : `${c.meter_id} ${c.channel} from ${c.start}`;
    const side = (s) => c.kind === 'price' ? (s.price === null ? 'unpriced' : s.price) : readState(s);
    return el('tr', { 'data-change': c.kind },
      td('settlement_interval', c.settlement_interval), td('kind', c.kind), td('what', what),
      td('before', side(c.before)), td('after', side(c.after)),
      td('energy_mwh_effect', c.energy_mwh_effect, true), td('amount_effect', c.amount_effect, true));
  }

  // readState is how a read contributed in one version, readably: null
  // where it did not.
  function readState(s) {
    if (s === null) return '—';
    const parts = [s.value + ' kWh'];
    if (s.estimate !== null) parts.push('estimated by gridsettle (' + s.estimate + ')');
    else parts.push('v' + s.version, 'quality ' + s.quality);
    parts.push('LF ' + s.loss_factor);
    if (s.topic !== null) parts.push(`${s.topic}/${s.partition}@${s.offset}`);
    return parts.join(' · ');
  }

  // ---- Inputs ---------------------------------------------------------------

  async function inputsPage(query) {
    const out = [el('h1', null, 'Inputs')];
    const meter = query.get('meter_id') || '';
    const point = query.get('settlement_point') || '';
    const from = query.get('from') || '';
    const to = query.get('to') || '';
    out.push(el('form', {
      class: 'inline', 'data-kind': 'inputs', onsubmit: (ev) => {
        ev.preventDefault();
        const p = new URLSearchParams();
        for (const name of ['meter_id', 'settlement_point', 'from', 'to']) {
          const v = ev.target.elements[name].value.trim();
          if (v) p.set(name, v);
        }
        navigate(BASE + '/inputs?' + p);
      },
    },
    el('label', null, 'Meter', el('input', { name: 'meter_id', value: meter, placeholder: 'M-0001' })),
    el('label', null, 'Settlement point', el('input', { name: 'settlement_point', value: point, placeholder: 'HB_NORTH' })),
    el('label', null, 'From (RFC 3339)', el('input', { name: 'from', value: from, placeholder: '2026-11-01T05:00:00Z' })),
    el('label', null, 'To', el('input', { name: 'to', value: to })),
    el('button', { type: 'submit' }, 'Show')));
    const range = (from ? '&from=' + encodeURIComponent(from) : '') + (to ? '&to=' + encodeURIComponent(to) : '');
    if (meter) {
      out.push(el('h2', null, 'Reads of ' + meter));
      out.push(el('p', { class: 'muted' }, 'Every stored version of each read (superseded ones marked, with the record that replaced it), ' +
        "and the estimates gridsettle made where reads were missing, as the latest completed run of each operating day made them."));
      try {
        const [r, est] = await Promise.all([
          get('/meters/' + encodeURIComponent(meter) + '/reads?versions=all&limit=' + PAGE + range),
          estimatesOf(meter, from, to),
        ]);
        const rows = [...r.items, ...est.items].sort((x, y) => (Date.parse(x.start) - Date.parse(y.start)) ||
          String(x.channel).localeCompare(String(y.channel)) || ((x.version ?? 0) - (y.version ?? 0)));
        out.push(table('reads', [
          { label: 'start', field: 'start' },
          { label: 'channel', field: 'channel' },
          { label: 'interval seconds', field: 'interval_seconds', num: true },
          { label: 'kWh', field: 'value', num: true },
          { label: 'quality', field: 'quality' },
          { label: 'version', field: 'version', num: true },
          { label: 'source', field: 'source' },
          { label: 'topic', field: 'topic' },
          { label: 'partition', field: 'partition', num: true },
          { label: 'offset', field: 'offset', num: true },
          { label: 'state', field: 'state', cell: readStateText },
        ], rows, (x) => ({
          'data-superseded': x.superseded_by ? `${x.superseded_by.topic}/${x.superseded_by.partition}@${x.superseded_by.offset}` : null,
          'data-estimate': x.estimate_method || null,
          'data-run': x.estimate_run || null,
          class: x.superseded_by ? 'superseded' : x.estimate_method ? 'estimate' : null,
        })));
        if (r.next_cursor) out.push(el('p', { class: 'muted' }, `The first ${r.items.length} read versions; narrow the range for more.`));
        out.push(el('p', { class: 'muted', 'data-kind': 'estimate-runs' }, est.runs.length
          ? `Estimates by ${est.runs.join(', ')} (${est.items.length} in this range).`
          : 'No completed run covers this range: no estimates shown.'));
      } catch (err) {
        out.push(errorBox(err));
      }
    }
    if (point) {
      out.push(el('h2', null, 'RT prices at ' + point));
      try {
        const r = await get('/prices?market=RT&settlement_point=' + encodeURIComponent(point) + '&limit=' + PAGE + range);
        out.push(table('prices', ['start', 'interval_seconds', 'price', 'currency', 'version', 'topic', 'partition', 'offset']
          .map((f) => ({ label: f.replace('_', ' '), field: f, num: ['price', 'version', 'partition', 'offset'].includes(f) })), r.items));
        if (r.next_cursor) out.push(el('p', { class: 'muted' }, `The first ${r.items.length} prices; narrow the range for more.`));
      } catch (err) {
        out.push(errorBox(err));
      }
    }
    if (!meter && !point) out.push(el('p', { class: 'muted' }, "Name a meter for its reads (every version, with quality, version and source, and gridsettle's estimates) or a settlement point for its RT prices."));
    return out;
  }

  function readStateText(x) {
    if (x.estimate_method) return `estimated by ${x.estimate_run} (${x.estimate_method})`;
    if (x.superseded_by) return `superseded by ${x.superseded_by.topic}/${x.superseded_by.partition}@${x.superseded_by.offset}`;
    return 'current';
  }

  // ESTIMATE_DAYS bounds the operating days whose estimates the Inputs page
  // reads.
  const ESTIMATE_DAYS = 7;

  // estimatesOf is the estimates of a meter in [from, to) that the latest
  // completed run of each operating day made (the runs that settle the
  // day now), as rows of the reads table, and those runs. The days are
  // those of the range, widened by a day each side because an operating
  // day is local time; without a range, the latest days.
  async function estimatesOf(meter, from, to) {
    const { items } = await all('/runs');
    const latest = new Map();
    const lo = from ? shiftDay(from.slice(0, 10), -1) : null, hi = to ? shiftDay(to.slice(0, 10), 1) : null;
    for (const r of items) {
      if (r.status !== 'completed' || (lo && r.operating_day < lo) || (hi && r.operating_day > hi)) continue;
      const cur = latest.get(r.operating_day);
      if (!cur || r.version > cur.version) latest.set(r.operating_day, r);
    }
    const runs = [...latest.values()].sort((x, y) => (x.operating_day < y.operating_day ? 1 : -1)).slice(0, ESTIMATE_DAYS);
    const fromT = from ? Date.parse(from) : -Infinity, toT = to ? Date.parse(to) : Infinity;
    const pages = await Promise.all(runs.map((r) => all('/runs/' + encodeURIComponent(r.run_id) + '/estimates?meter_id=' + encodeURIComponent(meter))));
    const rows = [];
    pages.forEach((p, i) => {
      for (const x of p.items) {
        const t = Date.parse(x.interval_start);
        if (t < fromT || t >= toT) continue;
        rows.push({
          start: x.interval_start, channel: x.channel, interval_seconds: x.interval_seconds, value: x.value_kwh,
          quality: null, version: null, source: 'gridsettle', estimate_method: x.method, estimate_run: runs[i].run_id,
        });
      }
    });
    return { items: rows, runs: runs.map((r) => r.run_id) };
  }

  function shiftDay(day, n) {
    const d = new Date(day + 'T00:00:00Z');
    if (Number.isNaN(d.getTime())) return null;
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  // ---- Quarantine -----------------------------------------------------------

  async function quarantinePage(reason) {
    const out = [el('h1', null, 'Quarantine')];
    const result = el('p', { 'data-kind': 'replay-result', role: 'status' });
    const page = await get('/quarantine?limit=' + PAGE + (reason ? '&reason=' + encodeURIComponent(reason) : ''));
    const counts = new Map();
    for (const q of page.items) if (q.replayed_at === null) counts.set(q.reason, (counts.get(q.reason) || 0) + 1);
    out.push(el('h2', null, 'Waiting, by reason' + (page.next_cursor ? ` (of the first ${page.items.length} items)` : '')));
    const reasons = [...counts.keys()].sort();
    if (role === 'operator' || role === 'admin') {
      for (const r of REPLAYABLE) if (!counts.has(r)) reasons.push(r);
    }
    out.push(table('reasons', [
      { label: 'Reason', field: 'reason', cell: (r) => link(BASE + '/quarantine?reason=' + encodeURIComponent(r), r) },
      { label: 'Items', field: 'count', num: true, cell: (r) => String(counts.get(r) || 0) },
      {
        label: '', field: 'action', cell: (r) => (role === 'operator' || role === 'admin') && REPLAYABLE.includes(r)
          ? el('button', { type: 'button', 'data-action': 'replay', 'data-reason': r, onclick: (ev) => replay(ev.target, r, result) }, 'Replay')
          : null,
      },
    ], reasons));
    out.push(result);
    out.push(el('h2', null, reason ? 'Items: ' + reason : 'Items'));
    out.push(table('quarantine', [
      { label: 'Id', field: 'id', num: true },
      { label: 'Reason', field: 'reason' },
      { label: 'Detail', field: 'detail' },
      { label: 'Topic', field: 'topic' },
      { label: 'Partition', field: 'partition', num: true },
      { label: 'Offset', field: 'offset', num: true },
      { label: 'Received', field: 'received_at' },
      { label: 'Replayed', field: 'replayed_at' },
      { label: 'Value', field: 'value', cell: (q) => (q.value_encoding === 'base64' ? '(base64) ' : '') + clip(q.value) },
    ], page.items));
    return out;
  }

  function clip(s) {
    return s.length > 200 ? s.slice(0, 200) + '…' : s;
  }

  async function replay(button, reason, result) {
    button.disabled = true;
    result.textContent = 'Replaying ' + reason + '…';
    try {
      const r = await (await call('/quarantine/replay', { method: 'POST', body: { reason } })).json();
      result.textContent = `Replayed ${reason}: ${r.replayed} applied, ${r.still_quarantined} still quarantined.`;
      result.setAttribute('data-replayed', String(r.replayed));
      const gen = generation;
      const fresh = await quarantinePage(new URLSearchParams(location.search).get('reason'));
      if (gen === generation) {
        $('page').replaceChildren(...fresh);
        $('page').querySelector('[data-kind=replay-result]').replaceWith(result);
      }
    } catch (err) {
      result.textContent = 'Replay failed: ' + err.message;
      button.disabled = false;
    }
  }

  // ---- Exports --------------------------------------------------------------

  async function exportsPage(day) {
    const out = [el('h1', null, 'Exports')];
    out.push(el('form', {
      class: 'inline', onsubmit: (ev) => {
        ev.preventDefault();
        const d = ev.target.elements.operating_day.value;
        navigate(BASE + '/exports' + (d ? '?operating_day=' + d : ''));
      },
    }, el('label', null, 'Operating day', el('input', { name: 'operating_day', type: 'date', value: day || '' })), el('button', { type: 'submit' }, 'Show')));
    const d = day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? day : null;
    const list = await all('/exports' + (d ? '?operating_day=' + d : ''));
    if (!list.items.length) out.push(el('p', { class: 'muted' }, 'No exports' + (d ? ' of ' + d : '') + ' yet.'));
    for (const x of list.items) out.push(exportCard(x));
    const key = el('pre', { 'data-kind': 'public-key', hidden: true });
    out.push(el('h2', null, 'Signing public key'));
    out.push(el('button', {
      type: 'button', 'data-action': 'public-key', onclick: async () => {
        try {
          key.textContent = await (await call('/exports/public-key', { accept: 'application/x-pem-file' })).text();
        } catch (err) {
          key.textContent = 'Could not read the key: ' + err.message;
        }
        key.hidden = false;
      },
    }, 'Show the public key'), key);
    return out;
  }

  function exportCard(x) {
    const id = x.export_id;
    const verdict = el('span', { 'data-kind': 'verify-result' });
    const fileStatus = el('span', { class: 'error', 'data-kind': 'download-error' });
    const m = x.manifest || {};
    const totals = Object.entries(m.control_totals || {}).map(([k, v]) => ({ name: k, value: typeof v === 'object' ? JSON.stringify(v) : String(v) }));
    return el('section', { 'data-export-id': id },
      el('h2', null, `${id}`),
      el('p', null, `${x.operating_day} · ${x.run_type} · version ${x.version} · created ${x.created_at} · manifest sha256 `, el('code', null, x.manifest_sha256)),
      table('control-totals', [{ label: 'Control total', field: 'name' }, { label: 'Value', field: 'value', num: true }], totals),
      completeness(m.completeness),
      el('p', null,
        el('button', {
          type: 'button', 'data-action': 'verify', onclick: async (ev) => {
            ev.target.disabled = true;
            verdict.textContent = ' verifying…';
            try {
              const r = await get('/exports/' + encodeURIComponent(id) + '/verify');
              verdict.textContent = r.ok ? ` verified (${r.checks.length} checks)` : ` NOT verified: ${r.file || ''} ${r.error || ''}`;
              verdict.setAttribute('data-ok', String(!!r.ok));
            } catch (err) {
              verdict.textContent = ' verification failed: ' + err.message;
              verdict.setAttribute('data-ok', 'false');
            }
            ev.target.disabled = false;
          },
        }, 'Verify on the server'), verdict),
      el('p', null, 'Files: ', (x.files || []).map((f) => {
        const name = typeof f === 'string' ? f : f.name;
        return el('button', {
          type: 'button', class: 'file', 'data-file': name, onclick: () => download(id, name).then(
            () => { fileStatus.textContent = ''; },
            (err) => { fileStatus.textContent = ` ${name}: ${err.message}`; }),
        }, name);
      }), fileStatus));
  }

  // completeness is the manifest's count of every input record per input
  // partition (settlement/README.md "Completeness: every input record accounted
  // for"), as the manifest says it.
  function completeness(c) {
    if (!c) return el('p', { class: 'muted', 'data-kind': 'completeness' }, 'This manifest has no completeness (an older format, or a run made before runs counted their inputs).');
    const n = (v) => (v === undefined || v === null ? '' : String(v));
    return el('div', null, el('h3', null, 'Completeness: every input record accounted for'), table('completeness', [
      { label: 'Topic', field: 'topic' },
      { label: 'Partition', field: 'partition', num: true, cell: (i) => n(i.partition) },
      { label: 'Offset through', field: 'offset_through', num: true, cell: (i) => n(i.offset_through) },
      { label: 'Records', field: 'records', num: true, cell: (i) => n(i.records) },
      { label: 'Applied', field: 'applied', num: true, cell: (i) => n(i.applied) },
      {
        label: 'Quarantined', field: 'quarantined', cell: (i) => {
          const q = Object.entries(i.quarantined || {});
          return q.length ? q.map(([k, v]) => `${k}: ${v}`).join(', ') : '0';
        },
      },
      { label: 'Reads applied', field: 'reads_applied', num: true, cell: (i) => n(i.reads_applied) },
      { label: 'Reads stale', field: 'reads_stale', num: true, cell: (i) => n(i.reads_stale) },
      { label: 'Reads duplicate', field: 'reads_duplicate', num: true, cell: (i) => n(i.reads_duplicate) },
    ], c.inputs || [], (i) => ({ 'data-input': `${i.topic}/${i.partition}` })));
  }

  // download fetches a file with the token in its header (never in a URL)
  // and hands the bytes to the browser as a local blob.
  async function download(id, name) {
    const res = await call('/exports/' + encodeURIComponent(id) + '/files/' + encodeURIComponent(name), { accept: '*/*' });
    const url = URL.createObjectURL(await res.blob());
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // ---- Status ---------------------------------------------------------------

  async function statusPage() {
    const [st, ready] = await Promise.all([get('/status'), readiness()]);
    const out = [el('h1', null, 'Status')];
    out.push(el('h2', null, 'Components'));
    out.push(table('components', [{ label: 'Check', field: 'name' }, { label: 'State', field: 'state' }], ready));
    out.push(el('h2', null, 'Input partitions'));
    out.push(table('inputs', ['topic', 'partition', 'next_offset', 'end_offset', 'lag', 'watermark']
      .map((f) => ({ label: f.replace('_', ' '), field: f, num: !['topic', 'watermark'].includes(f) })), st.inputs || []));
    out.push(el('h2', null, 'Outbox'));
    const ob = st.outbox || {};
    out.push(el('p', { 'data-kind': 'outbox' }, `${ob.pending} pending, ${ob.quarantined} quarantined, ${(ob.parked || []).length} parked streams`));
    out.push(el('h2', null, 'Last runs'));
    out.push(table('runs', ['run_id', 'run_type', 'version', 'status', 'started_at', 'finished_at']
      .map((f) => ({ label: f.replace('_', ' '), field: f, num: f === 'version' })), st.runs || []));
    if ((st.scheduled_run_failures || []).length) {
      out.push(el('h2', null, 'Failing scheduled runs'));
      out.push(el('pre', null, JSON.stringify(st.scheduled_run_failures, null, 2)));
    }
    return out;
  }

  // readiness is /readyz (no token): the checks of the component serving
  // this page, or which fail.
  async function readiness() {
    const res = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
    const body = await res.json().catch(() => ({}));
    if (res.ok) return Object.entries(body.checks || {}).map(([name, state]) => ({ name, state }));
    return [{ name: 'api', state: body.detail || 'not ready' }];
  }

  // ---- start ------------------------------------------------------------------

  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a[data-nav]');
    if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
    ev.preventDefault();
    navigate(a.getAttribute('href'));
  });
  window.addEventListener('popstate', route);
  $('sign-in').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = ev.target.elements.token.value.trim();
    ev.target.elements.token.value = '';
    if (!token) return;
    sessionStorage.setItem(TOKEN, token);
    signIn();
  });
  $('sign-out').addEventListener('click', () => signOut());
  if (sessionStorage.getItem(TOKEN)) signIn();
  else signOut();
})();
