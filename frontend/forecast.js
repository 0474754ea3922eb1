// The point forecast chart's data: which layers it shows, their /series answers
// as uPlot columns, and the CSV of them. Pure functions, no DOM, no uPlot.

const MINUTE = 60 * 1000;

/**
 * The charts for a point, one per quantity: each observed layer (radar past and
 * nowcast), then the forecast layers grouped by units (one series per model).
 * Forecast layers in an observed layer's units (model reflectivity) are left out:
 * an 18-hour run would squash the radar's two hours and its nowcast.
 * Layers without frames are left out too, and blended views (best-*), whose
 * values are the models' own, already charted one line per model.
 *
 * @returns {{id: string, title: string, units: string, kind: string, layers: object[]}[]}
 */
export function chartGroups(layers) {
  const withFrames = layers.filter((l) => Array.isArray(l.frames) && l.frames.length && !l.blend);
  const observed = withFrames.filter((l) => l.kind !== 'forecast');
  const observedUnits = new Set(observed.map((l) => l.units));
  const groups = observed.map((l) => ({ id: l.id, title: l.title || l.id, units: l.units || '', kind: 'observed', layers: [l] }));
  const byUnits = new Map();
  for (const l of withFrames) {
    if (l.kind !== 'forecast' || observedUnits.has(l.units)) continue;
    if (!byUnits.has(l.units)) {
      const group = { id: `forecast-${l.units}`, title: quantityTitle(l), units: l.units || '', kind: 'forecast', layers: [] };
      byUnits.set(l.units, group);
      groups.push(group);
    }
    byUnits.get(l.units).layers.push(l);
  }
  return groups;
}

/** "Temperature 2 m (HRRR)" -> "Temperature 2 m": the quantity, without its source. */
function quantityTitle(layer) {
  return (layer.title || layer.id).replace(/\s*\([^)]*\)\s*$/, '') || layer.id;
}

/** The runs a model's layers offer, newest first; a layer without a model is its own group. */
export function runGroups(groups) {
  const found = new Map();
  for (const group of groups) {
    for (const layer of group.layers) {
      if (layer.kind !== 'forecast') continue;
      const key = runKey(layer);
      if (!found.has(key)) found.set(key, { key, label: seriesName(layer), runs: new Set() });
      for (const r of Array.isArray(layer.runs) ? layer.runs : []) if (r && r.run) found.get(key).runs.add(r.run);
    }
  }
  return [...found.values()].map((g) => ({ ...g, runs: [...g.runs].sort((a, b) => Date.parse(b) - Date.parse(a)) }));
}

export function runKey(layer) {
  return layer.model || layer.id;
}

/** How a layer's series is named in a legend: its model ("HRRR"), else its title. */
export function seriesName(layer) {
  return layer.model ? layer.model.toUpperCase() : layer.title || layer.id;
}

/** Whether a layer's bounds ([w, s, e, n]) hold the point. */
export function covers(layer, lat, lon) {
  const b = layer.bounds;
  if (!Array.isArray(b) || b.length !== 4 || !b.every(Number.isFinite)) return true;
  const [w, s, e, n] = b;
  const x = ((((lon + 180) % 360) + 360) % 360) - 180;
  return lat >= s && lat <= n && (w <= e ? x >= w && x <= e : x >= w || x <= e);
}

/** The `start` of an observed layer's series: the same history the map's loop shows. */
export function historyStart(layer, historyMinutes) {
  const times = (layer.frames || []).map(Date.parse).filter(Number.isFinite);
  if (!times.length) return null;
  return new Date(Math.max(...times) - historyMinutes * MINUTE).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * One layer's /series answer as uPlot series: an observed layer gives the
 * observations and the nowcast (the nowcast starts at the last observation, so
 * the two lines join there); a forecast layer gives one series.
 *
 * @returns {{xs: number[], series: {name: string, kind: string, layer: string, run: string|null, ys: (number|null)[], statuses: string[]}[], now: number|null}}
 */
export function seriesOf(layer, answer) {
  const values = Array.isArray(answer && answer.values) ? answer.values : [];
  const xs = values.map((v) => Date.parse(v.time) / 1000);
  const ys = values.map((v) => (v.status === 'ok' && Number.isFinite(v.value) ? v.value : null));
  const statuses = values.map((v) => v.status);
  if (layer.kind === 'forecast') {
    const run = values.length ? values[0].run || null : null;
    return { xs, now: null, series: [{ name: seriesName(layer), kind: 'forecast', layer: layer.id, run, ys, statuses }] };
  }
  let last = -1;
  values.forEach((v, i) => { if (v.kind === 'observed') last = i; });
  const observed = ys.map((y, i) => (values[i].kind === 'observed' ? y : null));
  const nowcast = ys.map((y, i) => (values[i].kind === 'nowcast' || i === last ? y : null));
  const series = [{ name: 'Observed', kind: 'observed', layer: layer.id, run: null, ys: observed, statuses }];
  if (values.some((v) => v.kind === 'nowcast')) {
    series.push({ name: 'Nowcast', kind: 'nowcast', layer: layer.id, run: null, ys: nowcast, statuses });
  }
  return { xs, now: last >= 0 ? xs[last] : null, series };
}

/** Whether a series answer has anything to draw (not all outside the layer's coverage). */
export function hasCoverage(answer) {
  return Array.isArray(answer && answer.values) && answer.values.some((v) => v.status !== 'no-coverage');
}

const CSV_COLUMNS = ['layer', 'model', 'run', 'time', 'kind', 'lead_minutes', 'value', 'units', 'status', 'lat', 'lon'];

function csvField(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Every series of the chart in one CSV, a row per value (the layers' /series answers, as they came). */
export function seriesCsv(entries, lat, lon) {
  const rows = [CSV_COLUMNS.join(',')];
  for (const { layer, answer } of entries) {
    for (const v of answer.values || []) {
      rows.push([
        layer.id, layer.model || '', v.run || '', v.time, v.kind, v.lead_minutes ?? '',
        v.value ?? '', answer.units || layer.units || '', v.status, lat.toFixed(5), lon.toFixed(5),
      ].map(csvField).join(','));
    }
  }
  return `${rows.join('\n')}\n`;
}

/** "39.10° N, 97.20° W" */
export function formatLatLon(lat, lon) {
  const ns = lat >= 0 ? 'N' : 'S';
  const ew = lon >= 0 ? 'E' : 'W';
  return `${Math.abs(lat).toFixed(2)}\u00B0 ${ns}, ${Math.abs(lon).toFixed(2)}\u00B0 ${ew}`;
}
