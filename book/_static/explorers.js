/* The latent explorers of the published book, run in the reader's browser.
 *
 * Each explorer is a <div class="aecourse-explorer" data-explorer="NAME">
 * put on the page by book/_ext/aecourse_explorers.py. Its data
 * (_static/explorers/NAME.json) and its decoder (an ONNX file exported from
 * the shipped weights by `python -m aecourse.export`) are fetched when it
 * comes near the screen; onnxruntime-web (_static/onnxruntime/, from npm)
 * runs the decoder on the CPU through WebAssembly, and every move of a
 * control decodes again. The kinds follow aecourse.widgets:
 *
 *   plane      two sliders, or a click on the latent map -> the decoded image
 *   traversal  one slider per latent unit, a reset button
 *   codes      a VQ-VAE code grid: pick a cell, set its code
 *   noise      noise kind and level, image -> noisy and denoised, with PSNR
 *   class      a conditional VAE: the class y (a menu) and latent sliders,
 *              a button that draws a new z; the decoder's input is z followed
 *              by the one-hot label
 *
 * Images are drawn on a canvas of the image's own size (28 x 28) and enlarged
 * by CSS, so a canvas holds exactly the 8-bit grey levels drawn. For the
 * browser check (tests/site/test_explorers.py) each explorer's element
 * carries data-draws (decodes drawn so far), data-latent (the JSON of the
 * input last drawn), data-busy ("1" while a decode is running or waiting)
 * and data-first-image-ms (performance.now() at the first image);
 * data-error when it stopped.
 */
