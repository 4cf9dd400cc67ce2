// Motion editor on VLOGGER_EditMotion: after a run, one lane per editable track (head yaw / pitch /
// roll in degrees, mouth_scale, smile, brows, eyes_open, gesture_amount, and any of the 52 ARKit
// expressions or gaze from the "+ lane" list) with the incoming motion's curve (grey), the edited
// one (the lane's colour) and the keys as dots; a blink strip and a time axis. Mouse:
//   lane: click adds a key at (time, value) (the first key of a track gets zero keys 0.5 s either
//         side, so it is a bump), drag a key moves it in time and value, double- or right-click
//         deletes it;
//   blink strip: click adds a blink, click on one of the motion's own blinks removes it, click
//         on a blink edit takes it back;
//   time axis: shift-drag marks a range muted back to the incoming motion; click one to unmute.
// Every change rewrites the node's `edits` widget as the JSON vlogger_core/motion/edits.py reads
// (saved in the workflow, sent through the API); the keys shown are read back from that widget.
// Additive tracks draw a key on the curve it makes (height = the incoming value + the key's
// value); mouth_scale and gesture_amount (scales) draw keys on their own axis, x0 .. x3.
import { app } from "../../../scripts/app.js";
import { COLORS, drawCurve, drawLabels, drawTimeTicks, laneY } from "./vlogger_motion_view.js";

const NODE = "VLOGGER_EditMotion";
const WIDTH = 520;
const BAR = 28, AXIS = 18, BLINK = 24, LANE = 40;   // CSS px
const PAD = 3;                                      // laneY's margin (CSS px)
const KEY_R = 4, HIT = 8;
const MODEL = "#808080";
const BASE = ["head_yaw", "head_pitch", "head_roll", "mouth_scale", "smile", "brows", "eyes_open", "gesture_amount"];
const SCALE_RANGE = [-1, 2];                          // a scale key: x (1 + value), 0 .. 3
const colorOf = (track) => ({
  head_yaw: COLORS.head_yaw, head_pitch: COLORS.head_pitch, head_roll: COLORS.head_roll,
  mouth_scale: COLORS.mouth, eyes_open: COLORS.blink, gesture_amount: COLORS.gesture,
  smile: "#ff70c0", brows: "#c08040", gaze_yaw: "#40e0e0", gaze_pitch: "#40a0a0",
}[track] ?? "#40d0a0");
const DEGREES = new Set(["head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch"]);
const SCALES = new Set(["mouth_scale", "gesture_amount"]);
const EMPTY = () => ({ version: 1, tracks: {}, blinks: [], mute: [] });
const round = (v, d = 3) => Math.round(v * 10 ** d) / 10 ** d;

// the curve a lane draws for `track` from a timeline's curves (plot.motion_timeline)
function trackCurve(track, c, groups) {
  if (!c) return [];
  const mean = (names) => (c[names[0]] || []).map((_, i) => names.reduce((s, n) => s + (c[n]?.[i] ?? 0), 0) / names.length);
  if (track === "mouth_scale") return c.mouth || [];
  if (track === "gesture_amount") return c.gesture || [];
  if (track === "eyes_open") return (c.blink || []).map((v) => 1 - v);
  if (groups?.[track]) return mean(groups[track]);
  return c[track] || [];
}

// linear in time between samples taken every step/fps seconds
function sampleAt(ys, t, step, fps) {
  if (!ys?.length) return 0;
  const x = (t * fps) / step, i = Math.floor(x);
  if (i < 0) return ys[0];
  if (i >= ys.length - 1) return ys[ys.length - 1];
  return ys[i] + (ys[i + 1] - ys[i]) * (x - i);
}

