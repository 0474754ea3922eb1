// wxtiles viewer: an animated map of the last hours of observed frames and
// the nowcast (or a model's forecast frames), over a configurable basemap.
// ES modules, no build step; Leaflet is the global `L` (vendor/leaflet/).
// Every server URL is relative, so the page works under a path prefix.

import {
  buildFrames, buildPermalink, formatTime, formatUtc, formatValue, isForecast, kindLabel,
  lastObservedIndex, liveIndex, nearestIndex, parsePermalink, skillLabel,
} from './timeline.js';
import { RadarFrames, layerBounds, tileTemplate } from './radar.js';
import { renderLegend } from './legend.js';
import { outlinesLayer } from './outlines.js';
import { PointChart } from './chart.js';

const DEFAULTS = {
  basemap: 'osm',
  basemaps: [
    {
      id: 'osm',
      title: 'OpenStreetMap',
      url: 'https://tile.openstreetmap.org/{z}/{x}/{y}.png',
      max_zoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    },
    { id: 'none', title: 'Outlines only', url: null },
  ],
  default_layer: 'reflectivity',
  default_opacity: 0.75,
  history_minutes: 120,
  frame_ms: 500,
  poll_seconds: 30,
};
const PRELOAD_AHEAD = 4; // frames loaded ahead of the one on screen while playing
const LAST_OBSERVED_HOLD = 3; // the loop rests this many frame times on the latest observation
const LAST_FRAME_HOLD = 2; // ... and on its last frame before starting again
const DEFAULT_VIEW = { lat: 39, lon: -97, zoom: 4 };

const $ = (id) => document.getElementById(id);
const ui = {
  map: $('map'),
  panel: $('panel'),
  layer: $('layer-select'),
  panelToggle: $('panel-toggle'),
  legend: $('legend'),
  legendTitle: $('legend-title'),
  legendUnits: $('legend-units'),
  legendScale: $('legend-scale'),
  opacity: $('opacity'),
  opacityValue: $('opacity-value'),
  basemap: $('basemap-select'),
  xyz: $('xyz-url'),
  copyXyz: $('copy-xyz'),
  copyLink: $('copy-link'),
  copyNote: $('copy-note'),
  timebar: $('timebar'),
  timeLabel: $('time-label'),
  kind: $('frame-kind'),
  skill: $('frame-skill'),
  loading: $('loading'),
  count: $('frame-count'),
  utc: $('utc-toggle'),
  back: $('step-back'),
  play: $('play'),
  forward: $('step-forward'),
  slider: $('time-slider'),
  speed: $('speed'),
  live: $('live'),
  status: $('status'),
  chartPanel: $('chart-panel'),
};

const state = {
  config: DEFAULTS,
  layers: new Map(), // id -> layer metadata from api/layers
  layersData: null, // the api/layers answer they came from
  layerKey: '',
  layer: null,
  frames: [],
  index: -1, // the frame asked for; the radar shows it once its tiles are loaded
  live: true, // follow the newest frame as it arrives
  playing: false,
  speed: 1,
  opacity: DEFAULTS.default_opacity,
  utc: false,
  shownAt: 0,
  basemapId: DEFAULTS.basemap,
  basemapFailed: false,
  colormaps: new Map(),
  permalink: '',
  started: false,
  loadFailed: false,
  popup: null,
  pointToken: 0,
  verification: null, // api/layers/{layer}/verification of the current layer
};

let map;
let radar;
let basemapLayer = null;
let outlines = null;
let chart = null; // the point forecast panel
let chartMarker = null;

// ---------- small helpers ----------

function setStatus(message) {
  ui.status.textContent = message || '';
}

async function fetchJSON(url, options = {}) {
  const resp = await fetch(url, { ...options, headers: { Accept: 'application/json' } });
  if (!resp.ok) throw new Error(await errorDetail(resp));
  return resp.json();
}

async function errorDetail(resp) {
  try { return (await resp.json()).error || `HTTP ${resp.status}`; } catch (_) { return `HTTP ${resp.status}`; }
}

function baseHref() {
  return new URL('.', location.href).href;
}

function currentFrame() {
  return state.frames[state.index] || null;
}

function frameAt(time) {
  return state.frames.find((f) => f.time === time) || null;
}

function frameDuration() {
  return state.config.frame_ms / state.speed;
}

