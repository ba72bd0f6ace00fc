// The mock's deep-zoom slide viewer: DZI tiles from the mock, results as an SVG overlay.
//
// Shapes arrive in level-0 pixels, computed on the server by sectra_core.drawing (the module the
// renderer draws with); this file only maps level-0 pixels to the screen:
//   screen = (level0 - origin) * scale
// for tiles and shapes alike. Strokes keep their width in screen pixels (non-scaling-stroke), as
// in Sectra's viewer. No build step, no third-party code.
"use strict";
(function () {
  const slideId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const view = document.getElementById("view");
  const tileLayer = document.getElementById("tiles");
  const world = document.getElementById("world");
  const labels = document.getElementById("labels");
  const marks = document.getElementById("marks");
  const SVG = "http://www.w3.org/2000/svg";

  const MAX_TILES = 1500;
  const stats = { requested: [], loaded: 0, failed: 0 };
  const tiles = new Map(); // "level/col/row" -> {img, loaded}
  const hidden = new Set(); // app ids toggled off
  let slide = null; // the overlay document from /viewer/api/slides/{id}
  let version = "";
  let scale = 1; // screen pixels per level-0 pixel
  let ox = 0, oy = 0; // level-0 position at the screen's top-left corner
  let selected = null; // {app, result, index, center, side}
  let frame = 0;

  // --- geometry ---------------------------------------------------------------------------------

  function size() { return [view.clientWidth, view.clientHeight]; }

  function levelScale(level) { return Math.pow(2, level - slide.maxLevel); }

  function levelSize(level) {
    const d = Math.pow(2, slide.maxLevel - level);
    return [Math.max(1, Math.ceil(slide.width / d)), Math.max(1, Math.ceil(slide.height / d))];
  }

  // The level whose pixels are at least as fine as the screen's.
  function currentLevel() {
    const level = slide.maxLevel + Math.ceil(Math.log2(scale) - 1e-9);
    return Math.max(0, Math.min(slide.maxLevel, level));
  }

  function visibleTiles(level) {
    const [w, h] = size();
    const s = levelScale(level), t = slide.tileSize;
    const [lw, lh] = levelSize(level);
    const cols = Math.ceil(lw / t), rows = Math.ceil(lh / t);
    const x0 = ox * s, y0 = oy * s, x1 = (ox + w / scale) * s, y1 = (oy + h / scale) * s;
    const c0 = Math.max(0, Math.floor(x0 / t)), r0 = Math.max(0, Math.floor(y0 / t));
    const c1 = Math.min(cols - 1, Math.floor((x1 - 1e-6) / t)), r1 = Math.min(rows - 1, Math.floor((y1 - 1e-6) / t));
    const out = [];
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) out.push([level, c, r]);
    return out;
  }

  function fit() {
    const [w, h] = size();
    scale = Math.min(w / slide.width, h / slide.height);
    ox = (slide.width - w / scale) / 2;
    oy = (slide.height - h / scale) / 2;
  }

  function zoomAt(factor, sx, sy) {
    const [w, h] = size();
    const min = Math.min(w / slide.width, h / slide.height) / 4, max = 8;
    const next = Math.max(min, Math.min(max, scale * factor));
    ox += sx / scale - sx / next;
    oy += sy / scale - sy / next;
    scale = next;
    schedule();
  }

  function panBy(dx, dy) { ox -= dx / scale; oy -= dy / scale; schedule(); }

  // --- tiles ------------------------------------------------------------------------------------

  function tile(level, col, row) {
    const key = level + "/" + col + "/" + row;
    let entry = tiles.get(key);
    if (!entry) {
      const img = new Image();
      entry = { img, loaded: false, level, col, row };
      img.decoding = "async";
      img.alt = "";
      img.onload = () => { entry.loaded = true; stats.loaded++; schedule(); };
      img.onerror = () => { stats.failed++; };
      img.src = "/viewer/tiles/" + encodeURIComponent(slideId) + "/" + level + "/" + col + "_" + row + ".jpg";
      stats.requested.push(key);
      tiles.set(key, entry);
    }
    return entry;
  }

  function place(entry) {
    const s = levelScale(entry.level), t = slide.tileSize;
    const [lw, lh] = levelSize(entry.level);
    const x = entry.col * t, y = entry.row * t;
    const w = Math.min(t, lw - x), h = Math.min(t, lh - y);
    // Whole screen pixels on both edges: neighbouring tiles meet without seams.
    const left = Math.round((x / s - ox) * scale), top = Math.round((y / s - oy) * scale);
    const right = Math.round(((x + w) / s - ox) * scale), bottom = Math.round(((y + h) / s - oy) * scale);
    const style = entry.img.style;
    style.left = left + "px"; style.top = top + "px";
    style.width = (right - left) + "px"; style.height = (bottom - top) + "px";
    style.zIndex = String(entry.level);
  }

  function drawTiles() {
    const level = currentLevel();
    const wanted = visibleTiles(level).map(([l, c, r]) => tile(l, c, r));
    const shown = new Set(wanted);
    // Coarser tiles already loaded stay underneath until the finer ones arrive (no requests).
    for (let back = level - 1; back >= Math.max(0, level - 4); back--) {
      for (const [l, c, r] of visibleTiles(back)) {
        const entry = tiles.get(l + "/" + c + "/" + r);
        if (entry && entry.loaded) shown.add(entry);
      }
    }
    for (const child of Array.from(tileLayer.children)) {
      if (!shown.has(child._entry)) tileLayer.removeChild(child);
    }
    // Least recently shown first: the tiles on screen move to the end, the oldest beyond
    // MAX_TILES are dropped (a long tour of a 100k-pixel slide must not keep every tile decoded).
    for (const entry of shown) {
      const key = entry.level + "/" + entry.col + "/" + entry.row;
      tiles.delete(key);
      tiles.set(key, entry);
    }
    for (const [key, entry] of tiles) {
      if (tiles.size <= MAX_TILES || shown.has(entry)) break;
      tiles.delete(key);
    }
    for (const entry of shown) {
      entry.img._entry = entry;
      place(entry);
      if (entry.img.parentNode !== tileLayer) tileLayer.appendChild(entry.img);
    }
    api.complete = wanted.every((e) => e.loaded);
    api.level = level;
    // Milliseconds from navigation start to the first complete view (the benchmark reads it).
    if (api.complete && api.firstCompleteMs === null) api.firstCompleteMs = performance.now();
  }

  // --- overlay ----------------------------------------------------------------------------------

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function pointsAttr(points) { return points.map((p) => p[0] + "," + p[1]).join(" "); }

  function shapeNode(shape, parent) {
    const paint = {
      class: "shape " + shape.kind, stroke: shape.stroke, "stroke-opacity": shape.strokeOpacity,
      "stroke-width": shape.width, fill: shape.fill || "none", "fill-opacity": shape.fill ? shape.fillOpacity : null,
    };
    if (shape.kind === "polygon" || shape.kind === "patch") {
      return el("polygon", Object.assign({ points: pointsAttr(shape.points), "data-index": shape.index }, paint), parent);
    }
    if (shape.kind === "polyline") return el("polyline", Object.assign({ points: pointsAttr(shape.points) }, paint), parent);
    if (shape.kind === "arc") {
      const [cx, cy] = shape.points[0], r = shape.radius, sweep = shape.end - shape.start;
      if (Math.abs(sweep) >= 2 * Math.PI - 1e-9) return el("circle", Object.assign({ cx, cy, r }, paint), parent);
      const a = Math.min(shape.start, shape.end), b = Math.max(shape.start, shape.end);
      const d = "M " + (cx + r * Math.cos(a)) + " " + (cy + r * Math.sin(a)) + " A " + r + " " + r + " 0 " +
        (b - a > Math.PI ? 1 : 0) + " 1 " + (cx + r * Math.cos(b)) + " " + (cy + r * Math.sin(b));
      return el("path", Object.assign({ d }, paint), parent);
    }
    return null;
  }

  function buildOverlay() {
    world.replaceChildren();
    for (const app of slide.apps) {
      const group = el("g", { "data-app": app.id }, world);
      if (hidden.has(app.id)) group.style.display = "none";
      // What the user drew to start the analysis (tagged polygon, areas), under the results.
      for (const drawn of app.inputs) {
        const g = el("g", { class: "input" }, group);
        for (const shape of drawn.shapes) if (shape.kind !== "label") shapeNode(shape, g);
      }
      for (const result of app.results) {
        const g = el("g", { "data-result": result.id }, group);
        for (const shape of result.shapes) if (shape.kind !== "label") shapeNode(shape, g);
      }
    }
  }

  function drawOverlay() {
    world.setAttribute("transform", "matrix(" + scale + " 0 0 " + scale + " " + (-ox * scale) + " " + (-oy * scale) + ")");
    // Labels keep their size on screen: placed in screen pixels on every frame.
    labels.replaceChildren();
    const [w, h] = size();
    for (const app of slide.apps) {
      if (hidden.has(app.id)) continue;
      const drawn = app.inputs.concat(app.results);
      for (const item of drawn) for (const shape of item.shapes) {
        if (shape.kind !== "label") continue;
        const x = (shape.points[0][0] - ox) * scale, y = (shape.points[0][1] - oy) * scale;
        if (x > w || y > h || y < -40) continue;
        const text = el("text", { x, y, fill: shape.stroke, "fill-opacity": shape.strokeOpacity, class: "label" }, labels);
        text.textContent = shape.text;
      }
    }
    marks.replaceChildren();
    if (selected) {
      const half = selected.side / 2;
      el("rect", {
        class: "highlight", x: (selected.center[0] - half - ox) * scale, y: (selected.center[1] - half - oy) * scale,
        width: Math.max(6, selected.side * scale), height: Math.max(6, selected.side * scale),
      }, marks);
    }
  }

  function drawScaleBar() {
    const line = document.getElementById("scalebar-line"), label = document.getElementById("scalebar-text");
    if (!slide.mpp) { label.textContent = "no µm/px calibration"; line.style.width = "0"; return; }
    const umPerPx = slide.mpp / scale;
    const target = 120 * umPerPx;
    const power = Math.pow(10, Math.floor(Math.log10(target)));
    const nice = [5, 2, 1].map((m) => m * power).find((v) => v <= target) || power;
    line.style.width = Math.round(nice / umPerPx) + "px";
    label.textContent = nice >= 1000 ? (nice / 1000) + " mm" : nice >= 1 ? nice + " µm" : nice.toPrecision(2) + " µm";
  }

  function render() {
    frame = 0;
    if (!slide) return;
    const started = performance.now();
    drawTiles();
    drawOverlay();
    drawScaleBar();
    api.frames.push(performance.now() - started);
    if (api.frames.length > 200) api.frames.shift();
  }

  function schedule() { if (!frame) frame = requestAnimationFrame(render); }

  // --- side panel -------------------------------------------------------------------------------

  function h(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function warningList(warnings) {
    const ul = h("ul", null, "warnings");
    for (const w of warnings) ul.appendChild(h("li", w));
    return ul;
  }

  function select(app, result, patch, button) {
    selected = { app: app.id, result: result.id, index: patch.index, center: patch.center, side: result.gallery.side };
    for (const b of document.querySelectorAll(".gallery button.selected")) b.classList.remove("selected");
    if (button) button.classList.add("selected");
    // Bring the patch to the middle of the screen, zoomed so it is clearly visible.
    const [w, h2] = size();
    scale = Math.max(scale, Math.min(w, h2) / (selected.side * 8));
    ox = patch.center[0] - w / 2 / scale;
    oy = patch.center[1] - h2 / 2 / scale;
    schedule();
  }

  function buildPanel() {
    document.getElementById("title").textContent = slide.id;
    document.getElementById("meta").textContent = slide.width + " × " + slide.height + " px" +
      (slide.mpp ? ", " + slide.mpp + " µm/px" : "");
    document.getElementById("slide-warnings").replaceWith(Object.assign(warningList(slide.warnings), { id: "slide-warnings" }));
    const apps = document.getElementById("apps");
    apps.replaceChildren();
    if (!slide.apps.length) apps.appendChild(h("p", "No results stored on this slide yet; new ones appear here.", "hint"));
    for (const app of slide.apps) {
      const box = h("div", null, "app");
      box.dataset.app = app.id;
      const label = h("label");
      const toggle = h("input");
      toggle.type = "checkbox";
      toggle.checked = !hidden.has(app.id);
      toggle.className = "app-toggle";
      toggle.addEventListener("change", () => {
        if (toggle.checked) hidden.delete(app.id); else hidden.add(app.id);
        const group = world.querySelector('g[data-app="' + CSS.escape(app.id) + '"]');
        if (group) group.style.display = toggle.checked ? "" : "none";
        schedule();
      });
      label.append(toggle, " " + app.id + " (" + app.results.length + ")");
      box.appendChild(label);
      if (app.warnings.length) box.appendChild(warningList(app.warnings));
      for (const drawn of app.inputs) {
        box.appendChild(h("div", "Input sent: " + drawn.type + (drawn.tag ? " tagged “" + drawn.tag + "”" : ""), "input-note"));
      }
      for (const result of app.results) {
        const card = h("div", null, "result");
        card.dataset.result = result.id;
        card.appendChild(h("div", "#" + result.id + " " + (result.displayResult || "(no displayResult)"), "display-result"));
        if (result.status) card.appendChild(h("div", "Status: " + result.status, "status"));
        if (result.progress !== null) {
          const bar = h("progress");
          bar.max = 1; bar.value = result.progress;
          card.appendChild(bar);
        }
        const props = Object.entries(result.displayProperties);
        if (props.length) {
          const table = h("table");
          for (const [k, v] of props) {
            const row = h("tr");
            row.append(h("td", k), h("td", String(v)));
            table.appendChild(row);
          }
          card.appendChild(table);
        }
        if (result.warnings.length) card.appendChild(warningList(result.warnings));
        if (result.gallery) {
          const gallery = h("div", null, "gallery");
          gallery.appendChild(h("div", result.gallery.description || "Patches"));
          const list = h("ol");
          for (const patch of result.gallery.patches) {
            const item = h("li");
            const button = h("button", patch.tag + " · " + Number(patch.sortKeyValue).toFixed(3), "patch");
            button.dataset.index = patch.index;
            if (selected && selected.app === app.id && selected.result === result.id && selected.index === patch.index) {
              button.classList.add("selected");
            }
            button.addEventListener("click", () => select(app, result, patch, button));
            item.appendChild(button);
            list.appendChild(item);
          }
          gallery.appendChild(list);
          card.appendChild(gallery);
        }
        box.appendChild(card);
      }
      apps.appendChild(box);
    }
  }

  // --- data -------------------------------------------------------------------------------------

  async function load() {
    const since = version ? "?since=" + encodeURIComponent(version) : "";
    const response = await fetch("/viewer/api/slides/" + encodeURIComponent(slideId) + since, { cache: "no-store" });
    if (!response.ok) throw new Error("overlay: HTTP " + response.status);
    const next = await response.json();
    if (next.unchanged || next.version === version) return false;
    slide = next;
    version = next.version;
    api.version = version;
    buildOverlay();
    buildPanel();
    schedule();
    return true;
  }

  // The pyramid first: tiles are requested at once, whatever the size of the results.
  async function start() {
    const response = await fetch("/viewer/api/slides/" + encodeURIComponent(slideId) + "?pyramid=1", { cache: "no-store" });
    if (!response.ok) throw new Error("slide: HTTP " + response.status);
    slide = Object.assign(await response.json(), { apps: [], warnings: [] });
    document.title = "Mock Sectra: " + slide.id;
    fit();
    render();
    // The overlay after the first tiles (or 1.5 s): a large result set never delays the slide.
    const waited = performance.now();
    while (!api.complete && performance.now() - waited < 1500) await new Promise((r) => setTimeout(r, 20));
    await load();
    setInterval(() => { load().catch((e) => console.warn(e.message)); }, 1000);
  }

  // --- input ------------------------------------------------------------------------------------

  const pointers = new Map();
  let pinch = 0;

  view.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = view.getBoundingClientRect();
    const delta = event.deltaMode === 1 ? event.deltaY * 30 : event.deltaY;
    zoomAt(Math.exp(-delta * 0.002), event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });

  view.addEventListener("pointerdown", (event) => {
    view.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
    view.classList.add("dragging");
    view.focus();
  });

  view.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    if (pointers.size === 1) {
      panBy(event.clientX - last[0], event.clientY - last[1]);
    } else if (pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      const before = Math.hypot(a[0] - b[0], a[1] - b[1]);
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      const [c, d] = Array.from(pointers.values());
      const after = Math.hypot(c[0] - d[0], c[1] - d[1]);
      const rect = view.getBoundingClientRect();
      if (before > 0) zoomAt(after / before, (c[0] + d[0]) / 2 - rect.left, (c[1] + d[1]) / 2 - rect.top);
      pinch++;
      return;
    }
    pointers.set(event.pointerId, [event.clientX, event.clientY]);
  });

  function release(event) {
    pointers.delete(event.pointerId);
    if (!pointers.size) view.classList.remove("dragging");
  }
  view.addEventListener("pointerup", release);
  view.addEventListener("pointercancel", release);

  view.addEventListener("keydown", (event) => {
    const [w, h2] = size();
    const step = 100;
    const keys = {
      ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
      ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
      "+": () => zoomAt(1.5, w / 2, h2 / 2), "=": () => zoomAt(1.5, w / 2, h2 / 2),
      "-": () => zoomAt(1 / 1.5, w / 2, h2 / 2), "0": () => { fit(); schedule(); },
    };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });

  window.addEventListener("resize", schedule);

  // --- what tests (and the curious) may read or drive ---------------------------------------------

  const api = {
    stats, complete: false, level: 0, version: "", firstCompleteMs: null, frames: [],
    // A level-0 pixel position -> CSS pixels relative to the view's top-left corner.
    toScreen: (x, y) => [(x - ox) * scale, (y - oy) * scale],
    visible: () => (slide ? visibleTiles(currentLevel()).map((t) => t.join("/")) : []),
    setView: (x, y, s) => { ox = x; oy = y; scale = s; render(); },
    getView: () => ({ x: ox, y: oy, scale }),
    panBy: (dx, dy) => { panBy(dx, dy); render(); },
    zoomAt: (f, sx, sy) => { zoomAt(f, sx, sy); render(); },
    fit: () => { fit(); render(); },
    reload: load,
  };
  window.sectraViewer = api;

  start().catch((e) => console.error(e.message));
})();
