// The inbox's live updates: about once a second, ask /api/v1/alerts (with the page's filters) for
// alerts raised since shortly before the newest shown, and fold each new one into its incident's row
// (same owner, rule and run group or project, less than the incident gap after the row's newest) or
// into a new row on top. Everything from the API is set as text (alertsPage.el), never as HTML.
"use strict";
(function () {
  const POLL_MS = 1000;
  const list = document.getElementById("incidents");
  if (!list || list.dataset.live !== "yes") return;
  const { api, el } = window.alertsPage;
  const status = document.getElementById("live-status");
  const empty = document.getElementById("inbox-empty");
  const gap = Number(list.dataset.gap);
  const slack = Number(list.dataset.slack);
  const floor = list.dataset.since ? Number(list.dataset.since) : null; // the page's time filter
  let newest = Number(list.dataset.newest);
  const seen = new Map(); // alert id -> created_at, for the alerts inside the polling window
  for (const id of JSON.parse(list.dataset.recentIds || "[]")) seen.set(id, newest);

  /** The incident key the server gives a row (alerts/web/incidents.py key_of). */
  function keyOf(a) {
    return `${a.owner}|${a.rule || "alert"}|${a.run_group || a.project}`;
  }

  /** 2026-12-01 07:24:32: seconds since the epoch in UTC, as the server writes them. */
  function when(ts) {
    return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function runsText(runs) {
    const shown = runs.slice(0, 10).join(", ");
    const more = runs.length > 10 ? ` +${runs.length - 10} more` : "";
    return `${runs.length} run${runs.length === 1 ? "" : "s"}: ${shown}${more}`;
  }

  /** A row as the server renders it (templates/inbox.html), for an incident's newest alert ``a``. */
  function row(a, count, runs, oldest) {
    const meta = [el("span", { class: "when" }, when(a.created_at))];
    if (list.dataset.admin === "yes") meta.push(el("span", { class: "owner" }, `${a.owner}'s`));
    meta.push(el("span", { class: "project" }, a.project));
    if (a.run_group) meta.push(el("span", { class: "group" }, `group ${a.run_group}`));
    meta.push(el("span", { class: "rule" }, a.rule || "alert()"), el("span", { class: "runs" }, runsText(runs)));
    const item = el("li", {
        class: `incident lvl-${a.level}${a.status === "resolved" ? " is-resolved" : ""} fresh`,
        "data-key": keyOf(a), "data-newest": a.created_at, "data-oldest": oldest, "data-count": count,
        "data-runs": JSON.stringify(runs), "data-alert-id": a.id,
      },
      el("div", { class: "incident-head" },
        el("span", { class: `badge lvl-${a.level}` }, a.level),
        el("span", { class: `badge status-${a.status}` }, a.status),
        el("a", { class: "incident-title", href: `/inbox/alerts/${a.id}` }, a.title),
        el("span", { class: "count", title: "alerts in this incident" }, `×${count}`)),
      el("div", { class: "incident-meta muted" }, ...meta),
      el("div", { class: "incident-actions" },
        el("a", { class: "run-link", href: `/runs/${encodeURIComponent(a.run_id)}` }, `Run ${a.run_name}`),
        el("a", { class: "silence-link", href: `/inbox/alerts/${a.id}#silence` }, "Silence")));
    return item;
  }

  /** Fold one new alert into the list: into the newest row of its incident, or as a new row on top. */
  function add(a) {
    const key = keyOf(a);
    let current = null;
    for (const item of list.children) {
      if (item.dataset.key === key) { current = item; break; } // the first is the newest of that key
    }
    let count = 1, runs = [a.run_name], oldest = a.created_at;
    if (current && a.created_at - Number(current.dataset.newest) < gap) {
      count = Number(current.dataset.count) + 1;
      runs = JSON.parse(current.dataset.runs);
      if (!runs.includes(a.run_name)) runs.push(a.run_name);
      oldest = Number(current.dataset.oldest);
      current.remove();
    }
    list.prepend(row(a, count, runs, oldest));
    if (empty) empty.hidden = true;
  }

  async function poll() {
    try {
      let since = newest - slack;
      if (floor !== null && floor > since) since = floor;
      const query = list.dataset.query ? `${list.dataset.query}&` : "";
      let cursor = null, fresh = [];
      for (let pages = 0; pages < 5; pages++) { // a burst bigger than 1000 alerts a second waits for a reload
        const page = await api(`/api/v1/alerts?${query}since=${since}&limit=200${cursor ? `&cursor=${cursor}` : ""}`);
        const unseen = page.items.filter((a) => !seen.has(a.id));
        fresh = fresh.concat(unseen);
        cursor = page.next_cursor;
        if (!cursor || unseen.length < page.items.length) break;
      }
      fresh.sort((x, y) => x.created_at - y.created_at || x.id - y.id);
      for (const a of fresh) {
        seen.set(a.id, a.created_at);
        if (a.created_at > newest) newest = a.created_at;
        add(a);
      }
      for (const [id, at] of seen) if (at < newest - 2 * slack) seen.delete(id);
      // The status (a live region) changes only when there is news: not a "checked" every second.
      if (fresh.length) {
        status.textContent = `Live: ${fresh.length} new alert${fresh.length === 1 ? "" : "s"} at ${when(Date.now() / 1000)} UTC.`;
      } else if (status.classList.contains("error")) {
        status.textContent = "Live: new alerts appear here as they are raised.";
      }
      status.classList.remove("error");
    } catch (err) {
      status.textContent = `Live updates paused (${err.message}); retrying.`;
      status.classList.add("error");
    }
    setTimeout(poll, POLL_MS);
  }

  setTimeout(poll, POLL_MS);
})();
