// The mock's slide list: thumbnail, label, size, µm/px and how many results each app stored.
"use strict";
(function () {
  const body = document.querySelector("#slides tbody");
  let last = "";

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    row.appendChild(td);
    return td;
  }

  function image(src, alt) {
    const img = document.createElement("img");
    img.src = src;
    img.alt = alt;
    return img;
  }

  async function refresh() {
    const response = await fetch("/viewer/api/slides", { cache: "no-store" });
    if (!response.ok) throw new Error("slide list: HTTP " + response.status);
    const slides = await response.json();
    const text = JSON.stringify(slides);
    if (text === last) return;
    last = text;
    body.replaceChildren();
    for (const slide of slides) {
      const row = document.createElement("tr");
      row.className = "slide-row";
      row.dataset.slide = slide.id;
      const link = document.createElement("a");
      link.href = "/viewer/" + encodeURIComponent(slide.id);
      link.appendChild(image("/viewer/" + slide.thumbnail, "thumbnail of " + slide.id));
      cell(row, link);
      cell(row, slide.hasLabel ? image("/viewer/label/" + encodeURIComponent(slide.id), "label") : "no label");
      const name = document.createElement("a");
      name.href = link.href;
      name.textContent = slide.id + (slide.staining ? " (" + slide.staining + ")" : "");
      cell(row, name);
      cell(row, slide.width + " × " + slide.height);
      cell(row, slide.mpp == null ? "–" : String(slide.mpp));
      const apps = Object.entries(slide.results);
      cell(row, apps.length ? apps.map(([app, n]) => app + ": " + n).join(", ") : "none");
      body.appendChild(row);
    }
  }

  refresh();
  setInterval(() => refresh().catch((e) => console.warn(e.message)), 2000);
})();