function hold(index) {
  const n = state.frames.length;
  const observed = lastObservedIndex(state.frames);
  if (index === observed && observed < n - 1) return frameDuration() * LAST_OBSERVED_HOLD;
  if (index === n - 1) return frameDuration() * LAST_FRAME_HOLD;
  return frameDuration();
}

// ---------- the frame loop ----------
// One pump drives everything: it shows the asked-for frame once its tiles are
// in, advances the loop when playing, and keeps the frames ahead loading.

let pumpTimer = 0;
let pumpDue = Infinity;

/** Run pump() in `delay` ms, or sooner if it is already due sooner. */
function requestPump(delay = 0) {
  const due = performance.now() + delay;
  if (pumpTimer && pumpDue <= due) return;
  clearTimeout(pumpTimer);
  pumpDue = due;
  pumpTimer = setTimeout(() => {
    pumpTimer = 0;
    pumpDue = Infinity;
    pump();
  }, delay);
}

function pump() {
  const frame = currentFrame();
  if (!state.layer || !frame) return;
  const now = performance.now();
  let wait = null; // ms until the next pump; a tile layer's 'load' also pumps
  if (!radar.isShown(frame)) {
    radar.ensure(frame);
    if (radar.isReady(frame)) {
      radar.show(frame);
      state.shownAt = now;
      frameShown();
      if (state.playing) wait = hold(state.index);
    } else {
      wait = 150;
    }
  } else if (state.playing && state.frames.length > 1) {
    const left = hold(state.index) - (now - state.shownAt);
    wait = Math.max(left, 10);
    if (left <= 0) {
      const next = state.frames[(state.index + 1) % state.frames.length];
      radar.ensure(next);
      if (radar.isReady(next)) {
        state.index = (state.index + 1) % state.frames.length;
        radar.show(next);
        state.shownAt = now;
        updateTimeUI();
        frameShown();
        wait = hold(state.index);
      } else {
        wait = 150; // its tiles are still coming
      }
    }
  }
  preload();
  if (wait !== null) requestPump(wait);
}

function preload() {
  const n = state.frames.length;
  if (!n || state.index < 0) return;
  const target = state.frames[state.index];
  if (!radar.isShown(target) && !radar.isReady(target)) {
    // The frame asked for comes first: the browser has only a few connections per server.
    radar.ensure(target);
    return;
  }
  const wanted = [state.index];
  const ahead = state.playing ? PRELOAD_AHEAD : 1;
  for (let k = 1; k <= Math.min(ahead, n - 1); k += 1) wanted.push((state.index + k) % n);
  if (!state.playing && n > 2) wanted.push((state.index - 1 + n) % n);
  const frames = wanted.map((i) => state.frames[i]);
  radar.retain(frames);
  for (const frame of frames) radar.ensure(frame);
}

let firstFrameShown;
const firstFrame = new Promise((resolve) => { firstFrameShown = resolve; });

function frameShown() {
  firstFrameShown();
  ui.loading.hidden = true;
  ui.timebar.removeAttribute('aria-busy');
  document.dispatchEvent(new CustomEvent('wxtiles:frame', { detail: { layer: radar.shownLayerId, time: radar.shownTime } }));
}

function goTo(index, { live = null } = {}) {
  if (!state.frames.length) return;
  const n = state.frames.length;
  state.index = ((index % n) + n) % n;
  state.live = live === null ? state.index === liveIndex(state.frames) : live;
  updateTimeUI();
  pump();
  schedulePermalink();
}

function setPlaying(on) {
  on = on && state.frames.length > 1;
  const was = state.playing;
  state.playing = on;
  ui.play.classList.toggle('playing', on);
  ui.play.setAttribute('aria-label', on ? 'Pause' : 'Play');
  ui.play.title = on ? 'Pause (Space)' : 'Play (Space)';
  // A label that changes every half second is no use to a screen reader.
  ui.timeLabel.setAttribute('aria-live', on ? 'off' : 'polite');
  if (on) {
    state.shownAt = performance.now();
    requestPump();
  } else if (was) {
    // Paused: the frame on screen is the one asked for, and "live" if it is the newest.
    state.live = state.index === liveIndex(state.frames);
    schedulePermalink();
  }
}

function step(delta) {
  setPlaying(false);
  goTo(state.index + delta);
}

// ---------- UI ----------

