// The point forecast panel: charts of /series at a clicked point, one per
// quantity (radar past and nowcast; each model's run for temperature, wind...),
// a run picker per model, and a CSV of everything charted. uPlot (the global
// `uPlot`, vendor/uplot/) is loaded the first time the panel opens.

import {
  chartGroups, covers, formatLatLon, hasCoverage, historyStart, runGroups, runKey, seriesCsv, seriesOf,
} from './forecast.js';
import { displayUnits, formatTime, formatUtc, formatValue } from './timeline.js';

const COLORS = { observed: '#2f6fde', nowcast: '#e08a00' };
const MODEL_COLORS = { hrrr: '#7b3fbf', gfs: '#138a63' };
const OTHER_COLORS = ['#c2185b', '#5d4037', '#00838f', '#546e7a'];
const FORECAST_DASH = [6, 4];
const STATUS_TEXT = { 'no-echo': 'No echo', 'no-coverage': 'No coverage' };

let uplotLoading = null;

function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!uplotLoading) {
    uplotLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = 'vendor/uplot/uPlot.iife.min.js';
      script.onload = () => resolve(window.uPlot);
      script.onerror = () => {
        uplotLoading = null;
        script.remove();
        reject(new Error('the chart library did not load'));
      };
      document.head.append(script);
    });
  }
  return uplotLoading;
}

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** A vertical line at "now" (the last observation, or the clock), with the forecast side tinted. */
function nowLine(now) {
  return {
    hooks: {
      drawClear: [(u) => {
        if (now === null) return;
        const x = u.valToPos(now, 'x', true);
        const { left, top, width, height } = u.bbox;
        if (x < left || x > left + width) return;
        const ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = 'rgba(224, 138, 0, 0.08)';
        ctx.fillRect(x, top, left + width - x, height);
        ctx.restore();
      }],
      draw: [(u) => {
        if (now === null) return;
        const x = u.valToPos(now, 'x', true);
        const { left, top, width, height } = u.bbox;
        if (x < left || x > left + width) return;
        const ctx = u.ctx;
        const ratio = window.devicePixelRatio || 1;
        ctx.save();
        ctx.strokeStyle = '#5b6673';
        ctx.lineWidth = ratio;
        ctx.setLineDash([2 * ratio, 3 * ratio]);
        ctx.beginPath();
        ctx.moveTo(Math.round(x), top);
        ctx.lineTo(Math.round(x), top + height);
        ctx.stroke();
        ctx.fillStyle = '#5b6673';
        ctx.font = `${11 * ratio}px system-ui, sans-serif`;
        ctx.textAlign = x > left + width - 40 * ratio ? 'right' : 'left';
        ctx.fillText('now', x + (ctx.textAlign === 'right' ? -3 : 3) * ratio, top + 11 * ratio);
        ctx.restore();
      }],
    },
  };
}