(function () {
  "use strict";

  const STATIC = new URL(".", document.currentScript.src);
  const ORT_DIR = new URL("onnxruntime/", STATIC);
  const DATA_DIR = new URL("explorers/", STATIC);
  const SCALE = 8; // an image is shown 8 times its size, as in widgets.py
  // matplotlib's tab10, the colours of aecourse.plot.latent_map
  const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  let runtime = null; // the promise of onnxruntime-web, loaded once per page

  function loadRuntime() {
    if (runtime === null) {
      runtime = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = new URL("ort.wasm.min.js", ORT_DIR).href;
        script.onload = () => {
          const ort = window.ort;
          // the .wasm and its loader come from the site, never a CDN
          ort.env.wasm.wasmPaths = ORT_DIR.href;
          // threads need cross-origin isolation, which a static host
          // rarely gives; these decoders are small
          ort.env.wasm.numThreads = 1;
          ort.env.wasm.proxy = false;
          resolve(ort);
        };
        script.onerror = () => reject(new Error(`cannot load ${script.src}`));
        document.head.appendChild(script);
      });
    }
    return runtime;
  }

  async function fetchOk(url) {
    const response = await fetch(url);
    if (!response.ok) {
      throw new Error(`${url}: HTTP ${response.status}`);
    }
    return response;
  }

  /* A decoder: run(input) -> Float32Array of the image (C*H*W), one run at
   * a time; a request made while one runs replaces any waiting one, so
   * dragging a slider never queues stale work. */
  class Decoder {
    constructor(root, ort, session, spec, fail) {
      this.root = root;
      this.ort = ort;
      this.session = session;
      this.spec = spec;
      this.fail = fail; // called with an error of a run
      this.busy = false;
      this.waiting = null;
    }

    tensor(values) {
      const shape = this.spec.input_shape;
      values = values.flat(); // a code grid's rows, one after the other
      if (this.spec.input === "indices") {
        const data = BigInt64Array.from(values, (v) => BigInt(v));
        return new this.ort.Tensor("int64", data, shape);
      }
      return new this.ort.Tensor("float32", Float32Array.from(values), shape);
    }

    async decode(values) {
      const feeds = {};
      feeds[this.spec.input] = this.tensor(values);
      const out = await this.session.run(feeds);
      return out.x_hat.data;
    }

    // request(values, draw): decode, then draw(values, image), latest first
    request(values, draw) {
      this.waiting = [values, draw];
      if (!this.busy) {
        this.pump();
      }
    }

    async pump() {
      this.busy = true;
      this.root.dataset.busy = "1"; // until the latest request is drawn
      try {
        while (this.waiting !== null) {
          const [values, draw] = this.waiting;
          this.waiting = null;
          draw(values, await this.decode(values));
        }
      } catch (error) {
        this.fail(error);
      } finally {
        this.busy = false;
        this.root.dataset.busy = "0";
      }
    }
  }

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === "text") {
        node.textContent = value;
      } else {
        node.setAttribute(key, value);
      }
    }
    for (const child of children || []) {
      node.appendChild(child);
    }
    return node;
  }

  function imageCanvas(shape, label) {
    const [, h, w] = shape;
    const canvas = element("canvas", {
      width: w, height: h, class: "aecourse-image", role: "img",
      "aria-label": label,
    });
    canvas.style.width = `${w * SCALE}px`;
    canvas.style.height = `${h * SCALE}px`;
    return canvas;
  }

  // values in [0, 1], (C, H, W) with C = 1 or 3 -> the canvas's pixels
  function drawImage(canvas, values, shape) {
    const [c, h, w] = shape;
    const context = canvas.getContext("2d");
    const picture = context.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      for (let k = 0; k < 3; k++) {
        const v = values[(c === 1 ? 0 : k) * h * w + i];
        picture.data[4 * i + k] = Math.round(255 * Math.min(1, Math.max(0, v)));
      }
      picture.data[4 * i + 3] = 255;
    }
    context.putImageData(picture, 0, 0);
  }

  // a labelled range input; onInput(value) on every move
  function slider(label, value, low, high, step, onInput) {
    const input = element("input", {
      type: "range", min: low, max: high, step: step, value: value,
      "aria-label": label,
    });
    const readout = element("output", {});
    const digits = step < 1 ? 2 : 0;
    const show = () => { readout.textContent = Number(input.value).toFixed(digits); };
    show();
    input.addEventListener("input", () => { show(); onInput(Number(input.value)); });
    const set = (v) => { input.value = v; show(); };
    const row = element("label", { class: "aecourse-slider" },
      [element("span", { text: label }), input, readout]);
    return { row, input, set };
  }

  function drawn(root, latent) {
    root.dataset.latent = JSON.stringify(latent);
    root.dataset.draws = String(Number(root.dataset.draws || 0) + 1);
    if (!root.dataset.firstImageMs) {
      root.dataset.firstImageMs = performance.now().toFixed(1);
    }
  }

  /* ---- the latent plane ------------------------------------------------ */

  function plane(root, spec, decoder) {
    const [x0, x1, y0, y1] = spec.extent;
    const z = spec.start.slice();
    const size = 320; // CSS px of the map
    const map = element("canvas", {
      width: size, height: size, class: "aecourse-map", role: "img",
      "aria-label": "latent map: click or drag to choose z",
    });
    const image = imageCanvas(spec.image_shape, "decoded image of z");
    const toPixel = (a, b) => [(a - x0) / (x1 - x0) * size,
      (1 - (b - y0) / (y1 - y0)) * size];

    function drawMap() {
      const context = map.getContext("2d");
      context.fillStyle = "#fff";
      context.fillRect(0, 0, size, size);
      spec.points.forEach(([a, b], i) => {
        const [px, py] = toPixel(a, b);
        context.fillStyle = TAB10[spec.labels[i] % TAB10.length];
        context.globalAlpha = 0.45;
        context.fillRect(px - 1, py - 1, 2.5, 2.5);
      });
      context.globalAlpha = 1;
      const [px, py] = toPixel(z[0], z[1]);
      context.lineWidth = 3;
      context.strokeStyle = "#fff";
      context.beginPath();
      context.moveTo(px - 7, py - 7); context.lineTo(px + 7, py + 7);
      context.moveTo(px + 7, py - 7); context.lineTo(px - 7, py + 7);
      context.stroke();
      context.lineWidth = 1.5;
      context.strokeStyle = "#000";
      context.stroke();
    }

    const step = (hi, lo) => (hi - lo) / 100;
    const s1 = slider("z[0]", z[0], x0, x1, step(x1, x0), (v) => { z[0] = v; update(); });
    const s2 = slider("z[1]", z[1], y0, y1, step(y1, y0), (v) => { z[1] = v; update(); });

    function update() {
      drawMap();
      decoder.request(z.slice(), (latent, values) => {
        drawImage(image, values, spec.image_shape);
        drawn(root, latent);
      });
    }

    // a click or a drag on the map moves z there
    function pick(event) {
      const box = map.getBoundingClientRect();
      const fx = (event.clientX - box.left) / box.width;
      const fy = (event.clientY - box.top) / box.height;
      z[0] = x0 + Math.min(1, Math.max(0, fx)) * (x1 - x0);
      z[1] = y0 + (1 - Math.min(1, Math.max(0, fy))) * (y1 - y0);
      s1.set(z[0]);
      s2.set(z[1]);
      update();
    }
    map.addEventListener("pointerdown", (event) => {
      map.setPointerCapture(event.pointerId);
      pick(event);
    });
    map.addEventListener("pointermove", (event) => {
      if (map.hasPointerCapture(event.pointerId)) {
        pick(event);
      }
    });

    const legend = element("div", { class: "aecourse-legend" },
      spec.classes.map((name, k) => element("span", {}, [
        element("i", { style: `background:${TAB10[k % TAB10.length]}` }),
        document.createTextNode(name),
      ])));
    root.append(
      element("div", { class: "aecourse-controls" }, [s1.row, s2.row]),
      element("div", { class: "aecourse-pictures" }, [
        element("div", {}, [map, legend]), image,
      ]),
    );
    update();
  }

  /* ---- traversals ------------------------------------------------------ */

  function traversal(root, spec, decoder) {
    const z = spec.z0.slice();
    const image = imageCanvas(spec.image_shape, "decoded image of z");
    const sliders = spec.dims.map((d) => {
      const v = spec.z0[d];
      const low = Math.min(-spec.limit, v);
      const high = Math.max(spec.limit, v);
      return slider(`z[${d}]`, v, low, high, (high - low) / 100,
        (value) => { z[d] = value; update(); });
    });
    const reset = element("button", { type: "button", text: "reset to z0" });
    reset.addEventListener("click", () => {
      spec.dims.forEach((d, i) => { z[d] = spec.z0[d]; sliders[i].set(z[d]); });
      update();
    });

    function update() {
      decoder.request(z.slice(), (latent, values) => {
        drawImage(image, values, spec.image_shape);
        drawn(root, latent);
      });
    }

    root.append(element("div", { class: "aecourse-pictures" }, [
      element("div", { class: "aecourse-controls aecourse-column" },
        sliders.map((s) => s.row)),
      element("div", { class: "aecourse-column" }, [image, reset]),
    ]));
    update();
  }

  /* ---- a VQ-VAE's code grid -------------------------------------------- */

  function codes(root, spec, decoder) {
    const grids = spec.grids;
    const g = grids[0].length;
    const [, h, w] = spec.image_shape;
    let grid = grids[0].map((row) => row.slice());
    let cell = [Math.floor(g / 2), Math.floor(g / 2)];
    const image = imageCanvas(spec.image_shape, "decoded code grid");
    // the grid's lines and the chosen cell, over the image
    const overlay = element("canvas", {
      width: w * SCALE, height: h * SCALE, class: "aecourse-overlay",
      "aria-label": "code grid: click a cell to choose it",
    });
    const where = element("span", { class: "aecourse-cell" });
    const code = slider("code", grid[cell[0]][cell[1]], 0,
      spec.codebook_size - 1, 1, (k) => { grid[cell[0]][cell[1]] = k; update(); });
    const start = slider("image", 0, 0, grids.length - 1, 1, (n) => {
      grid = grids[n].map((row) => row.slice());
      choose(cell);
      update();
    });

    function choose([i, j]) {
      cell = [i, j];
      code.set(grid[i][j]);
      where.textContent = `cell (${i}, ${j}) of ${g} x ${g}`;
      const context = overlay.getContext("2d");
      const side = overlay.width / g;
      context.clearRect(0, 0, overlay.width, overlay.height);
      context.strokeStyle = "rgba(255, 255, 255, 0.35)";
      context.lineWidth = 1;
      for (let k = 1; k < g; k++) {
        context.beginPath();
        context.moveTo(k * side, 0); context.lineTo(k * side, overlay.height);
        context.moveTo(0, k * side); context.lineTo(overlay.width, k * side);
        context.stroke();
      }
      context.strokeStyle = "#e8590c";
      context.lineWidth = 3;
      context.strokeRect(j * side + 1.5, i * side + 1.5, side - 3, side - 3);
    }

    overlay.addEventListener("click", (event) => {
      const box = overlay.getBoundingClientRect();
      const j = Math.floor((event.clientX - box.left) / box.width * g);
      const i = Math.floor((event.clientY - box.top) / box.height * g);
      choose([Math.min(g - 1, Math.max(0, i)), Math.min(g - 1, Math.max(0, j))]);
    });
    const random = element("button", { type: "button", text: "random code" });
    random.addEventListener("click", () => {
      const k = Math.floor(Math.random() * spec.codebook_size);
      grid[cell[0]][cell[1]] = k;
      code.set(k);
      update();
    });

    function update() {
      decoder.request(grid.map((row) => row.slice()), (latent, values) => {
        drawImage(image, values, spec.image_shape);
        drawn(root, latent);
      });
    }

    const stack = element("div", { class: "aecourse-stack" }, [image, overlay]);
    root.append(
      element("div", { class: "aecourse-controls" }, [start.row, code.row, random]),
      element("div", { class: "aecourse-pictures" }, [stack, where]),
    );
    choose(cell);
    update();
  }

  /* ---- the denoiser ---------------------------------------------------- */

  // a small seeded generator (mulberry32): the same level, the same noise
  function generator(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function psnr(a, b) {
    let sum = 0;
    for (let i = 0; i < a.length; i++) {
      sum += (a[i] - b[i]) ** 2;
    }
    return 10 * Math.log10(1 / Math.max(sum / a.length, 1e-10));
  }

  function noise(root, spec, decoder) {
    const shape = spec.image_shape;
    const n = shape[0] * shape[1] * shape[2];
    const bytes = Uint8Array.from(atob(spec.images), (ch) => ch.charCodeAt(0));
    const state = { kind: Object.keys(spec.levels)[0], index: 0 };
    state.level = spec.levels[state.kind][2];
    const clean = imageCanvas(shape, "clean image");
    const noisy = imageCanvas(shape, "noisy image");
    const denoised = imageCanvas(shape, "denoised image");
    const scores = element("p", { class: "aecourse-scores" });

    // the noisy image, in 8-bit steps: what is drawn is what the DAE sees
    function corrupt(x) {
      const random = generator(spec.seed);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let v;
        if (state.kind === "gaussian") {
          // Box-Muller: one standard normal draw
          const u = 1 - random();
          const eps = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
          v = Math.min(1, Math.max(0, x[i] + state.level * eps));
        } else {
          v = random() < state.level ? 0 : x[i];
        }
        out[i] = Math.round(v * 255) / 255;
      }
      return out;
    }

    const kind = element("select", { "aria-label": "noise" },
      Object.keys(spec.levels).map((k) => element("option", { value: k, text: k })));
    const level = slider(spec.levels[state.kind][0], state.level, 0,
      spec.levels[state.kind][1], spec.levels[state.kind][1] / 100,
      (v) => { state.level = v; update(); });
    const index = slider("image", 0, 0, spec.count - 1, 1,
      (v) => { state.index = v; update(); });
    kind.addEventListener("change", () => {
      state.kind = kind.value;
      const [label, high] = spec.levels[state.kind];
      level.row.querySelector("span").textContent = label;
      level.input.setAttribute("aria-label", label);
      level.input.max = high;
      level.input.step = high / 100;
      state.level = Math.min(state.level, high);
      level.set(state.level);
      update();
    });

    function update() {
      const x = Float32Array.from(bytes.subarray(state.index * n, (state.index + 1) * n),
        (b) => b / 255);
      const input = corrupt(x);
      drawImage(clean, x, shape);
      drawImage(noisy, input, shape);
      const latent = { kind: state.kind, level: state.level, index: state.index };
      decoder.request(Array.from(input), (values, out) => {
        drawImage(denoised, out, shape);
        scores.textContent = `PSNR against the clean image: noisy ${psnr(input, x).toFixed(2)} dB, ` +
          `denoised ${psnr(out, x).toFixed(2)} dB`;
        drawn(root, latent);
      });
    }

    const titled = (canvas, title) => element("figure", {}, [
      canvas, element("figcaption", { text: title })]);
    root.append(
      element("div", { class: "aecourse-controls" }, [
        element("label", { class: "aecourse-slider" }, [element("span", { text: "noise" }), kind]),
        level.row, index.row,
      ]),
      element("div", { class: "aecourse-pictures" }, [
        titled(clean, "clean"), titled(noisy, "noisy"), titled(denoised, "denoised"),
      ]),
      scores,
    );
    update();
  }

  /* ---- a conditional VAE: a chosen class ----------------------------- */

  function conditional(root, spec, decoder) {
    const z = spec.z0.slice();
    const state = { y: 0, draws: 0 };
    const image = imageCanvas(spec.image_shape, "decoded image of z and y");
    const label = element("select", { "aria-label": "class y" },
      spec.classes.map((name, c) => element("option", { value: c, text: name })));
    label.addEventListener("change", () => { state.y = Number(label.value); update(); });
    const sliders = spec.dims.map((d) => slider(`z[${d}]`, z[d], -spec.limit, spec.limit,
      spec.limit / 50, (value) => { z[d] = value; update(); }));
    // a new z ~ N(0, I) (Box-Muller on a seeded generator), the class kept
    const redraw = element("button", { type: "button", text: "draw a new z" });
    redraw.addEventListener("click", () => {
      state.draws += 1;
      const random = generator(state.draws);
      for (let i = 0; i < z.length; i++) {
        const u = 1 - random();
        z[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
      }
      spec.dims.forEach((d, i) => {
        sliders[i].input.min = Math.min(-spec.limit, z[d]);
        sliders[i].input.max = Math.max(spec.limit, z[d]);
        sliders[i].set(z[d]);
      });
      update();
    });

    function update() {
      const oneHot = spec.classes.map((_, c) => (c === state.y ? 1 : 0));
      decoder.request(z.concat(oneHot), (latent, values) => {
        drawImage(image, values, spec.image_shape);
        drawn(root, latent);
      });
    }

    root.append(
      element("div", { class: "aecourse-controls" }, [
        element("label", { class: "aecourse-slider" },
          [element("span", { text: "class y" }), label]),
        redraw,
      ]),
      element("div", { class: "aecourse-pictures" }, [
        element("div", { class: "aecourse-controls aecourse-column" },
          sliders.map((s) => s.row)),
        image,
      ]),
    );
    update();
  }

  const KINDS = { plane, traversal, codes, noise, class: conditional };

  // say what went wrong, in the page and in the console; the page's static
  // figure stays the reader's picture
  function fail(root, error) {
    const message = String(error && error.message ? error.message : error);
    root.dataset.error = message;
    root.prepend(element("p", {
      class: "aecourse-explorer-note",
      text: `The explorer stopped (${message}); the figure after it shows ` +
        "the same as a static picture.",
    }));
    console.error(`aecourse explorer ${root.dataset.explorer}:`, error);
  }

  async function start(root) {
    const name = root.dataset.explorer;
    if (location.protocol === "file:") {
      // a browser fetches nothing from file:// pages: say how to serve them
      root.append(element("p", {
        class: "aecourse-explorer-note",
        text: "The explorer runs when the book is served over HTTP, e.g. " +
          "python -m http.server -d _build/html; the figure after it " +
          "shows the same as a static picture.",
      }));
      return;
    }
    root.dataset.loadStartMs = performance.now().toFixed(1);
    root.classList.add("aecourse-loading");
    try {
      const spec = await (await fetchOk(new URL(`${name}.json`, DATA_DIR))).json();
      const build = KINDS[spec.kind];
      if (!build) {
        throw new Error(`unknown kind of explorer ${spec.kind}`);
      }
      const [ort, model] = await Promise.all([
        loadRuntime(),
        fetchOk(new URL(spec.model, DATA_DIR)).then((r) => r.arrayBuffer()),
      ]);
      const session = await ort.InferenceSession.create(new Uint8Array(model), {
        executionProviders: ["wasm"],
      });
      build(root, spec, new Decoder(root, ort, session, spec, (error) => fail(root, error)));
    } catch (error) {
      fail(root, error);
    } finally {
      root.classList.remove("aecourse-loading");
    }
  }

  function init() {
    const roots = Array.from(document.querySelectorAll(".aecourse-explorer"));
    // start each explorer when it comes within a screen of the view
    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          start(entry.target);
        }
      }
    }, { rootMargin: "100% 0px" });
    roots.forEach((root) => observer.observe(root));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
