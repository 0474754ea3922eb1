// The radar overlay: one Leaflet tile layer per frame time, kept in a small
// pool. Frames ahead of the one on screen load invisibly (opacity 0); a frame
// is made visible only once every tile it needs for the current view has
// loaded, and the previous frame stays up until then, so the loop never shows
// blank or half-drawn tiles.
//
// HiDPI: tiles stay 256 CSS px at the map's zoom; on screens with
// devicePixelRatio > 1 Leaflet's {r} asks for the server's 512-px `@2x.png`
// image of the same tile, so the count of requests does not change.

const MAX_LAT = 85.0511;

export function layerBounds(layer) {
  const b = layer && layer.bounds;
  if (!Array.isArray(b) || b.length !== 4 || !b.every(Number.isFinite)) return null;
  const [w, s, e, n] = b;
  if (w >= e || s >= n) return null; // antimeridian-crossing or degenerate
  if (w <= -180 && e >= 180 && s <= -MAX_LAT && n >= MAX_LAT) return null; // the whole world: no limit
  const clamp = (v) => Math.max(-MAX_LAT, Math.min(MAX_LAT, v));
  return L.latLngBounds([clamp(s), w], [clamp(n), e]);
}

export function tileTemplate(layerId, time, retina = '{r}') {
  return `tiles/${encodeURIComponent(layerId)}/${time}/{z}/{x}/{y}${retina}.png`;
}

/**
 * The tile URL template of a frame. A nowcast frame names the observation it
 * extrapolates (`from`, a parameter the server ignores): its URL changes when
 * a newer observation makes a new nowcast, so no browser cache serves the old one.
 */
export function frameTemplate(layerId, frame) {
  const template = tileTemplate(layerId, frame.time);
  return frame.kind === 'nowcast' && frame.from ? `${template}?from=${frame.from}` : template;
}

export class RadarFrames {
  /**
   * @param {L.Map} map
   * @param {string} pane  the map pane the frames go in (its opacity is the user's opacity)
   * @param {() => void} onChange  called when a frame finishes loading
   */
  constructor(map, pane, onChange) {
    this.map = map;
    this.pane = pane;
    this.onChange = onChange;
    this.layer = null;
    this.entries = new Map(); // tile URL template -> {time, url, layerId, tl}
    this.shown = null; // the visible entry
    this.stale = null; // the previous layer's visible entry, kept until the new layer shows a frame
  }

  get shownTime() {
    return this.shown ? this.shown.time : null;
  }

  get shownLayerId() {
    return this.shown ? this.shown.layerId : null;
  }

  /** Is this frame of this layer the one on screen? */
  isShown(frame) {
    return !!this.shown && !!this.layer && this.shown.layerId === this.layer.id && this.shown.url === frameTemplate(this.layer.id, frame);
  }

  setLayer(layer) {
    if (this.layer && layer && this.layer.id === layer.id) {
      this.layer = layer;
      return;
    }
    for (const entry of this.entries.values()) if (entry !== this.shown) this._remove(entry);
    this.entries.clear();
    if (this.shown) {
      if (this.stale) this._remove(this.stale);
      this.stale = this.shown;
    }
    this.shown = null;
    this.layer = layer;
  }

  ensure(frame) {
    const layer = this.layer;
    const url = frameTemplate(layer.id, frame);
    let entry = this.entries.get(url);
    if (entry) return entry;
    const options = { pane: this.pane, opacity: 0, keepBuffer: 1, className: 'wx-radar' };
    const bounds = layerBounds(layer);
    if (bounds) options.bounds = bounds;
    if (Number.isFinite(layer.minzoom)) options.minNativeZoom = layer.minzoom;
    if (Number.isFinite(layer.maxzoom) && layer.maxzoom >= (layer.minzoom || 0)) options.maxNativeZoom = layer.maxzoom;
    const tl = L.tileLayer(url, options);
    entry = { time: frame.time, url, layerId: layer.id, tl };
    tl.on('load', this.onChange);
    tl.addTo(this.map);
    const container = tl.getContainer();
    container.dataset.layer = layer.id;
    container.dataset.time = frame.time;
    this.entries.set(url, entry);
    return entry;
  }

  /** Every tile the frame needs for the current view has loaded (or failed). */
  isReady(frame) {
    const entry = this.layer && this.entries.get(frameTemplate(this.layer.id, frame));
    return !!entry && !!entry.tl._map && !entry.tl.isLoading();
  }

  show(frame) {
    const entry = this.ensure(frame);
    if (this.shown === entry) return;
    entry.tl.setOpacity(1);
    entry.tl.getContainer().classList.add('wx-shown');
    if (this.shown) {
      this.shown.tl.setOpacity(0);
      this.shown.tl.getContainer().classList.remove('wx-shown');
    }
    if (this.stale) {
      this._remove(this.stale);
      this.stale = null;
    }
    this.shown = entry;
  }

  /** Drop the frames not in `frames` (the visible one always stays). */
  retain(frames) {
    const keep = new Set(frames.map((frame) => frameTemplate(this.layer.id, frame)));
    for (const [url, entry] of this.entries) {
      if (entry !== this.shown && !keep.has(url)) {
        this._remove(entry);
        this.entries.delete(url);
      }
    }
  }

  clear() {
    for (const entry of this.entries.values()) this._remove(entry);
    if (this.stale) this._remove(this.stale);
    this.entries.clear();
    this.shown = this.stale = null;
  }

  _remove(entry) {
    entry.tl.off('load', this.onChange);
    this.map.removeLayer(entry.tl);
  }
}