function updateTimeUI() {
  const frame = currentFrame();
  const n = state.frames.length;
  ui.slider.max = String(Math.max(n - 1, 0));
  ui.slider.value = String(Math.max(state.index, 0));
  for (const control of [ui.slider, ui.play, ui.back, ui.forward]) control.disabled = n < 2;
  ui.live.disabled = n < 1;
  const firstForecast = state.frames.findIndex(isForecast);
  // Where the track turns from observed to forecast colour (-1: all forecast).
  const split = firstForecast < 0 ? 1 : firstForecast === 0 ? -1 : (firstForecast - 0.5) / Math.max(n - 1, 1);
  ui.slider.style.setProperty('--split', String(split));

  if (!frame) {
    ui.timeLabel.textContent = '';
    ui.timeLabel.removeAttribute('datetime');
    ui.timeLabel.removeAttribute('title');
    ui.kind.textContent = '';
    ui.skill.hidden = true;
    ui.count.textContent = '';
    ui.timebar.classList.remove('forecast');
    ui.slider.removeAttribute('aria-valuetext');
    ui.loading.hidden = true;
    return;
  }
  const label = formatTime(frame.time, { utc: state.utc });
  const kind = kindLabel(frame);
  ui.timeLabel.textContent = label;
  ui.timeLabel.dateTime = frame.time;
  ui.timeLabel.title = state.utc ? formatTime(frame.time) : formatUtc(frame.time);
  ui.kind.textContent = kind;
  ui.kind.title = frame.run ? `Model run ${formatUtc(frame.run)}` : '';
  const skill = skillLabel(state.verification, frame, state.layer && state.layer.id);
  ui.skill.hidden = !skill;
  ui.skill.textContent = skill ? skill.text : '';
  ui.skill.title = skill ? skill.title : '';
  ui.timebar.classList.toggle('forecast', isForecast(frame));
  ui.timebar.dataset.kind = frame.kind;
  ui.count.textContent = `${state.index + 1}/${n}`;
  ui.slider.setAttribute('aria-valuetext', `${label}, ${kind}`);
  const waiting = !radar.isShown(frame);
  ui.loading.hidden = !waiting;
  if (waiting) ui.timebar.setAttribute('aria-busy', 'true');
}

function updateXyz() {
  const layer = state.layer;
  // GIS clients want the live layer: `latest` is always the newest frame.
  ui.xyz.value = layer ? baseHref() + tileTemplate(layer.id, 'latest', '') : '';
  ui.copyXyz.disabled = !layer;
}

async function colormapFor(name) {
  if (!state.colormaps.has(name)) {
    state.colormaps.set(name, fetchJSON(`api/colormaps/${encodeURIComponent(name)}`).catch((err) => {
      state.colormaps.delete(name);
      throw err;
    }));
  }
  return state.colormaps.get(name);
}

async function updateLegend() {
  const layer = state.layer;
  if (!layer || !layer.colormap) {
    ui.legend.hidden = true;
    return;
  }
  try {
    const colormap = await colormapFor(layer.colormap);
    if (state.layer !== layer) return; // another layer was picked meanwhile
    ui.legendTitle.textContent = layer.title || layer.id;
    renderLegend(ui.legendScale, ui.legendUnits, colormap, layer);
    ui.legendScale.setAttribute('aria-label', `Colour scale ${colormap.title || colormap.name}, in ${ui.legendUnits.textContent || 'no units'}`);
    ui.legend.hidden = false;
  } catch (err) {
    ui.legend.hidden = true;
    setStatus(`Could not load the colour scale (${err.message}).`);
  }
}

/** The picker: observations and hand-ingested layers first, then one group per model (HRRR, GFS...). */
function fillLayerSelect(list) {
  const key = JSON.stringify(list.map((l) => [l.id, l.title, l.model]));
  if (key === state.layerKey) return;
  state.layerKey = key;
  const groups = new Map();
  for (const l of list) {
    const group = l.model ? l.model.toUpperCase() : '';
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(new Option(l.title || l.id, l.id));
  }
  ui.layer.replaceChildren(...[...groups].map(([label, options]) => {
    if (!label) return options;
    const optgroup = document.createElement('optgroup');
    optgroup.label = label;
    optgroup.append(...options);
    return [optgroup];
  }).flat());
  ui.layer.disabled = list.length === 0;
  if (state.layer) ui.layer.value = state.layer.id;
}

