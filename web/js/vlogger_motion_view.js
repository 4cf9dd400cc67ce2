// Motion view on VLOGGER_MotionSampler / VLOGGER_MotionPreview: after a run, the speech's
// waveform with the motion's tracks under it on one time axis (mouth opening, eye closure,
// head yaw / pitch / roll, gesture energy), a play button that plays the speech with a moving
// playhead, and click-to-seek, to judge lip sync before rendering any frame.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NODES = ["VLOGGER_MotionSampler", "VLOGGER_MotionPreview"];
const HEIGHT = 300;
const WIDTH = 440;                 // the node grows to at least this when the view appears
// explicit colours (the browser test counts their pixels)
export const COLORS = {
  background: "#101014", wave: "#9a9a9a", playhead: "#ffffff",
  mouth: "#ff3030", blink: "#b040ff", head_yaw: "#ffa000", head_pitch: "#2090ff",
  head_roll: "#30d050", gesture: "#e0d020",
};
const UNITS = { head_yaw: "deg", head_pitch: "deg", head_roll: "deg", gesture: "rad/s" };

// drawing helpers shared with the motion editor (vlogger_motion_editor.js)
// the y of value v in a lane [top, top + lh) whose range is lo..hi (3 px margins)
export const laneY = (v, top, lh, lo, hi, dpr) => top + lh - 3 * dpr - ((v - lo) / (hi - lo || 1)) * (lh - 6 * dpr);

// one curve sampled every `step` frames at `fps`, on a time axis of T seconds over W pixels
export function drawCurve(ctx, ys, { step, fps, T, W, yOf, color, width }) {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  ys.forEach((v, i) => {
    const x = ((i * step) / fps / T) * W;
    (i ? ctx.lineTo : ctx.moveTo).call(ctx, x, yOf(v));
  });
  ctx.stroke();
}

// names at the top left of a lane, each in its colour on a dark box
export function drawLabels(ctx, names, top, dpr, colorOf) {
  ctx.font = `${10 * dpr}px sans-serif`;
  let lx = 4 * dpr;
  for (const [k, name] of names) {
    ctx.fillStyle = "#000000b0";
    ctx.fillRect(lx - 2 * dpr, top + 2 * dpr, ctx.measureText(name).width + 4 * dpr, 12 * dpr);
    ctx.fillStyle = colorOf(k);
    ctx.fillText(name, lx, top + 11 * dpr);
    lx += ctx.measureText(name).width + 10 * dpr;
  }
}

// whole seconds as ticks rising from y, labelled
export function drawTimeTicks(ctx, T, W, y, dpr) {
  ctx.fillStyle = "#c8c8c8";
  ctx.font = `${9 * dpr}px sans-serif`;
  const every = T > 20 ? 5 : T > 8 ? 2 : 1;
  for (let t = every; t < T; t += every) {
    const tx = (t / T) * W;
    ctx.fillRect(tx, y - 4 * dpr, dpr, 4 * dpr);
    ctx.fillText(`${t}s`, tx + 2 * dpr, y - 2 * dpr);
  }
}
// [track, value range]; angles share one lane centred on 0
const LANES = [
  ["mouth", [0, 1]], ["blink", [0, 1]],
  [["head_yaw", "head_pitch", "head_roll"], null], ["gesture", null],
];

class MotionView {
  constructor(node) {
    this.node = node;
    this.el = document.createElement("div");
    this.el.className = "vlogger-motion-view";
    this.el.style.cssText = `width:100%;height:${HEIGHT}px;display:flex;flex-direction:column;`;
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;gap:6px;align-items:center;height:26px;flex:none;font:11px sans-serif;color:#ddd;";
    this.button = document.createElement("button");
    this.button.textContent = "▶ play";
    this.button.className = "vlogger-motion-play";
    this.label = document.createElement("span");
    bar.append(this.button, this.label);
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = `flex:none;width:100%;height:${HEIGHT - 30}px;display:block;cursor:pointer;`;
    this.audio = document.createElement("audio");
    this.audio.preload = "auto";
    this.el.append(bar, this.canvas, this.audio);
    this.button.addEventListener("click", (e) => { e.stopPropagation(); this.toggle(); });
    this.canvas.addEventListener("pointerdown", (e) => { e.stopPropagation(); this.seek(e); });
    this.audio.addEventListener("ended", () => this.stopped());
    this.audio.addEventListener("pause", () => this.stopped());
    new ResizeObserver(() => this.draw()).observe(this.canvas);   // drawn once laid out
    const w = node.addDOMWidget("vlogger_motion_view", "vlogger_motion_view", this.el, {
      serialize: false, hideOnZoom: false, getMinHeight: () => HEIGHT, getMaxHeight: () => HEIGHT,
    });
    // options.serialize keeps it out of the prompt, .serialize out of the saved widgets_values
    w.serialize = false;
  }

