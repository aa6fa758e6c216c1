/* The console's campaigns page (/console/campaigns.html): every campaign's progress from
 * GET /v1/campaigns, refreshed every 2 s; pause, resume and cancel; a campaign's rows from
 * its results CSV, each linked to its run (#/runs/<id> on the console's main page). */
(function () {
  "use strict";
  const ACTIONS = {running: ["pause", "cancel"], paused: ["resume", "cancel"], loading: ["cancel"]};
  let shown = null;  // the campaign whose rows are listed

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    for (const c of children) el.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
    return el;
  }

  async function api(path, options) {
    const res = await fetch(path, {credentials: "same-origin", cache: "no-store", ...options});
    if (!res.ok) {
      let message = res.status + " " + res.statusText;
      try { message = (await res.json()).error || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return res;
  }

  function bar(p) {
    const done = p.rows ? Math.round(100 * (p.started + p.skipped) / p.rows) : 100;
    const meter = h("progress", {max: "100", value: String(done), "aria-label": done + "% started"});
    return h("span", {}, meter, " " + done + "%");
  }

  function row(c) {
    const p = c.progress;
    const pace = c.rate + "/s / " + (p.achieved_rate === null ? "–" : p.achieved_rate + "/s");
    const actions = h("td", {});
    for (const action of ACTIONS[c.status] || []) {
      const b = h("button", {type: "button"}, action);
      b.addEventListener("click", () => act(c.id, action, b));
      actions.append(b, " ");
    }
    const rowsLink = h("a", {href: "#" + c.id}, "rows");
    rowsLink.addEventListener("click", (e) => { e.preventDefault(); showRows(c); });
    actions.append(rowsLink, " ", h("a", {href: "/v1/campaigns/" + encodeURIComponent(c.id) + "/results"}, "CSV"));
    const num = (n) => h("td", {class: "num"}, n);
    return h("tr", {}, h("td", {}, c.name), h("td", {}, h("a", {href: "/#/flows/" + encodeURIComponent(c.flow_id)}, c.flow_id)),
      h("td", {}, h("span", {class: "badge"}, c.status)), h("td", {}, bar(p)), num(p.started), num(p.in_flight),
      num(p.completed), num(p.failed), num(p.skipped), num(p.remaining), num(pace), actions);
  }

  async function act(id, action, button) {
    button.disabled = true;
    try {
      await api("/v1/campaigns/" + encodeURIComponent(id) + "/" + action,
        {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
      await refresh();
    } catch (e) {
      document.getElementById("status").textContent = action + ": " + e.message;
    }
  }

  function parseCsv(text) {
    const rows = [];
    let cell = "", cells = [], quoted = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (ch === '"') quoted = false; else cell += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") { cells.push(cell); cell = ""; }
      else if (ch === "\n") { cells.push(cell); rows.push(cells); cells = []; cell = ""; }
      else cell += ch;
    }
    return rows;
  }

  async function showRows(c) {
    shown = c;
    const section = document.getElementById("rows");
    section.hidden = false;
    document.getElementById("rows-title").textContent = "Rows of " + c.name + " (the first 500)";
    const text = await (await api("/v1/campaigns/" + encodeURIComponent(c.id) + "/results")).text();
    const [header, ...rows] = parseCsv(text);
    const at = (r, name) => r[header.indexOf(name)] || "";
    const body = section.querySelector("tbody");
    body.replaceChildren(...rows.slice(0, 500).map((r) => h("tr", {}, h("td", {class: "num"}, at(r, "row")),
      h("td", {}, at(r, "destination")), h("td", {}, at(r, "status")), h("td", {}, at(r, "last_node")),
      h("td", {class: "error-text"}, at(r, "error")),
      h("td", {}, at(r, "run_id") ? h("a", {href: "/#/runs/" + encodeURIComponent(at(r, "run_id"))},
        at(r, "run_id").slice(0, 8)) : ""))));
  }

  async function refresh() {
    const status = document.getElementById("status");
    try {
      const data = await (await api("/v1/campaigns")).json();
      document.querySelector("#campaigns tbody").replaceChildren(...data.campaigns.map(row));
      status.textContent = data.campaigns.length ? "" : "No campaigns yet: callflow campaign start FLOW_ID CONTACTS.csv --server URL";
      if (shown) {
        const again = data.campaigns.find((c) => c.id === shown.id);
        if (again && again.status !== "done") await showRows(again);
      }
    } catch (e) {
      status.textContent = "cannot load the campaigns: " + e.message;
    }
  }

  refresh();
  setInterval(refresh, 2000);
})();