/** Pick a layer; `time` is an ISO time, 'live', or null (keep the time on screen if the layer has it). */
function selectLayer(id, { time = null } = {}) {
  const layer = state.layers.get(id);
  if (!layer) return;
  const previous = currentFrame();
  const wasPlaying = state.playing;
  state.layer = layer;
  ui.layer.value = id;
  radar.setLayer(layer);
  const pinned = time && time !== 'live' ? time : null;
  state.frames = buildFrames(layer, { historyMinutes: state.config.history_minutes, keepTime: pinned });
  let index = liveIndex(state.frames);
  let live = true;
  if (pinned) {
    index = nearestIndex(state.frames, pinned);
    live = false;
    if (index >= 0 && state.frames[index].time !== pinned) {
      setStatus(`The frame of ${formatTime(pinned, { utc: state.utc })} is no longer available: showing the nearest one.`);
    }
  } else if (time !== 'live' && previous && !state.live) {
    const same = state.frames.findIndex((f) => f.time === previous.time);
    if (same >= 0) {
      index = same;
      live = false;
    }
  }
  state.index = index;
  state.live = index >= 0 && live;
  if (!state.frames.length) setStatus(`No frames yet for ${layer.title || layer.id}.`);
  else if (!pinned || state.frames[index].time === pinned) setStatus('');
  updateXyz();
  updateLegend();
  if (!state.verification || state.verification.layer !== id) state.verification = null;
  refreshVerification();
  updateTimeUI();
  if (!state.frames.length) {
    radar.clear();
    setPlaying(false);
  } else {
    setPlaying(wasPlaying);
    pump(); // now: its tiles are requested before anything else
  }
  schedulePermalink();
}

// ---------- layers and live updates ----------

const layersCache = { url: '', etag: '', data: null };

/** Hours of frames the viewer needs: its history, or back to the frame a link or the user pinned. */
function layersHours() {
  let hours = Math.max(state.config.history_minutes, 1) / 60;
  const asked = state.live ? null : currentFrame();
  const pinned = asked ? asked.time : (!state.started && parsePermalink(location.hash).time) || null;
  const pinnedMs = pinned && pinned !== 'live' ? Date.parse(pinned) : NaN;
  if (Number.isFinite(pinnedMs)) hours = Math.max(hours, (Date.now() - pinnedMs) / 3600e3);
  return Math.ceil(hours * 10 + 1) / 10; // a frame's margin, and few distinct URLs
}

/** The layers, recent frames only; a poll that finds nothing new costs a 304 and no parsing. */
async function fetchLayers() {
  const url = `api/layers?hours=${layersHours()}`;
  const headers = { Accept: 'application/json' };
  if (layersCache.url === url && layersCache.etag) headers['If-None-Match'] = layersCache.etag;
  // `no-store`: the browser's cache stays out of it; the validator above does its work.
  const resp = await fetch(url, { cache: 'no-store', headers });
  if (resp.status === 304 && layersCache.data) return layersCache.data;
  if (!resp.ok) throw new Error(await errorDetail(resp));
  const data = await resp.json();
  Object.assign(layersCache, { url, etag: resp.headers.get('ETag') || '', data });
  return data;
}

async function refreshLayers(request = null) {
  let data;
  try {
    data = await (request || fetchLayers());
  } catch (err) {
    state.loadFailed = true;
    setStatus(`Could not load the layers (${err.message}). Retrying\u2026`);
    return false;
  }
  if (state.loadFailed) {
    state.loadFailed = false;
    setStatus('');
  }
  if (data === state.layersData) return true; // 304: nothing new
  state.layersData = data;
  const list = Array.isArray(data && data.layers) ? data.layers : [];
  state.layers = new Map(list.map((l) => [l.id, l]));
  fillLayerSelect(list);
  if (!list.length) {
    setStatus('The server has no layers.');
    return true;
  }
  if (!state.layer) {
    // The first load picks its layer in start(); a server that had none before gets one now.
    if (state.started) chooseLayer(parsePermalink(location.hash));
    return true;
  }
  const layer = state.layers.get(state.layer.id);
  if (!layer) {
    selectLayer(list[0].id, { time: 'live' });
    return true;
  }
  mergeFrames(layer);
  refreshVerification();
  if (chart) chart.layersChanged();
  return true;
}