  show(data) {
    this.data = data;
    const a = data.audio;
    if (a) {
      const q = new URLSearchParams({ filename: a.filename, subfolder: a.subfolder ?? "", type: a.type ?? "temp" });
      this.audio.src = api.apiURL(`/view?${q}`);
    }
    this.button.disabled = !a;
    this.label.textContent = `${data.frames} frames @ ${data.fps} fps (${data.duration.toFixed(2)} s)`;
    this.draw();
  }

  get seconds() {
    return Math.max(this.data?.duration || 0, this.data?.waveform?.seconds || 0) || 1;
  }

  toggle() {
    if (!this.data?.audio) return;
    if (this.audio.paused) {
      this.audio.play().catch(() => {});
      this.button.textContent = "❚❚ pause";
      const tick = () => { this.draw(); if (!this.audio.paused) this.raf = requestAnimationFrame(tick); };
      this.raf = requestAnimationFrame(tick);
    } else {
      this.audio.pause();
    }
  }

  stopped() {
    this.button.textContent = "▶ play";
    cancelAnimationFrame(this.raf);
    this.draw();
  }

  seek(ev) {
    const r = this.canvas.getBoundingClientRect();
    const t = ((ev.clientX - r.left) / r.width) * this.seconds;
    if (this.data?.audio) this.audio.currentTime = Math.max(0, t);
    this.draw();
  }

  draw() {
    if (!this.data) return;
    const dpr = window.devicePixelRatio || 1;
    const r = this.canvas.getBoundingClientRect();
    const W = Math.max(1, Math.round(r.width * dpr)), H = Math.max(1, Math.round(r.height * dpr));
    if (this.canvas.width !== W || this.canvas.height !== H) { this.canvas.width = W; this.canvas.height = H; }
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = COLORS.background;
    ctx.fillRect(0, 0, W, H);
    const T = this.seconds;
    const lanes = 1 + LANES.length;
    const lh = H / lanes;
    const wave = this.data.waveform;
    if (wave) {                                     // lane 0: the speech
      ctx.fillStyle = COLORS.wave;
      const n = wave.min.length, span = wave.seconds / T;
      for (let i = 0; i < n; i++) {
        const x = (i / n) * span * W;
        const y0 = lh / 2 - wave.max[i] * (lh / 2) * 0.95, y1 = lh / 2 - wave.min[i] * (lh / 2) * 0.95;
        ctx.fillRect(x, y0, Math.max(1, (span * W) / n), Math.max(1, y1 - y0));
      }
    }
    const { curves, fps, step } = this.data;
    LANES.forEach(([keys, range], li) => {
      const top = (li + 1) * lh;
      keys = Array.isArray(keys) ? keys : [keys];
      let lo = range?.[0], hi = range?.[1];
      if (!range) {
        const all = keys.flatMap((k) => curves[k] || []);
        const m = Math.max(1e-3, ...all.map(Math.abs));
        [lo, hi] = keys.length > 1 ? [-m, m] : [0, m];
      }
      ctx.strokeStyle = "#303038";
      ctx.lineWidth = dpr;
      ctx.beginPath(); ctx.moveTo(0, top); ctx.lineTo(W, top); ctx.stroke();
      for (const k of keys) {
        drawCurve(ctx, curves[k] || [], { step, fps, T, W, color: COLORS[k], width: 2 * dpr,
                                          yOf: (v) => laneY(v, top, lh, lo, hi, dpr) });
      }
      // each track's name in its own colour
      drawLabels(ctx, keys.map((k) => [k, k + (UNITS[k] ? ` (${UNITS[k]})` : "")]), top, dpr, (k) => COLORS[k]);
    });
    drawTimeTicks(ctx, T, W, lh, dpr);               // seconds along the bottom of the waveform lane
    const x = (this.audio.currentTime / T) * W;     // playhead
    ctx.fillStyle = COLORS.playhead;
    ctx.fillRect(x - dpr, 0, 2 * dpr, H);
  }
}

app.registerExtension({
  name: "VLOGGER.MotionView",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.includes(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const data = message?.vlogger_motion?.[0];
      if (!data) return;
      this.vloggerMotionView ??= new MotionView(this);
      this.vloggerMotionView.show(data);
      const need = this.computeSize();
      if (this.size[1] < need[1] || this.size[0] < WIDTH)
        this.setSize([Math.max(this.size[0], need[0], WIDTH), Math.max(this.size[1], need[1])]);
      this.setDirtyCanvas(true, true);
    };
  },
});
