// ticktape quality dashboard: polls /api/quality once a second and draws one row per exchange,
// with small SVG charts drawn here (no chart library: the page must work offline and stay light).
"use strict";

const REFRESH_MS = 1000;
const CHART_W = 104;
const CHART_H = 40;
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

// A sparkline of one history field. The top band holds the labels (the largest value, left; the limit,
// right), the plot sits below it, so no label ever covers the line. The limit is always inside the
// plotted range: its dashed line is drawn on every row, OK ones too, where the legend says.
const LABEL_H = 10;

function sparkline(points, field, limit) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", CHART_W);
  svg.setAttribute("height", CHART_H);
  svg.setAttribute("viewBox", `0 0 ${CHART_W} ${CHART_H}`);
  svg.setAttribute("data-field", field);
  const top = LABEL_H + 1;
  const plotH = CHART_H - top - 1;
  const plot = document.createElementNS(SVG_NS, "rect");
  plot.setAttribute("class", "plot");
  plot.setAttribute("x", 0);
  plot.setAttribute("y", top);
  plot.setAttribute("width", CHART_W);
  plot.setAttribute("height", plotH);
  svg.appendChild(plot);
  const hasLimit = limit !== null && limit !== undefined;
  const values = points.map((p) => p[field]).filter((v) => v !== null && v !== undefined);
  let max = Math.max(...values, 0);
  const min = Math.min(...values, 0);
  if (hasLimit) max = Math.max(max, limit * 1.15);
  if (max === min) max = min + 1;
  const yOf = (v) => top + plotH - ((v - min) / (max - min)) * (plotH - 2) - 1;
  if (hasLimit) {
    const ly = yOf(limit).toFixed(1);
    const line = document.createElementNS(SVG_NS, "line");
    line.setAttribute("class", "limit");
    line.setAttribute("x1", 0);
    line.setAttribute("x2", CHART_W);
    line.setAttribute("y1", ly);
    line.setAttribute("y2", ly);
    svg.appendChild(line);
    const limitLabel = document.createElementNS(SVG_NS, "text");
    limitLabel.setAttribute("class", "limit-label");
    limitLabel.setAttribute("x", CHART_W - 1);
    limitLabel.setAttribute("y", LABEL_H - 2);
    limitLabel.setAttribute("text-anchor", "end");
    // "limit 5 s", "limit 2.5 s": trailing zeros of the decimals dropped
    limitLabel.textContent = "limit " + fmtSeconds(limit).replace(/\.(\d*?)0+ /, (m, d) => (d ? "." + d : "") + " ");
    svg.appendChild(limitLabel);
  }
  if (values.length < 2) return svg;
  const n = points.length;
  const xy = [];
  points.forEach((p, i) => {
    const v = p[field];
    if (v === null || v === undefined) return;
    const x = (i / Math.max(1, n - 1)) * (CHART_W - 2) + 1;
    xy.push(`${x.toFixed(1)},${yOf(v).toFixed(1)}`);
  });
  const last = points[n - 1];
  const poly = document.createElementNS(SVG_NS, "polyline");
  poly.setAttribute("points", xy.join(" "));
  const colour = { OK: "#1f9d55", DEGRADED: "#d69e2e", EXCLUDE: "#c53030" }[last.state] || "#4a5568";
  poly.setAttribute("stroke", colour);
  svg.appendChild(poly);
  const label = document.createElementNS(SVG_NS, "text");
  label.setAttribute("class", "max-label");
  label.setAttribute("x", 1);
  label.setAttribute("y", LABEL_H - 2);
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
  const why = [...item.reasons];
  if (item.clock_suspect) why.push(item.clock_suspect);
  tr.appendChild(cell(why.join("; "), "why"));
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
