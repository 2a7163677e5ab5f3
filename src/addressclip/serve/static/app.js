// addressclip web page: pick or drop photos -> POST /v1/predict (one) or /v1/predict/sequence (several)
// -> ranked addresses + an SVG map. Plain JavaScript, no dependencies, no tiles: the map is drawn from
// GET /v1/network (streets) and GET /v1/buildings (footprints), GeoJSON in lon/lat, projected locally
// (equirectangular around the map's centre latitude: one map unit is about one metre at city scale).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const TOP_K = 5;
const UNITS_PER_DEGREE = 111320; // ~metres per degree of latitude: map units are ~metres
const LABEL_PX = 11; // street-name size on screen, whatever the zoom
const BADGE_PX = 9; // radius of the numbered rank circles on screen
const MIN_ZOOM_WIDTH = 40; // metres across at the closest zoom
const state = {
  projection: null, prediction: null, sequence: null, selected: null,
  view: null, home: null, labels: [], badges: [],
};

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function svgElement(tag, attributes = {}) {
  const element = document.createElementNS(SVG_NS, tag);
  Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, String(value)));
  return element;
}

// ------------------------------------------------------------------------------ projection
function lineStrings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  if (geometry.type === "Polygon") return geometry.coordinates;
  return [];
}

function makeProjection(features) {
  let minLon = Infinity, minLat = Infinity, maxLon = -Infinity, maxLat = -Infinity;
  features.forEach((feature) => lineStrings(feature.geometry).forEach((line) => line.forEach(([lon, lat]) => {
    minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
    minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
  })));
  if (!Number.isFinite(minLon)) return null;
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180) * UNITS_PER_DEGREE;
  const ky = UNITS_PER_DEGREE;
  const width = Math.max((maxLon - minLon) * kx, 1);
  const height = Math.max((maxLat - minLat) * ky, 1);
  const pad = 0.04 * Math.max(width, height);
  return {
    project: ([lon, lat]) => [(lon - minLon) * kx + pad, (maxLat - lat) * ky + pad],
    home: { x: 0, y: 0, w: width + 2 * pad, h: height + 2 * pad },
  };
}

