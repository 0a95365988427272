// mover dashboard: polls /api/fleet and redraws. Text goes in with textContent only (never
// innerHTML), so nothing the fleet reports can inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
let refreshMs = 1000;

function human(bytes) {
  if (bytes === null || bytes === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes, i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function num(value, attrs) { return el("td", Object.assign({ class: "num" }, attrs || {}), value); }

function bar(done, size, state) {
  const pct = size ? Math.min(100, (100 * done) / size) : (state === "done" ? 100 : 0);
  const fill = el("div", { class: "fill" });
  fill.style.width = pct.toFixed(1) + "%";
  return el("div", { class: "bar " + state }, fill,
    el("div", { class: "label" }, pct.toFixed(1) + " % · " + human(done) + " of " + human(size)));
}

const SVG = "http://www.w3.org/2000/svg";

function spark(series, classes, width, height) {
  // series: arrays of [t, value]; each scaled to its own maximum (shapes, not scales).
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  // The x axis spans the history there is (at least a minute, at most the 10 kept).
  const now = Date.now() / 1000;
  const first = Math.min(now - 60, ...series.flat().map((p) => p[0]));
  const span = Math.min(600, now - first);
  series.forEach((points, n) => {
    const max = Math.max(1, ...points.map((p) => p[1] || 0));
    const d = points.map((p) => {
      const x = Math.max(0, width - ((now - p[0]) / span) * width);
      const y = height - 1 - ((p[1] || 0) / max) * (height - 2);
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", d);
    line.setAttribute("class", classes[n]);
    svg.append(line);
  });
  return svg;
}

function fill(tbodyParent, rows, emptyId) {
  const body = $(tbodyParent).tBodies[0];
  body.replaceChildren(...rows);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}

function render(data) {
  const state = data.state;
  const status = $("status");
  if (!state) { status.textContent = "waiting for the first look"; return; }
  status.className = "status " + (state.up ? "up" : "down");
  status.textContent = state.up ? "fleet reachable" : "Redis unreachable";
  $("updated").textContent = "updated " + new Date(state.time_s * 1000).toLocaleTimeString();
  if (data.flower_url) { $("flower").href = data.flower_url; $("flower").hidden = false; }
  if (!state.up) return;

  fill("jobs", state.jobs.map((j) => el("tr", { "data-job": j.id, "data-state": j.state,
      "data-done": j.done_bytes, "data-size": j.size_bytes === null ? "" : j.size_bytes },
    el("td", {}, j.id),
    el("td", { class: "state " + j.state }, j.state),
    el("td", {}, bar(j.done_bytes, j.size_bytes, j.state)),
    num(j.objects_done + " / " + j.objects + (j.objects_failed ? " (" + j.objects_failed + " failed)" : "")),
    num(j.chunks_done + " / " + j.chunks),
    num(j.rate_bytes_per_s ? human(j.rate_bytes_per_s) + "/s" : "–"),
    num(duration(j.eta_s)),
    el("td", { class: "url", title: j.source + " → " + j.destination }, j.source + " → " + j.destination),
  )), "jobs-empty");

  // Queues with messages now or in the history get a row; idle ones share one line.
  const history = data.history || [];
  const busy = (q) => q.depth || q.unacked ||
    history.some((h) => h.queues[q.name] && (h.queues[q.name][0] || h.queues[q.name][1]));
  const idle = state.queues.filter((q) => !busy(q)).map((q) => q.name);
  const queueRows = state.queues.filter(busy)
    .map((q) => {
      const depth = history.filter((h) => h.queues[q.name]).map((h) => [h.t, h.queues[q.name][0]]);
      const age = history.filter((h) => h.queues[q.name]).map((h) => [h.t, h.queues[q.name][1]]);
      const bands = Object.keys(q.bands).sort((a, b) => a - b).map((k) => q.bands[k]).join(" / ");
      return el("tr", { "data-queue": q.name, "data-depth": q.depth, "data-consumers": q.consumers },
        el("td", {}, q.name), num(q.depth, { class: "num depth" }), num(bands), num(q.unacked),
        num(q.consumers), num(q.oldest_age_s === null ? "?" : duration(q.oldest_age_s)),
        el("td", {}, spark([depth, age], ["depth", "age"], 220, 28)));
    });
  if (idle.length) {
    queueRows.push(el("tr", { class: "muted" }, el("td", { colSpan: 7 },
      idle.length + " idle queue(s): " + idle.join(", "))));
  }
  fill("queues", queueRows);
  const active = new Set(state.queues.filter(busy).map((q) => q.name));

  fill("workers", state.workers.map((w) => el("tr", { "data-worker": w.name, "data-pool": w.pool },
    el("td", {}, w.name), num(w.pool, { class: "num pool" }), num(w.busy),
    el("td", { class: "muted" }, w.queues.join(", ")))), "workers-empty");

  fill("stores", state.stores.map((s) => {
    const series = history.filter((h) => h.stores[s.key]);
    const errors = [s.errors.retryable || 0, s.errors.permanent || 0, s.errors.checksum || 0];
    return el("tr", { "data-store": s.key },
      el("td", {}, s.key), num(human(s.in_rate) + "/s"), num(human(s.out_rate) + "/s"),
      num(s.streams === null ? "–" : s.streams + (s.streams_limit ? " / " + s.streams_limit : "")),
      num(errors.join(" / "), errors.some((e) => e) ? { class: "num bad" } : {}),
      num(s.retries),
      el("td", {}, spark([series.map((h) => [h.t, h.stores[s.key][0]]),
                          series.map((h) => [h.t, h.stores[s.key][1]])], ["in", "out"], 200, 24)));
  }));

  // The autoscaler's decisions on busy queues, and on any queue it gives slots to.
  const rows = [];
  for (const d of state.decisions) {
    let quiet = 0;
    for (const [queue, want] of Object.entries(d.desired)) {
      if (!active.has(queue) && !want) { quiet++; continue; }
      rows.push(el("tr", { "data-controller": d.controller },
        el("td", {}, d.controller + " (" + d.strategy + ")"), el("td", {}, queue),
        num((d.previous[queue] ?? "?") + " → " + want), el("td", { class: "muted" }, d.reasons[queue] || ""),
        num(duration(state.time_s - d.time_s) + " ago")));
    }
    if (quiet) {
      rows.push(el("tr", { class: "muted", "data-controller": d.controller },
        el("td", { colSpan: 5 }, d.controller + ": " + quiet + " idle queue(s) at 0 slots")));
    }
  }
  fill("autoscale", rows, "autoscale-empty");
}

async function poll() {
  try {
    const response = await fetch("/api/fleet", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    refreshMs = Math.max(250, 1000 * (data.refresh_s || 1));
    render(data);
  } catch (err) {
    const status = $("status");
    status.className = "status down";
    status.textContent = "dashboard unreachable (" + err.message + ")";
  }
  setTimeout(poll, refreshMs);
}

poll();
