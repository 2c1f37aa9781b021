// The player page: a link signed for the user by the admin API, played
// through the proxy with hls.js. `window.tollgatePlayer` exposes what the
// page shows (for operators' scripts and the browser test).
"use strict";

const player = {
  state: "idle",
  url: null,
  currentTime: 0,
  decodedFrames: 0,
  errors: [],
  reason: null,
};
window.tollgatePlayer = player;

function status() {
  const p = document.getElementById("status");
  const lines = [
    "state: " + player.state + (player.reason ? " (" + player.reason + ")" : ""),
    "time: " + player.currentTime.toFixed(1) + " s, frames decoded: " + player.decodedFrames,
    "hls.js errors: " + player.errors.length,
  ];
  p.textContent = lines.join("\n");
}

// The tollgate error code of a refused request, if the answer carried one.
function refusal(data) {
  const d = data.networkDetails;
  const text = d && (typeof d.responseText === "string" ? d.responseText : null);
  if (!text) return null;
  try { return JSON.parse(text).error || null; } catch (e) { return null; }
}

let hls = null;

async function play(channel, user) {
  if (hls) { hls.destroy(); hls = null; }
  Object.assign(player, { state: "signing", url: null, currentTime: 0, decodedFrames: 0, errors: [], reason: null });
  status();
  const signed = await api("POST", "/api/v1/sign", { channel, user });
  player.url = signed.url;
  const video = document.getElementById("video");
  if (!window.Hls || !Hls.isSupported()) throw new Error("this browser has no Media Source Extensions");
  hls = new Hls({ enableWorker: true, lowLatencyMode: false });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    player.errors.push({ type: data.type, details: data.details, fatal: data.fatal, status: data.response && data.response.code });
    const code = refusal(data);
    if (code) player.reason = code;
    if (data.fatal || code) {
      // Stop loading but keep the picture: the reason shows over the last frame.
      player.state = "stopped";
      hls.stopLoad();
    }
    status();
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    player.state = "playing";
    video.play().catch(() => {});
    status();
  });
  hls.loadSource(signed.url);
  hls.attachMedia(video);
}

function startPlayer() {
  const params = new URLSearchParams(location.search);
  document.getElementById("channel").value = params.get("channel") || "";
  document.getElementById("user").value = params.get("user") || "";
  document.getElementById("play").onsubmit = (ev) => {
    ev.preventDefault();
    play(document.getElementById("channel").value.trim(), document.getElementById("user").value.trim())
      .catch((e) => { player.state = "stopped"; player.reason = String(e.message || e); status(); showError(e); });
  };
  health();
  const video = document.getElementById("video");
  setInterval(() => {
    player.currentTime = video.currentTime;
    const q = video.getVideoPlaybackQuality && video.getVideoPlaybackQuality();
    player.decodedFrames = q ? q.totalVideoFrames : (video.webkitDecodedFrameCount || 0);
    status();
  }, 250);
  // A link may prefill the form, never play by itself: signing plays as
  // the user (takes their session slot), so it takes the operator's click.
}

withToken(startPlayer);
