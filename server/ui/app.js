// Tributary web UI: plain JavaScript over the coordinator's JSON API (/v1/query, /v1/node).
// Pages by the URL's hash: "" (query list), "#query/ID" (one query), "#cluster" (the nodes).
"use strict";

const page = document.getElementById("page");
const statusLine = document.getElementById("status");
let timer = null;

// Builds an element: el("td", {class: "num"}, "text", child, ...).
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

async function api(path, method) {
  const response = await fetch(path, { method: method || "GET", credentials: "same-origin" });
  if (!response.ok && response.status !== 204) {
    throw new Error(method + " " + path + ": " + response.status + " " + (await response.text()));
  }
  return response.status === 204 ? null : response.json();
}

function elapsed(ms) {
  if (ms == null) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}

function progressBar(done, total) {
  const share = total ? Math.round((100 * done) / total) : 0;
  return el("span", { class: "progress" },
    el("span", { class: "bar" }, el("span", { style: "width:" + share + "%" })),
    done + "/" + total);
}

async function cancelQuery(id, button) {
  button.disabled = true;
  try {
    await api("/v1/query/" + encodeURIComponent(id), "DELETE");
  } catch (e) {
    statusLine.textContent = e.message;
  }
}

function table(headers, rows, id) {
  return el("table", id ? { id } : {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

// The query list.
async function showQueries() {
  const queries = await api("/v1/query");
  const rows = queries.map((q) =>
    el("tr", { class: "query", "data-query-id": q.queryId, "data-state": q.state },
      el("td", {}, el("a", { href: "#query/" + q.queryId }, q.queryId)),
      el("td", {}, q.user),
      el("td", { class: "state" }, q.state),
      el("td", { class: "num elapsed" }, elapsed(q.elapsedMs)),
      el("td", { class: "num rows" }, q.rows),
      el("td", { class: "tasks" }, progressBar(q.progress.finishedTasks, q.progress.tasks)),
      el("td", { class: "sql", title: q.query }, el("div", {}, q.query)),
      el("td", {}, q.state === "RUNNING"
        ? el("button", { class: "cancel", "data-query-id": q.queryId,
            onclick: (e) => cancelQuery(q.queryId, e.target) }, "Cancel")
        : "")));
  page.replaceChildren(
    el("h2", {}, "Queries"),
    rows.length
      ? table(["Query", "User", "State", "Elapsed", "Rows", "Tasks", "SQL", ""], rows, "queries")
      : el("p", { class: "empty" }, "No queries yet."));
}

// The stage graph: one box per stage, stage 0 (the root) last, arrows in the direction data flows.
function stageGraph(tasks) {
  const stages = new Map();
  for (const t of tasks) {
    const s = stages.get(t.stage) || { tasks: 0, finished: 0 };
    s.tasks += 1;
    if (t.state !== "RUNNING" && t.state !== "PLANNED") s.finished += 1;
    stages.set(t.stage, s);
  }
  // The root stage runs on the coordinator, usually without tasks of its own.
  if (!stages.has(0)) stages.set(0, { tasks: 0, finished: 0 });
  const graph = el("div", { id: "stage-graph" });
  const ids = [...stages.keys()].sort((a, b) => a - b);
  ids.forEach((id, i) => {
    const s = stages.get(id);
    if (i > 0) graph.append(el("div", { class: "arrow" }, "\u2192"));
    graph.append(el("div", {
      class: "stage" + (s.tasks && s.finished === s.tasks ? " done" : ""),
      "data-stage": id, "data-tasks": s.tasks, "data-finished": s.finished },
      el("div", { class: "name" }, id === 0 ? "Stage 0 (root)" : "Stage " + id),
      el("div", { class: "counts" }, s.tasks
        ? s.finished + "/" + s.tasks + " tasks finished"
        : "on the coordinator")));
  });
  return graph;
}

// One query.
async function showQuery(id) {
  const q = await api("/v1/query/" + encodeURIComponent(id));
  const rows = q.tasks.map((t) =>
    el("tr", { class: "task", "data-stage": t.stage, "data-state": t.state },
      el("td", {}, t.stage + "." + t.task),
      el("td", {}, t.worker),
      el("td", { class: "state" }, t.state),
      el("td", { class: "num" }, t.attempt),
      el("td", { class: "num" }, t.rows),
      el("td", { class: "num" }, t.bytes),
      el("td", { class: "num" }, elapsed(t.elapsedMs)),
      el("td", { class: "error" }, t.error || "")));
  page.replaceChildren(
    el("h2", {}, "Query " + q.queryId),
    el("p", { id: "query", "data-query-id": q.queryId, "data-state": q.state },
      "State: ", el("span", { class: "state" }, q.state),
      " \u00b7 user " + q.user + " \u00b7 " + elapsed(q.elapsedMs) + " \u00b7 " + q.rows + " rows ",
      q.state === "RUNNING"
        ? el("button", { class: "cancel", "data-query-id": q.queryId,
            onclick: (e) => cancelQuery(q.queryId, e.target) }, "Cancel")
        : ""),
    el("pre", { class: "sql" }, q.query),
    q.error ? el("p", { class: "error", id: "query-error" }, q.error) : "",
    el("h2", {}, "Stages"),
    stageGraph(q.tasks),
    el("h2", {}, "Tasks"),
    rows.length
      ? table(["Task", "Worker", "State", "Attempt", "Rows", "Bytes", "Elapsed", "Error"], rows, "tasks")
      : el("p", { class: "empty" }, "No tasks."));
}

// The cluster's nodes.
async function showCluster() {
  const nodes = await api("/v1/node");
  const rows = nodes.map((n) =>
    el("tr", { class: "node", "data-node-id": n.nodeId, "data-state": n.state },
      el("td", {}, n.nodeId),
      el("td", {}, n.address),
      el("td", {}, n.role),
      el("td", { class: "state" }, n.state),
      el("td", { class: "num" }, n.runningTasks)));
  page.replaceChildren(el("h2", {}, "Cluster"),
    table(["Node", "Address", "Role", "State", "Running tasks"], rows, "nodes"));
}

async function refresh() {
  const hash = location.hash.replace(/^#/, "");
  try {
    if (hash.startsWith("query/")) await showQuery(decodeURIComponent(hash.slice(6)));
    else if (hash === "cluster") await showCluster();
    else await showQueries();
    statusLine.textContent = "";
  } catch (e) {
    statusLine.textContent = e.message;
  }
}

// Shows the page of the current hash, then polls it every second until the hash changes.
let generation = 0;
function route() {
  const mine = ++generation;
  clearTimeout(timer);
  const tick = async () => {
    await refresh();
    if (mine === generation) timer = setTimeout(tick, 1000);
  };
  tick();
}

window.addEventListener("hashchange", route);
route();