/** How good the layer's nowcasts have been: fetched with the layers, shown beside nowcast frames. */
async function refreshVerification() {
  const layer = state.layer;
  if (!layer || !Array.isArray(layer.nowcast) || !layer.nowcast.length) return;
  let doc = null;
  try {
    doc = await fetchJSON(`api/layers/${encodeURIComponent(layer.id)}/verification`, { cache: 'no-cache' });
  } catch (_) {
    doc = null; // scores are an extra: the loop goes on without them
  }
  if (!state.layer || state.layer.id !== layer.id) return; // another layer was picked meanwhile
  state.verification = doc;
  updateTimeUI();
}

/** New metadata for the current layer: new frames join the loop, the view stays where it is. */
function mergeFrames(layer) {
  state.layer = layer;
  radar.setLayer(layer);
  const shown = radar.shownTime;
  const asked = currentFrame();
  const frames = buildFrames(layer, {
    historyMinutes: state.config.history_minutes,
    keepTime: !state.live && asked ? asked.time : null,
  });
  const same = frames.length === state.frames.length
    && frames.every((f, i) => f.time === state.frames[i].time && f.kind === state.frames[i].kind);
  if (same) return;
  const hadFrames = state.frames.length > 0;
  state.frames = frames;
  if (!frames.length) {
    state.index = -1;
    radar.clear();
    setPlaying(false);
    updateTimeUI();
    setStatus(`No frames yet for ${layer.title || layer.id}.`);
    return;
  }
  if (state.live && !state.playing) {
    state.index = liveIndex(frames);
  } else {
    // Keep the frame on screen (playing) or the one asked for (paused).
    const keep = state.playing ? shown : asked && asked.time;
    state.index = keep ? nearestIndex(frames, keep) : liveIndex(frames);
    if (state.index < 0) state.index = liveIndex(frames);
  }
  if (!hadFrames) setStatus('');
  updateTimeUI();
  requestPump();
  schedulePermalink();
}

// ---------- basemap ----------

function setBasemap(id) {
  const choice = state.config.basemaps.find((b) => b.id === id) || state.config.basemaps[0];
  state.basemapId = choice ? choice.id : 'none';
  ui.basemap.value = state.basemapId;
  if (basemapLayer) map.removeLayer(basemapLayer);
  basemapLayer = null;
  state.basemapFailed = false;
  if (choice && choice.url) {
    basemapLayer = L.tileLayer(choice.url, {
      maxZoom: choice.max_zoom || 19,
      attribution: choice.attribution || '',
      className: 'wx-basemap',
    });
    let errors = 0;
    basemapLayer.on('loading', () => { errors = 0; });
    basemapLayer.on('tileerror', () => {
      errors += 1;
      if (!state.basemapFailed) {
        // Unreachable (offline, blocked): the radar stays, over outlines on a plain background.
        state.basemapFailed = true;
        updateOutlines();
      }
    });
    basemapLayer.on('load', () => {
      if (errors === 0 && state.basemapFailed) {
        state.basemapFailed = false;
        updateOutlines();
      }
    });
    basemapLayer.addTo(map);
  }
  updateOutlines();
  schedulePermalink();
}

function updateOutlines() {
  const wanted = !basemapLayer || state.basemapFailed;
  ui.map.classList.toggle('no-basemap', wanted);
  if (wanted && !outlines) {
    // Drawn once the first radar frame is up (or after a second): the radar comes first.
    const after = Promise.race([firstFrame, new Promise((resolve) => { setTimeout(resolve, 1000); })]);
    outlines = outlinesLayer('outlines', after).addTo(map);
  } else if (!wanted && outlines) {
    map.removeLayer(outlines);
    outlines = null;
  }
}

// ---------- permalink ----------

let permalinkTimer = 0;

function schedulePermalink() {
  clearTimeout(permalinkTimer);
  permalinkTimer = setTimeout(writePermalink, 200);
}

function permalinkTime() {
  const frame = currentFrame();
  if (!frame || state.live || state.playing) return 'live';
  return frame.time;
}

function writePermalink() {
  if (!map || !state.layer) return;
  const center = map.getCenter();
  const hash = buildPermalink({
    layer: state.layer.id,
    time: permalinkTime(),
    zoom: map.getZoom(),
    lat: center.lat,
    lon: center.lng,
    opacity: state.opacity,
    basemap: state.basemapId !== state.config.basemap ? state.basemapId : null,
    point: chart && chart.point,
  });
  if (hash !== location.hash) history.replaceState(history.state, '', hash);
  state.permalink = hash;
}

