"""A self-contained HTML flame graph: one file, inline script and style, no network at all.
Click a frame to zoom, Escape or "reset" to go back; search highlights matches and sums them;
a selector shows all threads merged or one thread, another one asyncio task (the innermost task
a sample ran in, as `spprof report --tasks` groups them)."""
from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING

from .._model import TASK_FILE
from .._tables import Tables, tables

if TYPE_CHECKING:
    from .._model import Profile

NAME = "html"
EXTENSIONS = (".html", ".htm")


def write(profile: "Profile", path: str) -> None:
    write_tables(tables(profile), path)


def write_tables(tab: Tables, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(tab))


def render(tab: Tables) -> str:
    payload = {
        "title": tab.title,
        "mode": tab.mode,
        "unit": tab.unit,
        "frames": tab.located_frames(),
        "taskFile": TASK_FILE,
        "threads": [
            {"name": label, "stacks": [[list(stack), n, w] for stack, (n, w) in stacks.items()]}
            for label, stacks in zip(tab.labels, tab.by_thread())
        ],
    }
    # "<" only occurs inside JSON strings, where \u003c means the same: no name can close the tag.
    blob = json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")
    fill = {"TITLE": html.escape(tab.title or "spprof profile"), "DATA": blob}
    # One pass, so a title that reads "%DATA%" stays text.
    return re.sub(r"%(TITLE|DATA)%", lambda m: fill[m.group(1)], _PAGE)