function widget(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

class MotionEditor {
  constructor(node) {
    this.node = node;
    this.data = null;
    this.extra = [];           // lanes added from the list
    this.drag = null;
    this.el = document.createElement("div");
    this.el.className = "vlogger-motion-editor";
    const bar = document.createElement("div");
    bar.style.cssText = `display:flex;gap:6px;align-items:center;height:${BAR - 2}px;flex:none;font:11px sans-serif;color:#ddd;`;
    this.select = document.createElement("select");
    this.select.className = "vlogger-motion-editor-add";
    this.select.style.cssText = "font:11px sans-serif;max-width:150px;";
    this.label = document.createElement("span");
    this.label.style.cssText = "overflow:hidden;white-space:nowrap;text-overflow:ellipsis;";
    bar.append(this.select, this.label);
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "flex:none;width:100%;display:block;cursor:crosshair;touch-action:none;";
    this.el.append(bar, this.canvas);
    this.select.addEventListener("change", () => this.addLane(this.select.value));
    for (const t of ["pointerdown", "mousedown", "mouseup", "click", "wheel"]) this.select.addEventListener(t, (e) => e.stopPropagation());
    const stop = (e) => e.stopPropagation();
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerup", (e) => this.up(e));
    this.canvas.addEventListener("dblclick", (e) => { stop(e); this.remove(e); });
    this.canvas.addEventListener("contextmenu", (e) => { e.preventDefault(); stop(e); this.remove(e); });
    for (const t of ["mousedown", "mousemove", "mouseup", "click"]) this.canvas.addEventListener(t, stop);
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    this.layoutSize();
    this.widget = node.addDOMWidget("vlogger_motion_editor", "vlogger_motion_editor", this.el, {
      serialize: false, hideOnZoom: false, getMinHeight: () => this.height, getMaxHeight: () => this.height,
    });
    // options.serialize keeps it out of the prompt, .serialize out of the saved widgets_values
    this.widget.serialize = false;
    const w = widget(node, "edits");
    const cb = w?.callback;
    if (w) w.callback = (...a) => { const r = cb?.apply(w, a); this.draw(); return r; };
    w?.element?.addEventListener?.("input", () => this.draw());   // typed into the text
  }

  // ---------------------------------------------------------------- the edits (the widget's JSON)
  read() {
    const text = String(widget(this.node, "edits")?.value ?? "");
    if (text === this.text) return this.edits;
    this.text = text;
    this.bad = null;
    try {
      const e = text.trim() ? JSON.parse(text) : EMPTY();
      if (!e || typeof e !== "object" || Array.isArray(e)) throw new Error("not a JSON object");
      this.edits = { ...EMPTY(), ...e, tracks: { ...(e.tracks || {}) }, blinks: [...(e.blinks || [])], mute: [...(e.mute || [])] };
    } catch (err) {
      this.bad = `edits not readable (${err.message}): fix the text to edit here`;
      this.edits = null;
    }
    return this.edits;
  }

  write() {
    const e = this.edits;
    const tracks = {};
    for (const [k, keys] of Object.entries(e.tracks))
      if (keys.length) tracks[k] = [...keys].sort((a, b) => a[0] - b[0]).map(([t, v]) => [round(t), round(v)]);
    const blinks = [...e.blinks].sort((a, b) => a.t - b.t).map((b) => ({ t: round(b.t), action: b.action }));
    const mute = [...e.mute].sort((a, b) => a[0] - b[0]).map(([a, b]) => [round(a), round(b)]);
    const text = JSON.stringify({ ...e, version: 1, tracks, blinks, mute });
    const w = widget(this.node, "edits");
    if (!w) return;
    w.value = text;
    w.callback?.(text);
    this.text = text;
    this.edits = JSON.parse(text);
    this.node.setDirtyCanvas?.(true, true);
  }

  // ---------------------------------------------------------------- layout
  lanes() {
    const e = this.edits || EMPTY();
    const names = [...BASE, ...this.extra];
    for (const k of Object.keys(e.tracks || {})) if (!names.includes(k)) names.push(k);
    return names;
  }

  layoutSize() {
    const n = this.lanes().length;
    this.canvasHeight = AXIS + BLINK + n * LANE;
    this.height = BAR + this.canvasHeight + 4;
    this.el.style.cssText = `width:100%;height:${this.height}px;display:flex;flex-direction:column;`;
    this.canvas.style.height = `${this.canvasHeight}px`;
  }

  fit() {
    const need = this.node.computeSize();
    if (this.node.size[1] < need[1] || this.node.size[0] < WIDTH)
      this.node.setSize([Math.max(this.node.size[0], need[0], WIDTH), Math.max(this.node.size[1], need[1])]);
    this.node.setDirtyCanvas?.(true, true);
  }

  addLane(track) {
    this.select.value = "";
    if (!track || this.lanes().includes(track)) return;
    this.extra.push(track);
    this.relayout();
  }

  relayout() {
    const h = this.height;
    this.layoutSize();
    if (this.height !== h) this.fit();
    this.draw();
  }

  get seconds() {                                     // the time axis (held still during a drag)
    if (this.drag?.T) return this.drag.T;
    const e = this.edits || EMPTY();
    const times = [...Object.values(e.tracks || {}).flat().map((k) => k[0]), ...(e.blinks || []).map((b) => b.t),
                   ...(e.mute || []).flat()];
    return Math.max(this.data?.model?.duration || 0, ...times.map((t) => t + 0.5), 1);
  }

  model(track) {
    const d = this.data;
    return d ? trackCurve(track, d.model.curves, d.groups) : [];
  }

  // the value a key's dot is drawn at (additive tracks: on the curve it makes)
  dotValue(track, t, v) {
    if (SCALES.has(track)) return v;
    const d = this.data;
    return (d ? sampleAt(this.model(track), t, d.model.step, d.model.fps) : 0) + v;
  }

  keyValue(track, t, shown) {
    return SCALES.has(track) ? shown : shown - this.dotValue(track, t, 0);
  }

  ranges() {
    if (this.drag?.ranges) return this.drag.ranges;
    const e = this.edits || EMPTY();
    const out = {};
    this.lanes().forEach((track, i) => {
      const d = this.data;
      const curves = d ? [this.model(track), trackCurve(track, d.edited.curves, d.groups)] : [];
      const dots = (e.tracks[track] || []).map(([t, v]) => this.dotValue(track, t, v));
      const all = [...curves.flat(), ...(SCALES.has(track) ? [] : dots)];
      let lo, hi;
      if (DEGREES.has(track)) {
        const m = Math.max(5, ...all.map(Math.abs)) * 1.15;
        [lo, hi] = [-m, m];
      } else if (SCALES.has(track)) {
        [lo, hi] = [0, Math.max(1e-3, ...all) * 1.1];                 // the curves; keys on SCALE_RANGE
      } else {
        [lo, hi] = [Math.min(0, ...all) - 0.05, Math.max(1, ...all) + 0.05];
      }
      const top = AXIS + BLINK + i * LANE;
      const [klo, khi] = SCALES.has(track) ? SCALE_RANGE : [lo, hi];
      out[track] = { top, height: LANE, lo, hi, keyLo: klo, keyHi: khi, kind: SCALES.has(track) ? "scale" : "add" };
    });
    return out;
  }

  // ---------------------------------------------------------------- drawing
  draw() {
    this.read();
    if (this.lanes().length * LANE + AXIS + BLINK !== this.canvasHeight) { this.relayout(); return; }
    const dpr = window.devicePixelRatio || 1;
    const cw = this.canvas.clientWidth || 1;          // layout px (the canvas may be zoomed)
    const W = Math.max(1, Math.round(cw * dpr)), H = Math.max(1, Math.round(this.canvasHeight * dpr));
    if (this.canvas.width !== W || this.canvas.height !== H) { this.canvas.width = W; this.canvas.height = H; }
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = COLORS.background;
    ctx.fillRect(0, 0, W, H);
    const T = this.seconds, e = this.edits || EMPTY(), d = this.data;
    const X = (t) => (t / T) * W;
    const pending = d && this.text !== undefined && !sameEdits(this.text, d.edits);
    this.label.textContent = this.bad || (!d ? "run the graph to see the motion; keys from the edits widget"
      : `${d.model.frames} frames @ ${d.model.fps} fps` + (pending ? " · edited: run to apply" : "")
        + " · click: key · drag · dbl/right-click: delete · shift-drag axis: mute");
    // mute ranges, across everything
    for (const [a, b] of e.mute || []) {
      ctx.fillStyle = "#50505a";
      ctx.fillRect(X(a), 0, X(b) - X(a), AXIS * dpr);
      ctx.fillStyle = "#ffffff14";
      ctx.fillRect(X(a), AXIS * dpr, X(b) - X(a), H);
    }
    if (this.drag?.mode === "mute") {
      const [a, b] = [Math.min(this.drag.t0, this.drag.t1), Math.max(this.drag.t0, this.drag.t1)];
      ctx.fillStyle = "#8080a0";
      ctx.fillRect(X(a), 0, X(b) - X(a), AXIS * dpr);
    }
    drawTimeTicks(ctx, T, W, AXIS * dpr, dpr);
    const line = (y) => { ctx.strokeStyle = "#303038"; ctx.lineWidth = dpr; ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(W, y); ctx.stroke(); };
    // the blink strip: eye closure in and out, blink edits as marks
    line(AXIS * dpr);
    const bt = AXIS * dpr, bh = BLINK * dpr;
    if (d) {
      const yOf = (v) => laneY(v, bt, bh, 0, 1, dpr);
      drawCurve(ctx, d.model.curves.blink || [], { step: d.model.step, fps: d.model.fps, T, W, yOf, color: MODEL, width: dpr });
      drawCurve(ctx, d.edited.curves.blink || [], { step: d.edited.step, fps: d.edited.fps, T, W, yOf, color: COLORS.blink, width: 2 * dpr });
    }
    for (const b of e.blinks || []) {
      const x = X(b.t), y = bt + bh / 2;
      ctx.fillStyle = b.action === "add" ? COLORS.blink : "#ff4040";
      ctx.beginPath();
      if (b.action === "add") { ctx.moveTo(x - 5 * dpr, y - 5 * dpr); ctx.lineTo(x + 5 * dpr, y - 5 * dpr); ctx.lineTo(x, y + 5 * dpr); ctx.fill(); }
      else { ctx.strokeStyle = "#ff4040"; ctx.lineWidth = 2 * dpr; ctx.moveTo(x - 4 * dpr, y - 4 * dpr); ctx.lineTo(x + 4 * dpr, y + 4 * dpr);
             ctx.moveTo(x + 4 * dpr, y - 4 * dpr); ctx.lineTo(x - 4 * dpr, y + 4 * dpr); ctx.stroke(); }
    }
    drawLabels(ctx, [["blink", "blinks: click"]], bt, dpr, () => COLORS.blink);
    // the lanes
    const R = this.ranges();
    for (const track of this.lanes()) {
      const g = R[track], top = g.top * dpr, lh = g.height * dpr;
      line(top);
      const yOf = (v) => laneY(v, top, lh, g.lo, g.hi, dpr);
      const kOf = (v) => laneY(Math.min(g.keyHi, Math.max(g.keyLo, v)), top, lh, g.keyLo, g.keyHi, dpr);
      if (g.kind === "scale") {                       // x1 (no change) on the keys' axis
        ctx.setLineDash([3 * dpr, 3 * dpr]); ctx.strokeStyle = "#505060"; ctx.beginPath();
        ctx.moveTo(0, kOf(0)); ctx.lineTo(W, kOf(0)); ctx.stroke(); ctx.setLineDash([]);
      } else if (g.lo < 0 && g.hi > 0) {
        ctx.strokeStyle = "#26262c"; ctx.beginPath(); ctx.moveTo(0, yOf(0)); ctx.lineTo(W, yOf(0)); ctx.stroke();
      }
      if (d) {
        const m = d.model, ed = d.edited;
        drawCurve(ctx, this.model(track), { step: m.step, fps: m.fps, T, W, yOf, color: MODEL, width: 1.5 * dpr });
        drawCurve(ctx, trackCurve(track, ed.curves, d.groups), { step: ed.step, fps: ed.fps, T, W, yOf, color: colorOf(track), width: 2 * dpr });
      }
      const keys = e.tracks?.[track] || [];
      if (keys.length > 1) {                           // the keys' polyline (what the edit adds / scales)
        ctx.strokeStyle = colorOf(track) + "90"; ctx.lineWidth = dpr; ctx.beginPath();
        keys.forEach(([t, v], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(t), kOf(this.dotValue(track, t, v))));
        ctx.stroke();
      }
      for (const [t, v] of keys) {
        ctx.fillStyle = colorOf(track); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = dpr;
        ctx.beginPath(); ctx.arc(X(t), kOf(this.dotValue(track, t, v)), KEY_R * dpr, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      }
      const unit = DEGREES.has(track) ? " (deg)" : g.kind === "scale" ? " (x 1+key)" : "";
      drawLabels(ctx, [[track, track + unit]], top, dpr, colorOf);
    }
    // for tests and tools: where things are, in CSS px of the canvas
    this.el.dataset.geometry = JSON.stringify({ seconds: T, width: cw, axis: [0, AXIS], blink: [AXIS, AXIS + BLINK], lanes: R, pad: PAD });
  }

  // ---------------------------------------------------------------- mouse
  at(ev) {
    const r = this.canvas.getBoundingClientRect();
    const sx = r.width / (this.canvas.clientWidth || r.width), sy = r.height / (this.canvas.clientHeight || r.height);
    const x = (ev.clientX - r.left) / sx, y = (ev.clientY - r.top) / sy;   // CSS px of the canvas (any zoom)
    return { x, y, t: Math.max(0, (x / (this.canvas.clientWidth || r.width)) * this.seconds) };
  }

  // CSS px of a value in a lane, and back
  yOf(g, v, keys) {
    const [lo, hi] = keys ? [g.keyLo, g.keyHi] : [g.lo, g.hi];
    return g.top + g.height - PAD - ((v - lo) / (hi - lo || 1)) * (g.height - 2 * PAD);
  }

  valueAt(g, y) {
    const yy = Math.min(g.top + g.height - PAD, Math.max(g.top + PAD, y));
    return g.keyLo + ((g.top + g.height - PAD - yy) / (g.height - 2 * PAD)) * (g.keyHi - g.keyLo);
  }

  // CSS px (of the canvas) of key i of a track: where a test's mouse finds it
  keyPoint(track, i) {
    this.read();
    const [t, v] = this.edits.tracks[track][i];
    const g = this.ranges()[track];
    return { x: (t / this.seconds) * this.canvas.clientWidth, y: this.yOf(g, this.dotValue(track, t, v), true) };
  }

  hitKey(p) {
    const R = this.ranges(), T = this.seconds, w = this.canvas.clientWidth;
    for (const [track, g] of Object.entries(R)) {
      if (p.y < g.top || p.y >= g.top + g.height) continue;
      const keys = this.edits.tracks[track] || [];
      let best = -1, bd = HIT;
      keys.forEach(([t, v], i) => {
        const dd = Math.hypot((t / T) * w - p.x, this.yOf(g, this.dotValue(track, t, v), true) - p.y);
        if (dd <= bd) { best = i; bd = dd; }
      });
      return { track, g, index: best };
    }
    return null;
  }

  down(ev) {
    ev.stopPropagation();
    if (ev.button !== 0 || !this.read()) return;
    ev.preventDefault();
    const p = this.at(ev), e = this.edits, T = this.seconds, w = this.canvas.clientWidth;
    if (p.y < AXIS) {                                   // the time axis
      const hit = e.mute.findIndex(([a, b]) => p.t >= a && p.t <= b);
      if (ev.shiftKey) {
        this.canvas.setPointerCapture?.(ev.pointerId);
        this.drag = { mode: "mute", t0: p.t, t1: p.t, ranges: this.ranges(), T };
      } else if (hit >= 0) {
        e.mute.splice(hit, 1);
        this.write();
      }
      this.draw();
      return;
    }
    if (p.y < AXIS + BLINK) {                           // the blink strip
      const near = e.blinks.findIndex((b) => Math.abs((b.t / T) * w - p.x) <= HIT);
      if (near >= 0) e.blinks.splice(near, 1);
      else e.blinks.push({ t: this.ownBlink(p.t) ?? p.t, action: this.ownBlink(p.t) === null ? "add" : "remove" });
      this.write();
      this.draw();
      return;
    }
    const h = this.hitKey(p);
    if (!h) return;
    const keys = (e.tracks[h.track] ??= []);
    let index = h.index;
    if (index < 0) {                                    // a new key at (time, value)
      const v = round(this.keyValue(h.track, p.t, this.valueAt(h.g, p.y)));
      if (keys.some(([t]) => Math.abs(t - p.t) < 0.01)) return;
      if (!keys.length) {                             // a bump: zero keys 0.5 s either side
        const a = Math.max(0, p.t - 0.5);
        if (p.t - a >= 0.01) keys.push([a, 0]);
        keys.push([p.t + 0.5, 0]);
      }
      keys.push([p.t, v]);
      keys.sort((a, b) => a[0] - b[0]);
      index = keys.findIndex(([t]) => t === p.t);
      this.write();
    }
    this.canvas.setPointerCapture?.(ev.pointerId);
    this.drag = { mode: "key", track: h.track, index, g: h.g, ranges: this.ranges(), T };
    this.draw();
  }

  move(ev) {
    if (!this.drag) return;
    ev.stopPropagation();
    const p = this.at(ev);
    if (this.drag.mode === "mute") {
      this.drag.t1 = Math.min(p.t, this.seconds);
    } else {
      const { track, index, g } = this.drag;
      const keys = this.edits.tracks[track];
      const lo = index > 0 ? keys[index - 1][0] + 0.01 : 0;
      const hi = index < keys.length - 1 ? keys[index + 1][0] - 0.01 : Infinity;
      const t = round(Math.min(hi, Math.max(lo, p.t)));
      keys[index] = [t, round(this.keyValue(track, t, this.valueAt(g, p.y)))];
      this.write();
    }
    this.draw();
  }

  up(ev) {
    if (!this.drag) return;
    ev.stopPropagation();
    this.canvas.releasePointerCapture?.(ev.pointerId);
    const d = this.drag;
    this.drag = null;
    if (d.mode === "mute" && Math.abs(d.t1 - d.t0) > 0.02) {
      this.edits.mute.push([Math.min(d.t0, d.t1), Math.max(d.t0, d.t1)]);
      this.write();
    }
    this.draw();
  }

  remove(ev) {                                          // double- or right-click on a key
    if (!this.read()) return;
    const h = this.hitKey(this.at(ev));
    if (!h || h.index < 0) return;
    const keys = this.edits.tracks[h.track];
    keys.splice(h.index, 1);
    if (keys.every(([, v]) => v === 0)) delete this.edits.tracks[h.track];   // only zeros left: no edit
    this.drag = null;
    this.write();
    this.draw();
  }

  // the time of the incoming motion's own blink near t (eye closure over 0.5 within 0.15 s), or null
  ownBlink(t) {
    const d = this.data;
    if (!d) return null;
    const { step, fps, curves } = d.model;
    let best = null, bv = 0.5;
    (curves.blink || []).forEach((v, i) => {
      const ti = (i * step) / fps;
      if (Math.abs(ti - t) <= 0.15 && v > bv) { best = ti; bv = v; }
    });
    return best === null ? null : round(best);
  }

  show(data) {
    this.data = data;
    const names = [...(data.tracks || [])].filter((k) => !BASE.includes(k));
    this.select.replaceChildren(new Option("+ lane…", ""), ...names.map((k) => new Option(k, k)));
    this.relayout();
  }
}

// two edits texts that mean the same (the run's and the widget's)
function sameEdits(a, b) {
  try { return JSON.stringify(JSON.parse(a || "{}")) === JSON.stringify(JSON.parse(b || "{}")); } catch { return a === b; }
}

app.registerExtension({
  name: "VLOGGER.MotionEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const data = message?.vlogger_motion_edit?.[0];
      if (!data) return;
      this.vloggerMotionEditor ??= new MotionEditor(this);
      this.vloggerMotionEditor.show(data);
      this.vloggerMotionEditor.fit();
    };
  },
});