function pathData(geometry, close = false) {
  return lineStrings(geometry).map((line) => line.map((position, i) => {
    const [x, y] = state.projection.project(position);
    return `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
  }).join("") + (close ? "Z" : "")).join("");
}

function svgPath(geometry, className, addressId, title) {
  const path = svgElement("path", { d: pathData(geometry) });
  if (className) path.setAttribute("class", className);
  if (addressId) path.dataset.addressId = addressId;
  if (title) {
    const tip = svgElement("title");
    tip.textContent = title;
    path.appendChild(tip);
  }
  return path;
}

// --------------------------------------------------------------------------- pan and zoom
function unitsPerPixel() {
  const matrix = $("map").getScreenCTM();
  return matrix && matrix.a ? 1 / matrix.a : 1;
}

function setView(view) {
  const home = state.home;
  const w = Math.min(Math.max(view.w, MIN_ZOOM_WIDTH), home.w * 4);
  const h = w * (home.h / home.w);
  const cx = Math.min(Math.max(view.x + view.w / 2, home.x), home.x + home.w);
  const cy = Math.min(Math.max(view.y + view.h / 2, home.y), home.y + home.h);
  state.view = { x: cx - w / 2, y: cy - h / 2, w, h };
  const v = state.view;
  $("map").setAttribute("viewBox", `${v.x.toFixed(1)} ${v.y.toFixed(1)} ${v.w.toFixed(1)} ${v.h.toFixed(1)}`);
  onViewChanged();
}

function zoomAt(factor, point) {
  const v = state.view;
  const p = point || { x: v.x + v.w / 2, y: v.y + v.h / 2 };
  setView({ x: p.x - (p.x - v.x) * factor, y: p.y - (p.y - v.y) * factor, w: v.w * factor, h: v.h * factor });
}

function mapPoint(event) {
  const map = $("map");
  const point = map.createSVGPoint();
  point.x = event.clientX;
  point.y = event.clientY;
  return point.matrixTransform(map.getScreenCTM().inverse());
}

function wirePanZoom() {
  const map = $("map");
  map.addEventListener("wheel", (event) => {
    if (!state.view) return;
    event.preventDefault();
    zoomAt(event.deltaY > 0 ? 1.25 : 0.8, mapPoint(event));
  }, { passive: false });
  let drag = null;
  map.addEventListener("pointerdown", (event) => {
    if (!state.view || event.button !== 0) return;
    drag = { x0: event.clientX, y0: event.clientY, view: { ...state.view }, moved: false, id: event.pointerId };
  });
  map.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x0;
    const dy = event.clientY - drag.y0;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return; // a click, not a drag
    if (!drag.moved) map.setPointerCapture(drag.id);
    drag.moved = true;
    map.classList.add("panning");
    const scale = unitsPerPixel();
    setView({ ...drag.view, x: drag.view.x - dx * scale, y: drag.view.y - dy * scale });
  });
  const stop = () => { drag = null; map.classList.remove("panning"); };
  map.addEventListener("pointerup", stop);
  map.addEventListener("pointercancel", stop);
  $("zoom-in").addEventListener("click", () => state.view && zoomAt(0.6));
  $("zoom-out").addEventListener("click", () => state.view && zoomAt(1 / 0.6));
  $("zoom-reset").addEventListener("click", () => state.home && setView(state.home));
  window.addEventListener("resize", () => state.view && onViewChanged());
}

function onViewChanged() {
  const scale = unitsPerPixel();
  updateScaleBar(scale);
  updateLabels(scale);
  updateBadges(scale);
}

function niceDistance(metres) {
  const power = 10 ** Math.floor(Math.log10(metres));
  const steps = [1, 2, 5, 10];
  return power * steps.filter((step) => step * power <= metres).pop();
}

function updateScaleBar(scale) {
  const metres = niceDistance(120 * scale);
  $("scale-bar").style.width = `${(metres / scale).toFixed(0)}px`;
  $("scale-text").textContent = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
  $("scale").dataset.metres = String(metres);
}

// ----------------------------------------------------------------------------- street names
function longestLine(geometry) {
  // the longest single line of a (multi)line, projected, running left to right so text is upright
  let best = null;
  lineStrings(geometry).forEach((line) => {
    const points = line.map((position) => state.projection.project(position));
    let length = 0;
    for (let i = 1; i < points.length; i += 1) {
      length += Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
    }
    if (!best || length > best.length) best = { points, length };
  });
  if (best && best.points.length > 1) {
    // upright where the name sits: at half the length, the line must run left to right
    let walked = 0;
    for (let i = 1; i < best.points.length; i += 1) {
      const [x0, y0] = best.points[i - 1];
      const [x1, y1] = best.points[i];
      walked += Math.hypot(x1 - x0, y1 - y0);
      if (walked >= best.length / 2) {
        if (x1 < x0) best.points.reverse();
        break;
      }
    }
  }
  return best;
}

function buildLabels(features) {
  const byStreet = new Map();
  features.forEach((feature) => {
    const name = feature.properties.street;
    const line = longestLine(feature.geometry);
    if (!name || !line || line.points.length < 2) return;
    const known = byStreet.get(name);
    if (!known || line.length > known.line.length) byStreet.set(name, { name, line });
  });
  const layer = $("labels");
  layer.replaceChildren();
  const defs = svgElement("defs");
  layer.appendChild(defs);
  state.labels = [...byStreet.values()].map(({ name, line }, index) => {
    const id = `street-label-line-${index}`;
    const d = line.points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`).join("");
    defs.appendChild(svgElement("path", { id, d }));
    const text = svgElement("text", { class: "street-label", "dominant-baseline": "central" });
    const along = svgElement("textPath", { href: `#${id}`, startOffset: "50%", "text-anchor": "middle" });
    const shown = name.split(", ")[0]; // "Ahvenentie, Marttila": the street, without its neighbourhood
    along.textContent = shown;
    text.appendChild(along);
    text.dataset.street = shown;
    layer.appendChild(text);
    return { text, length: line.length, chars: shown.length };
  });
}

function updateLabels(scale) {
  const size = LABEL_PX * scale;
  state.labels.forEach((label) => {
    label.text.setAttribute("font-size", size.toFixed(2));
    // shown only where the name fits along its street at this zoom
    const fits = label.chars * 0.62 * LABEL_PX * scale < 0.9 * label.length;
    label.text.toggleAttribute("hidden", !fits);
  });
}

