/* callflow console: the node panel, the incoming-call and SMS forms and a request's answer. Plain
 * JavaScript, no dependency. app.js hands over its DOM and API helpers:
 *
 *   const {nodePanel, incomingForm, messageForm, responseLine} = callflowPanels({h, code, replace, svgNodes, api, page, finished});
 *
 * As in app.js, every text from the service reaches the page through textContent or
 * attribute setters, never parsed as HTML.
 */
"use strict";

window.callflowPanels = ({h, code, replace, svgNodes, api, page, finished}) => {
  /** The node panel: a clicked node's type, settings as the file has them (templates raw),
   * outcomes and where each leads, and its place in the file. {el, show(name)} */
  function nodePanel(detail, svg) {
    const box = h("aside", {class: "node-panel", hidden: true, "aria-live": "polite"});
    const specs = new Map(detail.nodes.map((n) => [n.name, n]));
    const nodes = svg ? svgNodes(svg) : new Map();
    const mark = (name) => {
      for (const [n, g] of nodes) g.classList.toggle("selected", n === name);
    };
    const link = (target) => h("a", {href: "#", class: "target", onclick: (e) => {
      e.preventDefault();
      show(target);
    }}, target);
    const value = (v) => typeof v === "string" ? code(v, "raw") : v === null || typeof v !== "object" ?
      code(JSON.stringify(v)) : h("pre", {class: "json"}, JSON.stringify(v, null, 2));
    const show = (name) => {
      const n = specs.get(name);
      if (!n) return;
      const settings = Object.entries(n.config || {});
      replace(box,
        h("div", {class: "panel-head"}, h("h3", {}, code(n.name)), h("span", {class: "badge type"}, n.type),
          h("button", {type: "button", class: "secondary close", "aria-label": "close", onclick: () => {
            box.hidden = true;
            mark(null);
          }}, "\u00d7")),
        h("p", {class: "where"}, code(`${detail.path || detail.id}:${n.line}:${n.col}`)),
        h("h4", {}, "Settings"),
        settings.length ? h("dl", {class: "config"}, settings.map(([k, v]) =>
          [h("dt", {}, code(k)), h("dd", {"data-key": k}, value(v))])) : h("p", {class: "hint"}, "No settings."),
        h("h4", {}, "Outcomes"),
        n.outcomes.length ? h("table", {class: "list outcomes"}, h("tbody", {}, n.outcomes.map((o) =>
          h("tr", {"data-outcome": o.outcome}, h("td", {}, code(o.outcome, "outcome")),
            h("td", {}, o.target ? link(o.target) : h("span", {class: "hint"}, "ends the path")))))) :
          h("p", {class: "hint"}, "None: the path ends here."),
        n.error ? h("p", {class: "on-error"}, "On error: ", link(n.error)) : null);
      box.setAttribute("data-node", name);
      box.hidden = false;
      mark(name);
    };
    for (const [name, g] of nodes) g.addEventListener("click", () => show(name));
    return {el: box, show};
  }

  /** A text input with its label; `kind` names the form ("incoming", "message"), and the
   * input carries `data-<kind>=<name>`. */
  function inputRow(kind, name, label, value, placeholder) {
    const el = h("input", {id: `${kind}-${name}`, type: "text", name, value, placeholder, autocomplete: "off",
      spellcheck: "false", ["data-" + kind]: name});
    return {el, row: h("div", {class: "field"}, h("label", {for: `${kind}-${name}`}, label), el)};
  }

  /** Where the flow is reached when the service has no sandbox to simulate it: `what` reach it
   * at `inc.url`, `setting` of a Plivo application. */
  const unsimulated = (inc, what, setting, verb) => h("p", {class: "hint"}, `${what} reach this flow at `,
    code(inc.url), ` (a Plivo application's ${setting}). With `, code("callflow serve --sandbox"),
    ` this form ${verb} simulated ones.`);

  /** A sandbox form: its rows, a submit button posting `body()` to the sandbox route; the run
   * it started opens, else `noRun(answer)` (or the API's error) shows under the form. */
  function sandboxForm(kind, inc, rows, label, busy, hint, body, noRun) {
    const status = h("p", {class: "form-status", role: "status"});
    const submit = h("button", {type: "submit", class: "primary"}, label);
    const form = h("form", {class: "incoming-form" + (kind === "message" ? " message-form" : "")}, rows,
      h("div", {class: "form-actions"}, submit), status, h("p", {class: "hint"}, hint));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      status.className = "form-status";
      status.textContent = busy;
      try {
        const res = await api(inc.sandbox_url, {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(body())});
        if (res.run_id) {
          location.hash = page("runs", res.run_id);
          return;
        }
        status.className = "form-status error";
        status.textContent = noRun(res);
      } catch (e) {
        status.className = "form-status error";
        status.textContent = e.message;
      }
      submit.disabled = false;
    });
    return form;
  }

  /** The incoming-call form: with `serve --sandbox`, the embedded sandbox calls the flow's
   * incoming-call URL (POST /sandbox/inbound) and the new run's page opens; otherwise, where
   * to point a Plivo application. */
  function incomingForm(d) {
    const inc = d.incoming;
    if (!inc.sandbox_url) return unsimulated(inc, "Incoming calls", "answer URL", "places");
    const from = inputRow("incoming", "from", "Caller (From)", "+12025550123", "+12025550123 or sip:alice@example.com");
    const to = inputRow("incoming", "to", "Number dialled (To)", "+12025551234", "");
    const headers = inputRow("incoming", "headers", "SIP headers", "", "tier=gold, account=42 (sent as X-PH-\u2026)");
    const digits = inputRow("incoming", "digits", "Digits pressed", "", "1, 2 (one per prompt)");
    const list = (text) => text.split(/[,\s]+/).filter(Boolean);
    const body = () => {
      const out = {url: inc.url, from: from.el.value.trim(), to: to.el.value.trim()};
      const sip = {};
      for (const pair of list(headers.el.value)) {
        const at = pair.indexOf("=");
        sip[at < 0 ? pair : pair.slice(0, at)] = at < 0 ? "" : pair.slice(at + 1);
      }
      if (Object.keys(sip).length) out.sip_headers = sip;
      if (list(digits.el.value).length) out.digits = list(digits.el.value);
      return out;
    };
    return sandboxForm("incoming", inc, [from.row, to.row, headers.row, digits.row], "Place the call", "Calling\u2026",
      ["The embedded sandbox calls ", code(inc.url), " as Plivo would (signed, with the headers as X-PH-\u2026)."], body,
      (res) => `The call ended (${res.hangup_cause}) without a run` + (res.error ? `: ${res.error}` : ""));
  }

  /** The incoming-SMS form: with `serve --sandbox`, the embedded sandbox delivers a message to
   * the flow's message URL (POST /sandbox/inbound-message) and the new run's page opens;
   * otherwise, where to point a Plivo application. */
  function messageForm(d) {
    const inc = d.incoming_message;
    if (!inc.sandbox_url) return unsimulated(inc, "Incoming SMS", "message URL", "sends");
    const from = inputRow("message", "from", "Sender (From)", "+12025550123", "+12025550123");
    const to = inputRow("message", "to", "Number written to (To)", "+12025551234", "");
    const text = inputRow("message", "text", "Text", "", "Where is my order?");
    const body = () => ({url: inc.url, from: from.el.value.trim(), to: to.el.value.trim(), text: text.el.value});
    return sandboxForm("message", inc, [from.row, to.row, text.row], "Send the SMS", "Sending\u2026",
      ["The embedded sandbox posts it to ", code(inc.url), " as Plivo would (signed)."], body,
      (res) => "The message started no run" + (res.error ? `: ${res.error}` : ""));
  }

  /** A request's answer: its HTTP status (or why none came) and the start of its body. */
  function responseLine(resp, runStatus) {
    if (!resp) {
      return h("div", {class: "response pending"}, finished(runStatus) ? "no response recorded" : "awaiting the response\u2026");
    }
    const ok = resp.status >= 200 && resp.status < 300;
    return h("div", {class: "response " + (ok ? "ok" : "bad"), "data-status": String(resp.status)},
      "\u2192 ", code(resp.status ? String(resp.status) : "no response", "status"),
      resp.error ? h("span", {class: "error-text"}, " " + resp.error) : null,
      resp.body ? h("code", {class: "body", title: resp.body}, resp.body) : null);
  }

  return {nodePanel, incomingForm, messageForm, responseLine};
};
