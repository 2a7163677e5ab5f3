// addressclip web page: pick or drop a photo -> POST /v1/predict -> top-5 list + SVG street map.
// Plain JavaScript, no dependencies: the map is drawn from GET /v1/network (GeoJSON, lon/lat),
// projected locally (equirectangular around the map's centre latitude, fine at city scale).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const TOP_K = 5;
const UNITS_PER_DEGREE = 111320; // ~metres per degree of latitude: map units are ~metres
const state = { projection: null, prediction: null, selected: null, markerRadius: 6 };

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

// ------------------------------------------------------------------------------ projection
function eachPosition(geometry, visit) {
  if (!geometry) return;
  const lines = geometry.type === "LineString" ? [geometry.coordinates]
    : geometry.type === "MultiLineString" ? geometry.coordinates : [];
  lines.forEach((line) => line.forEach((position) => visit(position)));
}

function makeProjection(features) {
  let minLon = Infinity, minLat = Infinity, maxLon = -Infinity, maxLat = -Infinity;
  features.forEach((feature) => eachPosition(feature.geometry, ([lon, lat]) => {
    minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
    minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
  }));
  if (!Number.isFinite(minLon)) return null;
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180) * UNITS_PER_DEGREE;
  const ky = UNITS_PER_DEGREE;
  const width = Math.max((maxLon - minLon) * kx, 1);
  const height = Math.max((maxLat - minLat) * ky, 1);
  const pad = 0.04 * Math.max(width, height);
  return {
    project: ([lon, lat]) => [(lon - minLon) * kx + pad, (maxLat - lat) * ky + pad],
    viewBox: `0 0 ${(width + 2 * pad).toFixed(1)} ${(height + 2 * pad).toFixed(1)}`,
    size: Math.max(width, height) + 2 * pad,
  };
}

function pathData(geometry) {
  const lines = geometry.type === "LineString" ? [geometry.coordinates]
    : geometry.type === "MultiLineString" ? geometry.coordinates : [];
  return lines.map((line) => line.map((position, i) => {
    const [x, y] = state.projection.project(position);
    return `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
  }).join("")).join("");
}

function svgPath(geometry, className, addressId, title) {
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", pathData(geometry));
  if (className) path.setAttribute("class", className);
  path.dataset.addressId = addressId;
  const tip = document.createElementNS(SVG_NS, "title");
  tip.textContent = title;
  path.appendChild(tip);
  return path;
}

// ------------------------------------------------------------------------------------- map
async function loadNetwork() {
  const map = $("map");
  try {
    const response = await fetch("/v1/network");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const network = await response.json();
    state.projection = makeProjection(network.features);
    if (!state.projection) {
      $("map-info").textContent = "No street geometry in this model's AddressBook.";
      return;
    }
    map.setAttribute("viewBox", state.projection.viewBox);
    state.markerRadius = state.projection.size * 0.009;
    $("marker-dot").setAttribute("r", state.markerRadius.toFixed(1));
    $("marker-halo").setAttribute("r", (state.markerRadius * 2.6).toFixed(1));
    const streets = $("streets");
    network.features.forEach((feature) => {
      const className = feature.properties.in_gallery ? "in-gallery" : "";
      streets.appendChild(svgPath(feature.geometry, className, feature.id, feature.properties.address));
    });
    $("map-info").textContent = `${network.features.length} sub-streets. Click an address to show it.`;
    map.dataset.ready = "1";
  } catch (error) {
    $("map-info").textContent = `Could not load the street network (${error.message}).`;
  }
}

function drawHighlights(prediction) {
  const layer = $("highlights");
  layer.replaceChildren();
  if (!state.projection) return;
  // Paint the lower ranks first so the best match is drawn on top.
  [...prediction.matches].reverse().forEach((match) => {
    if (!match.geometry) return;
    const rankClass = match.rank === 1 ? "rank-1" : "rank-other";
    const path = svgPath(match.geometry, `predicted ${rankClass}`, match.address_id, `${match.rank}. ${match.address}`);
    path.addEventListener("click", () => select(match.address_id));
    layer.appendChild(path);
  });
}

function placeMarker(match) {
  const marker = $("marker");
  if (!state.projection || match.lat === null || match.lon === null) {
    marker.setAttribute("hidden", "");
    return;
  }
  const [x, y] = state.projection.project([match.lon, match.lat]);
  marker.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)})`);
  marker.dataset.addressId = match.address_id;
  marker.removeAttribute("hidden");
}

function select(addressId) {
  if (!state.prediction) return;
  const match = state.prediction.matches.find((m) => m.address_id === addressId);
  if (!match) return;
  state.selected = addressId;
  document.querySelectorAll("#results .result").forEach((item) => {
    const chosen = item.dataset.addressId === addressId;
    item.classList.toggle("selected", chosen);
    item.setAttribute("aria-pressed", chosen ? "true" : "false");
  });
  const layer = $("highlights");
  layer.querySelectorAll("path").forEach((path) => path.classList.toggle("selected", path.dataset.addressId === addressId));
  const chosenPath = layer.querySelector(`path[data-address-id="${CSS.escape(addressId)}"]`);
  if (chosenPath) layer.appendChild(chosenPath); // on top
  placeMarker(match);
}

// ---------------------------------------------------------------------------------- results
function percent(value) {
  return `${(100 * value).toFixed(1)}%`;
}

function resultItem(match) {
  const item = document.createElement("li");
  item.className = `result ${match.rank === 1 ? "rank-1" : "rank-other"}`;
  item.dataset.addressId = match.address_id;
  item.tabIndex = 0;
  item.setAttribute("role", "button");
  const rank = document.createElement("span");
  rank.className = "rank";
  rank.textContent = String(match.rank);
  const address = document.createElement("span");
  address.className = "address";
  address.textContent = match.address;
  if (!match.seen_in_training) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "not seen in training";
    address.appendChild(badge);
  }
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = percent(match.probability);
  score.title = `cosine ${match.score.toFixed(3)}`;
  const bar = document.createElement("span");
  bar.className = "bar";
  const fill = document.createElement("span");
  fill.style.width = percent(Math.max(0, Math.min(1, match.probability)));
  bar.appendChild(fill);
  item.append(rank, address, score, bar);
  item.addEventListener("click", () => select(match.address_id));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(match.address_id); }
  });
  return item;
}