function applyPermalink(link, { initial = false } = {}) {
  if (link.opacity !== undefined) setOpacity(link.opacity);
  if (link.basemap && link.basemap !== state.basemapId && state.config.basemaps.some((b) => b.id === link.basemap)) {
    setBasemap(link.basemap);
  }
  if (link.view) map.setView([link.view.lat, link.view.lon], link.view.zoom, { animate: false });
  const id = link.layer && state.layers.has(link.layer) ? link.layer : null;
  if (link.layer && !id) setStatus(`No layer "${link.layer}" on this server.`);
  if (id && (initial || id !== (state.layer && state.layer.id) || link.time)) {
    setPlaying(false);
    selectLayer(id, { time: link.time || 'live' });
  } else if (link.time && state.layer) {
    setPlaying(false);
    selectLayer(state.layer.id, { time: link.time });
  }
  if (link.point) openChart(link.point.lat, link.point.lon, { focus: false });
  else if (!initial && chart) chart.close();
}

// ---------- opacity, time zone ----------

function setOpacity(value) {
  state.opacity = Math.min(Math.max(value, 0), 1);
  const percent = Math.round(state.opacity * 100);
  ui.opacity.value = String(percent);
  ui.opacityValue.value = `${percent}%`;
  ui.opacityValue.textContent = `${percent}%`;
  map.getPane('radar').style.opacity = String(state.opacity);
  schedulePermalink();
}

function setUtc(on) {
  state.utc = on;
  ui.utc.setAttribute('aria-pressed', String(on));
  ui.utc.title = on ? 'Times are in UTC: press for local time' : 'Times are in local time: press for UTC';
  try { localStorage.setItem('wxtiles.utc', on ? '1' : '0'); } catch (_) { /* private mode */ }
  updateTimeUI();
  if (chart) chart.redraw();
}

// ---------- point values ----------

function popupContent(lines) {
  const div = document.createElement('div');
  div.className = 'point-popup';
  for (const [text, cls] of lines) {
    if (!text) continue;
    const p = document.createElement('p');
    p.textContent = text;
    if (cls) p.className = cls;
    div.append(p);
  }
  return div;
}

async function showPoint(latlng) {
  const layer = state.layer;
  if (!layer) return;
  // The value of the frame on screen (it lags the slider while tiles load).
  const frame = (radar.shownLayerId === layer.id && frameAt(radar.shownTime)) || currentFrame();
  if (!frame) return;
  const title = layer.title || layer.id;
  const when = `${formatTime(frame.time, { utc: state.utc })} \u00B7 ${kindLabel(frame)}`;
  // One popup, reused: a new click moves it (and a late answer for an old click is dropped).
  const popup = state.popup || (state.popup = L.popup({ className: 'wx-popup', autoPanPadding: [20, 20] }));
  const token = (state.pointToken = (state.pointToken || 0) + 1);
  popup.setLatLng(latlng)
    .setContent(popupContent([[title, 'title'], ['Loading\u2026', 'value'], [when, 'time']]))
    .openOn(map);
  const ll = latlng.wrap();
  const bounds = layerBounds(layer);
  if (bounds && !bounds.contains(ll)) {
    popup.setContent(popupContent([[title, 'title'], ['Outside the layer\u2019s coverage', 'value'], [when, 'time']]));
    return;
  }
  const params = new URLSearchParams({ lon: ll.lng.toFixed(5), lat: ll.lat.toFixed(5), time: frame.time });
  let text;
  let cls = 'value';
  try {
    const data = await fetchJSON(`api/layers/${encodeURIComponent(layer.id)}/point?${params}`);
    if (data.status === 'ok' && Number.isFinite(data.value)) text = formatValue(data.value, data.units || layer.units);
    else if (data.status === 'no-echo') text = 'No echo';
    else if (data.status === 'no-coverage') text = 'No coverage';
    else text = 'No data';
    if (data.status !== 'ok') cls = 'value none';
  } catch (err) {
    text = `Value unavailable (${err.message})`;
    cls = 'value none';
  }
  if (token === state.pointToken) popup.setContent(popupContent([[title, 'title'], [text, cls], [when, 'time']]));
}

// ---------- the point forecast chart ----------

function openChart(lat, lon, options = {}) {
  if (chart) chart.open(Math.round(lat * 1e5) / 1e5, Math.round(lon * 1e5) / 1e5, options);
}

