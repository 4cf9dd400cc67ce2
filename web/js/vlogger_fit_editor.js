// Fit editor on VLOGGER_FitReference: after a run, the node shows the photo with the fitted
// body's outline and landmarks; drag to move it, use the wheel or the corner handle to scale
// it, drag the round knob to turn it. Each edit is written into the node's override widgets
// (offset_x, offset_y, scale, rotation), so it is saved with the workflow, sent through the API
// and used by the next run. The outline previews the pending edit until then.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NODE = "VLOGGER_FitReference";
const HEIGHT = 340;
const WIDTH = 420;                 // the node grows to at least this when the editor appears
const PAD = [30, 10, 22];          // CSS px kept free above (handles), at the sides, below (hint)
const RANGES = { scale: [0.05, 20], offset_x: [-2, 2], offset_y: [-2, 2], rotation: [-180, 180] };
const DECIMALS = { scale: 3, offset_x: 4, offset_y: 4, rotation: 2 };

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

function setValue(node, name, v) {
  const w = widget(node, name);
  if (!w) return;
  const [lo, hi] = RANGES[name];
  const f = 10 ** DECIMALS[name];
  w.value = Math.round(Math.min(hi, Math.max(lo, v)) * f) / f;
  w.callback?.(w.value);
}

function values(node) {
  const v = {};
  for (const k of Object.keys(RANGES)) v[k] = Number(widget(node, k)?.value ?? (k === "scale" ? 1 : 0));
  return v;
}

