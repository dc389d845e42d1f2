// The run page's charts: one SVG per metric, drawn by hand from GET /api/v1/runs/{id}/series.
//
// Hand-written SVG rather than a chart library: every mark the page must show is an element tests and
// users can inspect (.series, .threshold, .alert-mark, .nan-mark, .inf-mark), NaN and the infinities
// are marks of their own instead of gaps, and nothing is vendored. Data comes only from the API (text
// set with textContent, never HTML) and the page's data- attributes (thresholds, alert steps).
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const root = document.getElementById("charts");
  if (!root || !window.alertsPage) return;
  const grid = root.querySelector(".chart-grid");
  if (!grid) return;
  const { api, el } = window.alertsPage;
  const runId = root.dataset.run;
  const thresholds = JSON.parse(root.dataset.thresholds || "{}");
  const alerts = JSON.parse(root.dataset.alerts || "[]");
  const statusLine = root.querySelector(".chart-status");
  const zoomState = root.querySelector(".zoom-state");
  const resetButton = root.querySelector(".reset-zoom");
  const boxes = Array.from(root.querySelectorAll('.metric-picker input[type="checkbox"]'));

  const state = { keys: JSON.parse(root.dataset.selected || "[]"), range: null, data: null, request: 0 };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function titled(node, text) {
    node.appendChild(svg("title", {}, text));
    return node;
  }

  function fmt(value) {
    if (typeof value === "string") return value; // NaN, Infinity, -Infinity as the API writes them
    if (!isFinite(value)) return String(value);
    const abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(2);
    return String(Number(value.toPrecision(4)));
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const step0 = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  function setStatus(text) { if (statusLine) statusLine.textContent = text; }

  function pointsWanted() {
    const width = grid.clientWidth || 600;
    return Math.max(200, Math.min(2000, Math.round(width * 1.5 / 4) * 4));
  }

  async function load() {
    const ticket = ++state.request;
    if (!state.keys.length) {
      grid.replaceChildren();
      setStatus("Choose a metric above.");
      root.dataset.state = "ready";
      return;
    }
    root.dataset.state = "loading";
    setStatus("Loading…");
    let query = "keys=" + encodeURIComponent(state.keys.join(",")) + "&points=" + pointsWanted();
    if (state.range) query += "&start=" + state.range[0] + "&end=" + state.range[1];
    try {
      const data = await api("/api/v1/runs/" + encodeURIComponent(runId) + "/series?" + query);
      if (ticket !== state.request) return; // a newer request (zoom, another metric) won
      state.data = data;
      draw();
      root.dataset.state = "ready";
    } catch (error) {
      if (ticket !== state.request) return;
      setStatus("The series could not be loaded: " + error.message);
      root.dataset.state = "error";
    }
  }

  function draw() {
    const data = state.data;
    if (!data) return;
    grid.replaceChildren();
    let shown = 0, total = 0, downsampled = false;
    for (const key of state.keys) {
      const series = data.series[key];
      if (!series) continue;
      shown += series.points.length;
      total += series.count;
      downsampled = downsampled || series.downsampled;
      grid.appendChild(chart(key, series, data.start, data.end));
    }
    const where = data.start === null ? "" : ` over steps ${data.start}–${data.end}`;
    setStatus(downsampled ? `${shown} of ${total} points drawn${where} (each bucket's first, lowest, highest and last; ` +
      "NaN and infinities all marked). Zoom in for every point." : `${total} points${where}.`);
    zoomState.textContent = state.range ? `steps ${state.range[0]}–${state.range[1]}` : "all steps";
    resetButton.disabled = !state.range;
  }

  function chart(key, series, start, end) {
    const width = Math.max(260, grid.clientWidth || 600);
    const height = width < 500 ? 190 : 230;
    const m = { left: 56, right: 12, top: 22, bottom: 26 };
    const plotW = width - m.left - m.right, plotH = height - m.top - m.bottom;
    const lines = thresholds[key] || [];
    const marks = series.marks;
    const values = series.points.map((p) => p[1]).concat(lines.map((t) => t.value));
    let lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    let x0 = start === null ? 0 : start, x1 = end === null ? 1 : end;
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const x = (step) => m.left + ((step - x0) / (x1 - x0)) * plotW;
    const y = (value) => m.top + (1 - (value - lo) / (hi - lo)) * plotH;
    const stepAt = (px) => Math.round(x0 + ((px - m.left) / plotW) * (x1 - x0));

    const figure = el("figure", { class: "chart", "data-key": key });
    const caption = el("figcaption", {}, el("strong", {}, key));
    const facts = [];
    if (series.min) facts.push(`min ${fmt(series.min.value)} @ ${series.min.step}`);
    if (series.max) facts.push(`max ${fmt(series.max.value)} @ ${series.max.step}`);
    const nonFinite = marks.reduce((n, mk) => n + mk.count, 0);
    if (nonFinite) facts.push(`${nonFinite} non-finite`);
    if (facts.length) caption.appendChild(el("span", { class: "muted" }, " " + facts.join(" · ")));
    figure.appendChild(caption);

    const root_ = svg("svg", { class: "chart-svg", viewBox: `0 0 ${width} ${height}`, width, height,
                               role: "img", "aria-label": `${key} over steps` });
    root_.appendChild(svg("rect", { class: "plot-bg", x: m.left, y: m.top, width: plotW, height: plotH }));
    const axes = svg("g", { class: "axes" });
    for (const t of niceTicks(lo, hi, height < 200 ? 3 : 5)) {
      axes.appendChild(svg("line", { class: "grid-line", x1: m.left, x2: m.left + plotW, y1: y(t), y2: y(t) }));
      axes.appendChild(svg("text", { class: "tick", x: m.left - 6, y: y(t) + 4, "text-anchor": "end" }, fmt(t)));
    }
    for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(plotW / 110)))) {
      if (t < x0 || t > x1 || !Number.isInteger(t)) continue;
      axes.appendChild(svg("text", { class: "tick", x: x(t), y: height - 8, "text-anchor": "middle" }, String(t)));
    }
    root_.appendChild(axes);

    const clip = `clip-${key.replace(/[^A-Za-z0-9_-]/g, "_")}-${Math.random().toString(36).slice(2, 8)}`;
    const defs = svg("defs");
    const clipPath = svg("clipPath", { id: clip });
    clipPath.appendChild(svg("rect", { x: m.left, y: m.top, width: plotW, height: plotH }));
    defs.appendChild(clipPath);
    root_.appendChild(defs);

    for (const t of lines) {
      const g = svg("g", { class: "threshold", "data-rule": t.rule, "data-value": t.value });
      g.appendChild(titled(svg("line", { x1: m.left, x2: m.left + plotW, y1: y(t.value), y2: y(t.value) }),
                           `rule ${t.rule}: ${key} ${t.op} ${fmt(t.value)} (${t.level})`));
      g.appendChild(svg("text", { class: "threshold-label", x: m.left + plotW - 4, y: y(t.value) - 4,
                                  "text-anchor": "end" }, `${t.rule} ${t.op} ${fmt(t.value)}`));
      root_.appendChild(g);
    }

    // The line breaks wherever a non-finite value lies between two points: a gap, with its mark on it.
    const breaks = marks.map((mk) => mk.step);
    let d = "", bi = 0, prev = null;
    for (const [step, value] of series.points) {
      while (bi < breaks.length && breaks[bi] < step) { if (prev !== null && breaks[bi] > prev) prev = null; bi++; }
      d += (prev === null ? "M" : "L") + x(step).toFixed(1) + " " + y(value).toFixed(1);
      prev = step;
    }
    const path = svg("path", { class: "series", d, "clip-path": `url(#${clip})`, "data-key": key,
                               "data-points": series.points.length });
    root_.appendChild(path);
    if (series.points.length <= 60) {
      const dots = svg("g", { class: "dots" });
      for (const [step, value] of series.points) {
        dots.appendChild(titled(svg("circle", { cx: x(step), cy: y(value), r: 2.5 }), `step ${step}: ${fmt(value)}`));
      }
      root_.appendChild(dots);
    }

    const alertLayer = svg("g", { class: "alert-marks" });
    for (const a of alerts) {
      if (a.metric && a.metric !== key) continue;
      if (a.step < x0 || a.step > x1) continue;
      const g = svg("g", { class: `alert-mark level-${String(a.level).toLowerCase()}`, "data-step": a.step,
                           "data-alert": a.id });
      g.appendChild(svg("line", { x1: x(a.step), x2: x(a.step), y1: m.top, y2: m.top + plotH }));
      g.appendChild(svg("path", { d: `M${x(a.step) - 5} ${m.top + plotH + 8}l5 -7l5 7z` }));
      titled(g, `alert at step ${a.step}: ${a.title}`);
      alertLayer.appendChild(g);
    }
    root_.appendChild(alertLayer);

    const markLayer = svg("g", { class: "nonfinite-marks" });
    for (const mk of marks) {
      const px = x(mk.step);
      const kind = mk.value === "NaN" ? "nan-mark" : mk.value === "Infinity" ? "inf-mark inf-pos" : "inf-mark inf-neg";
      const g = svg("g", { class: kind, "data-step": mk.step, "data-count": mk.count });
      const top = mk.value === "-Infinity" ? m.top + plotH - 10 : m.top - 14;
      g.appendChild(svg("line", { class: "mark-rule", x1: px, x2: px, y1: m.top, y2: m.top + plotH }));
      if (mk.value === "NaN") g.appendChild(svg("rect", { x: px - 5, y: top, width: 10, height: 10, rx: 2 }));
      else if (mk.value === "Infinity") g.appendChild(svg("path", { d: `M${px - 6} ${top + 10}l6 -10l6 10z` }));
      else g.appendChild(svg("path", { d: `M${px - 6} ${top}l6 10l6 -10z` }));
      titled(g, `${mk.value} at step ${mk.step}` + (mk.count > 1 ? ` (and ${mk.count - 1} more in this bucket)` : ""));
      markLayer.appendChild(g);
    }
    root_.appendChild(markLayer);
    if (marks.some((mk) => mk.value !== "-Infinity")) {
      root_.appendChild(svg("text", { class: "band-label", x: 4, y: m.top - 5 }, "NaN/+inf"));
    }

    // Zoom: drag across the plot to choose steps; the series is fetched again, finer, for that range.
    const selection = svg("rect", { class: "zoom-selection", x: 0, y: m.top, width: 0, height: plotH, visibility: "hidden" });
    const overlay = svg("rect", { class: "zoom-overlay", x: m.left, y: m.top, width: plotW, height: plotH });
    root_.appendChild(selection);
    root_.appendChild(overlay);
    let dragFrom = null;
    const local = (event) => {
      const box = root_.getBoundingClientRect();
      const px = (event.clientX - box.left) * (width / box.width);
      return Math.max(m.left, Math.min(m.left + plotW, px));
    };
    overlay.addEventListener("pointerdown", (event) => {
      dragFrom = local(event);
      overlay.setPointerCapture(event.pointerId);
      selection.setAttribute("x", dragFrom);
      selection.setAttribute("width", 0);
      selection.setAttribute("visibility", "visible");
    });
    overlay.addEventListener("pointermove", (event) => {
      if (dragFrom === null) return;
      const px = local(event);
      selection.setAttribute("x", Math.min(px, dragFrom));
      selection.setAttribute("width", Math.abs(px - dragFrom));
    });
    const finish = (event) => {
      if (dragFrom === null) return;
      const px = local(event), from = dragFrom;
      dragFrom = null;
      selection.setAttribute("visibility", "hidden");
      if (Math.abs(px - from) < 4) return; // a click, not a drag
      const a = stepAt(Math.min(px, from)), b = stepAt(Math.max(px, from));
      if (b <= a) return;
      state.range = [Math.max(0, a), b];
      load();
    };
    overlay.addEventListener("pointerup", finish);
    overlay.addEventListener("pointercancel", () => { dragFrom = null; selection.setAttribute("visibility", "hidden"); });

    figure.appendChild(root_);
    return figure;
  }

  function syncUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("keys", state.keys.join(","));
    window.history.replaceState(null, "", url.pathname + "?" + url.searchParams.toString());
  }

  for (const box of boxes) {
    box.addEventListener("change", () => {
      state.keys = boxes.filter((b) => b.checked).map((b) => b.value);
      syncUrl();
      load();
    });
  }
  resetButton.addEventListener("click", () => { state.range = null; load(); });
  // Redrawn when the charts' width changes, not at every resize event (a full-page screenshot or a
  // phone's toolbar changes only the height, and a redraw would drop a drag in progress).
  let resizeTimer = null;
  let drawnWidth = grid.clientWidth;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (grid.clientWidth === drawnWidth) return;
      drawnWidth = grid.clientWidth;
      draw();
    }, 150);
  });
  load();
})();