// ------------------------------------------------------------------------------------- map
async function loadNetwork() {
  try {
    const response = await fetch("/v1/network");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const network = await response.json();
    state.projection = makeProjection(network.features);
    if (!state.projection) {
      $("map-info").textContent = "No street geometry in this model's AddressBook.";
      return;
    }
    state.home = state.projection.home;
    const streets = $("streets");
    network.features.forEach((feature) => {
      const className = feature.properties.in_gallery ? "in-gallery" : "";
      streets.appendChild(svgPath(feature.geometry, className, feature.id, feature.properties.address));
    });
    buildLabels(network.features);
    setView(state.home);
    const candidates = network.gallery_addresses ?? network.features.filter((f) => f.properties.in_gallery).length;
    state.caption = `${candidates} candidate sub-streets (darker lines). Drag to pan, scroll or +/− to zoom; `
      + "click an address to show it.";
    $("map-info").textContent = state.caption;
    $("map").dataset.ready = "1";
    loadBuildings();
  } catch (error) {
    $("map-info").textContent = `Could not load the street network (${error.message}).`;
  }
}

async function loadBuildings() {
  try {
    const response = await fetch("/v1/buildings");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const buildings = await response.json();
    const layer = $("buildings");
    const d = buildings.features.map((feature) => pathData(feature.geometry, true)).join("");
    // one path for all footprints: thousands of buildings stay cheap to pan and zoom
    if (d) layer.appendChild(svgElement("path", { d, class: "footprints" }));
    layer.dataset.count = String(buildings.features.length);
    if (buildings.reason) $("map-info").textContent = `${state.caption} No buildings: ${buildings.reason}.`;
    $("map").dataset.buildings = "1";
  } catch (error) {
    $("map").dataset.buildings = "0";
  }
}

function clearMapResults() {
  ["highlights", "path-layer", "ranks"].forEach((id) => $(id).replaceChildren());
  state.badges = [];
  $("marker").setAttribute("hidden", "");
}

function addBadge(lon, lat, text, className, addressId) {
  if (lat === null || lon === null || lat === undefined) return;
  const [x, y] = state.projection.project([lon, lat]);
  const group = svgElement("g", { class: className });
  group.dataset.rank = text;
  if (addressId) {
    group.dataset.addressId = addressId;
    group.addEventListener("click", () => select(addressId));
  }
  const circle = svgElement("circle", { r: 1 });
  const label = svgElement("text", { "text-anchor": "middle", "dominant-baseline": "central" });
  label.textContent = text;
  group.append(circle, label);
  $("ranks").appendChild(group);
  state.badges.push({ group, circle, label, x, y, wide: text.length > 2 });
}

function updateBadges(scale) {
  const r = BADGE_PX * scale;
  state.badges.forEach((badge) => {
    badge.group.setAttribute("transform", `translate(${badge.x.toFixed(1)} ${badge.y.toFixed(1)})`);
    badge.circle.setAttribute("r", (badge.wide ? 1.5 * r : r).toFixed(2));
    badge.label.setAttribute("font-size", (1.2 * r).toFixed(2));
  });
  const marker = $("marker");
  $("marker-dot").setAttribute("r", (6 * scale).toFixed(2));
  $("marker-halo").setAttribute("r", (15 * scale).toFixed(2));
  if (marker.dataset.x) marker.setAttribute("transform", `translate(${marker.dataset.x} ${marker.dataset.y})`);
}

function drawHighlights(prediction) {
  $("highlights").replaceChildren();
  $("ranks").replaceChildren();
  state.badges = [];
  if (!state.projection) return;
  // Paint the lower ranks first so the best match is drawn on top.
  [...prediction.matches].reverse().forEach((match) => {
    if (!match.geometry) return;
    const rankClass = match.rank === 1 ? "rank-1" : "rank-other";
    const path = svgPath(match.geometry, `predicted ${rankClass}`, match.address_id, `${match.rank}. ${match.address}`);
    path.addEventListener("click", () => select(match.address_id));
    $("highlights").appendChild(path);
    addBadge(match.lon, match.lat, String(match.rank), `rank-badge ${rankClass}`, match.address_id);
  });
  updateBadges(unitsPerPixel());
}

