// edgedev web view: the fleet from server-sent events, a chart per numeric property.
// No framework: rows are made once and their text updated, at most once per animation frame.
"use strict";
(function () {
  const devices = new Map();   // id -> summary
  const details = new Map();   // id -> {props: Map(name -> prop)}
  const rows = new Map();      // id -> {row, cells, detailRow}
  const charts = new Map();    // "id|prop" -> uPlot
  const open = new Set();
  let writes = false;
  let windowSeconds = 600;
  let skew = 0;                // server clock minus ours, seconds
  let source = null;
  let drawing = false;
  const dirty = new Set();

  const $ = (sel, root) => (root || document).querySelector(sel);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const now = () => Date.now() / 1000 + skew;

  function age(t) {
    if (!t) return "";
    const s = Math.max(0, now() - t);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h";
  }
  const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });
  function tick(v) {
    return Math.abs(v) >= 10000 ? compact.format(v) : String(+v.toFixed(6));
  }
  function clock(t) {
    return t ? new Date(t * 1000).toLocaleTimeString() : "";
  }

  // --- the event stream ---------------------------------------------------------------
  function connect() {
    if (source) source.close();
    const query = open.size ? "?open=" + encodeURIComponent([...open].join(",")) : "";
    source = new EventSource("api/events" + query);
    source.addEventListener("snapshot", (e) => {
      const body = JSON.parse(e.data);
      writes = body.writes;
      windowSeconds = body.window;
      skew = body.now - Date.now() / 1000;
      devices.clear();
      for (const d of body.devices) devices.set(d.id, d);
      for (const d of body.open) setDetail(d, true);
      $("#mode").textContent = writes ? "writes on" : "read-only";
      $("#mode").classList.toggle("writes", writes);
      $("#link").textContent = "live";
      $("#link").className = "link live";
      for (const id of devices.keys()) dirty.add(id);
      schedule(true);
    });
    source.addEventListener("update", (e) => {
      const body = JSON.parse(e.data);
      skew = body.now - Date.now() / 1000;
      for (const d of body.devices) {
        devices.set(d.id, d);
        dirty.add(d.id);
      }
      for (const d of body.open) setDetail(d, false);
      schedule(false);
    });
    source.onerror = () => {
      $("#link").textContent = "reconnecting…";
      $("#link").className = "link down";
    };
  }

  function setDetail(d, whole) {
    let known = details.get(d.id);
    if (!known || whole) {
      known = { props: new Map() };
      details.set(d.id, known);
    }
    const horizon = now() - windowSeconds;
    for (const p of d.props) {
      const old = known.props.get(p.name);
      if (p.history) {
        let points = old && old.history && !whole ? old.history : [];
        if (p.history.length) {
          const from = p.history[0][0];
          points = points.filter((pt) => pt[0] < from).concat(p.history);
        }
        p.history = points.filter((pt) => pt[0] >= horizon);
      }
      known.props.set(p.name, p);
    }
    dirty.add(d.id);
  }

  // --- drawing ------------------------------------------------------------------------
  function schedule(filtersToo) {
    if (filtersToo) fillFilters();
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      draw();
    });
  }

  function draw() {
    const body = $("#fleet tbody");
    const ids = [...devices.keys()].sort();
    let added = false;
    for (const id of ids) {
      if (!rows.has(id)) {
        makeRow(id);
        added = true;
      }
    }
    if (added) {
      for (const id of ids) {
        const r = rows.get(id);
        body.appendChild(r.row);
        body.appendChild(r.detailRow);
      }
      fillFilters();
    }
    for (const id of dirty) if (rows.has(id)) fillRow(id);
    dirty.clear();
    applyFilters();
    $("#empty").hidden = devices.size > 0;
  }

  function makeRow(id) {
    const row = el("tr", "device");
    row.dataset.device = id;
    const cells = {};
    for (const name of ["name", "protocol", "state", "since", "properties", "pending", "updated"]) {
      cells[name] = el("td", name);
      cells[name].dataset.label = name === "updated" ? "last report" : name;
      row.appendChild(cells[name]);
    }
    const toggle = el("button", "toggle", id);
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    toggle.onclick = () => {
      if (open.has(id)) open.delete(id);
      else open.add(id);
      toggle.setAttribute("aria-expanded", String(open.has(id)));
      r.detailRow.hidden = !open.has(id);
      if (!open.has(id)) {
        details.delete(id);
        dropCharts(id);
        r.detailCell.replaceChildren();
      }
      connect();
    };
    cells.name.appendChild(toggle);
    const detailRow = el("tr", "detail");
    detailRow.hidden = true;
    const detailCell = el("td");
    detailCell.colSpan = 7;
    detailRow.appendChild(detailCell);
    const r = { row, cells, detailRow, detailCell };
    rows.set(id, r);
  }

  function fillRow(id) {
    const d = devices.get(id);
    const r = rows.get(id);
    r.cells.protocol.textContent = d.protocol || "–";
    r.cells.state.replaceChildren(el("span", "state " + d.state, d.state));
    r.cells.since.textContent = clock(d.since);
    r.cells.since.title = d.since ? new Date(d.since * 1000).toString() : "";
    r.cells.properties.textContent = d.properties;
    r.cells.pending.textContent = d.pending;
    r.cells.pending.classList.toggle("none", !d.pending);
    r.cells.updated.dataset.t = d.updated;
    r.cells.updated.textContent = age(d.updated);
    const detail = details.get(id);
    if (open.has(id) && detail) fillDetail(id, r.detailCell, detail);
  }

  function fillDetail(id, cell, detail) {
    let list = $(".props", cell);
    if (!list) {
      list = el("div", "props");
      cell.appendChild(list);
    }
    for (const p of detail.props.values()) {
      let card = list.querySelector(`[data-prop="${CSS.escape(p.name)}"]`);
      if (!card) {
        card = makeCard(id, p);
        list.appendChild(card);
      }
      fillCard(id, card, p);
    }
  }

  function makeCard(id, p) {
    const card = el("section", "prop");
    card.dataset.prop = p.name;
    const head = el("div", "head");
    head.append(el("span", "pname", p.name), el("span", "ptype", p.type || "?"));
    const values = el("div", "values");
    values.append(el("span", "reported"), el("span", "unit", p.unit || ""), el("span", "pending"));
    const meta = el("dl", "meta");
    for (const k of ["desired", "age", "range"]) {
      meta.append(el("dt", "", k), el("dd", k));
    }
    card.append(head, values, meta);
    if (writes && p.writable !== false) card.appendChild(makeWrite(id, p));
    card.appendChild(el("div", p.numeric ? "chart" : "timeline"));
    return card;
  }

  function makeWrite(id, p) {
    const form = el("form", "write");
    const input = el("input");
    input.name = "value";
    input.setAttribute("aria-label", `desired ${p.name}`);
    input.placeholder = p.type === "BOOLEAN" ? "true / false" : "desired value";
    const button = el("button", "", "set");
    button.type = "submit";
    const clear = el("button", "clear", "clear");
    clear.type = "button";
    const reason = el("output", "reason");
    form.append(input, button, clear, reason);
    const send = async (value) => {
      reason.className = "reason";
      reason.textContent = "…";
      const [ns, name] = id.split("/");
      try {
        const answer = await fetch(`api/devices/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/desired`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ property: p.name, value }),
        });
        const body = await answer.json();
        if (answer.ok) {
          reason.textContent = "accepted";
          reason.className = "reason ok";
        } else {
          reason.textContent = `refused (${body.code}): ${body.reason}`;
          reason.className = "reason refused";
        }
      } catch (err) {
        reason.textContent = `not sent: ${err}`;
        reason.className = "reason refused";
      }
    };
    form.onsubmit = (e) => {
      e.preventDefault();
      send(input.value.trim());
    };
    clear.onclick = () => send(null);
    return form;
  }

  function fillCard(id, card, p) {
    $(".reported", card).textContent = p.reported ?? "–";
    // the value's quality (Uncertain, or Bad: no value, and why) says more than pending
    const shown = p.quality ? p.note : p.pending ? (p.note || "pending") : "";
    $(".pending", card).textContent = shown;
    $(".pending", card).classList.toggle(
      "failed", p.quality === "Bad" || (p.note || "").startsWith("write failed"));
    $(".reported", card).classList.toggle("stale", p.quality === "Bad");
    $("dd.desired", card).textContent = p.desired ?? "–";
    const ageCell = $("dd.age", card);
    ageCell.dataset.t = p.updated;
    ageCell.textContent = age(p.updated);
    const range = p.minimum !== null || p.maximum !== null
      ? `${p.minimum ?? ""} … ${p.maximum ?? ""}` : "–";
    $("dd.range", card).textContent = range;
    if (p.numeric) drawChart(id, card, p);
    else drawTimeline(card, p);
  }

  function drawChart(id, card, p) {
    const box = $(".chart", card);
    const points = p.history || [];
    const data = [points.map((pt) => pt[0]), points.map((pt) => pt[1])];
    box.dataset.points = String(points.length);
    const key = id + "|" + p.name;
    let chart = charts.get(key);
    const width = Math.max(200, box.clientWidth || card.clientWidth - 16);
    if (!chart) {
      chart = new uPlot({
        width, height: 120,
        legend: { show: false },
        cursor: { y: false },
        scales: { x: { time: true } },
        axes: [{ size: 28, font: "11px system-ui" },
               { size: 56, font: "11px system-ui", values: (u, ticks) => ticks.map(tick) }],
        series: [{}, { label: p.name, stroke: "#2563eb", width: 1.5, points: { size: 3 },
                       value: (u, v) => (v == null ? "" : v + (p.unit ? " " + p.unit : "")) }],
      }, data, box);
      charts.set(key, chart);
    } else {
      if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 120 });
      chart.setData(data);
    }
  }

  function drawTimeline(card, p) {
    const box = $(".timeline", card);
    const changes = p.changes || [];
    box.dataset.points = String(changes.length);
    const end = now();
    const start = Math.max(end - windowSeconds, changes.length ? changes[0][0] : end - 1);
    const span = Math.max(end - start, 1);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 1000 28");
    svg.setAttribute("preserveAspectRatio", "none");
    const colours = new Map();
    const palette = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];
    changes.forEach((c, i) => {
      const from = Math.max(c[0], start);
      const to = i + 1 < changes.length ? changes[i + 1][0] : end;
      if (to < start) return;
      const value = c[1];
      if (!colours.has(value)) {
        colours.set(value, value === "false" ? "#9ca3af" : value === "true" ? "#16a34a" : palette[colours.size % palette.length]);
      }
      const x = ((from - start) / span) * 1000;
      const w = Math.max(1, ((to - from) / span) * 1000);
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", x.toFixed(1));
      rect.setAttribute("width", w.toFixed(1));
      rect.setAttribute("y", "2");
      rect.setAttribute("height", "24");
      rect.setAttribute("fill", colours.get(value));
      const title = document.createElementNS(ns, "title");
      title.textContent = `${value} from ${clock(c[0])}`;
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    const legend = el("div", "legend");
    for (const [value, colour] of colours) {
      const item = el("span", "", value);
      item.style.borderColor = colour;
      legend.appendChild(item);
    }
    box.replaceChildren(svg, legend);
  }

  function dropCharts(id) {
    for (const [key, chart] of charts) {
      if (key.startsWith(id + "|")) {
        chart.destroy();
        charts.delete(key);
      }
    }
  }

  // --- filters ------------------------------------------------------------------------
  const form = $("#filters");
  function fillFilters() {
    for (const field of ["namespace", "protocol", "state"]) {
      const select = form.elements[field];
      const have = new Set([...select.options].map((o) => o.value));
      const values = [...new Set([...devices.values()].map((d) => d[field]).filter(Boolean))].sort();
      for (const v of values) if (!have.has(v)) select.appendChild(el("option", "", v));
    }
  }
  function applyFilters() {
    const f = Object.fromEntries(new FormData(form));
    const text = (f.text || "").toLowerCase();
    let shown = 0;
    for (const [id, r] of rows) {
      const d = devices.get(id);
      const ok = (!f.namespace || d.namespace === f.namespace)
        && (!f.protocol || d.protocol === f.protocol)
        && (!f.state || d.state === f.state)
        && (!text || id.toLowerCase().includes(text));
      r.row.hidden = !ok;
      r.detailRow.hidden = !ok || !open.has(id);
      if (ok) shown += 1;
    }
    $("#count").textContent = `${shown} of ${devices.size} devices`;
  }
  form.oninput = () => applyFilters();
  form.onsubmit = (e) => e.preventDefault();

  // ages move on by themselves
  setInterval(() => {
    for (const cell of document.querySelectorAll("[data-t]")) cell.textContent = age(Number(cell.dataset.t));
  }, 1000);

  connect();
})();
