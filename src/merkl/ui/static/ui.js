// merkl ui: clickable graph nodes with a details panel, zoom, and live refresh.
// The pages arrive rendered; this adds behaviour only. No library, no other host.
"use strict";

const POLL_MS = 2000;
let apiData = null; // the page's JSON twin, fetched on the first click

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function short(hash, n = 16) {
  return hash ? String(hash).replace("blake3:", "").slice(0, n) : "?";
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let power = 0;
  while (value >= 1024 && power < units.length - 1) {
    value /= 1024;
    power += 1;
  }
  return power ? `${value.toFixed(1)} ${units[power]}` : `${bytes} B`;
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString();
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${response.status} ${url}`);
  return data;
}

// -- details panel --------------------------------------------------------------------------
function rows(pairs) {
  const table = el("table", { class: "kv" });
  for (const [key, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    table.append(el("tr", {}, el("th", {}, key), el("td", {}, value)));
  }
  return table;
}

function code(text) {
  return el("code", { title: String(text) }, String(text));
}

function showPanel(...content) {
  const panel = document.getElementById("details");
  const box = panel.querySelector(".content");
  box.replaceChildren(...content);
  panel.hidden = false;
}

function describeDagNode(node) {
  const parts = [el("h2", {}, node.label), el("p", { class: `state ${node.state}` }, node.state)];
  const pairs = [
    ["kind", node.kind],
    ["hash", node.hash ? code(node.hash) : null],
    ["code hash", node.code_hash ? code(node.code_hash) : null],
    ["task", node.module ? `${node.module}.${node.task}` : null],
    ["output index", node.kind === "output" ? String(node.index) : null],
    ["path", node.path],
  ];
  if (node.run) {
    pairs.push(["ran", when(node.run.time)]);
    pairs.push(["took", `${node.run.duration.toFixed(3)} s`]);
    pairs.push(["size", size(node.run.size)]);
  } else if (node.kind === "output") {
    pairs.push(["ran", "not in this repository's run log"]);
  }
  parts.push(rows(pairs));
  if (node.arguments && Object.keys(node.arguments).length) {
    parts.push(el("h3", {}, "arguments"));
    parts.push(rows(Object.entries(node.arguments)));
  }
  if (node.why) {
    parts.push(el("h3", {}, "why it would run"));
    const list = el("ul", { class: "why" });
    for (const reason of node.why.reasons) list.append(el("li", {}, reason.message));
    parts.push(list);
  } else if (node.kind === "output" && node.state === "cached") {
    parts.push(el("p", {}, "Cached: a run would load it, not compute it."));
  }
  if (node.kind === "output" && node.hash) {
    const where = el("p", { class: "remotes" });
    const ask = el("button", { type: "button" }, "which remotes hold it?");
    ask.addEventListener("click", async () => {
      where.textContent = "asking…";
      try {
        const data = await getJSON(`/api/outputs/${node.hash}/remotes`);
        const problems = data.problems.length ? ` (${data.problems.join("; ")})` : "";
        where.textContent = (data.remotes.join(", ") || "no remote") + problems;
      } catch (error) {
        where.textContent = error.message;
      }
    });
    parts.push(ask, where);
    if (document.body.dataset.writes === "1" && node.state === "cached") {
      parts.push(actionButton(node.hash, "forget", "forget this cached output",
        `Drop output ${short(node.hash)} from the cache? The next run computes it again.`));
    } else if (document.body.dataset.writes === "1" && node.state === "missing") {
      parts.push(actionButton(node.hash, "pull", "pull it from the default remote",
        `Fetch output ${short(node.hash)} from the default remote into the cache?`));
    }
  }
  return parts;
}

// A write (only with --allow-writes): asks first, then POSTs the hash as its confirmation.
function actionButton(hash, action, label, question) {
  const button = el("button", { type: "button", class: "danger" }, label);
  button.addEventListener("click", async () => {
    if (!window.confirm(question)) return;
    try {
      await getJSON(`/api/outputs/${hash}/${action}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ confirm: hash }),
      });
      button.textContent = "done";
      refresh(true);
    } catch (error) {
      button.textContent = error.message;
    }
  });
  return button;
}

function describeGroup(group, nodesById) {
  const parts = [el("h2", {}, group.label), el("p", {}, `${group.size} nodes drawn as one box`)];
  parts.push(rows(Object.entries(group.states).map(([state, n]) => [state, String(n)])));
  const list = el("ul", { class: "members" });
  for (const id of group.members) {
    const node = nodesById.get(id);
    if (node && node.kind !== "task") list.append(el("li", { class: `state ${node.state}` }, `${node.label} ${short(node.hash, 8)} ${node.state}`));
  }
  parts.push(list);
  return parts;
}

function describeAsset(asset) {
  const pairs = Object.entries(asset.attributes).map(([key, value]) => [
    key,
    typeof value === "object" ? JSON.stringify(value) : String(value),
  ]);
  return [
    el("h2", {}, asset.name),
    el("p", {}, asset.description),
    rows([["kind", asset.kind], ["type", asset.type], ...pairs]),
    el("h3", {}, "made from"),
    el("ul", {}, ...asset.upstreams.map((urn) => el("li", {}, urn.split(":").slice(3).join(":")))),
  ];
}

async function showNode(id) {
  try {
    if (apiData === null) apiData = await getJSON(document.body.dataset.api);
  } catch (error) {
    showPanel(el("p", { class: "error" }, error.message));
    return;
  }
  if (apiData.assets) {
    const asset = apiData.assets.find((a) => a.urn === id);
    if (asset) showPanel(...describeAsset(asset));
    return;
  }
  const nodesById = new Map(apiData.nodes.map((n) => [n.id, n]));
  const group = (apiData.groups || []).find((g) => g.id === id);
  if (group) showPanel(...describeGroup(group, nodesById));
  else if (nodesById.has(id)) showPanel(...describeDagNode(nodesById.get(id)));
}

document.addEventListener("click", (event) => {
  const node = event.target.closest("g.node");
  if (node) {
    document.querySelectorAll("g.node.selected").forEach((n) => n.classList.remove("selected"));
    node.classList.add("selected");
    showNode(node.dataset.id);
    return;
  }
  if (event.target.closest("#details .close")) document.getElementById("details").hidden = true;
  const zoom = event.target.closest("[data-zoom]");
  if (zoom) {
    const svg = document.querySelector(".canvas svg");
    if (svg) svg.classList.toggle("fit", zoom.dataset.zoom === "fit");
  }
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.getElementById("details").hidden = true;
});

// -- live refresh ---------------------------------------------------------------------------
// Poll a fingerprint of the run log and pointer files; when it changes, fetch this page again
// and swap its <main> (the details panel and scroll position stay).
const live = document.getElementById("live");

async function refresh(force) {
  try {
    const { version } = await getJSON("/api/version");
    if (!force && version === document.body.dataset.version) {
      live.className = "ok";
      return;
    }
    const response = await fetch(window.location.href);
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    document.querySelector("main").replaceWith(page.querySelector("main"));
    document.body.dataset.version = page.body.dataset.version;
    apiData = null;
    live.className = "ok";
    live.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    live.className = "down";
    live.textContent = "not connected";
  }
}

if (document.body.dataset.api) window.setInterval(refresh, POLL_MS);