class FitEditor {
  constructor(node) {
    this.node = node;
    this.el = document.createElement("div");
    this.el.className = "vlogger-fit-editor";
    this.el.style.cssText = `width:100%;height:${HEIGHT}px;position:relative;`;
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;height:100%;display:block;cursor:move;touch-action:none;";
    this.el.appendChild(this.canvas);
    this.img = new Image();
    this.img.onload = () => this.draw();
    this.data = null;
    this.drag = null;
    const stop = (e) => e.stopPropagation();
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    for (const t of ["mousedown", "mousemove", "mouseup", "click", "dblclick"]) this.canvas.addEventListener(t, stop);
    new ResizeObserver(() => this.draw()).observe(this.canvas);   // drawn once laid out
    this.widget = node.addDOMWidget("vlogger_fit_editor", "vlogger_fit_editor", this.el, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => HEIGHT,
      getMaxHeight: () => HEIGHT,
    });
    // options.serialize keeps it out of the prompt, .serialize out of the saved widgets_values
    this.widget.serialize = false;
    for (const k of Object.keys(RANGES)) {
      const w = widget(node, k);
      if (!w) continue;
      const cb = w.callback;
      w.callback = (...a) => { const r = cb?.apply(w, a); this.draw(); return r; };
    }
  }

  show(data, image) {
    this.data = data;
    if (image) {
      const q = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder ?? "",
                                      type: image.type ?? "temp", rand: String(Math.random()) });
      this.img.src = api.apiURL(`/view?${q}`);
    }
    this.draw();
  }

  // photo pixels <-> canvas pixels
  layout() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.round(r.width * dpr)), ch = Math.max(1, Math.round(r.height * dpr));
    if (this.canvas.width !== cw || this.canvas.height !== ch) { this.canvas.width = cw; this.canvas.height = ch; }
    const { width: W, height: H } = this.data;
    const [pt, px, pb] = PAD.map((v) => v * dpr);
    const s = Math.max(1e-3, Math.min((cw - 2 * px) / W, (ch - pt - pb) / H));
    const L = { s, ox: (cw - W * s) / 2, oy: pt + (ch - pt - pb - H * s) / 2, dpr, cssScale: s / dpr };
    this.el.dataset.cssScale = String(L.cssScale);     // CSS px per photo px (tests read it)
    return L;
  }

  // the pending edit (widget values vs. the values the shown fit was made with)
  pending() {
    const base = { scale: 1, offset_x: 0, offset_y: 0, rotation: 0, ...this.data.overrides };
    const v = values(this.node);
    return {
      dx: (v.offset_x - base.offset_x) * this.data.width,
      dy: (v.offset_y - base.offset_y) * this.data.height,
      k: v.scale / (base.scale || 1),
      turn: ((v.rotation - base.rotation) * Math.PI) / 180,
    };
  }

  transform(p, e) {
    const [cx, cy] = this.data.face_center;
    // scale about the face centre (what the scale override keeps fixed); a turn about the
    // vertical axis is previewed as a horizontal squash
    const x = cx + (p[0] - cx) * e.k * Math.cos(e.turn) + e.dx;
    const y = cy + (p[1] - cy) * e.k + e.dy;
    return [x, y];
  }

  handles(e, L) {
    const pts = this.data.outline.map((p) => this.transform(p, e));
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const c = (x, y) => [L.ox + x * L.s, L.oy + y * L.s];
    const top = c((box[0] + box[2]) / 2, box[1]);
    const h = { pts, scale: c(box[2], box[1]), turn: [top[0], Math.max(8 * L.dpr, top[1] - 18 * L.dpr)],
                center: c(...this.transform(this.data.face_center, e)) };
    // clamp the handles into the canvas so they stay grabbable when the body fills the photo
    for (const k of ["scale", "turn"]) {
      h[k] = [Math.min(this.canvas.width - 8 * L.dpr, Math.max(8 * L.dpr, h[k][0])),
              Math.min(this.canvas.height - 8 * L.dpr, Math.max(8 * L.dpr, h[k][1]))];
    }
    // handle positions in CSS px from the canvas' top-left (tests drag them)
    this.el.dataset.handles = JSON.stringify(Object.fromEntries(
      ["scale", "turn", "center"].map((k) => [k, h[k].map((v) => v / L.dpr)])));
    return h;
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    if (!this.data) return;
    const L = this.layout();
    ctx.fillStyle = "#202020";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const { width: W, height: H } = this.data;
    if (this.img.complete && this.img.naturalWidth) ctx.drawImage(this.img, L.ox, L.oy, W * L.s, H * L.s);
    const e = this.pending();
    const h = this.handles(e, L);
    const path = (pts) => {
      ctx.beginPath();
      pts.forEach(([x, y], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, L.ox + x * L.s, L.oy + y * L.s));
      ctx.closePath();
    };
    const moved = Math.abs(e.dx) + Math.abs(e.dy) > 0.5 || Math.abs(e.k - 1) > 1e-3 || Math.abs(e.turn) > 1e-3;
    if (moved) {            // the fit as it is, dashed, under the pending one
      ctx.setLineDash([4 * L.dpr, 4 * L.dpr]);
      ctx.strokeStyle = "#ffff00";
      ctx.lineWidth = 1 * L.dpr;
      path(this.data.outline);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = "#00e5ff";
    ctx.lineWidth = 2 * L.dpr;
    path(h.pts);
    ctx.stroke();
    ctx.fillStyle = "#40ff40";
    for (const p of this.data.landmarks) {
      const [x, y] = this.transform(p, e);
      ctx.fillRect(L.ox + x * L.s - L.dpr, L.oy + y * L.s - L.dpr, 2 * L.dpr, 2 * L.dpr);
    }
    const r = 6 * L.dpr;
    ctx.fillStyle = "#ff00ff";
    ctx.fillRect(h.scale[0] - r, h.scale[1] - r, 2 * r, 2 * r);
    ctx.beginPath();
    ctx.arc(h.turn[0], h.turn[1], r, 0, 2 * Math.PI);
    ctx.fill();
    ctx.strokeStyle = "#ffffff";
    ctx.beginPath();
    ctx.arc(h.center[0], h.center[1], r, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.fillStyle = "#ffffff";
    ctx.font = `${11 * L.dpr}px sans-serif`;
    const v = values(this.node);
    const now = `scale ${v.scale.toFixed(2)} · x ${v.offset_x.toFixed(3)} · y ${v.offset_y.toFixed(3)} · turn ${v.rotation.toFixed(1)}°`;
    ctx.fillText(moved ? `edited (${now}): Run to refit` : "drag: move · wheel / square: scale · knob: turn",
                 6 * L.dpr, this.canvas.height - 7 * L.dpr);
  }

  at(ev) {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    return [(ev.clientX - r.left) * dpr, (ev.clientY - r.top) * dpr];
  }

  down(ev) {
    if (!this.data) return;
    ev.stopPropagation();
    ev.preventDefault();
    this.canvas.setPointerCapture(ev.pointerId);
    const L = this.layout();
    const h = this.handles(this.pending(), L);
    const p = this.at(ev);
    const near = (q, d = 12 * L.dpr) => Math.hypot(p[0] - q[0], p[1] - q[1]) < d;
    const mode = near(h.turn) ? "turn" : near(h.scale) ? "scale" : "move";
    this.drag = { mode, p, L, start: values(this.node), center: h.center };
  }

  move(ev) {
    if (!this.drag) return;
    ev.stopPropagation();
    const { mode, p, L, start, center } = this.drag;
    const q = this.at(ev);
    if (mode === "move") {
      setValue(this.node, "offset_x", start.offset_x + (q[0] - p[0]) / L.s / this.data.width);
      setValue(this.node, "offset_y", start.offset_y + (q[1] - p[1]) / L.s / this.data.height);
    } else if (mode === "scale") {
      const d0 = Math.hypot(p[0] - center[0], p[1] - center[1]) || 1;
      const d1 = Math.hypot(q[0] - center[0], q[1] - center[1]);
      setValue(this.node, "scale", start.scale * (d1 / d0));
    } else {
      setValue(this.node, "rotation", start.rotation + (q[0] - p[0]) / L.dpr * 0.5);
    }
    this.draw();
    this.node.setDirtyCanvas?.(true, true);
  }

  up(ev) {
    if (!this.drag) return;
    ev.stopPropagation();
    this.canvas.releasePointerCapture?.(ev.pointerId);
    this.drag = null;
    this.draw();
  }

  wheel(ev) {
    if (!this.data) return;
    ev.preventDefault();
    ev.stopPropagation();
    setValue(this.node, "scale", values(this.node).scale * Math.exp(-ev.deltaY * 0.001));
    this.draw();
    this.node.setDirtyCanvas?.(true, true);
  }
}

app.registerExtension({
  name: "VLOGGER.FitEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const data = message?.vlogger_fit?.[0];
      if (!data) return;
      this.vloggerFitEditor ??= new FitEditor(this);
      this.vloggerFitEditor.show(data, message.images?.[0]);
      const need = this.computeSize();
      if (this.size[1] < need[1] || this.size[0] < WIDTH)
        this.setSize([Math.max(this.size[0], need[0], WIDTH), Math.max(this.size[1], need[1])]);
      this.setDirtyCanvas(true, true);
    };
  },
});