function showPrediction(prediction) {
  state.prediction = prediction;
  $("results").replaceChildren(...prediction.matches.map(resultItem));
  const warning = $("warning");
  if (prediction.out_of_city) {
    warning.textContent = `This photo is probably not from this city (best score ${prediction.top1_score.toFixed(3)} `
      + `is below the calibrated ${prediction.threshold.toFixed(3)}).`;
    warning.hidden = false;
  } else {
    warning.hidden = true;
  }
  drawHighlights(prediction);
  if (prediction.matches.length) select(prediction.matches[0].address_id);
  setStatus(`Top ${prediction.matches.length} addresses for ${prediction.source}.`);
  document.body.dataset.predicted = "1";
}

async function predict(file) {
  if (!file) return;
  const frame = $("photo-frame");
  const photo = $("photo");
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  $("photo-name").textContent = file.name;
  frame.hidden = false;
  $("results").replaceChildren();
  $("highlights").replaceChildren();
  $("marker").setAttribute("hidden", "");
  $("warning").hidden = true;
  delete document.body.dataset.predicted;
  setStatus("Locating…");
  const body = new FormData();
  body.append("image", file, file.name);
  try {
    const response = await fetch(`/v1/predict?top_k=${TOP_K}`, { method: "POST", body });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const message = payload && payload.error ? payload.error.message : `HTTP ${response.status}`;
      setStatus(`Could not locate this photo: ${message}`, true);
      return;
    }
    showPrediction(payload);
  } catch (error) {
    setStatus(`Could not reach the service (${error.message}).`, true);
  }
}

// ----------------------------------------------------------------------------------- wiring
function wire() {
  const input = $("file");
  const drop = $("drop");
  input.addEventListener("change", () => predict(input.files[0]));
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragging")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) predict(file);
  });
  loadNetwork();
}

wire();
