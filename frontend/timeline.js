// Frames, labels and permalinks: pure functions, no DOM and no Leaflet.

const MINUTE = 60 * 1000;

/**
 * The animation's frames for one layer of `api/layers`.
 *
 * Observed layers: the observed frames of the last `historyMinutes` before the
 * latest one (further back when `keepTime` asks for an older frame), then the
 * nowcast frames. Forecast (model) layers: every valid time, with its lead
 * from the newest run that has it (the run the tiles use without `run=`).
 *
 * Each frame is {time, ms, kind: 'observed'|'nowcast'|'forecast', lead_minutes, run, from}:
 * `from` is the observation a nowcast frame starts from.
 */
export function buildFrames(layer, { historyMinutes = 120, keepTime = null } = {}) {
  const times = uniqueTimes(Array.isArray(layer.frames) && layer.frames.length ? layer.frames : [layer.latest]);
  if (layer.kind === 'forecast') {
    const runs = (Array.isArray(layer.runs) ? layer.runs : [])
      .map((r) => ({ run: r.run, ms: Date.parse(r.run), frames: new Set(r.frames || []) }))
      .filter((r) => Number.isFinite(r.ms))
      .sort((a, b) => b.ms - a.ms);
    return times.map(({ time, ms }) => {
      const run = runs.find((r) => r.frames.has(time));
      return { time, ms, kind: 'forecast', lead_minutes: run ? Math.round((ms - run.ms) / MINUTE) : null, run: run ? run.run : null };
    });
  }
  if (!times.length) return [];
  const latest = times[times.length - 1].ms;
  let start = latest - historyMinutes * MINUTE;
  const keepMs = keepTime ? Date.parse(keepTime) : NaN;
  if (Number.isFinite(keepMs) && keepMs < start) start = keepMs;
  const observed = times.filter((t) => t.ms >= start).map((t) => ({ ...t, kind: 'observed', lead_minutes: null, run: null }));
  const nowcast = (Array.isArray(layer.nowcast) ? layer.nowcast : [])
    .map((n) => ({ time: n.time, ms: Date.parse(n.time), kind: 'nowcast', lead_minutes: n.lead_minutes, run: null, from: times[times.length - 1].time }))
    .filter((n) => Number.isFinite(n.ms) && n.ms > latest)
    .sort((a, b) => a.ms - b.ms);
  return [...observed, ...nowcast];
}

function uniqueTimes(list) {
  const seen = new Map();
  for (const time of list) {
    const ms = typeof time === 'string' ? Date.parse(time) : NaN;
    if (Number.isFinite(ms)) seen.set(time, ms);
  }
  return [...seen].map(([time, ms]) => ({ time, ms })).sort((a, b) => a.ms - b.ms);
}

export function isForecast(frame) {
  return !!frame && frame.kind !== 'observed';
}

/** Index of the last observed frame, or -1 (forecast layers have none). */
export function lastObservedIndex(frames) {
  for (let i = frames.length - 1; i >= 0; i -= 1) if (frames[i].kind === 'observed') return i;
  return -1;
}

/** The "now" frame: the latest observation, or for a model layer the valid time nearest to `nowMs`. */
export function liveIndex(frames, nowMs = Date.now()) {
  if (!frames.length) return -1;
  const observed = lastObservedIndex(frames);
  if (observed >= 0) return observed;
  let best = 0;
  frames.forEach((f, i) => { if (Math.abs(f.ms - nowMs) < Math.abs(frames[best].ms - nowMs)) best = i; });
  return best;
}

/** The frame at `time`, else the nearest one (ties go to the later frame). */
export function nearestIndex(frames, time) {
  if (!frames.length) return -1;
  const exact = frames.findIndex((f) => f.time === time);
  if (exact >= 0) return exact;
  const ms = Date.parse(time);
  if (!Number.isFinite(ms)) return -1;
  let best = 0;
  frames.forEach((f, i) => { if (Math.abs(f.ms - ms) <= Math.abs(frames[best].ms - ms)) best = i; });
  return best;
}

export function formatLead(minutes) {
  if (!Number.isFinite(minutes)) return '';
  const sign = minutes < 0 ? '\u2212' : '+';
  const m = Math.abs(minutes);
  if (m < 60) return `${sign}${m} min`;
  const h = Math.floor(m / 60);
  const rest = m % 60;
  return rest ? `${sign}${h} h ${rest} min` : `${sign}${h} h`;
}

/** "Observed", "Forecast +25 min", "Forecast +3 h". */
export function kindLabel(frame) {
  if (!frame) return '';
  if (frame.kind === 'observed') return 'Observed';
  const lead = formatLead(frame.lead_minutes);
  return lead ? `Forecast ${lead}` : 'Forecast';
}

const localFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short',
});
const utcFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short',
});

/** The frame time for people: the viewer's time zone, or UTC. */
export function formatTime(iso, { utc = false } = {}) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (utc ? utcFormat : localFormat).format(d);
}

/** The ISO time as "2026-11-27 21:10 UTC" (hover text). */
export function formatUtc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;
}