function placeMarker(match) {
  const marker = $("marker");
  if (!state.projection || match.lat === null || match.lon === null) {
    marker.setAttribute("hidden", "");
    return;
  }
  const [x, y] = state.projection.project([match.lon, match.lat]);
  marker.dataset.x = x.toFixed(1);
  marker.dataset.y = y.toFixed(1);
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

// --------------------------------------------------------------------------------- sequences
function stepItem(step, prediction) {
  const item = document.createElement("li");
  item.className = `step ${step.agrees_with_photo ? "agrees" : "changed"}`;
  item.dataset.addressId = step.address_id;
  const number = document.createElement("span");
  number.className = "rank";
  number.textContent = String(step.index + 1);
  const address = document.createElement("span");
  address.className = "address";
  address.textContent = step.address;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = percent(step.posterior);
  score.title = "posterior given the whole sequence";
  const note = document.createElement("span");
  note.className = "note";
  note.textContent = step.agrees_with_photo
    ? `${step.source}: the photo alone agrees`
    : `${step.source}: alone it says ${prediction.matches[0].address}`;
  item.append(number, address, score, note);
  return item;
}

function showSequence(sequence) {
  state.sequence = sequence;
  state.prediction = null;
  $("results").replaceChildren(...sequence.path.map((step, i) => stepItem(step, sequence.predictions[i])));
  $("warning").hidden = true;
  clearMapResults();
  const layer = $("path-layer");
  const points = [];
  sequence.segments.forEach((segment) => {
    if (segment.geometry) {
      layer.appendChild(svgPath(segment.geometry, "decoded", segment.address_id,
        `photos ${segment.first + 1}–${segment.last + 1}: ${segment.address}`));
    }
    const step = sequence.path[segment.first];
    if (step.lat !== null && step.lon !== null) points.push(state.projection.project([step.lon, step.lat]));
    const text = segment.first === segment.last ? `${segment.first + 1}` : `${segment.first + 1}–${segment.last + 1}`;
    addBadge(step.lon, step.lat, text, "path-badge", null);
  });
  // where a photo alone said something else: its own answer, numbered, next to the decoded path
  sequence.path.forEach((step, i) => {
    const own = sequence.predictions[i].matches[0];
    if (!step.agrees_with_photo && own) addBadge(own.lon, own.lat, String(i + 1), "photo-badge", null);
  });
  if (points.length > 1) {
    const d = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`).join("");
    layer.appendChild(svgElement("path", { d, class: "travel" }));
  }
  updateBadges(unitsPerPixel());
  const changed = sequence.path.filter((step) => !step.agrees_with_photo).length;
  setStatus(`Decoded a walk of ${sequence.path.length} photos: ${sequence.segments.length} sub-street run(s); `
    + `${changed} photo answer(s) changed by the sequence.`);
  document.body.dataset.sequence = "1";
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(payload && payload.error ? payload.error.message : `HTTP ${response.status}`);
  }
  return payload;
}

// ------------------------------------------------------------------------------------ input
function showPhoto(file, caption) {
  const photo = $("photo");
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  $("photo-name").textContent = caption;
  $("photo-frame").hidden = false;
}

function resetResults(text) {
  $("results").replaceChildren();
  clearMapResults();
  $("warning").hidden = true;
  delete document.body.dataset.predicted;
  delete document.body.dataset.sequence;
  setStatus(text);
}

async function predict(file) {
  showPhoto(file, file.name);
  resetResults("Locating…");
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

async function predictSequence(files) {
  const ordered = [...files].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  showPhoto(ordered[0], `${ordered.length} photos, in file-name order: ${ordered[0].name} … ${ordered.at(-1).name}`);
  resetResults(`Decoding a walk of ${ordered.length} photos…`);
  try {
    const images = await Promise.all(ordered.map(async (file) => ({ image: await readAsDataUrl(file), filename: file.name })));
    showSequence(await postJson(`/v1/predict/sequence?top_k=${TOP_K}`, { images }));
  } catch (error) {
    setStatus(`Could not decode these photos: ${error.message}`, true);
  }
}

function handleFiles(files) {
  const list = [...(files || [])];
  if (list.length === 1) predict(list[0]);
  else if (list.length > 1) predictSequence(list);
}

// ----------------------------------------------------------------------------------- wiring
function wire() {
  const input = $("file");
  const drop = $("drop");
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // the next choice starts a new set (and choosing the same file again works)
    handleFiles(files);
  });
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragging")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    handleFiles(event.dataTransfer && event.dataTransfer.files);
  });
  wirePanZoom();
  loadNetwork();
}

wire();