export class PointChart {
  /**
   * @param {object} options
   * @param {HTMLElement} options.root  the panel (#chart-panel)
   * @param {(url: string) => Promise<any>} options.fetchJSON
   * @param {() => object[]} options.layers  the layers of api/layers
   * @param {() => boolean} options.utc  times in UTC instead of local
   * @param {() => number} options.historyMinutes
   * @param {(point: {lat: number, lon: number}|null) => void} options.onChange  the panel opened, moved or closed
   */
  constructor({ root, fetchJSON, layers, utc, historyMinutes, onChange }) {
    Object.assign(this, { root, fetchJSON, getLayers: layers, getUtc: utc, historyMinutes, onChange });
    this.point = null;
    this.runs = new Map(); // run group key -> the run picked (absent: the newest)
    this.entries = []; // {layer, answer} of what is charted
    this.groups = []; // the charts' groups of layers (chartGroups), covering the point
    this.charts = [];
    this.token = 0;
    this.signature = '';
    this.heading = root.querySelector('#chart-title');
    this.where = root.querySelector('#chart-where');
    this.status = root.querySelector('#chart-status');
    this.runsBox = root.querySelector('#chart-runs');
    this.body = root.querySelector('#chart-body');
    this.download = root.querySelector('#chart-csv');
    root.querySelector('#chart-close').addEventListener('click', () => this.close());
    this.download.addEventListener('click', () => this.downloadCsv());
    root.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        this.close();
      }
    });
    new ResizeObserver(() => this.resize()).observe(this.body);
  }

  get isOpen() {
    return this.point !== null;
  }

  /** Open (or move) the panel at a point and load its charts. */
  open(lat, lon, { focus = true } = {}) {
    const moved = !this.point || this.point.lat !== lat || this.point.lon !== lon;
    this.point = { lat, lon };
    if (moved) this.runs.clear();
    this.root.hidden = false;
    this.where.textContent = formatLatLon(lat, lon);
    if (focus) this.heading.focus({ preventScroll: true });
    this.onChange(this.point);
    return this.load();
  }

  close() {
    if (!this.point) return;
    this.point = null;
    this.token += 1;
    this.root.hidden = true;
    this.destroyCharts();
    this.entries = [];
    this.groups = [];
    this.onChange(null);
  }

  /** The layers changed (new frames, new runs): reload if what the chart draws from did. */
  layersChanged() {
    if (!this.point) return;
    const signature = this.layerSignature();
    if (signature !== this.signature) this.load();
  }

  layerSignature() {
    return JSON.stringify(this.getLayers().map((l) => [l.id, l.latest, (l.runs || []).length, (l.nowcast || []).length]));
  }

  async load() {
    const token = (this.token += 1);
    const { lat, lon } = this.point;
    this.signature = this.layerSignature();
    const groups = chartGroups(this.getLayers());
    const inside = groups
      .map((g) => ({ ...g, layers: g.layers.filter((l) => covers(l, lat, lon)) }))
      .filter((g) => g.layers.length);
    this.fillRuns(runGroups(inside));
    this.root.setAttribute('aria-busy', 'true');
    this.setStatus('Loading\u2026');
    this.download.disabled = true;
    if (!inside.length) {
      this.finish(token, [], [], groups.length ? 'No layer covers this point.' : 'The server has no frames yet.');
      return;
    }
    const requests = inside.flatMap((g) => g.layers.map((layer) => this.fetchSeries(layer, lat, lon).then(
      (answer) => ({ layer, answer }),
      (error) => ({ layer, error }),
    )));
    try {
      await loadUplot(); // the charts draw with the global uPlot
    } catch (err) {
      this.finish(token, [], [], `Could not show the chart: ${err.message}.`);
      return;
    }
    const results = await Promise.all(requests);
    if (token !== this.token) return;
    const failed = results.filter((r) => r.error);
    const charted = results.filter((r) => r.answer && hasCoverage(r.answer));
    const problems = failed.map((r) => `${r.layer.title || r.layer.id}: ${r.error.message}.`);
    let message = problems.join(' ');
    if (!charted.length) {
      message = failed.length === results.length
        ? `Could not load the forecast. ${message}`
        : `This point is outside every layer\u2019s coverage. ${message}`;
    }
    this.finish(token, inside, charted, message.trim());
  }

  fetchSeries(layer, lat, lon) {
    const params = new URLSearchParams({ lon: lon.toFixed(5), lat: lat.toFixed(5) });
    if (layer.kind === 'forecast') {
      const run = this.runs.get(runKey(layer));
      if (run) params.set('run', run);
    } else {
      const start = historyStart(layer, this.historyMinutes());
      if (start) params.set('start', start);
    }
    return this.fetchJSON(`api/layers/${encodeURIComponent(layer.id)}/series?${params}`);
  }

  finish(token, groups, charted, message) {
    if (token !== this.token) return;
    this.root.removeAttribute('aria-busy');
    this.setStatus(message);
    this.entries = charted;
    this.groups = groups;
    this.download.disabled = charted.length === 0;
    this.drawCharts();
  }

  drawCharts() {
    this.destroyCharts();
    for (const group of this.groups) {
      const entries = this.entries.filter((e) => group.layers.includes(e.layer));
      if (entries.length) this.drawChart(window.uPlot, group, entries);
    }
  }

  setStatus(message) {
    this.status.textContent = message || '';
    this.status.hidden = !message;
  }

  fillRuns(groups) {
    const utc = this.getUtc();
    this.runsBox.replaceChildren(...groups.filter((g) => g.runs.length).map((g) => {
      const id = `chart-run-${g.key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
      const select = el('select', { id });
      select.dataset.group = g.key;
      select.append(...g.runs.map((run, i) => new Option(`${formatTime(run, { utc })}${i === 0 ? ' (newest)' : ''}`, run)));
      select.value = this.runs.get(g.key) || g.runs[0];
      select.title = `Model run ${formatUtc(select.value)}`;
      select.addEventListener('change', () => {
        if (select.value === g.runs[0]) this.runs.delete(g.key);
        else this.runs.set(g.key, select.value);
        select.title = `Model run ${formatUtc(select.value)}`;
        this.load();
      });
      return el('div', { className: 'chart-run' }, [el('label', { htmlFor: id, textContent: `${g.label} run` }), select]);
    }));
  }

  drawChart(uPlot, group, entries) {
    const utc = this.getUtc();
    const parts = entries.map(({ layer, answer }) => ({ layer, ...seriesOf(layer, answer) }));
    const data = uPlot.join(parts.map((p) => [p.xs, ...p.series.map((s) => s.ys)]));
    const flat = parts.flatMap((p) => p.series.map((s) => ({ ...s, at: new Map(p.xs.map((x, i) => [x, i])) })));
    const units = displayUnits(group.units);
    let other = 0;
    const series = [
      {
        label: utc ? 'UTC' : 'Time',
        value: (u, ts) => (ts === null || ts === undefined ? '\u2013' : timeText(ts, utc)),
      },
      ...flat.map((s) => {
        const layer = parts.find((p) => p.layer.id === s.layer).layer;
        const color = s.kind === 'observed' ? COLORS.observed : s.kind === 'nowcast' ? COLORS.nowcast
          : MODEL_COLORS[layer.model] || OTHER_COLORS[other++ % OTHER_COLORS.length];
        return {
          label: s.kind === 'forecast' && s.run ? `${s.name} run ${formatTime(s.run, { utc })}` : s.name,
          stroke: color,
          width: 2,
          dash: s.kind === 'observed' ? undefined : s.kind === 'nowcast' ? FORECAST_DASH : undefined,
          points: { show: true, size: 5, fill: color },
          value: (u, v, si, idx) => {
            if (v !== null && v !== undefined) return formatValue(v, group.units);
            const i = idx === null ? undefined : s.at.get(u.data[0][idx]);
            return (i !== undefined && STATUS_TEXT[s.statuses[i]]) || '\u2013';
          },
        };
      }),
    ];
    const now = parts.map((p) => p.now).find((t) => t !== null) ?? Date.now() / 1000;
    const figure = el('figure', { className: 'chart' });
    const caption = el('figcaption', { textContent: units ? `${group.title} (${units})` : group.title });
    figure.append(caption);
    this.body.append(figure);
    const chart = new uPlot({
      width: this.chartWidth(),
      height: this.body.clientWidth < 420 ? 150 : 170,
      tzDate: utc ? (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC') : (ts) => new Date(ts * 1000),
      scales: { x: { time: true } },
      series,
      axes: [
        { stroke: '#5b6673', grid: { stroke: '#e4e7eb' }, ticks: { stroke: '#e4e7eb' } },
        { stroke: '#5b6673', grid: { stroke: '#e4e7eb' }, ticks: { stroke: '#e4e7eb' }, size: 44, values: (u, vals) => vals.map((v) => v.toLocaleString()) },
      ],
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: { live: true },
      plugins: [nowLine(now)],
    }, data, figure);
    chart.root.dataset.group = group.id;
    chart.wxSeries = flat.map(({ layer, kind, run, name }) => ({ layer, kind, run, name }));
    this.charts.push(chart);
  }

  chartWidth() {
    return Math.max(this.body.clientWidth, 200);
  }

  resize() {
    const width = this.chartWidth();
    for (const chart of this.charts) if (Math.abs(chart.width - width) > 1) chart.setSize({ width, height: chart.height });
  }

  destroyCharts() {
    for (const chart of this.charts) chart.destroy();
    this.charts = [];
    this.body.replaceChildren();
  }

  /** Redraw with the current time zone setting: the same data, other labels. */
  redraw() {
    if (!this.point || this.root.hasAttribute('aria-busy')) return; // a load in flight draws with it
    this.fillRuns(runGroups(this.groups));
    this.drawCharts();
  }

  downloadCsv() {
    if (!this.point || !this.entries.length) return;
    const { lat, lon } = this.point;
    const blob = new Blob([seriesCsv(this.entries, lat, lon)], { type: 'text/csv' });
    const link = el('a', { href: URL.createObjectURL(blob), download: `wxtiles-point-${lat.toFixed(3)}_${lon.toFixed(3)}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}

function timeText(ts, utc) {
  const iso = new Date(ts * 1000).toISOString();
  return utc ? `${formatTime(iso, { utc: true })} (${formatTime(iso)})` : `${formatTime(iso)} (${formatUtc(iso).slice(11)})`;
}
