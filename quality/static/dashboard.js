// ticktape quality dashboard: polls /api/quality once a second and draws one row per exchange,
// with small SVG charts drawn here (no chart library: the page must work offline and stay light).
"use strict";

const REFRESH_MS = 1000;
const CHART_W = 140;
const CHART_H = 30;
const SVG_NS = "http://www.w3.org/2000/svg";

function fmtSeconds(x) {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  if (a < 0.001) return (x * 1e6).toFixed(0) + " µs";
  if (a < 1) return (x * 1000).toFixed(a < 0.01 ? 1 : 0) + " ms";
  if (a < 100) return x.toFixed(2) + " s";
  return x.toFixed(0) + " s";
}

function fmtRatio(x) {
  if (x === null || x === undefined) return "–";
  return (x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1) + " %";
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// A sparkline of one history field; `limit` draws a dashed line when it is within the plotted range.
function sparkline(points, field, limit) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", CHART_W);
  svg.setAttribute("height", CHART_H);
  svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
  svg.setAttribute("data-field", field);
  const values = points.map((p) => p[field]).filter((v) => v !== null && v !== undefined);
  if (values.length < 2) return svg;
  let max = Math.max(...values, 0);
  let min = Math.min(...values, 0);
  if (limit !== null && limit !== undefined && limit < max * 4) max = Math.max(max, limit * 1.1);
  if (max === min) max = min + 1;
  const n = points.length;
  const xy = [];
  points.forEach((p, i) => {
    const v = p[field];
    if (v === null || v === undefined) return;
    const x = (i / Math.max(1, n - 1)) * (CHART_W - 2) + 1;
    const y = CHART_H - 2 - ((v - min) / (max - min)) * (CHART_H - 4);
    xy.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (limit !== null && limit !== undefined && limit <= max) {
    const ly = CHART_H - 2 - ((limit - min) / (max - min)) * (CHART_H - 4);
    const line = document.createElementNS(SVG_NS, "line");
    line.setAttribute("class", "limit");
    line.setAttribute("x1", 0);
    line.setAttribute("x2", CHART_W);
    line.setAttribute("y1", ly.toFixed(1));
    line.setAttribute("y2", ly.toFixed(1));
    svg.appendChild(line);
  }
  const last = points[n - 1];
  const poly = document.createElementNS(SVG_NS, "polyline");
  poly.setAttribute("points", xy.join(" "));
  const colour = { OK: "#1f9d55", DEGRADED: "#d69e2e", EXCLUDE: "#c53030" }[last.state] || "#4a5568";
  poly.setAttribute("stroke", colour);
  svg.appendChild(poly);
  const label = document.createElementNS(SVG_NS, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", 9);
  label.textContent = "max " + fmtSeconds(Math.max(...values));
  svg.appendChild(label);
  return svg;
}

function row(item) {
  const tr = document.createElement("tr");
  tr.className = item.state;
  tr.dataset.exchange = item.exchange;
  tr.dataset.state = item.state;
  tr.appendChild(cell(item.exchange, "exchange"));
  const stateTd = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "state " + item.state;
  badge.textContent = item.state;
  stateTd.appendChild(badge);
  tr.appendChild(stateTd);
  tr.appendChild(cell(item.score.toFixed(0), item.score < 70 ? "bad" : item.score < 90 ? "warn" : ""));
  tr.appendChild(cell(item.freshness_weight.toFixed(2)));
  const limits = item.limits || {};
  const ra = item.receive_age_s;
  tr.appendChild(cell(fmtSeconds(ra), ra !== null && ra > (limits.silent_after_s || 10) ? "bad" : ""));
  const ea = item.event_age_s;
  tr.appendChild(cell(fmtSeconds(ea), ea !== null && ea > (limits.event_age_limit_s || 5) ? "bad" : ""));
  tr.appendChild(cell(`${fmtSeconds(item.latency_p50_s)} / ${fmtSeconds(item.latency_p99_s)}`));
  tr.appendChild(cell(fmtSeconds(item.clock_offset_estimate_s), item.clock_suspect ? "warn" : ""));
  tr.appendChild(cell(fmtRatio(item.outdated_ratio), item.outdated_ratio > 0 ? "warn" : ""));
  tr.appendChild(cell(String(item.gaps), item.gaps > 0 ? "warn" : ""));
  const history = item.history || [];
  const c1 = document.createElement("td");
  c1.appendChild(sparkline(history, "latency_p99_s", limits.outdated_cutoff_s));
  tr.appendChild(c1);
  const c2 = document.createElement("td");
  c2.appendChild(sparkline(history, "event_age_s", limits.event_age_limit_s));
  tr.appendChild(c2);
  const why = [...item.reasons];
  if (item.clock_suspect) why.push(item.clock_suspect);
  const whyTd = cell(why.join("; "), "why");
  tr.appendChild(whyTd);
  return tr;
}

function render(items) {
  const body = document.getElementById("rows");
  const rows = items.map(row);
  body.replaceChildren(...rows);
  const counts = { OK: 0, DEGRADED: 0, EXCLUDE: 0 };
  items.forEach((i) => { counts[i.state] = (counts[i.state] || 0) + 1; });
  // The collector's own lag is the same for every row: shown once, and only when it matters.
  const lag = Math.max(0, ...items.map((i) => i.collector_lag_s || 0));
  const lagText = lag > 0.1 ? ` · collector lag ${fmtSeconds(lag)}` : "";
  document.getElementById("summary").textContent =
    `${items.length} exchanges · ${counts.OK} OK · ${counts.DEGRADED} DEGRADED · ${counts.EXCLUDE} EXCLUDE` +
    `${lagText} · updated ${new Date().toISOString().slice(11, 19)} UTC`;
  document.body.dataset.loaded = "true";
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const response = await fetch("/api/quality?history=1", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    error.hidden = true;
  } catch (e) {
    error.textContent = "cannot reach ticktape: " + e.message + " (retrying)";
    error.hidden = false;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
