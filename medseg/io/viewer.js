// medseg's slice viewer: axial, coronal and sagittal views of one case, embedded in report.html.
// Each div of class medseg-viewer holds a script element of type application/json written by
// medseg/io/viewer_data.py: a small RAS-ordered grid, its uint8 intensities and labels (zlib, base64).
// Views are drawn as a radiologist reads them (patient's right on the left, superior or anterior up),
// each pixel at its physical aspect. The wheel over a view (or its slider) moves through its slices; a
// click on a view moves the other two through that point; the checkboxes show or hide each label; the
// level and width sliders set the grey-level window.
// When a viewer has drawn its first views it sets data-ready="true" on its <div>.
"use strict";

(() => {
  const VIEWS = [
    { name: "axial", across: 2, columns: 0, rows: 1, edges: ["R", "L"] },
    { name: "coronal", across: 1, columns: 0, rows: 2, edges: ["R", "L"] },
    { name: "sagittal", across: 0, columns: 1, rows: 2, edges: ["A", "P"] },
  ];
  const LABEL_ALPHA = 0.45;
  const VIEW_SIZE = 300; // CSS pixels of the longest physical side of the three views

  async function inflate(packed) {
    const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    Object.entries(attributes).forEach(([key, value]) => node.setAttribute(key, value));
    node.textContent = text;
    return node;
  }

  class Viewer {
    constructor(root, data, image, mask) {
      this.data = data;
      this.image = image;
      this.mask = mask;
      this.position = data.start.slice();
      this.hidden = new Set();
      this.colours = new Map(data.labels.map((label) => [label.value, label.rgb]));
      [this.level, this.width] = data.window;
      this.views = VIEWS.map((view) => this.buildView(root, view));
      root.append(this.buildControls());
    }

    // The voxel's place in the C-ordered (X, Y, Z) arrays.
    offset(x, y, z) {
      const [, ny, nz] = this.data.shape;
      return (x * ny + y) * nz + z;
    }

    // "slice 12" or "slices 12-14": the scan's own voxel indices that slice `index` across `axis` covers.
    sliceText(axis, index) {
      const factor = this.data.factors[axis];
      const { length, reversed } = this.data.stored[axis];
      const first = index * factor;
      const last = Math.min(length, first + factor) - 1;
      const [a, b] = [first, last].map((i) => (reversed ? length - 1 - i : i)).sort((p, q) => p - q);
      return a === b ? `slice ${a}` : `slices ${a}-${b}`;
    }

    buildView(root, view) {
      const { shape, spacing } = this.data;
      const scale = VIEW_SIZE / Math.max(...shape.map((n, axis) => n * spacing[axis]));
      const figure = element("figure", { class: "medseg-view", "data-view": view.name });
      const canvas = element("canvas", { width: shape[view.columns], height: shape[view.rows] });
      canvas.style.width = `${shape[view.columns] * spacing[view.columns] * scale}px`;
      canvas.style.height = `${shape[view.rows] * spacing[view.rows] * scale}px`;
      const slider = element("input", { type: "range", min: 0, max: shape[view.across] - 1, "aria-label": view.name });
      const caption = element("figcaption");
      const edges = element("div", { class: "medseg-edges" });
      edges.append(element("span", {}, view.edges[0]), element("span", {}, view.edges[1]));
      figure.append(canvas, edges, slider, caption);
      root.append(figure);
      const state = { ...view, canvas, slider, caption, context: canvas.getContext("2d") };
      slider.addEventListener("input", () => this.moveTo(state, Number(slider.value)));
      canvas.addEventListener("wheel", (event) => {
        event.preventDefault();
        this.moveTo(state, this.position[view.across] + Math.sign(event.deltaY));
      });
      canvas.addEventListener("click", (event) => this.pointAt(state, event));
      return state;
    }

    buildControls() {
      const controls = element("div", { class: "medseg-controls" });
      this.data.labels.forEach((label) => {
        const box = element("input", { type: "checkbox", "data-label": label.value });
        box.checked = true;
        box.addEventListener("change", () => {
          if (box.checked) this.hidden.delete(label.value);
          else this.hidden.add(label.value);
          this.drawAll();
        });
        const swatch = element("span", { class: "medseg-swatch" });
        swatch.style.background = `rgb(${label.rgb.join(",")})`;
        const text = element("label");
        text.append(box, swatch, document.createTextNode(label.name));
        controls.append(text);
      });
      const [low, high] = this.data.range;
      this.windowSlider(controls, "level", low, high, this.level, (value) => (this.level = value));
      this.windowSlider(controls, "width", 1, high - low, this.width, (value) => (this.width = value));
      return controls;
    }

    windowSlider(controls, name, min, max, value, set) {
      const slider = element("input", { type: "range", min, max, "data-window": name });
      slider.step = "any";
      slider.value = value;
      const text = element("span", { class: "medseg-value" }, `${Math.round(value)}`);
      slider.addEventListener("input", () => {
        set(Number(slider.value));
        text.textContent = `${Math.round(Number(slider.value))}`;
        this.drawAll();
      });
      const label = element("label", {}, `${name} `);
      label.append(slider, text);
      controls.append(label);
      return slider;
    }

    // A click on a view moves the other two views through the voxel clicked.
    pointAt(view, event) {
      const box = view.canvas.getBoundingClientRect();
      const column = Math.floor(((event.clientX - box.left) / box.width) * view.canvas.width);
      const row = Math.floor(((event.clientY - box.top) / box.height) * view.canvas.height);
      this.position[view.columns] = view.canvas.width - 1 - Math.min(column, view.canvas.width - 1);
      this.position[view.rows] = view.canvas.height - 1 - Math.min(row, view.canvas.height - 1);
      this.drawAll();
    }

    moveTo(view, index) {
      this.position[view.across] = Math.max(0, Math.min(this.data.shape[view.across] - 1, index));
      this.draw(view);
    }

    // The grey level (0-255) of each stored uint8 value under the current window.
    greyLevels() {
      const [low, high] = this.data.range;
      const bottom = this.level - this.width / 2;
      return Uint8ClampedArray.from({ length: 256 }, (_, value) => {
        const intensity = low + (value / 255) * (high - low);
        return ((intensity - bottom) / this.width) * 255;
      });
    }

    draw(view, greys = this.greyLevels()) {
      const { canvas, context } = view;
      const picture = context.createImageData(canvas.width, canvas.height);
      const voxel = this.position.slice();
      for (let row = 0; row < canvas.height; row += 1) {
        voxel[view.rows] = canvas.height - 1 - row;
        for (let column = 0; column < canvas.width; column += 1) {
          voxel[view.columns] = canvas.width - 1 - column;
          const at = this.offset(...voxel);
          const grey = greys[this.image[at]];
          const label = this.mask[at];
          const colour = label && !this.hidden.has(label) ? this.colours.get(label) : undefined;
          const pixel = 4 * (row * canvas.width + column);
          for (let channel = 0; channel < 3; channel += 1) {
            picture.data[pixel + channel] = colour
              ? (1 - LABEL_ALPHA) * grey + LABEL_ALPHA * colour[channel]
              : grey;
          }
          picture.data[pixel + 3] = 255;
        }
      }
      context.putImageData(picture, 0, 0);
      view.slider.value = this.position[view.across];
      view.caption.textContent = `${view.name}, ${this.sliceText(view.across, this.position[view.across])}`;
    }

    drawAll() {
      const greys = this.greyLevels();
      this.views.forEach((view) => this.draw(view, greys));
    }
  }

  async function start(root) {
    const data = JSON.parse(root.querySelector("script[type='application/json']").textContent);
    const [image, mask] = await Promise.all([inflate(data.image), inflate(data.mask)]);
    new Viewer(root, data, image, mask).drawAll();
    root.dataset.ready = "true";
  }

  document.querySelectorAll(".medseg-viewer").forEach((root) => {
    start(root).catch((error) => {
      root.append(element("p", { class: "warning" }, `viewer: ${error}`));
    });
  });
})();
