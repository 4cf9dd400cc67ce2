// VLOGGER_LoadSpeech uses ComfyUI's audio upload button. The frontend's upload widget expects
// the audio player widget ("audioUI") that it only adds to its own audio nodes, and expects it
// to exist before the button: add it to our node's spec, ahead of the button.
import { app } from "../../../scripts/app.js";

const NODES_WITH_AUDIO_UPLOAD = ["VLOGGER_LoadSpeech"];

app.registerExtension({
  name: "VLOGGER.AudioUpload",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES_WITH_AUDIO_UPLOAD.includes(nodeData.name)) return;
    const req = nodeData.input?.required;
    if (!req || req.audioUI) return;
    const rebuilt = {};
    for (const [key, spec] of Object.entries(req)) {
      if (key === "upload") rebuilt.audioUI = ["AUDIO_UI", {}];
      rebuilt[key] = spec;
    }
    if (!rebuilt.audioUI) rebuilt.audioUI = ["AUDIO_UI", {}];
    nodeData.input.required = rebuilt;
    const order = nodeData.input_order?.required;
    if (order && !order.includes("audioUI")) {
      const i = order.indexOf("upload");
      order.splice(i >= 0 ? i : order.length, 0, "audioUI");
    }
  },
});