/** The panel opened, moved or closed: mark its point on the map, and in the link. */
function chartMoved(point) {
  if (chartMarker) chartMarker.remove();
  chartMarker = null;
  if (point) {
    chartMarker = L.circleMarker([point.lat, point.lon], {
      radius: 7, color: '#1f2933', weight: 2, fillColor: '#fff', fillOpacity: 0.9, interactive: false,
    }).addTo(map);
  } else if (ui.chartPanel.contains(document.activeElement) || document.activeElement === document.body) {
    ui.map.focus({ preventScroll: true }); // closed from inside the panel: the keyboard goes back to the map
  }
  schedulePermalink();
}

// ---------- copying ----------

async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* fall back below */ }
  const field = input || Object.assign(document.createElement('textarea'), { value: text });
  if (!input) document.body.append(field);
  field.focus();
  field.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  if (!input) field.remove();
  return ok;
}

function note(message) {
  ui.copyNote.textContent = message;
  clearTimeout(note.timer);
  note.timer = setTimeout(() => { ui.copyNote.textContent = ''; }, 2500);
}

// ---------- wiring ----------

function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  return tag === 'SELECT' || tag === 'TEXTAREA' || (tag === 'INPUT' && target.type !== 'range' && target.type !== 'checkbox');
}

function onKey(event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || isTyping(event.target)) return;
  const target = event.target;
  const onRange = target instanceof HTMLInputElement && target.type === 'range';
  const onButton = target instanceof HTMLButtonElement;
  let handled = true;
  switch (event.key) {
    case ' ':
    case 'Spacebar':
      if (onButton) return; // Space presses the focused button
      setPlaying(!state.playing);
      break;
    case 'ArrowLeft':
    case 'ArrowRight':
      if (onRange || event.shiftKey) return; // sliders move themselves; Shift+arrows pan the map
      step(event.key === 'ArrowLeft' ? -1 : 1);
      break;
    case 'Home':
      if (onRange) return;
      setPlaying(false);
      goTo(0);
      break;
    case 'End':
      if (onRange) return;
      setPlaying(false);
      goTo(liveIndex(state.frames), { live: true });
      break;
    case 'Escape':
      if (!chart || !chart.isOpen) return;
      chart.close();
      break;
    default:
      handled = false;
  }
  if (handled) {
    event.preventDefault();
    event.stopPropagation(); // before Leaflet's keyboard panning sees the arrows
  }
}

function wire() {
  ui.layer.addEventListener('change', () => selectLayer(ui.layer.value));
  ui.play.addEventListener('click', () => setPlaying(!state.playing));
  ui.back.addEventListener('click', () => step(-1));
  ui.forward.addEventListener('click', () => step(1));
  ui.slider.addEventListener('input', () => {
    setPlaying(false);
    goTo(Number(ui.slider.value));
  });
  ui.speed.addEventListener('change', () => {
    state.speed = Number(ui.speed.value) || 1;
    requestPump();
  });
  ui.live.addEventListener('click', () => {
    setPlaying(false);
    goTo(liveIndex(state.frames), { live: true });
  });
  ui.utc.addEventListener('click', () => setUtc(!state.utc));
  ui.opacity.addEventListener('input', () => setOpacity(Number(ui.opacity.value) / 100));
  ui.basemap.addEventListener('change', () => setBasemap(ui.basemap.value));
  ui.panelToggle.addEventListener('click', () => {
    const open = ui.panelToggle.getAttribute('aria-expanded') !== 'true';
    ui.panelToggle.setAttribute('aria-expanded', String(open));
    ui.panel.classList.toggle('open', open);
  });
  ui.copyXyz.addEventListener('click', async () => {
    const ok = await copyText(ui.xyz.value, ui.xyz);
    note(ok ? 'XYZ URL copied' : 'Select the URL and copy it');
  });
  ui.copyLink.addEventListener('click', async () => {
    writePermalink();
    const ok = await copyText(location.href);
    note(ok ? 'Link copied' : location.href);
  });
  document.addEventListener('keydown', onKey, true);
  window.addEventListener('hashchange', () => {
    if (location.hash === state.permalink) return;
    applyPermalink(parsePermalink(location.hash));
    state.permalink = location.hash;
  });
  map.on('click', (e) => {
    showPoint(e.latlng);
    const ll = e.latlng.wrap();
    openChart(ll.lat, ll.lng, { focus: false }); // the pointer stays on the map; Enter moves the focus in
  });
  ui.map.addEventListener('keydown', (event) => {
    // The keyboard's click: Enter on the focused map opens the chart at its centre.
    if (event.key !== 'Enter' || event.target !== ui.map) return;
    event.preventDefault();
    const ll = map.getCenter().wrap();
    openChart(ll.lat, ll.lng);
  });
  map.on('moveend', schedulePermalink);
  map.on('zoomstart movestart', () => requestPump(150)); // frames ahead reload for the new view
}

