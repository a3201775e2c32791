// grapepose web page: send a photo or webcam frames to POST /v1/poses and draw the skeletons it returns.
// No framework, no build step: plain browser APIs only.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
let skeleton = [];
let webcamOn = false;
let last = null; // the last answer and the picture it was drawn on, redrawn when the joint slider moves

// The same colours as grapepose.visualize.person_color: golden-ratio hue steps.
function personColor(i) {
  const h = (0.11 + 0.618033988749895 * i) % 1;
  const s = 0.85, v = 1;
  const k = (n) => (n + h * 6) % 6;
  const f = (n) => v - v * s * Math.max(0, Math.min(k(n), 4 - k(n), 1));
  return `rgb(${Math.round(f(5) * 255)},${Math.round(f(3) * 255)},${Math.round(f(1) * 255)})`;
}

function query() {
  return `flip=${$("flip").checked ? 1 : 0}&score_thr=${$("thr").value}`;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model");
    const m = await r.json();
    skeleton = m.keypoints.skeleton;
    $("flip").checked = m.defaults.flip;
    $("thr").value = m.defaults.score_thr;
    $("thr-value").textContent = Number(m.defaults.score_thr).toFixed(2);
    if (m.defaults.min_joint_score !== undefined) {
      $("joint-thr").value = m.defaults.min_joint_score;
      $("joint-thr-value").textContent = Number(m.defaults.min_joint_score).toFixed(2);
    }
    $("model").textContent = `${m.weights || "model"} · ${m.keypoints.names.length} keypoints · ${m.device} · v${m.version}`;
  } catch (e) {
    $("model").textContent = "model info unavailable";
  }
}

// Joints whose per-joint confidence (keypoint_scores) is below the slider are left out, with their limbs.
function shownJoints(person) {
  const thr = Number($("joint-thr").value);
  const conf = person.keypoint_scores || [];
  return person.keypoints.map((k, j) => k[0] !== null && !(conf[j] === null || conf[j] < thr));
}

function drawPeople(result) {
  const lw = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 180));
  result.people.forEach((person, p) => {
    const kp = person.keypoints;
    const shown = shownJoints(person);
    const color = personColor(p);
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = lw;
    for (const [a, b] of result.skeleton || skeleton) {
      const ka = kp[a], kb = kp[b];
      if (!ka || !kb || !shown[a] || !shown[b]) continue;
      ctx.globalAlpha = 0.2 + 0.8 * Math.max(0, Math.min(1, Math.min(ka[2], kb[2])));
      ctx.beginPath();
      ctx.moveTo(ka[0], ka[1]);
      ctx.lineTo(kb[0], kb[1]);
      ctx.stroke();
    }
    for (const [j, k] of kp.entries()) {
      if (!shown[j]) continue;
      ctx.globalAlpha = 0.2 + 0.8 * Math.max(0, Math.min(1, k[2]));
      ctx.beginPath();
      ctx.arc(k[0], k[1], lw + 1, 0, 2 * Math.PI);
      ctx.fill();
    }
  });
  ctx.globalAlpha = 1;
}

// Send one image (a File or Blob) and draw `source` (an ImageBitmap or the video) with its people.
async function detect(blob, source) {
  const t0 = performance.now();
  const r = await fetch(`/v1/poses?${query()}`, {
    method: "POST",
    headers: { "Content-Type": blob.type || "application/octet-stream" },
    body: blob,
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  const ms = performance.now() - t0;
  canvas.width = body.width;
  canvas.height = body.height;
  ctx.drawImage(source, 0, 0, body.width, body.height);
  drawPeople(body);
  last = { body, source };
  $("count").textContent = String(body.num_people);
  $("latency").textContent = `${ms.toFixed(0)} ms (server ${body.latency_ms.toFixed(0)} ms)`;
  $("status").textContent = "";
  canvas.dataset.people = String(body.num_people);
  canvas.dataset.state = "drawn";
  return body;
}

async function onFile(file) {
  if (!file) return;
  stopWebcam();
  $("status").textContent = "detecting…";
  canvas.dataset.state = "busy";
  try {
    // EXIF orientation is applied both here and by the server, so the points land on the photo.
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    await detect(file, bitmap);
  } catch (e) {
    canvas.dataset.state = "error";
    $("status").textContent = String(e.message || e);
  }
}

async function startWebcam() {
  const video = $("video");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    $("status").textContent = `webcam unavailable: ${e.message || e}`;
    return;
  }
  await video.play();
  webcamOn = true;
  $("webcam").textContent = "Stop webcam";
  const frame = document.createElement("canvas");
  // Frame by frame: the next frame is sent when the previous answer has been drawn.
  while (webcamOn) {
    frame.width = video.videoWidth;
    frame.height = video.videoHeight;
    if (!frame.width) { await new Promise((r) => setTimeout(r, 50)); continue; }
    frame.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((r) => frame.toBlob(r, "image/jpeg", 0.85));
    try {
      await detect(blob, frame);
    } catch (e) {
      $("status").textContent = String(e.message || e);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function stopWebcam() {
  webcamOn = false;
  const video = $("video");
  if (video.srcObject) {
    video.srcObject.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  }
  $("webcam").textContent = "Start webcam";
}

$("file").addEventListener("change", (e) => onFile(e.target.files[0]));
$("thr").addEventListener("input", () => { $("thr-value").textContent = Number($("thr").value).toFixed(2); });
$("joint-thr").addEventListener("input", () => {
  $("joint-thr-value").textContent = Number($("joint-thr").value).toFixed(2);
  if (last && !webcamOn) { // a photo: redraw it at once (webcam frames pick the value up as they come)
    ctx.drawImage(last.source, 0, 0, last.body.width, last.body.height);
    drawPeople(last.body);
  }
});
$("webcam").addEventListener("click", () => (webcamOn ? stopWebcam() : startWebcam()));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  onFile(e.dataTransfer.files[0]);
});
loadModel();
