// The live page (web/live/index.html) from ComfyUI's menu: VLOGGER > Live avatar (a new tab).
// The page talks to the pack's WebSocket /vlogger/live (nodes/live_routes.py, docs/live.md).
import { app } from "../../../scripts/app.js";

// /extensions/<pack folder>/js/vlogger_live.js -> /extensions/<pack folder>/live/index.html
const LIVE_PAGE = new URL("../live/index.html", import.meta.url).pathname;

app.registerExtension({
  name: "VLOGGER.Live",
  commands: [
    {
      id: "VLOGGER.OpenLive",
      label: "VLOGGER: Live avatar (talks as you speak)",
      icon: "pi pi-video",
      function: () => window.open(LIVE_PAGE, "_blank"),
    },
  ],
  menuCommands: [{ path: ["VLOGGER"], commands: ["VLOGGER.OpenLive"] }],
});

export { LIVE_PAGE };
