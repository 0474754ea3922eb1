// wxtiles minimal viewer: one radar layer over an OSM basemap.
// Vanilla ES2020, no build step. All server URLs are relative so the page
// works behind a reverse-proxy path prefix.
'use strict';

(() => {
  const DEFAULT_LAYER = 'reflectivity';
  const OVERLAY_OPACITY = 0.75;
  const REFRESH_MS = 60 * 1000;
  const PLAY_STEP_MS = 700;
  const SWAP_TIMEOUT_MS = 8000; // show a frame anyway if its tiles hang
  const MAX_LAT = 85.0511;      // Web Mercator limit

  const $ = (id) => document.getElementById(id);
  const ui = {
    select: $('layer-select'),
    play: $('play'),
    slider: $('time-slider'),
    timeLabel: $('time-label'),
    frameCount: $('frame-count'),
    legendRow: $('legend-row'),
    legend: $('legend'),
    units: $('units'),
    xyz: $('xyz-url'),
    copy: $('copy'),
    status: $('status'),
  };

  const map = L.map('map', { worldCopyJump: true }).setView([20, 0], 2);
  window.wxtilesMap = map; // for end-to-end tests and debugging from the console
  L.tileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png', {
    maxZoom: 19,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  }).addTo(map);
  // Failed basemap tiles stay hidden (Leaflet CSS), leaving the plain map
  // background; the radar overlay is independent of the basemap.

  const state = {
    layers: new Map(), // id -> layer metadata from api/layers
    optionsKey: '',
    layerId: null,
    frames: [],
    index: -1,
    fitted: false,
    loadFailed: false,
    timer: null,
    active: null,  // {tl, url, layerId, time} currently visible overlay
    pending: null, // overlay being preloaded, swapped in on 'load'
  };

  // ---------- helpers ----------

  function setStatus(msg) {
    ui.status.textContent = msg || '';
  }

  async function fetchJSON(url) {
    const resp = await fetch(url, { headers: { Accept: 'application/json' } });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    return resp.json();
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  function currentLayer() {
    return state.layers.get(state.layerId) || null;
  }

  function currentTime() {
    return state.frames[state.index] || null;
  }

  function tilePath(layerId, time) {
    return `tiles/${encodeURIComponent(layerId)}/${time}/{z}/{x}/{y}.png`;
  }

  function layerBounds(layer) {
    const b = layer && layer.bounds;
    if (!Array.isArray(b) || b.length !== 4 || !b.every(Number.isFinite)) return null;
    const [w, s, e, n] = b;
    if (w >= e || s >= n) return null; // antimeridian-crossing or degenerate
    const clamp = (v) => Math.max(-MAX_LAT, Math.min(MAX_LAT, v));
    return L.latLngBounds([clamp(s), w], [clamp(n), e]);
  }

  function framesOf(layer) {
    let frames = Array.isArray(layer.frames) ? layer.frames.slice() : [];
    if (!frames.length && layer.latest) frames = [layer.latest];
    return frames.sort(); // ISO-8601 UTC strings sort chronologically
  }

  // ---------- overlay (double-buffered tile layers) ----------

  function removeOverlay(entry) {
    if (entry) map.removeLayer(entry.tl);
  }

  function clearOverlays() {
    removeOverlay(state.pending);
    removeOverlay(state.active);
    state.pending = state.active = null;
  }

  function swapIn(entry) {
    if (state.pending !== entry) return; // superseded by a newer request
    clearTimeout(entry.timeout);
    state.pending = null;
    entry.tl.setOpacity(OVERLAY_OPACITY);
    removeOverlay(state.active);
    state.active = entry;
  }

  function showTime(layer, time) {
    const url = tilePath(layer.id, time);
    if (state.pending && state.pending.url === url) return;
    removeOverlay(state.pending);
    state.pending = null;
    if (state.active && state.active.url === url) return;

    const opts = { opacity: 0, bounds: layerBounds(layer) || undefined };
    if (Number.isFinite(layer.minzoom)) opts.minNativeZoom = layer.minzoom;
    if (Number.isFinite(layer.maxzoom)) opts.maxNativeZoom = layer.maxzoom;
    const tl = L.tileLayer(url, opts);
    const entry = { tl, url, layerId: layer.id, time };
    state.pending = entry;
    tl.once('load', () => swapIn(entry));
    entry.timeout = setTimeout(() => swapIn(entry), SWAP_TIMEOUT_MS);
    tl.addTo(map);
    // No tiles needed in the current view (e.g. outside bounds): 'load'
    // will not fire, so show it straight away.
    if (!tl.isLoading()) swapIn(entry);
  }

  // ---------- UI updates ----------

  function updateTimeUI() {
    const time = currentTime();
    const layer = currentLayer();
    ui.slider.max = String(Math.max(state.frames.length - 1, 0));
    ui.slider.value = String(Math.max(state.index, 0));
    ui.slider.disabled = state.frames.length < 2;
    ui.play.disabled = state.frames.length < 2;
    if (time) {
      const label = formatTime(time);
      ui.timeLabel.textContent = label;
      ui.timeLabel.dateTime = time;
      ui.timeLabel.title = time;
      ui.slider.setAttribute('aria-valuetext', label);
      ui.frameCount.textContent = `${state.index + 1}/${state.frames.length}`;
      // GIS clients want the live layer: `latest` always shows the newest frame.
      ui.xyz.value = new URL('.', location.href).href + tilePath(layer.id, 'latest');
      ui.copy.disabled = false;
    } else {
      ui.timeLabel.textContent = '';
      ui.timeLabel.removeAttribute('datetime');
      ui.timeLabel.removeAttribute('title');
      ui.slider.removeAttribute('aria-valuetext');
      ui.frameCount.textContent = '';
      ui.xyz.value = '';
      ui.copy.disabled = true;
    }
  }

  function showFrame(index) {
    const layer = currentLayer();
    if (!layer || !state.frames.length) return;
    state.index = Math.max(0, Math.min(index, state.frames.length - 1));
    updateTimeUI();
    showTime(layer, currentTime());
  }

  function setPlaying(on) {
    on = on && state.frames.length > 1;
    clearInterval(state.timer);
    state.timer = null;
    if (on) {
      state.timer = setInterval(() => {
        if (state.pending) return; // wait until the current frame is shown
        showFrame((state.index + 1) % state.frames.length);
      }, PLAY_STEP_MS);
    }
    ui.play.textContent = on ? '\u275A\u275A' : '\u25B6\uFE0E';
    ui.play.setAttribute('aria-label', on ? 'Pause animation' : 'Play animation');
  }

  function selectLayer(id) {
    const layer = state.layers.get(id);
    if (!layer) return;
    setPlaying(false);
    state.layerId = id;
    ui.select.value = id;
    state.frames = framesOf(layer);
    state.index = state.frames.length - 1;

    if (layer.colormap) {
      ui.legend.src = `api/colormaps/${encodeURIComponent(layer.colormap)}/legend.png`;
      ui.legend.alt = `Colour scale for ${layer.title || layer.id}`;
      ui.legend.hidden = false;
    } else {
      ui.legend.removeAttribute('src');
      ui.legend.hidden = true;
    }
    ui.units.textContent = layer.units || '';
    ui.legendRow.hidden = !layer.colormap && !layer.units;

    if (!state.fitted) {
      const b = layerBounds(layer);
      if (b && b.isValid()) {
        // No zoom animation: a layer added mid-animation loads tiles for the old zoom first.
        map.fitBounds(b, { animate: false });
        state.fitted = true;
      }
    }

    updateTimeUI();
    if (state.frames.length) {
      setStatus('');
      showTime(layer, currentTime());
    } else {
      clearOverlays();
      setStatus(`No frames available yet for ${layer.title || layer.id}.`);
    }
  }

  function fillSelect(list) {
    const key = JSON.stringify(list.map((l) => [l.id, l.title]));
    if (key === state.optionsKey) return;
    state.optionsKey = key;
    ui.select.replaceChildren(...list.map((l) => new Option(l.title || l.id, l.id)));
    ui.select.disabled = list.length === 0;
    if (state.layerId) ui.select.value = state.layerId;
  }

  // ---------- data refresh ----------

  async function refreshLayers() {
    let data;
    try {
      data = await fetchJSON('api/layers');
    } catch (err) {
      state.loadFailed = true;
      setStatus(`Could not load layers (${err.message}).`);
      return;
    }
    if (state.loadFailed) {
      state.loadFailed = false;
      setStatus('');
    }
    const list = Array.isArray(data && data.layers) ? data.layers : [];
    state.layers = new Map(list.map((l) => [l.id, l]));
    fillSelect(list);

    if (!list.length) {
      setPlaying(false);
      state.layerId = null;
      state.frames = [];
      state.index = -1;
      clearOverlays();
      updateTimeUI();
      ui.legendRow.hidden = true;
      setStatus('No layers available.');
      return;
    }

    const layer = currentLayer();
    if (!layer) {
      selectLayer(state.layers.has(DEFAULT_LAYER) ? DEFAULT_LAYER : list[0].id);
      return;
    }

    // Same layer: merge in new frames, keeping the user's position unless
    // they were watching the latest frame (then follow the new latest).
    const prevTime = currentTime();
    const atLatest = state.index === state.frames.length - 1;
    const frames = framesOf(layer);
    if (frames.join() === state.frames.join()) return;
    if (!frames.length) {
      selectLayer(layer.id);
      return;
    }
    state.frames = frames;
    let index = frames.indexOf(prevTime);
    if (index < 0 || (atLatest && !state.timer)) index = frames.length - 1;
    setStatus('');
    showFrame(index);
  }

  // ---------- point query ----------

  function popupContent(lines) {
    const div = document.createElement('div');
    div.className = 'point-popup';
    for (const [text, cls] of lines) {
      const p = document.createElement('p');
      p.textContent = text;
      if (cls) p.className = cls;
      div.append(p);
    }
    return div;
  }

  function formatValue(value, units) {
    if (value === null || value === undefined || !Number.isFinite(value)) return 'No data';
    const num = value.toLocaleString(undefined, { maximumFractionDigits: 2 });
    return units ? `${num} ${units}` : num;
  }

  map.on('click', async (e) => {
    const layer = currentLayer();
    // Query the frame actually on screen (it lags the slider while loading).
    const shown = state.active && state.active.layerId === state.layerId ? state.active : null;
    const time = shown ? shown.time : currentTime();
    if (!layer || !time) return;
    const title = layer.title || layer.id;
    const when = formatTime(time);
    const popup = L.popup()
      .setLatLng(e.latlng)
      .setContent(popupContent([[title, 'title'], ['Loading\u2026'], [when, 'time']]))
      .openOn(map);

    const ll = e.latlng.wrap();
    const b = layerBounds(layer);
    if (b && !b.contains(ll)) {
      popup.setContent(popupContent([[title, 'title'], ['Outside layer coverage'], [when, 'time']]));
      return;
    }
    const params = new URLSearchParams({
      lon: ll.lng.toFixed(5),
      lat: ll.lat.toFixed(5),
      time,
    });
    let text;
    try {
      const data = await fetchJSON(`api/layers/${encodeURIComponent(layer.id)}/point?${params}`);
      text = formatValue(data.value, data.units || layer.units);
    } catch (err) {
      text = `Value unavailable (${err.message})`;
    }
    popup.setContent(popupContent([[title, 'title'], [text, 'value'], [when, 'time']]));
  });

  // ---------- controls ----------

  ui.select.addEventListener('change', () => selectLayer(ui.select.value));

  ui.slider.addEventListener('input', () => {
    setPlaying(false);
    showFrame(Number(ui.slider.value));
  });

  ui.play.addEventListener('click', () => setPlaying(!state.timer));

  ui.legend.addEventListener('error', () => { ui.legend.hidden = true; });
  ui.legend.addEventListener('load', () => { ui.legend.hidden = false; });

  ui.copy.addEventListener('click', async () => {
    const text = ui.xyz.value;
    if (!text) return;
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (_) { /* fall back below */ }
    if (!ok) {
      ui.xyz.focus();
      ui.xyz.select();
      try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    }
    ui.copy.textContent = ok ? 'Copied' : 'Copy manually';
    setTimeout(() => { ui.copy.textContent = 'Copy'; }, 1500);
  });

  refreshLayers();
  setInterval(() => {
    if (!document.hidden) refreshLayers();
  }, REFRESH_MS);
})();
