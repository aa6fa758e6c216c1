/* callflow console: plain JavaScript, no dependencies, no build step.
 *
 * Pages are URL fragments: #/flows, #/flows/<id>, #/runs?flow=<id>&status=<status>&number=<number>,
 * #/runs/<run id>. Everything comes from the service's JSON API (same origin, the
 * browser's Basic auth). Every text from the service (names, payload values, errors, XML)
 * reaches the page through textContent, attribute setters or DOMParser: never parsed as HTML.
 */
"use strict";

(() => {
  const POLL_MS = 1000;
  const STATUSES = ["running", "waiting", "completed", "failed"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");
  const connection = document.getElementById("connection");

  // -- DOM helpers ---------------------------------------------------------------------------
  /** h("a", {href: "#/x", class: "c"}, "text", child...): an element; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (key === "value") el.value = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function replace(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  /** A hash link to a console page; path segments are URI-encoded. */
  function page(...segments) {
    return "#/" + segments.map((s) => encodeURIComponent(s)).join("/");
  }

  function badge(status) {
    return h("span", {class: "badge status-" + (STATUSES.includes(status) ? status : "unknown")}, status || "?");
  }

  function code(text, cls) {
    return h("code", {class: cls}, text);
  }

  // -- formatting ----------------------------------------------------------------------------
  function parseTime(iso) {
    const t = iso ? Date.parse(iso) : NaN;
    return Number.isNaN(t) ? null : t;
  }

  function pad(n, w = 2) {
    return String(n).padStart(w, "0");
  }

  function clock(iso) {
    const t = parseTime(iso);
    if (t === null) return "";
    const d = new Date(t);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
    if (ms < 0) ms = 0;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    const s = Math.round(ms / 1000);
    return `${Math.floor(s / 60)} min ${s % 60} s`;
  }

  function span(fromIso, toIso) {
    const a = parseTime(fromIso), b = parseTime(toIso);
    return a === null || b === null ? null : b - a;
  }

  function finished(status) {
    return status === "completed" || status === "failed";
  }

  /** An XML document indented for reading (as text: the caller puts it in textContent). */
  function prettyXml(source) {
    const doc = new DOMParser().parseFromString(source, "application/xml");
    if (doc.getElementsByTagName("parsererror").length) return source;
    const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const lines = [];
    const walk = (node, depth) => {
      const indent = "  ".repeat(depth);
      const attrs = Array.from(node.attributes)
        .map((a) => ` ${a.name}="${esc(a.value).replace(/"/g, "&quot;")}"`).join("");
      const kids = Array.from(node.childNodes).filter((c) =>
        c.nodeType === Node.ELEMENT_NODE || (c.nodeType === Node.TEXT_NODE && c.data.trim()) ||
        c.nodeType === Node.CDATA_SECTION_NODE);
      if (!kids.length) {
        lines.push(`${indent}<${node.nodeName}${attrs}/>`);
      } else if (kids.every((c) => c.nodeType !== Node.ELEMENT_NODE)) {
        lines.push(`${indent}<${node.nodeName}${attrs}>${esc(kids.map((c) => c.data).join(""))}</${node.nodeName}>`);
      } else {
        lines.push(`${indent}<${node.nodeName}${attrs}>`);
        for (const c of kids) {
          if (c.nodeType === Node.ELEMENT_NODE) walk(c, depth + 1);
          else lines.push("  ".repeat(depth + 1) + esc(c.data.trim()));
        }
        lines.push(`${indent}</${node.nodeName}>`);
      }
    };
    walk(doc.documentElement, 0);
    return lines.join("\n");
  }

  // -- the API -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function setConnection(problem) {
    if (problem) {
      connection.textContent = problem;
      connection.hidden = false;
    } else {
      connection.hidden = true;
    }
  }

  async function request(path, options = {}) {
    let res;
    try {
      res = await fetch(path, {credentials: "same-origin", cache: "no-store", ...options});
    } catch (e) {
      setConnection("service unreachable: retrying");
      throw new ApiError(0, "the service cannot be reached");
    }
    setConnection(res.status === 401 ? "not signed in: reload the page to enter the auth id and token" : null);
    return res;
  }

  async function api(path, options = {}) {
    const res = await request(path, {...options, headers: {Accept: "application/json", ...(options.headers || {})}});
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      body = null;
    }
    if (!res.ok) {
      const message = body && typeof body.error === "string" ? body.error : `HTTP ${res.status}`;
      throw new ApiError(res.status, message);
    }
    return body;
  }

  const flowCache = new Map(); // "flow id@revision" -> Promise of {detail, svg text}: a revision never changes

  async function fetchFlow(flowId, revision) {
    const query = revision ? "?revision=" + encodeURIComponent(revision) : "";
    const detail = await api("/v1/flows/" + encodeURIComponent(flowId) + query);
    const res = await request(detail.graph_url || `/v1/flows/${encodeURIComponent(flowId)}/graph.svg${query}`);
    const svg = res.ok ? await res.text() : null;
    return {detail, svg};
  }

  /** A flow at `revision` (cached), or its current revision (asked every time: a reload may change it). */
  function loadFlow(flowId, revision) {
    if (!revision) return fetchFlow(flowId, null);
    const key = flowId + "@" + revision;
    if (!flowCache.has(key)) {
      const p = fetchFlow(flowId, revision);
      p.catch(() => flowCache.delete(key));
      flowCache.set(key, p);
    }
    return flowCache.get(key);
  }

  /** The flow a run ran on, and a note when that is not the current revision (or is no longer stored). */
  async function flowOfRun(record) {
    const rev = record.flow_revision;
    try {
      const flow = await loadFlow(record.flow_id, rev);
      const note = rev && flow.detail.current === false ?
        ["old", `Drawn at revision ${rev.slice(0, 12)}, the one this run ran on: ` +
          "the flow's file has changed since (or was removed)."] : null;
      return {...flow, note};
    } catch (e) {
      if (!rev || e.status !== 404) throw e;
    }
    const flow = await loadFlow(record.flow_id); // pruned: the current graph, said so
    return {...flow, note: ["pruned", `Revision ${rev.slice(0, 12)}, the one this run ran on, is no longer stored ` +
      `(no unfinished run needed it): this is the current revision ${flow.detail.revision.slice(0, 12)}, ` +
      "whose nodes may differ from the run's."]};
  }

  // -- the graph -----------------------------------------------------------------------------
  /** The flow's SVG as a live element: parsed as XML (never as HTML), then stripped of
   * anything active, as a second line of defence (graph_export escapes every text). */
  function graphElement(svgText) {
    if (!svgText) return h("p", {class: "notice"}, "The graph could not be drawn.");
    const doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
    const root = doc.documentElement;
    if (!root || root.namespaceURI !== SVG_NS || doc.getElementsByTagName("parsererror").length) {
      return h("p", {class: "notice"}, "The graph could not be drawn.");
    }
    for (const bad of root.querySelectorAll("script, foreignObject, iframe, a, use[href^='http']")) bad.remove();
    for (const el of [root, ...root.querySelectorAll("*")]) {
      for (const attr of Array.from(el.attributes)) {
        const name = attr.name.toLowerCase();
        if (name.startsWith("on") || ((name === "href" || name === "xlink:href") && !attr.value.startsWith("#"))) {
          el.removeAttribute(attr.name);
        }
      }
    }
    const svg = document.importNode(root, true);
    svg.setAttribute("class", "flow-graph");
    const viewport = h("div", {class: "graph-scroll"}, svg);
    const camera = window.callflowGraph.zoomable(viewport, svg);
    const tool = (cls, label, text, act) => h("button", {type: "button", class: "secondary " + cls, title: label,
      "aria-label": label, onclick: act}, text);
    const tools = h("div", {class: "graph-tools", role: "toolbar", "aria-label": "Zoom"},
      tool("zoom-in", "zoom in", "+", () => camera.zoomBy(1.25)),
      tool("zoom-out", "zoom out", "\u2212", () => camera.zoomBy(0.8)),
      tool("zoom-fit", "show the whole graph", "fit", () => camera.fit()),
      h("span", {class: "hint"}, "wheel: zoom \u00b7 drag: move \u00b7 click a node: its settings"));
    return h("div", {class: "graph-view"}, tools, viewport);
  }

  function svgNodes(svg) {
    const map = new Map();
    for (const g of svg.querySelectorAll("g.node[data-name]")) map.set(g.getAttribute("data-name"), g);
    return map;
  }

  /** The edge each step took: [{source, target, error}], from the flow's `next`/`error` maps. */
  function takenEdges(detail, record) {
    const specs = new Map(detail.nodes.map((n) => [n.name, n]));
    const visited = new Set(record.steps.map((s) => s.node));
    const taken = [];
    for (const step of record.steps) {
      const spec = specs.get(step.node);
      if (!spec || step.outcome === null || step.outcome === undefined) continue;
      let target, error = false;
      if (step.outcome === "error" && step.error && spec.error) {
        target = spec.error;
        error = true;
      } else {
        target = spec.next[step.outcome];
      }
      if (target && visited.has(target)) taken.push({source: step.node, target, error});
    }
    return taken;
  }

  /** Draw a run on its flow's graph: classes on nodes and edges (see style.css). */
  function overlay(svg, detail, record) {
    svg.classList.add("overlay");
    const nodes = svgNodes(svg);
    const visits = new Map();
    const failed = new Set();
    for (const step of record.steps) {
      visits.set(step.node, (visits.get(step.node) || 0) + 1);
      if (step.error) failed.add(step.node);
    }
    let current = null;
    if (!finished(record.status) && record.steps.length) {
      const last = record.steps[record.steps.length - 1];
      if (!last.ended_at || record.status === "waiting") current = last.node;
    }
    for (const old of svg.querySelectorAll(".visit-count")) old.remove();
    for (const [name, g] of nodes) {
      const on = visits.has(name);
      g.classList.toggle("on-path", on);
      g.classList.toggle("off-path", !on);
      g.classList.toggle("failed", failed.has(name));
      g.classList.toggle("current", name === current);
      const count = visits.get(name) || 0;
      const box = g.querySelector("rect");
      if (count > 1 && box) {
        const x = parseFloat(box.getAttribute("x")) + parseFloat(box.getAttribute("width"));
        const y = parseFloat(box.getAttribute("y"));
        const t = document.createElementNS(SVG_NS, "text");
        t.setAttribute("class", "visit-count");
        t.setAttribute("x", String(x - 4));
        t.setAttribute("y", String(y + 11));
        t.setAttribute("text-anchor", "end");
        t.textContent = "\u00d7" + count;
        g.append(t);
      }
    }
    const taken = takenEdges(detail, record);
    const isTaken = (p) => taken.some((e) => e.source === p.getAttribute("data-source") &&
      e.target === p.getAttribute("data-target") && e.error === p.classList.contains("error"));
    const labels = svg.querySelectorAll("rect.edge-label"); // one per edge, in the same order
    svg.querySelectorAll("path.edge").forEach((path, i) => {
      const on = isTaken(path);
      path.classList.toggle("taken", on);
      if (labels[i]) labels[i].classList.toggle("taken", on);
      const marker = path.getAttribute("marker-end") || "";
      const base = marker.replace(/-taken\)$/, ")");
      path.setAttribute("marker-end", on ? base.replace(/\)$/, "-taken)") : base);
    });
    ensureTakenMarkers(svg);
  }

  function ensureTakenMarkers(svg) {
    const defs = svg.querySelector("defs");
    if (!defs) return;
    for (const marker of Array.from(defs.querySelectorAll("marker"))) {
      if (marker.id.endsWith("-taken") || defs.querySelector(`[id="${marker.id}-taken"]`)) continue;
      const copy = marker.cloneNode(true);
      copy.id = marker.id + "-taken";
      copy.setAttribute("class", "marker-taken");
      const color = marker.id.endsWith("-error") ? "#b91c1c" : "#ea580c";
      for (const p of copy.querySelectorAll("path")) p.setAttribute("fill", color);
      defs.append(copy);
    }
  }

  // The node panel, the incoming-call form and a request's answer (console_assets/panels.js).
  const {nodePanel, incomingForm, messageForm, responseLine} = window.callflowPanels({h, code, replace, svgNodes, api, page, finished});

  // -- pages ---------------------------------------------------------------------------------
  let generation = 0; // bumped on every navigation: stale async work sees it and stops
  const timers = new Set();

  function alive(gen) {
    return gen === generation;
  }

  /** Call `tick` now and every POLL_MS after it settles, while the page is shown and until
   * it returns false. */
  function poll(gen, tick) {
    const run = async () => {
      if (!alive(gen)) return;
      let again = true;
      try {
        if (!document.hidden) again = (await tick()) !== false;
      } catch (e) {
        again = true; // shown by the connection banner; try again
      }
      if (again && alive(gen)) {
        const t = setTimeout(() => {
          timers.delete(t);
          run();
        }, POLL_MS);
        timers.add(t);
      }
    };
    run();
  }

  function failure(e) {
    return h("p", {class: "notice error"}, e instanceof ApiError ? e.message : String(e));
  }

  // flows -------------------------------------------------------------------------------------
  /** The last reload this process refused (kept until a reload applies): when, why, each diagnostic. */
  function refusedBanner(refused) {
    if (!refused) return null;
    const errors = (refused.diagnostics || []).filter((d) => d.severity === "error");
    return h("section", {class: "notice error reload-refused", role: "alert"},
      h("p", {}, h("strong", {}, "The last reload was refused: nothing changed."),
        ` ${clock(refused.at)}, by the process `, code(refused.process || "?"),
        ". The flows below keep serving their running revisions until a reload applies."),
      refused.error ? h("p", {class: "reload-error"}, refused.error) : null,
      errors.length ? h("ul", {class: "diagnostics"}, errors.map((d) => h("li", {},
        code(`${d.path}:${d.line}:${d.col}`, "where"), " ", code(d.code, "diag-code"), " ", d.message))) : null);
  }

  async function flowsPage(gen) {
    const banner = h("div", {class: "reload-box"});
    const body = h("div", {class: "loading"}, "Loading flows\u2026");
    replace(main, h("div", {class: "title-row"}, h("h1", {}, "Flows"), h("span", {class: "live"}, "live")), banner, body);
    let last = "";
    poll(gen, async () => {
      let data;
      try {
        data = await api("/v1/flows");
      } catch (e) {
        if (alive(gen) && !last) replace(body, failure(e));
        throw e;
      }
      if (!alive(gen)) return false;
      const text = JSON.stringify([data.flows, data.refused_reload]);
      if (text !== last) {
        last = text;
        replace(banner, refusedBanner(data.refused_reload));
        renderFlows(body, data);
      }
      return true;
    });
  }

  function renderFlows(body, data) {
    body.className = "";
    if (!data.flows.length) {
      replace(body, h("p", {class: "notice"}, "No flows are served. Put flow files in the folder given to ",
        code("callflow serve"), "."));
      return;
    }
    const rows = data.flows.map((f) => h("tr", {"data-flow": f.id},
      h("td", {}, h("a", {href: page("flows", f.id), class: "flow-link"}, f.name || f.id)),
      h("td", {}, code(f.id)),
      h("td", {class: "num"}, String(f.nodes)),
      h("td", {}, f.valid ? h("span", {class: "badge valid"}, "valid") : h("span", {class: "badge invalid"}, "invalid"),
        f.warnings ? h("span", {class: "badge warning"}, `${f.warnings} warning${f.warnings === 1 ? "" : "s"}`) : null),
      h("td", {class: "path"}, f.path || ""),
      h("td", {class: "revision"}, f.revision ? code(f.revision.slice(0, 12), "rev") : "",
        f.loaded_at ? h("span", {class: "hint"}, ` loaded ${clock(f.loaded_at)}`) : null,
        f.runs_on_older_revisions ? h("span", {class: "badge warning older-runs"},
          `${f.runs_on_older_revisions} run${f.runs_on_older_revisions === 1 ? "" : "s"} on older revisions`) : null),
      h("td", {}, h("a", {href: "#/runs?flow=" + encodeURIComponent(f.id)}, "runs"))));
    replace(body, h("table", {class: "list flows"},
      h("thead", {}, h("tr", {}, ["Flow", "Id", "Nodes", "Validity", "File", "Revision", ""].map((t) => h("th", {class: t === "Nodes" ? "num" : null}, t)))),
      h("tbody", {}, rows)));
  }

  // flow --------------------------------------------------------------------------------------
  async function flowPage(gen, flowId) {
    replace(main, h("div", {class: "loading"}, "Loading the flow\u2026"));
    let flow;
    try {
      flow = await loadFlow(flowId);
    } catch (e) {
      if (alive(gen)) replace(main, crumbs(["Flows", "#/flows"], [flowId]), failure(e));
      return;
    }
    if (!alive(gen)) return;
    const d = flow.detail;
    const runsBox = h("div", {class: "runs-box"});
    const graph = graphElement(flow.svg);
    const panel = nodePanel(d, graph.querySelector("svg"));
    replace(main,
      crumbs(["Flows", "#/flows"], [d.name || d.id]),
      h("div", {class: "title-row"}, h("h1", {}, d.name || d.id), code(d.id, "flow-id"),
        h("span", {class: "badge valid"}, "valid")),
      d.description ? h("p", {class: "description"}, d.description) : null,
      h("p", {class: "meta"}, `${d.nodes.length} nodes \u00b7 `, code(d.path || ""), ` \u00b7 loaded ${clock(d.created_on)}`,
        d.revision ? [" \u00b7 revision ", code(d.revision.slice(0, 12), "rev")] : null),
      d.warnings.length ? h("details", {class: "warnings"}, h("summary", {}, `${d.warnings.length} warning(s)`),
        h("ul", {}, d.warnings.map((w) => h("li", {}, code(w))))) : null,
      h("div", {class: "columns"},
        h("section", {class: "card graph-card"}, h("h2", {}, "Graph"), graph, panel.el),
        h("section", {class: "card form-card"}, d.incoming ? [h("h2", {}, "Incoming call"), incomingForm(d)] : null,
          d.incoming_message ? [h("h2", {class: d.incoming ? "second" : null}, "Incoming SMS"), messageForm(d)] : null,
          h("h2", {class: d.incoming || d.incoming_message ? "second" : null}, "Start a run"), takesRuns(d) ? runForm(d) :
            h("p", {class: "hint"}, "This flow takes no run requests: its trigger has no ", code("http"), " path."))),
      h("section", {class: "card"}, h("div", {class: "section-head"}, h("h2", {}, "Recent runs"),
        h("a", {href: "#/runs?flow=" + encodeURIComponent(d.id)}, "all runs of this flow")), runsBox));
    runsTable(gen, runsBox, {flow: d.id, status: "", limit: 10, showFlow: false});
  }

  /** Whether run requests start this flow: its trigger routes the `http` outcome. */
  function takesRuns(d) {
    const start = d.nodes.find((n) => n.name === d.trigger);
    return !start || !start.outcomes || start.outcomes.some((o) => o.outcome === "http" && o.target);
  }

  function crumbs(...items) {
    return h("nav", {class: "crumbs", "aria-label": "Breadcrumb"}, items.map(([label, href], i) => [
      i ? h("span", {class: "sep", "aria-hidden": "true"}, "/") : null,
      href ? h("a", {href}, label) : h("span", {}, label)]));
  }

  function runForm(d) {
    const fields = d.fields || [];
    const inputs = [];
    const list = h("div", {class: "fields"});
    fields.forEach((f, i) => {
      const id = "field-" + i;
      const scalar = f.editable !== false;
      const initial = f.default === null || f.default === undefined ? "" :
        (scalar ? String(f.default) : JSON.stringify(f.default));
      const input = h("input", {id, type: "text", name: f.name, value: initial, required: f.required && scalar,
        disabled: !scalar, autocomplete: "off", spellcheck: "false", "data-field": f.name});
      if (scalar) inputs.push({field: f, input, initial});
      list.append(h("div", {class: "field"},
        h("label", {for: id}, code(f.name), f.required ? h("span", {class: "req"}, "required") : null,
          f.default !== null && f.default !== undefined ? h("span", {class: "hint"}, "default from the flow") : null),
        input,
        scalar ? null : h("span", {class: "hint"}, "a structured value: always the flow's")));
    });
    if (!fields.length) list.append(h("p", {class: "hint"}, "This flow's trigger declares no payload keys."));
    const extra = h("div", {class: "extra"});
    const addField = h("button", {type: "button", class: "secondary", onclick: () => {
      const key = h("input", {type: "text", placeholder: "key", class: "extra-key", autocomplete: "off"});
      const value = h("input", {type: "text", placeholder: "value", class: "extra-value", autocomplete: "off"});
      const row = h("div", {class: "extra-row"}, key, value,
        h("button", {type: "button", class: "secondary", "aria-label": "remove", onclick: () => row.remove()}, "\u00d7"));
      extra.append(row);
      key.focus();
    }}, "Add a payload value");
    const status = h("p", {class: "form-status", role: "status"});
    const submit = h("button", {type: "submit", class: "primary"}, "Start run");
    const form = h("form", {class: "run-form", novalidate: false}, list, extra,
      h("div", {class: "form-actions"}, submit, addField), status,
      h("p", {class: "hint"}, "Posts the values to ", code(d.run_url.replace(/\/account\/[^/]+\//, "/account/\u2026/")),
        " like a PHLO run request."));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const payload = {};
      for (const {field, input, initial} of inputs) {
        // An untouched default keeps its type (a number stays a number); typed values are text.
        payload[field.name] = input.value === initial && field.default !== null ? field.default : input.value;
      }
      for (const row of extra.querySelectorAll(".extra-row")) {
        const key = row.querySelector(".extra-key").value.trim();
        if (key) payload[key] = row.querySelector(".extra-value").value;
      }
      submit.disabled = true;
      status.className = "form-status";
      status.textContent = "Starting\u2026";
      try {
        const res = await api(d.run_url, {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(payload)});
        location.hash = page("runs", res.api_id);
      } catch (e) {
        status.className = "form-status error";
        status.textContent = e.message;
        submit.disabled = false;
      }
    });
    return form;
  }

  // runs --------------------------------------------------------------------------------------
  /** A live table of runs in `box`; opts: {flow, status, limit, showFlow}. */
  function runsTable(gen, box, opts) {
    const tbody = h("tbody");
    const empty = h("p", {class: "notice empty", hidden: true},
      opts.number ? ["No run's call has ", code(opts.number), " at either end."] : "No runs yet.");
    const more = h("button", {type: "button", class: "secondary more", hidden: true, onclick: () => {
      opts.limit = Math.min(opts.limit + 50, 500);
      more.disabled = true;
    }}, "Show older runs");
    const heads = ["Run", opts.showFlow ? "Flow" : null, "Status", "Started", "Duration", "Error"].filter(Boolean);
    const table = h("table", {class: "list runs", hidden: true},
      h("thead", {}, h("tr", {}, heads.map((t) => h("th", {class: t === "Duration" ? "num" : null}, t)))), tbody);
    replace(box, table, empty, more);
    let last = "";
    poll(gen, async () => {
      const q = new URLSearchParams({limit: String(opts.limit)});
      if (opts.flow) q.set("flow_id", opts.flow);
      if (opts.status) q.set("status", opts.status);
      if (opts.number) q.set("number", opts.number);
      const data = await api("/v1/runs?" + q);
      if (!alive(gen)) return false;
      more.disabled = false;
      more.hidden = !data.next_cursor;
      const now = Date.now();
      const key = JSON.stringify(data.runs) + (data.runs.some((r) => !finished(r.status)) ? now : "");
      if (key === last) return true;
      last = key;
      empty.hidden = data.runs.length > 0;
      table.hidden = !data.runs.length;
      replace(tbody, data.runs.map((r) => {
        const end = finished(r.status) ? parseTime(r.updated_at) : now;
        const start = parseTime(r.created_at);
        return h("tr", {"data-run": r.run_id, "data-status": r.status},
          h("td", {}, h("a", {href: page("runs", r.run_id), title: r.run_id, class: "run-link"}, code(r.run_id.slice(0, 8)))),
          opts.showFlow ? h("td", {}, h("a", {href: page("flows", r.flow_id)}, r.flow_id)) : null,
          h("td", {}, badge(r.status)),
          h("td", {class: "time"}, clock(r.created_at)),
          h("td", {class: "num"}, start === null || end === null ? "" : duration(end - start)),
          h("td", {class: "error-text"}, r.error || ""));
      }));
      return true;
    });
  }

  async function runsPage(gen, params) {
    const opts = {flow: params.get("flow") || "", status: params.get("status") || "", number: params.get("number") || "",
      limit: 50, showFlow: true};
    const numberInput = h("input", {id: "filter-number", name: "number", type: "search", value: opts.number,
      placeholder: "+12025550100", autocomplete: "off", spellcheck: "false", inputmode: "tel",
      title: "a caller or callee number (E.164; the + and spaces may be left out)"});
    const flowSelect = h("select", {id: "filter-flow", name: "flow"}, h("option", {value: ""}, "all flows"));
    const statusSelect = h("select", {id: "filter-status", name: "status"}, h("option", {value: ""}, "any status"),
      STATUSES.map((s) => h("option", {value: s}, s)));
    statusSelect.value = opts.status;
    const box = h("div", {class: "runs-box"});
    replace(main, h("div", {class: "title-row"}, h("h1", {}, "Runs"), h("span", {class: "live"}, "live")),
      h("form", {class: "filters", role: "search", onsubmit: (e) => {
        e.preventDefault();
        restart();
      }},
        h("label", {for: "filter-flow"}, "Flow"), flowSelect,
        h("label", {for: "filter-status"}, "Status"), statusSelect,
        h("label", {for: "filter-number"}, "Number"), numberInput,
        h("button", {type: "submit", class: "secondary search"}, "Search")),
      h("section", {class: "card"}, box));
    const restart = () => {
      const q = new URLSearchParams();
      if (flowSelect.value) q.set("flow", flowSelect.value);
      if (statusSelect.value) q.set("status", statusSelect.value);
      if (numberInput.value.trim()) q.set("number", numberInput.value.trim());
      const s = q.toString();
      history.replaceState(null, "", "#/runs" + (s ? "?" + s : ""));
      navigate(); // re-render with the new filters
    };
    flowSelect.addEventListener("change", restart);
    statusSelect.addEventListener("change", restart);
    numberInput.addEventListener("search", restart); // the field's clear button, or Enter
    runsTable(gen, box, opts);
    try {
      const data = await api("/v1/flows");
      if (!alive(gen)) return;
      const ids = data.flows.map((f) => f.id);
      if (opts.flow && !ids.includes(opts.flow)) ids.push(opts.flow);
      append(flowSelect, ids.map((id) => h("option", {value: id}, id)));
      flowSelect.value = opts.flow;
    } catch (e) {
      /* the filter keeps "all flows" */
    }
  }

  // run ---------------------------------------------------------------------------------------
  async function runPage(gen, runId) {
    const head = h("div", {class: "title-row"}, h("h1", {}, "Run ", code(runId, "run-id")));
    const meta = h("div", {class: "run-meta"});
    const graphBox = h("div", {class: "graph-box"}, h("p", {class: "loading"}, "Loading the graph\u2026"));
    const steps = h("div");
    const requests = h("div");
    const documents = h("div");
    const variables = h("div");
    replace(main, crumbs(["Runs", "#/runs"], [runId.slice(0, 8)]), head, meta,
      h("section", {class: "card graph-card"}, h("div", {class: "section-head"}, h("h2", {}, "Path"),
        h("span", {class: "run-legend"}, h("span", {class: "key on-path"}, "on the path"),
          h("span", {class: "key taken"}, "edge taken"), h("span", {class: "key failed"}, "failed step"),
          h("span", {class: "key current"}, "waiting here"))), graphBox),
      h("section", {class: "card"}, h("h2", {}, "Steps"), steps),
      h("div", {class: "columns two"},
        h("section", {class: "card"}, h("h2", {}, "API requests"), requests),
        h("section", {class: "card"}, h("h2", {}, "XML documents"), documents)),
      h("section", {class: "card"}, h("h2", {}, "Variables"), variables));
    let flow = null, svg = null, last = "";
    const liveBadge = h("span", {class: "live"}, "live");
    const statusBadge = h("span");
    head.append(statusBadge, liveBadge);
    poll(gen, async () => {
      let record;
      try {
        record = await api("/v1/runs/" + encodeURIComponent(runId));
      } catch (e) {
        if (e.status === 404) {
          replace(meta, failure(e));
          liveBadge.remove();
          graphBox.replaceChildren();
          return false;
        }
        throw e;
      }
      if (!alive(gen)) return false;
      if (flow === null) {
        try {
          flow = await flowOfRun(record);
        } catch (e) {
          flow = {detail: null, svg: null};
        }
        if (!alive(gen)) return false;
        if (flow.detail) {
          const el = graphElement(flow.svg);
          svg = el.querySelector("svg");
          const note = flow.note ? h("p", {class: "notice revision-note", "data-note": flow.note[0]}, flow.note[1]) : null;
          replace(graphBox, note, el, svg ? nodePanel(flow.detail, svg).el : null);
          if (svg) {
            for (const [name, g] of svgNodes(svg)) {
              g.addEventListener("click", () => showStepsOf(steps, name));
            }
          }
        } else {
          replace(graphBox, h("p", {class: "notice"}, `The flow ${record.flow_id} is not served any more.`));
        }
      }
      const text = JSON.stringify(record);
      if (text !== last) {
        last = text;
        replace(statusBadge, badge(record.status));
        document.body.setAttribute("data-run-status", record.status);
        renderMeta(meta, record);
        if (svg && flow.detail) overlay(svg, flow.detail, record);
        renderSteps(steps, record);
        renderRequests(requests, record);
        renderDocuments(documents, record);
        replace(variables, h("details", {}, h("summary", {}, "Node outputs (JSON)"),
          h("pre", {class: "json"}, JSON.stringify(record.variables || {}, null, 2))));
      }
      if (finished(record.status)) {
        liveBadge.remove();
        return false;
      }
      return true;
    });
  }

  function renderMeta(meta, r) {
    const end = finished(r.status) ? r.updated_at : new Date().toISOString();
    replace(meta,
      h("dl", {class: "facts"},
        h("dt", {}, "Flow"), h("dd", {}, h("a", {href: page("flows", r.flow_id)}, r.flow_id)),
        r.flow_revision ? h("dt", {}, "Revision") : null,
        r.flow_revision ? h("dd", {title: r.flow_revision}, code(r.flow_revision.slice(0, 12))) : null,
        h("dt", {}, "Started"), h("dd", {}, clock(r.created_at)),
        h("dt", {}, finished(r.status) ? "Took" : "Running for"), h("dd", {}, duration(span(r.created_at, end))),
        h("dt", {}, "Steps"), h("dd", {}, String(r.steps.length))),
      r.error ? h("p", {class: "notice error run-error"}, r.error) : null);
  }

  function showStepsOf(box, name) {
    const rows = box.querySelectorAll("tr[data-node]");
    let first = null;
    rows.forEach((row) => {
      const hit = row.getAttribute("data-node") === name;
      row.classList.toggle("selected", hit);
      if (hit && !first) first = row;
    });
    if (first) first.scrollIntoView({block: "nearest", behavior: "smooth"});
  }

  function renderSteps(box, r) {
    if (!r.steps.length) {
      replace(box, h("p", {class: "notice empty"}, "No step has run yet."));
      return;
    }
    const rows = r.steps.map((s, i) => {
      const took = span(s.started_at, s.ended_at);
      return h("tr", {"data-node": s.node, class: s.error ? "failed" : null},
        h("td", {class: "num"}, String(i + 1)),
        h("td", {}, code(s.node)),
        h("td", {class: "type"}, s.type),
        h("td", {}, s.outcome === null || s.outcome === undefined ?
          h("span", {class: "pending"}, finished(r.status) ? "\u2014" : "running\u2026") : code(s.outcome, "outcome")),
        h("td", {class: "num time"}, "+" + duration(span(r.created_at, s.started_at))),
        h("td", {class: "num"}, took === null ? "" : duration(took)),
        h("td", {class: "error-text"}, s.error || ""));
    });
    replace(box, h("table", {class: "list steps"},
      h("thead", {}, h("tr", {}, ["#", "Node", "Type", "Outcome", "Started", "Took", "Error"].map((t) =>
        h("th", {class: ["#", "Started", "Took"].includes(t) ? "num" : null}, t)))),
      h("tbody", {}, rows)));
  }

  function renderRequests(box, r) {
    if (!r.requests.length) {
      replace(box, h("p", {class: "notice empty"}, "No API request was sent."));
      return;
    }
    replace(box, r.requests.map((q) => h("div", {class: "request"},
      h("div", {class: "request-line"}, code(q.method || "", "method"), " ", code(q.url || "", "url"),
        q.node ? h("span", {class: "hint"}, " from ", code(q.node)) : null),
      q.json !== undefined && q.json !== null ? h("pre", {class: "json"}, JSON.stringify(q.json, null, 2)) : null,
      q.form !== undefined && q.form !== null ? h("pre", {class: "json"}, JSON.stringify(q.form, null, 2)) : null,
      responseLine(q.response, r.status))));
  }

  function renderDocuments(box, r) {
    if (!r.documents.length) {
      replace(box, h("p", {class: "notice empty"}, "No XML document was served."));
      return;
    }
    replace(box, r.documents.map((doc, i) => h("div", {class: "document"},
      h("div", {class: "hint"}, `document ${i + 1}`), h("pre", {class: "xml"}, prettyXml(doc)))));
  }

  // -- routing -------------------------------------------------------------------------------
  function navigate() {
    generation += 1;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    const gen = generation;
    const raw = location.hash.replace(/^#\/?/, "");
    const [pathPart, query = ""] = raw.split("?", 2);
    const parts = pathPart.split("/").filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (e) {
        return p;
      }
    });
    const section = parts[0] || "flows";
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.getAttribute("data-nav") === section);
    }
    document.body.removeAttribute("data-run-status");
    let title = "callflow";
    if (section === "flows" && parts.length === 1 || !parts.length) {
      flowsPage(gen);
      title = "Flows \u00b7 callflow";
    } else if (section === "flows") {
      flowPage(gen, parts[1]);
      title = `${parts[1]} \u00b7 callflow`;
    } else if (section === "runs" && parts.length === 1) {
      runsPage(gen, new URLSearchParams(query));
      title = "Runs \u00b7 callflow";
    } else if (section === "runs") {
      runPage(gen, parts[1]);
      title = `Run ${parts[1].slice(0, 8)} \u00b7 callflow`;
    } else {
      replace(main, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", {href: "#/flows"}, "See the flows.")));
    }
    document.title = title;
    window.scrollTo(0, 0);
  }

  window.addEventListener("hashchange", navigate);
  navigate();
})();