_PAGE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
body { margin: 0; font: 13px system-ui, sans-serif; color: #222; background: #fff; }
header { position: sticky; top: 0; z-index: 2; background: #f4f4f4; border-bottom: 1px solid #ccc;
  padding: 6px 10px; display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
header h1 { font-size: 14px; margin: 0 12px 0 0; }
#info { padding: 4px 10px; min-height: 1.3em; font-family: monospace; white-space: pre; overflow: hidden;
  text-overflow: ellipsis; border-bottom: 1px solid #eee; }
#graph { position: relative; margin: 4px 10px; }
.f { position: absolute; height: 17px; line-height: 17px; box-sizing: border-box; border: 1px solid #fff;
  padding: 0 3px; font: 11px monospace; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  cursor: pointer; }
.f:hover { border-color: #000; }
.f.above { opacity: 0.55; }
#graph.searching .f { filter: saturate(0.15) opacity(0.6); }
#graph.searching .f.m { filter: none; background: #e040c0 !important; color: #fff; }
#matched { font-weight: bold; }
</style></head>
<body>
<header>
  <h1 id="title"></h1>
  <label>thread <select id="thread"></select></label>
  <label id="tasks" hidden>task <select id="task"></select></label>
  <label><input type="checkbox" id="lines"> split by line</label>
  <input id="search" type="search" placeholder="search (regexp)" size="24">
  <span id="matched"></span>
  <button id="reset">reset zoom</button>
</header>
<div id="info"></div>
<div id="graph"></div>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const ROW = 18;
  const graph = document.getElementById("graph"), info = document.getElementById("info");
  const threadSel = document.getElementById("thread"), search = document.getElementById("search");
  const linesBox = document.getElementById("lines"), matched = document.getElementById("matched");
  const taskSel = document.getElementById("task");
  // Each stack's innermost asyncio task, or "" outside any task.
  const taskOf = stack => {
    for (let i = stack.length - 1; i >= 0; i--) if (D.frames[stack[i]][1] === D.taskFile) return D.frames[stack[i]][0];
    return "";
  };
  D.threads.forEach(t => t.stacks.forEach(s => s.push(taskOf(s[0]))));
  // A frame without its line: one box per function unless "split by line" is on.
  const funcKey = D.frames.map(f => f[0] + "\u0000" + f[1]);
  let root = null, zoom = null, pattern = null;

  function fmt(v) {
    if (D.unit !== "nanoseconds") return v + " samples";
    if (v >= 1e9) return (v / 1e9).toFixed(2) + " s";
    if (v >= 1e6) return (v / 1e6).toFixed(1) + " ms";
    return (v / 1e3).toFixed(0) + " \u00b5s";
  }
  function pct(v, of) { return of ? (100 * v / of).toFixed(1) + "%" : "0%"; }

  function build() {
    const sel = +threadSel.value, byLine = linesBox.checked, task = taskSel.value;
    const name = (sel < 0 ? "all threads" : D.threads[sel].name) +
      (task === "*" ? "" : " \u203a " + (task || "outside any task"));
    root = { name: name, frame: -1, v: 0, n: 0, kids: new Map(), parent: null };
    D.threads.forEach((t, i) => {
      if (sel >= 0 && sel !== i) return;
      for (const [stack, n, w, inTask] of t.stacks) {
        if (task !== "*" && task !== inTask) continue;
        let node = root;
        node.v += w; node.n += n;
        for (const f of stack) {
          const key = byLine ? f : funcKey[f];
          let kid = node.kids.get(key);
          if (!kid) { kid = { frame: f, v: 0, n: 0, kids: new Map(), parent: node }; node.kids.set(key, kid); }
          kid.v += w; kid.n += n;
          node = kid;
        }
      }
    });
    // Heaviest first, each child placed at its offset inside its parent.
    let depth = 0;
    (function layout(node, x, d) {
      node.x = x; node.d = d; depth = Math.max(depth, d);
      node.list = [...node.kids.values()].sort((a, b) => b.v - a.v);
      for (const k of node.list) { layout(k, x, d + 1); x += k.v; }
    })(root, 0, 0);
    graph.style.height = (depth + 1) * ROW + "px";
    zoom = root;
  }

  function label(node) {
    if (node.frame < 0) return node.name;
    return D.frames[node.frame][0];
  }
  function where(node) {
    if (node.frame < 0) return "";
    const f = D.frames[node.frame];
    return f[1] ? f[1] + (linesBox.checked ? ":" + f[2] : "") : "";
  }
  function color(node) {
    // The root and spprof's own markers (<truncated>, <unverified>) have no file.
    if (node.frame < 0 || !D.frames[node.frame][1]) return "hsl(0,0%,80%)";
    const name = label(node);
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
    return "hsl(" + (10 + Math.abs(h) % 45) + "," + (70 + Math.abs(h >> 8) % 25) + "%," + (58 + Math.abs(h >> 16) % 14) + "%)";
  }
  function isMatch(node) {
    return pattern !== null && node.frame >= 0 && (pattern.test(label(node)) || pattern.test(where(node)));
  }

  function render() {
    graph.textContent = "";
    const width = graph.clientWidth || 1000, x0 = zoom.x, span = zoom.v || 1;
    const frag = document.createDocumentFragment();
    (function draw(node) {
      const a = Math.max(node.x, x0), b = Math.min(node.x + node.v, x0 + span);
      if (b <= a || (b - a) / span * width < 0.5) return;
      const m = isMatch(node);
      const el = document.createElement("div");
      el.className = "f" + (m ? " m" : "") + (node.d < zoom.d ? " above" : "");
      el.style.left = (100 * (a - x0) / span) + "%";
      el.style.width = (100 * (b - a) / span) + "%";
      el.style.top = node.d * ROW + "px";
      el.style.background = color(node);
      el.textContent = label(node);
      el.title = label(node) + (where(node) ? "  " + where(node) : "");
      el.onclick = () => { zoom = node; render(); };
      el.onmouseenter = () => {
        let self = node.v;
        for (const k of node.list) self -= k.v;
        info.textContent = label(node) + "  " + where(node) + "  |  total " + fmt(node.v) + " (" + pct(node.v, root.v) +
          ", " + node.n + " samples)  self " + fmt(self) + " (" + pct(self, root.v) + ")";
      };
      frag.appendChild(el);
      for (const k of node.list) draw(k);
    })(root);
    graph.appendChild(frag);
    graph.classList.toggle("searching", pattern !== null);
    if (pattern === null) { matched.textContent = ""; return; }
    // Over the whole tree, frames too narrow to draw included; a match inside a match counts once.
    const sum = node => isMatch(node) ? node.v : node.list.reduce((s, k) => s + sum(k), 0);
    const m = sum(root);
    matched.textContent = "matched: " + pct(m, root.v) + " (" + fmt(m) + ")";
  }

  function setSearch() {
    const text = search.value.trim();
    if (!text) pattern = null;
    else {
      try { pattern = new RegExp(text, "i"); }
      catch (e) { pattern = new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i"); }
    }
    render();
  }

  document.getElementById("title").textContent = D.title || "spprof profile";
  const totals = D.threads.map(t => t.stacks.reduce((s, x) => s + x[2], 0));
  const all = totals.reduce((s, x) => s + x, 0);
  threadSel.add(new Option("all threads (" + D.threads.length + ")", "-1"));
  D.threads.forEach((t, i) => threadSel.add(new Option(t.name + " \u2014 " + pct(totals[i], all), String(i))));
  const byTask = new Map();
  D.threads.forEach(t => t.stacks.forEach(s => byTask.set(s[3], (byTask.get(s[3]) || 0) + s[2])));
  taskSel.add(new Option("all", "*"));
  const named = [...byTask.keys()].filter(k => k).sort((a, b) => byTask.get(b) - byTask.get(a));
  named.forEach(k => taskSel.add(new Option(k + " \u2014 " + pct(byTask.get(k), all), k)));
  if (byTask.has("")) taskSel.add(new Option("outside any task \u2014 " + pct(byTask.get(""), all), ""));
  document.getElementById("tasks").hidden = named.length === 0;
  threadSel.onchange = linesBox.onchange = taskSel.onchange = () => { build(); render(); };
  search.oninput = setSearch;
  document.getElementById("reset").onclick = () => { zoom = root; render(); };
  document.addEventListener("keydown", e => { if (e.key === "Escape") { zoom = root; render(); } });
  window.addEventListener("resize", render);
  info.textContent = (D.mode ? D.mode + " mode, " : "") + "total " + fmt(all) + "; click a frame to zoom, Escape to reset";
  // A link can carry a search, a thread and a task: page.html#search=parse&thread=1&task=Task-3
  const want = new URLSearchParams(location.hash.slice(1));
  if (want.has("thread") && D.threads[+want.get("thread")]) threadSel.value = want.get("thread");
  if (want.has("task") && byTask.has(want.get("task"))) taskSel.value = want.get("task");
  build();
  if (want.has("search")) { search.value = want.get("search"); setSearch(); } else render();
})();
</script>
</body></html>
"""