/** The first layer on screen: the permalink's, else the configured default, else the first. */
function chooseLayer(link) {
  const list = [...state.layers.values()];
  if (!list.length) return;
  const fallback = state.layers.has(state.config.default_layer) ? state.config.default_layer : list[0].id;
  const id = link.layer && state.layers.has(link.layer) ? link.layer : fallback;
  if (!link.view) {
    const bounds = layerBounds(state.layers.get(id));
    if (bounds) fitView(bounds);
  }
  applyPermalink({ ...link, layer: id, view: null, opacity: undefined, basemap: undefined }, { initial: true });
  if (link.layer && link.layer !== id) setStatus(`No layer "${link.layer}" on this server: showing ${state.layer.title}.`);
}

/** Frame the layer's coverage; a phone gets one zoom level more (a cropped CONUS beats a tiny one). */
function fitView(bounds) {
  // No animation: a zoom in flight would make the first frame load twice.
  map.fitBounds(bounds, { animate: false });
  if (ui.map.clientWidth < 640) map.setZoom(Math.min(map.getZoom() + 1, map.getMaxZoom()), { animate: false });
}

async function loadConfig() {
  try {
    const resp = await fetch('config.json');
    if (!resp.ok) return DEFAULTS;
    const config = { ...DEFAULTS, ...(await resp.json()) };
    if (!Array.isArray(config.basemaps) || !config.basemaps.length) config.basemaps = DEFAULTS.basemaps;
    for (const key of ['frame_ms', 'poll_seconds', 'history_minutes', 'default_opacity']) {
      if (!Number.isFinite(config[key]) || config[key] < 0) config[key] = DEFAULTS[key];
    }
    return config;
  } catch (_) {
    return DEFAULTS;
  }
}

async function start() {
  let layersRequest = fetchLayers(); // in parallel with the configuration
  layersRequest.catch(() => {}); // its failure is reported by refreshLayers
  state.config = await loadConfig();
  if (state.config.history_minutes > DEFAULTS.history_minutes) {
    layersRequest = fetchLayers(); // the first asked for too few hours
    layersRequest.catch(() => {});
  }
  const link = parsePermalink(location.hash);
  const view = link.view || DEFAULT_VIEW;
  map = L.map(ui.map, { worldCopyJump: true, zoomSnap: 1, maxZoom: 14, zoomControl: true })
    .setView([view.lat, view.lon], view.zoom, { animate: false });
  window.wxtilesMap = map; // for end-to-end tests and the console
  map.createPane('radar').style.zIndex = '250'; // above the basemap (tilePane 200)
  const outlinePane = map.createPane('outlines');
  outlinePane.style.zIndex = '350'; // outlines over the radar, under popups
  outlinePane.style.pointerEvents = 'none';
  radar = new RadarFrames(map, 'radar', () => requestPump());
  chart = new PointChart({
    root: ui.chartPanel,
    fetchJSON,
    layers: () => [...state.layers.values()],
    utc: () => state.utc,
    historyMinutes: () => state.config.history_minutes,
    onChange: chartMoved,
  });
  window.wxtilesChart = chart; // for end-to-end tests and the console

  ui.basemap.replaceChildren(...state.config.basemaps.map((b) => new Option(b.title || b.id, b.id)));
  let utc = false;
  try { utc = localStorage.getItem('wxtiles.utc') === '1'; } catch (_) { /* private mode */ }
  setUtc(utc);
  ui.speed.value = '1';
  setOpacity(link.opacity !== undefined ? link.opacity : state.config.default_opacity);
  setBasemap(link.basemap && state.config.basemaps.some((b) => b.id === link.basemap) ? link.basemap : state.config.basemap);
  wire();

  await refreshLayers(layersRequest);
  chooseLayer(link);
  state.started = true;
  state.permalink = location.hash;
  const poll = Math.max(state.config.poll_seconds, 1) * 1000;
  setInterval(() => { if (!document.hidden) refreshLayers(); }, poll);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshLayers(); });
}

start();
