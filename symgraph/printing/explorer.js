/* symgraph explorer: pan/zoom, search, node panel, fused kernels opened in place, the rewrite-history
   slider (nodes followed across steps by their stable ids), and time colours of profiled functions.
   Inlined into every page by symgraph/printing/explore.py; reads the page data from #sg-data.
   Text from the data is only ever inserted with textContent (never parsed as HTML). */
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("sg-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const state = { step: DATA.steps.length - 1, sel: null, view: null, base: null, matches: [], matchAt: -1,
                  heat: !!DATA.profile, open: new Set() };
  const parser = new DOMParser();
  const graphBox = $("#sg-graph");
  const stepSets = DATA.steps.map(s => new Set(s.nodes));

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid instanceof Node ? kid : String(kid));
    return e;
  }
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function svgOf(index) {
    const doc = parser.parseFromString(DATA.svgs[index], "image/svg+xml");
    return document.importNode(doc.documentElement, true);
  }
  const mainSvg = () => $("#sg-graph > svg");
  const nodeG = sid => { const g = document.getElementById(sid); return g && g.matches("g.node") ? g : null; };
  const fmtTime = s => s >= 1 ? s.toFixed(3) + " s" : s >= 1e-3 ? (s * 1e3).toFixed(3) + " ms" : (s * 1e6).toFixed(1) + " µs";

  // --- steps --------------------------------------------------------------------------------------
  function showStep(k) {
    k = Math.max(0, Math.min(DATA.steps.length - 1, k));
    state.step = k;
    const step = DATA.steps[k];
    const svg = svgOf(step.svg);
    svg.classList.add("sg-main");
    graphBox.replaceChildren(svg);
    const vb = svg.viewBox.baseVal;
    state.base = [vb.x, vb.y, vb.width, vb.height];
    setView(state.base.slice());
    const next = DATA.steps[k + 1];
    for (const sid of step.new) { const g = nodeG(sid); if (g) g.classList.add("sg-new"); }
    if (next) for (const sid of next.removed) { const g = nodeG(sid); if (g) g.classList.add("sg-leaving"); }
    const reopen = [...state.open];
    state.open.clear();
    for (const sid of reopen) if (nodeG(sid)) toggleInner(sid);
    const slider = $("#sg-slider");
    if (slider) slider.value = String(k);
    const label = $("#sg-step-label");
    if (label) label.textContent = `step ${k} of ${DATA.steps.length - 1}: ${step.label} (${step.nodes.length} nodes)`;
    markSelection();
    applySearch(false);
    applyHeat();
    renderStep();
    if (state.sel) renderNode(state.sel.sid);
  }

  function follow(sid, from, to) {
    if (sid.includes("/") || from === to) return [sid];
    let cur = new Set([sid]);
    if (to > from) {
      for (let k = from + 1; k <= to; k++) {
        const links = DATA.steps[k].links, nxt = new Set();
        for (const s of cur) {
          if (s in links) links[s].forEach(t => nxt.add(t));
          else if (stepSets[k].has(s)) nxt.add(s);
        }
        cur = nxt;
      }
    } else {
      for (let k = from; k > to; k--) {
        const links = DATA.steps[k].links, nxt = new Set();
        for (const s of cur) {
          for (const [o, targets] of Object.entries(links)) if (targets.includes(s)) nxt.add(o);
          if (stepSets[k - 1].has(s)) nxt.add(s);
        }
        cur = nxt;
      }
    }
    return [...cur];
  }

  // --- view: pan and zoom -----------------------------------------------------------------------
  function setView(v) {
    state.view = v;
    const svg = mainSvg();
    if (svg) svg.setAttribute("viewBox", v.join(" "));
  }
  function toSvgPoint(svg, x, y) {
    const p = svg.createSVGPoint();
    p.x = x; p.y = y;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  function centerOn(g) {
    const svg = mainSvg(), b = g.getBoundingClientRect();
    const c = toSvgPoint(svg, b.left + b.width / 2, b.top + b.height / 2);
    let [, , w, h] = state.view;
    if (w > 900) { h = h * 900 / w; w = 900; }
    setView([c.x - w / 2, c.y - h / 2, w, h]);
  }
  let drag = null, dragged = false;
  graphBox.addEventListener("wheel", e => {
    e.preventDefault();
    const svg = mainSvg(), p = toSvgPoint(svg, e.clientX, e.clientY), f = Math.exp(e.deltaY * 0.0015);
    const [x, y, w, h] = state.view;
    setView([p.x - (p.x - x) * f, p.y - (p.y - y) * f, w * f, h * f]);
  }, { passive: false });
  graphBox.addEventListener("mousedown", e => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, view: state.view.slice() };
    dragged = false;
  });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) { dragged = true; graphBox.classList.add("sg-dragging"); }
    if (!dragged) return;
    const svg = mainSvg(), a = toSvgPoint(svg, drag.x, drag.y), b = toSvgPoint(svg, e.clientX, e.clientY);
    const [x, y, w, h] = state.view;
    setView([x - (b.x - a.x), y - (b.y - a.y), w, h]);
    drag.x = e.clientX; drag.y = e.clientY;
  });
  window.addEventListener("mouseup", () => { drag = null; graphBox.classList.remove("sg-dragging"); });

  // --- clicks: select, open in place --------------------------------------------------------------
  graphBox.addEventListener("click", e => {
    if (dragged) { dragged = false; return; }
    if (e.target.closest(".sg-inner-close")) return;
    const g = e.target.closest("g.node.apply");
    if (g) select(g.id, state.step);
  });
  graphBox.addEventListener("dblclick", e => {
    const g = e.target.closest("g.node.apply.fused");
    if (g) toggleInner(g.id);
  });

  function select(sid, step) {
    state.sel = { sid: sid, step: step === undefined ? state.step : step };
    markSelection();
    renderNode(sid);
    showTab("node");
  }

  function markSelection() {
    $$("g.sg-selected, g.sg-related").forEach(g => g.classList.remove("sg-selected", "sg-related"));
    if (!state.sel) return;
    const { sid, step } = state.sel;
    const targets = sid.includes("/") ? [sid] : follow(sid, step, state.step);
    for (const t of targets) {
      const g = nodeG(t);
      if (g) g.classList.add(t === sid ? "sg-selected" : "sg-related");
    }
  }

  function goTo(sid, preferStep) {
    if (sid.includes("/")) { select(sid); return; }
    let k = stepSets[state.step].has(sid) ? state.step : -1;
    if (k < 0 && preferStep !== undefined && stepSets[preferStep] && stepSets[preferStep].has(sid)) k = preferStep;
    if (k < 0) k = stepSets.findIndex(s => s.has(sid));
    if (k < 0) { select(sid); return; }
    if (k !== state.step) showStep(k);
    select(sid, k);
    const g = nodeG(sid);
    if (g) centerOn(g);
  }

  function toggleInner(sid) {
    const g = nodeG(sid), facts = DATA.nodes[sid];
    if (!g || !facts || !facts.inner) return false;
    const parent = g.parentNode;
    const old = $$(":scope > g.sg-inner", parent).find(o => o.getAttribute("data-for") === sid);
    if (old) {
      old.remove();
      g.classList.remove("sg-opened");
      state.open.delete(sid);
      if (state.sel && state.sel.sid === sid) renderNode(sid);
      return false;
    }
    const inner = svgOf(facts.inner.svg), vb = inner.viewBox.baseVal;
    const b = g.getBBox(), pad = 6, head = 18;
    const w = vb.width + 2 * pad, h = vb.height + head + 2 * pad;
    const x0 = b.x + b.width / 2 - w / 2, y0 = b.y;  // hangs from the node's top edge
    const box = svgEl("g", { class: "sg-inner", "data-for": sid });
    box.append(svgEl("rect", { x: x0, y: y0, width: w, height: h, rx: 8, class: "sg-inner-frame" }));
    const title = svgEl("text", { x: x0 + 8, y: y0 + 13, class: "sg-inner-title" });
    title.textContent = `${facts.op_class}: ${facts.inner.ops.length} fused op(s) (${sid})`;
    const close = svgEl("text", { x: x0 + w - 16, y: y0 + 14, class: "sg-inner-close" });
    close.textContent = "✕";
    close.addEventListener("click", e => { e.stopPropagation(); toggleInner(sid); });
    for (const [k, v] of [["x", x0 + pad], ["y", y0 + head + pad], ["width", vb.width], ["height", vb.height]])
      inner.setAttribute(k, v);
    box.append(title, close, inner);
    parent.append(box);
    g.classList.add("sg-opened");
    state.open.add(sid);
    reveal(box);
    if (state.sel && state.sel.sid === sid) renderNode(sid);
    return true;
  }

  function reveal(e) {
    const svg = mainSvg(), r = e.getBoundingClientRect(), view = graphBox.getBoundingClientRect();
    if (r.left >= view.left && r.right <= view.right && r.top >= view.top && r.bottom <= view.bottom) return;
    const a = toSvgPoint(svg, r.left, r.top), b = toSvgPoint(svg, r.right, r.bottom);
    let [, , w, h] = state.view;
    const grow = Math.max((b.x - a.x) * 1.1 / w, (b.y - a.y) * 1.1 / h, 1);
    w *= grow; h *= grow;
    setView([(a.x + b.x) / 2 - w / 2, (a.y + b.y) / 2 - h / 2, w, h]);
  }

  // --- search ------------------------------------------------------------------------------------
  function nodeText(sid) {
    const f = DATA.nodes[sid];
    if (!f) return sid.toLowerCase();
    return [sid, f.op, f.op_class, ...f.outputs.map(o => o.name)].join(" ").toLowerCase();
  }
  function applySearch(jump) {
    const svg = mainSvg(), q = $("#sg-search").value.trim().toLowerCase();
    $$("g.sg-match").forEach(g => g.classList.remove("sg-match"));
    state.matches = [];
    if (!q) { svg.classList.remove("sg-searching"); $("#sg-search-status").textContent = ""; return; }
    svg.classList.add("sg-searching");
    for (const g of $$("g.node.apply", svg)) {
      if (g.closest("g.sg-inner")) continue;
      if (nodeText(g.id).includes(q)) { g.classList.add("sg-match"); state.matches.push(g.id); }
    }
    for (const g of $$("g.node.var", svg)) {  // inputs, shared variables, outputs: by their label
      if (!g.closest("g.sg-inner") && $$("text", g).some(t => t.textContent.toLowerCase().includes(q)))
        g.classList.add("sg-match");
    }
    $("#sg-search-status").textContent = `${state.matches.length} node${state.matches.length === 1 ? "" : "s"}`;
    if (jump && state.matches.length) { state.matchAt = -1; nextMatch(); }
  }
  function nextMatch() {
    if (!state.matches.length) return;
    state.matchAt = (state.matchAt + 1) % state.matches.length;
    const sid = state.matches[state.matchAt];
    select(sid);
    const g = nodeG(sid);
    if (g) centerOn(g);
  }

  // --- time colours ---------------------------------------------------------------------------------
  function heatColor(x) { return `hsl(${Math.round(60 - 60 * x)}, 100%, ${Math.round(92 - 37 * x)}%)`; }
  function applyHeat() {
    const step = DATA.steps[state.step];
    const shapes = $$("#sg-graph > svg g.node.apply").map(g => [g, $("ellipse, polygon, path", g)]);
    for (const [, s] of shapes) if (s && s.dataset.fill !== undefined) { s.setAttribute("fill", s.dataset.fill); }
    if (!DATA.profile || !state.heat || !step.final) return;
    let max = 0;
    for (const [g] of shapes) { const p = (DATA.nodes[g.id] || {}).profile; if (p) max = Math.max(max, p.seconds); }
    if (max <= 0) return;
    for (const [g, s] of shapes) {
      const p = (DATA.nodes[g.id] || {}).profile;
      if (!p || !s) continue;
      if (s.dataset.fill === undefined) s.dataset.fill = s.getAttribute("fill") || "";
      s.setAttribute("fill", heatColor(p.seconds / max));
    }
  }

  // --- panel ------------------------------------------------------------------------------------------
  function showTab(name) {
    $$(".sg-tabs button").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
    $$(".sg-tab").forEach(t => t.classList.toggle("active", t.id === "sg-tab-" + name));
  }
  $$(".sg-tabs button").forEach(b => b.addEventListener("click", () => showTab(b.dataset.tab)));

  function chip(sid, cls, stepHint) {
    const f = DATA.nodes[sid];
    const text = f ? `${f.op.length > 34 ? f.op.slice(0, 33) + "…" : f.op} · ${sid}` : sid;
    return el("span", { class: "sg-chip " + (cls || ""), title: f ? f.op : sid, "data-sid": sid,
                        onclick: () => goTo(sid, stepHint) }, text);
  }
  function table(rows) {
    return el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", { class: "k" }, k), el("td", {}, v))));
  }

  function renderNode(sid) {
    const box = $("#sg-tab-node"), f = DATA.nodes[sid];
    box.replaceChildren();
    if (!f) { box.append(el("p", { class: "sg-muted" }, "No facts recorded for " + sid)); return; }
    const flags = el("div", {});
    if (f.inner) flags.append(el("span", { class: "sg-flag fused" }, "fused kernel"));
    if (f.fallback) flags.append(el("span", { class: "sg-flag fallback" }, "host fallback"));
    box.append(el("h2", { id: "sg-node-op" }, f.op), el("div", { class: "sg-muted" }, `${f.op_class} · ${sid}`), flags);
    if (f.user) {
      box.append(el("h3", {}, "Built at"),
        el("div", { id: "sg-node-user" }, `${f.user.file.split(/[\\/]/).pop()}:${f.user.line} in ${f.user.function}`),
        el("pre", { id: "sg-node-user-text" }, f.user.text || "(source not available)"));
    }
    box.append(el("h3", {}, "Inputs"), table(f.inputs.map((v, i) => [String(i), `${v.name}  ${v.type}`])));
    box.append(el("h3", {}, "Outputs"), table(f.outputs.map((v, i) => [String(i), `${v.name}  ${v.type}`])));
    if (f.params.length) box.append(el("h3", {}, "Parameters"), table(f.params));
    if (f.inner) {
      const open = state.open.has(sid);
      box.append(el("h3", {}, `Contains ${f.inner.ops.length} fused op(s)`),
        el("div", {}, ...f.inner.nodes.map(s => chip(s))),
        el("button", { id: "sg-open-inner", onclick: () => { if (!nodeG(sid)) goTo(sid); toggleInner(sid); } },
           open ? "close in place" : "open in place"));
    }
    renderCode(box, f);
    if (f.profile) renderNodeProfile(box, f.profile);
    renderOrigin(box, sid, f);
  }

  function renderCode(box, f) {
    if (f.code.length) {
      box.append(el("h3", {}, "Runs as (f.source)"),
        el("pre", { id: "sg-node-code" }, f.code.map(([n, t]) => `${String(n).padStart(4)}  ${t}`).join("\n")));
    }
    for (const name of f.kernels) {
      box.append(el("h3", {}, "Kernel " + name), el("pre", { class: "sg-kernel" }, DATA.kernels[name] || ""));
    }
  }

  function renderNodeProfile(box, p) {
    const calls = p.calls || 0;
    const rows = [["time", `${fmtTime(p.seconds)} in ${calls} call(s)` + (calls ? `, ${fmtTime(p.seconds / calls)} per call` : "")],
                  ["share", (100 * p.share).toFixed(1) + "% of the time in nodes"]];
    if (p.device !== null && p.device !== undefined) rows.push(["device", fmtTime(p.device) + " between queue markers"]);
    if (p.shapes) rows.push(["output shapes", JSON.stringify(p.shapes)]);
    box.append(el("h3", {}, "Profile"), table(rows));
  }

  function renderOrigin(box, sid, f) {
    if (DATA.steps.length < 2 || sid.includes("/")) return;
    const rows = [];
    if (f.step !== null && f.step !== undefined) rows.push(["first seen", `step ${f.step}: ${DATA.steps[f.step].label}`]);
    if (f.origin.length) rows.push(["made by", f.origin.join(", ")]);
    box.append(el("h3", {}, "Rewrite history"), table(rows));
    if (state.sel && state.sel.sid === sid && !stepSets[state.step].has(sid)) {
      const now = follow(sid, state.sel.step, state.step);
      box.append(el("div", {}, `At step ${state.step} this is: `,
        ...(now.length ? now.map(s => chip(s)) : [el("span", { class: "sg-muted" }, "gone (folded or removed)")])));
    }
  }

  function renderStep() {
    const box = $("#sg-tab-step"), step = DATA.steps[state.step], k = state.step;
    box.replaceChildren(el("h2", {}, `Step ${k}: ${step.label}`));
    for (const note of DATA.notes) box.append(el("div", { class: "sg-note" }, note));
    const before = k > 0 ? DATA.steps[k - 1].nodes.length : null;
    box.append(el("div", {}, before === null ? `${step.nodes.length} nodes` : `${before} → ${step.nodes.length} nodes`));
    const applied = Object.entries(step.applied);
    if (applied.length) box.append(el("h3", {}, "Rules applied"), table(applied.map(([r, n]) => [`×${n}`, r])));
    if (step.fired.length) {
      box.append(el("h3", {}, "Replacements (rule: old → new)"));
      for (const [rule, old, made] of step.fired) {
        box.append(el("div", {}, el("span", { class: "sg-muted" }, rule + ": "), chip(old, "old", k - 1), " → ",
          ...(made.length ? made.map(s => chip(s, "new", k)) : [el("span", { class: "sg-muted" }, "an input or constant")])));
      }
    }
    if (step.new.length) box.append(el("h3", {}, "New in this step (green)"), el("div", {}, ...step.new.map(s => chip(s, "new", k))));
    const next = DATA.steps[k + 1];
    if (next && next.removed.length) {
      box.append(el("h3", {}, "Gone after the next pass (red dashes)"), el("div", {}, ...next.removed.map(s => chip(s, "old", k))));
    }
  }

  function renderProfile() {
    const box = $("#sg-tab-profile");
    if (!DATA.profile) {
      box.replaceChildren(el("p", { class: "sg-muted" }, "Compile with sg.function(..., profile=True) and call the function to see times here."));
      return;
    }
    const p = DATA.profile;
    box.replaceChildren(el("h2", {}, `${p.calls} call(s), ${fmtTime(p.seconds)}`),
      el("pre", { id: "sg-profile-text" }, p.text));
  }

  function renderSource() {
    const box = $("#sg-tab-source");
    box.replaceChildren();
    if (DATA.source) box.append(el("h3", {}, "f.source"), el("pre", { class: "sg-src" },
      DATA.source.split("\n").map((t, i) => `${String(i + 1).padStart(4)}  ${t}`).join("\n")));
    const names = Object.keys(DATA.kernels);
    if (names.length) box.append(el("h3", {}, `${names.length} kernel source(s)`));
    for (const n of names) box.append(el("details", {}, el("summary", {}, n), el("pre", {}, DATA.kernels[n])));
    if (!DATA.source && !names.length) box.append(el("p", { class: "sg-muted" }, "Not a compiled function: no generated code."));
  }

  // --- header controls --------------------------------------------------------------------------------
  function setupHeader() {
    $("#sg-search").addEventListener("input", () => applySearch(false));
    $("#sg-search").addEventListener("keydown", e => {
      if (e.key === "Enter") { e.preventDefault(); if (!state.matches.length) applySearch(true); else nextMatch(); }
      if (e.key === "Escape") { e.target.value = ""; applySearch(false); }
    });
    $("#sg-fit").addEventListener("click", () => setView(state.base.slice()));
    const heat = $("#sg-heat");
    if (DATA.profile) heat.addEventListener("change", () => { state.heat = heat.checked; applyHeat(); });
    else heat.parentNode.style.display = "none";
    const final = DATA.steps.length - 1;
    const fallbacks = DATA.steps[final].nodes.filter(s => DATA.nodes[s] && DATA.nodes[s].fallback);
    const badges = $("#sg-badges");
    if (fallbacks.length) {
      let at = -1;
      badges.append(el("button", { class: "sg-badge fallback", id: "sg-fallbacks", onclick: () => {
        at = (at + 1) % fallbacks.length; goTo(fallbacks[at], final); } },
        `${fallbacks.length} host fallback${fallbacks.length > 1 ? "s" : ""}`));
    }
    const nTransfers = (DATA.svgs[DATA.steps[final].svg].match(/class="edge flow transfer"/g) || []).length;
    if (nTransfers) {
      let at = -1;
      badges.append(el("button", { class: "sg-badge transfer", id: "sg-transfers", onclick: () => {
        if (state.step !== final) showStep(final);
        const edges = $$("#sg-graph > svg g.edge.transfer");
        if (edges.length) { at = (at + 1) % edges.length; centerOn(edges[at]); } } },
        `${nTransfers} host↔device transfer${nTransfers > 1 ? "s" : ""}`));
    }
    const steps = $("#sg-steps");
    if (DATA.steps.length < 2) { steps.style.display = "none"; return; }
    const slider = $("#sg-slider");
    slider.max = String(final);
    slider.addEventListener("input", () => showStep(Number(slider.value)));
    $("#sg-prev").addEventListener("click", () => showStep(state.step - 1));
    $("#sg-next").addEventListener("click", () => showStep(state.step + 1));
  }

  document.addEventListener("keydown", e => {
    if (e.key === "/" && document.activeElement !== $("#sg-search")) { e.preventDefault(); $("#sg-search").focus(); }
  });

  setupHeader();
  renderProfile();
  renderSource();
  showStep(state.step);
  renderNodeHint();
  function renderNodeHint() {
    $("#sg-tab-node").replaceChildren(el("p", { class: "sg-muted" },
      "Click a node for its op, types, user line, code and time. Double-click a fused kernel (bold box) to open it in place. " +
      "Scroll to zoom, drag to pan, / to search."));
  }
  window.sgExplorer = { showStep, select, goTo, toggleInner, follow, state, data: DATA };
})();
