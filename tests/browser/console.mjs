// The console and the player page in a real Chromium (Debian's, driven by
// puppeteer-core). Run by tests/browser.rs:
//
//   node console.mjs <admin base URL> <admin token> <channel> <user> <screenshot dir>
//
// Plays the channel on the player page for at least 20 s of media time
// (currentTime advancing, frames decoded, zero hls.js errors), finds the
// session on the console, kicks it with the console's button, and waits for
// the player to report the reason. Prints one JSON line of what it saw;
// exits non-zero with the reason when a step fails.
import puppeteer from "puppeteer-core";

const [base, token, channel, user, shots] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const seen = {};

async function login(page) {
  await page.waitForSelector("#token", { visible: true });
  await page.type("#token", token);
  await page.click("#login button[type=submit]");
}

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
});
try {
  const player = await browser.newPage();
  await player.setViewport({ width: 1100, height: 800 });
  const logs = [];
  player.on("console", (m) => logs.push(m.text()));
  player.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  await player.goto(`${base}/console/player.html?channel=${channel}&user=${user}`);
  await login(player);
  await player.waitForSelector("#play button[type=submit]", { visible: true });
  await player.click("#play button[type=submit]");
  await player.waitForFunction(() => window.tollgatePlayer && window.tollgatePlayer.state === "playing", { timeout: 30000 });
  // A live stream starts at the live edge's media time: measure the advance.
  await player.waitForFunction(() => window.tollgatePlayer.currentTime > 0, { timeout: 30000, polling: 250 });
  const t0 = await player.evaluate(() => window.tollgatePlayer.currentTime);
  const start = Date.now();
  await player.waitForFunction((t0) => window.tollgatePlayer.currentTime >= t0 + 20 || window.tollgatePlayer.state === "stopped", { timeout: 90000, polling: 500 }, t0);
  const played = await player.evaluate(() => JSON.parse(JSON.stringify(window.tollgatePlayer)));
  seen.played = { startTime: t0, currentTime: played.currentTime, advanced: played.currentTime - t0, decodedFrames: played.decodedFrames, errors: played.errors, wallSeconds: (Date.now() - start) / 1000, state: played.state, url: played.url };
  await player.screenshot({ path: `${shots}/player.png` });
  if (played.state !== "playing" || played.errors.length !== 0 || played.decodedFrames === 0) {
    throw new Error("playback: " + JSON.stringify(seen.played) + " logs: " + logs.join(" | "));
  }

  const console_ = await browser.newPage();
  await console_.setViewport({ width: 1100, height: 900 });
  await console_.goto(`${base}/`);
  await login(console_);
  await console_.waitForSelector("button.kick", { timeout: 15000 });
  seen.listed = await console_.$$eval("#session-list table tr", (rows) => rows.map((r) => r.textContent));
  await console_.screenshot({ path: `${shots}/console.png`, fullPage: true });
  await console_.click("button.kick");
  await player.waitForFunction(() => window.tollgatePlayer.reason !== null, { timeout: 30000, polling: 250 });
  const after = await player.evaluate(() => JSON.parse(JSON.stringify(window.tollgatePlayer)));
  seen.kicked = { state: after.state, reason: after.reason };
  await player.screenshot({ path: `${shots}/player-kicked.png` });
  console.log(JSON.stringify(seen));
} catch (e) {
  console.log(JSON.stringify(seen));
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
