// The hpcplane console: plain ES module, no build step. Every text from the server is set with
// textContent, never parsed as HTML, so names and descriptions render as text.

const main = document.getElementById("main");
let me = null; // the session: AccountId, Principal, Csrf, Actions
let stream = null; // the EventSource of the cluster on screen

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") {
      for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    } else if (name === "text") {
      node.textContent = value;
    } else if (value !== false && value !== null && value !== undefined) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { "X-Hpcplane-Console": "1" };
  if (me) headers["X-CSRF-Token"] = me.Csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (data.Code === "SessionRequired") { me = null; showSignIn(); }
    const error = new Error(`${data.Code || response.status}: ${data.Message || ""}`);
    error.code = data.Code;
    throw error;
  }
  return data;
}

const call = (action, params = {}) => api("/console/api/call", { method: "POST", body: { Action: action, Params: params } });

function status(text) { return el("span", { class: `status ${text}`, text }); }

function progress(task) {
  const total = Math.max(task.TotalSteps, 1);
  const percent = Math.min(100, Math.round((100 * task.CurrentStep) / total));
  const bar = el("span", { class: `bar ${task.Status}`, role: "progressbar", "aria-valuenow": task.CurrentStep,
    "aria-valuemax": task.TotalSteps });
  const fill = el("span");
  fill.style.width = `${percent}%`;
  bar.append(fill);
  return el("span", {}, bar, el("span", { class: "steps", text: `${task.CurrentStep}/${task.TotalSteps}` }));
}

function confirmAction(text) {
  const modal = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  modal.hidden = false;
  return new Promise((resolve) => {
    const done = (answer) => () => { modal.hidden = true; ok.onclick = cancel.onclick = null; resolve(answer); };
    const ok = document.getElementById("confirm-ok");
    const cancel = document.getElementById("confirm-cancel");
    ok.onclick = done(true);
    cancel.onclick = done(false);
  });
}

function errorBox(error) { return el("p", { class: "error", role: "alert", text: String(error.message || error) }); }

function header() {
  document.getElementById("who").textContent = me ? `${me.Principal} (${me.AccountName})` : "";
  document.getElementById("signout").hidden = !me;
  document.getElementById("nav").hidden = !me;
}