const UNITS = { degC: '\u00B0C', degF: '\u00B0F', K: 'K' };

export function displayUnits(units) {
  return units ? UNITS[units] || units : '';
}

export function formatValue(value, units) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '';
  const digits = Math.abs(value) < 10 ? 2 : 1;
  const num = value.toLocaleString(undefined, { maximumFractionDigits: digits });
  const u = displayUnits(units);
  return u ? `${num} ${u}` : num;
}

// ---------- permalink ----------
// #layer=reflectivity&time=live&z=6&lat=43.00000&lon=-100.00000&opacity=75[&basemap=none][&pt=41.25000,-93.50000]
// (`pt`: the point of the open forecast chart, lat,lon)

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

export function parsePermalink(hash) {
  const params = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  const out = {};
  const layer = params.get('layer');
  if (layer && /^[A-Za-z0-9._-]{1,64}$/.test(layer)) out.layer = layer;
  const time = params.get('time');
  if (time === 'live' || (time && ISO.test(time))) out.time = time;
  const z = Number(params.get('z'));
  const lat = Number(params.get('lat'));
  const lon = Number(params.get('lon'));
  if (params.has('z') && params.has('lat') && params.has('lon') && [z, lat, lon].every(Number.isFinite)
      && z >= 0 && z <= 22 && Math.abs(lat) <= 90 && Math.abs(lon) <= 540) {
    out.view = { zoom: z, lat, lon };
  }
  const opacity = Number(params.get('opacity'));
  if (params.has('opacity') && Number.isFinite(opacity) && opacity >= 0 && opacity <= 100) out.opacity = opacity / 100;
  const basemap = params.get('basemap');
  if (basemap && /^[A-Za-z0-9._-]{1,64}$/.test(basemap)) out.basemap = basemap;
  const pt = (params.get('pt') || '').split(',').map((v) => (v.trim() === '' ? NaN : Number(v)));
  if (pt.length === 2 && pt.every(Number.isFinite) && Math.abs(pt[0]) <= 90 && Math.abs(pt[1]) <= 180) {
    out.point = { lat: pt[0], lon: pt[1] };
  }
  return out;
}

export function buildPermalink({ layer, time, zoom, lat, lon, opacity, basemap, point = null }) {
  const params = new URLSearchParams();
  if (layer) params.set('layer', layer);
  if (time) params.set('time', time);
  params.set('z', String(Math.round(zoom * 100) / 100));
  params.set('lat', lat.toFixed(5));
  params.set('lon', lon.toFixed(5));
  params.set('opacity', String(Math.round(opacity * 100)));
  if (basemap) params.set('basemap', basemap);
  if (point) params.set('pt', `${point.lat.toFixed(5)},${point.lon.toFixed(5)}`);
  return `#${params.toString().replace(/%3A/g, ':').replace(/%2C/g, ',')}`;
}

// ---------- live verification ----------

function formatHours(hours) {
  if (!Number.isFinite(hours)) return '';
  if (hours < 1) return `${Math.round(hours * 60)} min`;
  return `${Number(hours.toFixed(1))} h`;
}

function formatScore(score) {
  return Number.isFinite(score) ? score.toFixed(2) : '\u2013';
}

/**
 * How good a nowcast frame's lead has been, from `api/layers/{layer}/verification`:
 * {text: "CSI 0.62 (> 20 dBZ) over the last 6 h", title: every threshold's CSI, POD and FAR},
 * or null for observed and model frames or without a verification of this layer.
 * The text names the layer's first threshold (the "any rain" one).
 */
export function skillLabel(verification, frame, layerId) {
  if (!verification || verification.layer !== layerId || !frame || frame.kind !== 'nowcast') return null;
  const leads = Array.isArray(verification.leads) ? verification.leads : [];
  const lead = leads.find((l) => l.lead_minutes === frame.lead_minutes);
  const window = verification.window || {};
  const span = `over the last ${formatHours(window.hours)}`;
  const units = displayUnits(verification.units);
  if (!lead || !lead.cases || !Array.isArray(lead.thresholds) || !lead.thresholds.length) {
    return {
      text: `Not verified ${span}`,
      title: lead ? (verification.message || `No observation arrived at the valid time of a ${formatLead(frame.lead_minutes)} nowcast ${span}.`)
        : `Nowcasts are verified up to ${formatLead(leads.length ? leads[leads.length - 1].lead_minutes : NaN)}.`,
    };
  }
  const first = lead.thresholds[0];
  const event = `> ${first.threshold} ${units}`.trim();
  const text = Number.isFinite(first.csi) ? `CSI ${formatScore(first.csi)} (${event}) ${span}` : `No ${event} forecast or observed ${span}`;
  const lines = lead.thresholds.map((t) => `> ${t.threshold} ${units}: CSI ${formatScore(t.csi)}, POD ${formatScore(t.pod)}, FAR ${formatScore(t.far)}`);
  lines.push(`${lead.cases} ${formatLead(frame.lead_minutes)} nowcasts scored against the observations, ${formatUtc(window.start)} to ${formatUtc(window.end)}`);
  return { text, title: lines.join('\n') };
}