function showSignIn(message) {
  closeStream();
  header();
  const keyId = el("input", { name: "AccessKeyId", id: "access-key-id", autocomplete: "username", required: true });
  const secret = el("input", { name: "AccessKeySecret", id: "access-key-secret", type: "password",
    autocomplete: "current-password", required: true });
  const problem = el("p", { class: "error", role: "alert", text: message || "" });
  const form = el("form", { class: "signin", id: "signin" },
    el("h2", { text: "Sign in" }),
    el("label", {}, "AccessKey ID", keyId),
    el("label", {}, "AccessKey secret", secret),
    el("button", { type: "submit", class: "primary", id: "signin-submit", text: "Sign in" }),
    problem,
    el("p", { class: "muted", text: "A RAM user's key sees what its policies allow. The secret is checked once and never stored." }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      me = await api("/console/api/session", { method: "POST", body: { AccessKeyId: keyId.value.trim(), AccessKeySecret: secret.value } });
      route();
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  main.replaceChildren(form);
}

async function showClusters() {
  const data = await call("ListClusters", { PageSize: 50 });
  const rows = data.Clusters.ClusterInfoSimple.map((c) => el("tr", { "data-cluster": c.Id },
    el("td", {}, el("a", { href: `#/cluster/${encodeURIComponent(c.Id)}`, class: "cluster-name", text: c.Name })),
    el("td", { class: "mono", text: c.Id }),
    el("td", {}, status(c.Status)),
    el("td", { class: "num", text: c.Managers.Total }),
    el("td", { class: "num", text: c.Computes.Total }),
    el("td", { class: "num", text: c.Computes.NormalCount }),
    el("td", { class: "description", text: c.Description })));
  main.replaceChildren(
    el("h2", { text: "Clusters" }),
    rows.length ? el("table", { id: "clusters" },
      el("thead", {}, el("tr", {}, ...["Name", "ClusterId", "Status", "Managers", "Computes", "Running", "Description"].map((h) => el("th", { text: h })))),
      el("tbody", {}, rows)) : el("p", { class: "muted", text: "No clusters you may see." }));
}

function taskRow(task) {
  let detail = "";
  const errors = JSON.parse(task.Errors || "[]");
  if (errors.length) detail = errors.map((e) => `${e.Code}: ${e.Message}`).join("; ");
  else if (task.Result && task.Result !== "{}") detail = task.Result;
  return el("tr", { "data-task": task.TaskId, "data-status": task.Status, "data-step": task.CurrentStep },
    el("td", { text: task.TaskType }),
    el("td", { class: "mono", text: task.TaskId }),
    el("td", {}, status(task.Status)),
    el("td", {}, progress(task)),
    el("td", { class: "mono detail", text: detail }));
}

function nodeRows(nodes, selected) {
  return nodes.map((n) => {
    const box = el("input", { type: "checkbox", value: n.Id, "aria-label": `select ${n.HostName}` });
    box.checked = selected.has(n.Id);
    box.addEventListener("change", () => (box.checked ? selected.add(n.Id) : selected.delete(n.Id)));
    return el("tr", { "data-node": n.Id },
      el("td", {}, box),
      el("td", { text: n.HostName }),
      el("td", { class: "mono", text: n.Id }),
      el("td", { text: n.Roles.Role.join(", ") }),
      el("td", {}, status(n.Status)),
      el("td", {}, n.StateInSched ? status(n.StateInSched) : ""));
  });
}

async function showCluster(clusterId) {
  const [described, listed, tasks] = await Promise.all([
    call("DescribeCluster", { ClusterId: clusterId }),
    call("ListNodes", { ClusterId: clusterId, PageSize: 100 }),
    call("ListTasks", { ClusterId: clusterId, Archived: true, PageSize: 20 }),
  ]);
  const c = described.ClusterInfo;
  const selected = new Set();
  const nodesBody = el("tbody", {}, nodeRows(listed.Nodes.NodeInfo, selected));
  const tasksBody = el("tbody", {}, tasks.Tasks.map(taskRow));
  const problem = el("div", { id: "action-error" });
  const count = el("input", { type: "number", min: 1, max: 99, value: 1, id: "add-count", "aria-label": "nodes to add" });

  async function refreshNodes() {
    const again = await call("ListNodes", { ClusterId: clusterId, PageSize: 100 });
    nodesBody.replaceChildren(...nodeRows(again.Nodes.NodeInfo, selected));
  }
  function upsert(task) {
    const row = taskRow(task);
    const old = tasksBody.querySelector(`tr[data-task="${CSS.escape(task.TaskId)}"]`);
    if (old) old.replaceWith(row); else tasksBody.prepend(row);
  }
  async function act(action, params, question) {
    problem.replaceChildren();
    if (!(await confirmAction(question))) return;
    try {
      const answer = await call(action, { ClusterId: clusterId, ...params });
      problem.replaceChildren(el("p", { class: "muted", id: "action-ok", text: `${action} accepted: TaskId ${answer.TaskId}` }));
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  }
  function instances() {
    const params = {};
    [...selected].forEach((id, i) => { params[`Instance.${i + 1}.Id`] = id; });
    return params;
  }
  const button = (id, text, handler, danger = false) => el("button", { id, type: "button", class: danger ? "danger" : "", text, on: { click: handler } });
  const sections = [
    el("h2", {}, el("span", { id: "cluster-title", text: c.Name }), " ", status(c.Status)),
    el("div", { class: "card" }, el("dl", {},
      el("dt", { text: "ClusterId" }), el("dd", { class: "mono", text: c.Id }),
      el("dt", { text: "Description" }), el("dd", { id: "cluster-description", text: c.Description }),
      el("dt", { text: "Scheduler" }), el("dd", { text: c.SchedulerType }),
      el("dt", { text: "Created" }), el("dd", { text: c.CreateTime }))),
    el("div", { class: "toolbar" },
      el("label", {}, "Add ", count, " compute nodes "),
      button("add-nodes", "AddNodes", () => act("AddNodes", { Count: count.value }, `Add ${count.value} compute node(s) to ${c.Name}?`)),
      button("stop-nodes", "StopNodes", () => act("StopNodes", instances(), `Stop ${selected.size} selected node(s)?`)),
      button("delete-nodes", "DeleteNodes", () => act("DeleteNodes", instances(), `Delete ${selected.size} selected node(s)?`), true),
      button("start-cluster", "StartCluster", () => act("StartCluster", {}, `Start cluster ${c.Name}?`)),
      button("stop-cluster", "StopCluster", () => act("StopCluster", {}, `Stop cluster ${c.Name}?`)),
      button("delete-cluster", "DeleteCluster", () => act("DeleteCluster", {}, `Delete cluster ${c.Name} and its nodes?`), true)),
    problem,
    el("h3", { text: "Tasks" }),
    el("table", { id: "tasks" }, el("thead", {}, el("tr", {}, ...["Type", "TaskId", "Status", "Progress", "Result / Errors"].map((h) => el("th", { text: h })))), tasksBody),
    el("h3", { text: "Nodes" }),
    el("table", { id: "nodes" }, el("thead", {}, el("tr", {}, ...["", "HostName", "Id", "Roles", "Status", "StateInSched"].map((h) => el("th", { text: h })))), nodesBody),
  ];
  if (me.Actions.includes("ListJobs")) {
    const jobsBody = el("tbody");
    sections.push(el("h3", { text: "Jobs" }), el("table", { id: "jobs" }, el("thead", {}, el("tr", {}, ...["Id", "Name", "Owner", "State"].map((h) => el("th", { text: h })))), jobsBody));
    call("ListJobs", { ClusterId: clusterId }).then((data) => {
      const jobs = (data.Jobs && (data.Jobs.JobInfo || data.Jobs)) || [];
      jobsBody.replaceChildren(...jobs.map((j) => el("tr", {}, el("td", { text: j.Id }), el("td", { text: j.Name }), el("td", { text: j.Owner }), el("td", { text: j.State }))));
    }).catch((error) => jobsBody.replaceChildren(el("tr", {}, el("td", { colspan: 4 }, errorBox(error)))));
  }
  main.replaceChildren(...sections);
  openStream(clusterId, (task, type) => {
    upsert(task);
    if (type === "task.ended") refreshNodes().catch(() => {});
  });
}

async function showAudit() {
  const data = await api("/console/api/audit");
  main.replaceChildren(el("h2", { text: "Audit trail" }), el("table", { id: "audit" },
    el("thead", {}, el("tr", {}, ...["Time", "Principal", "Action", "Resource", "Decision", "Error"].map((h) => el("th", { text: h })))),
    el("tbody", {}, data.Records.map((r) => el("tr", {},
      el("td", { class: "mono", text: r.At }), el("td", { class: "mono", text: r.Principal }),
      el("td", { text: r.Action }), el("td", { class: "mono", text: r.Resource }),
      el("td", {}, status(r.Decision)), el("td", { text: r.ErrorCode }))))));
}

function closeStream() {
  if (stream) { stream.close(); stream = null; }
}

function openStream(clusterId, onTask) {
  closeStream();
  stream = new EventSource(`/events?ClusterId=${encodeURIComponent(clusterId)}`);
  for (const type of ["task.created", "task.progress", "task.ended"]) {
    stream.addEventListener(type, (message) => onTask(JSON.parse(message.data).Task, type));
  }
}

async function route() {
  header();
  if (!me) return showSignIn();
  const hash = location.hash || "#/";
  if (!hash.startsWith("#/cluster/")) closeStream();
  try {
    if (hash.startsWith("#/cluster/")) await showCluster(decodeURIComponent(hash.slice("#/cluster/".length)));
    else if (hash === "#/audit") await showAudit();
    else await showClusters();
  } catch (error) {
    if (me) main.replaceChildren(errorBox(error));
  }
}

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("/console/api/session", { method: "DELETE" }); } catch { /* ended anyway */ }
  me = null;
  location.hash = "#/";
  showSignIn("Signed out.");
});
window.addEventListener("hashchange", route);

try {
  me = await api("/console/api/session");
} catch {
  me = null;
}
route();
