// The legend, drawn in HTML from a colour scale of `api/colormaps/{name}`.
//
// An "interval" scale is a row of swatches, one a class, labelled with the
// class's lower bound. A "continuous" scale is a gradient bar with the stops at
// their values. A normalised scale (stops 0..1, no units) is labelled with the
// layer's value range.

import { displayUnits } from './timeline.js';

function stopValues(colormap, layer) {
  const stops = colormap.stops || [];
  if (colormap.normalized && layer && Array.isArray(layer.value_range)) {
    const [lo, hi] = layer.value_range;
    return stops.map((s) => lo + s.value * (hi - lo));
  }
  return stops.map((s) => s.value);
}

function formatTick(value) {
  const digits = Math.abs(value) >= 10 || Number.isInteger(value) ? 0 : 1;
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function legendUnits(colormap, layer) {
  return displayUnits(colormap.units || (layer && layer.units) || '');
}

/** Fill `scale` (the bar) and `units` (a text element) for `colormap`. */
export function renderLegend(scale, units, colormap, layer) {
  const stops = colormap.stops || [];
  const values = stopValues(colormap, layer);
  scale.replaceChildren();
  scale.className = `legend-scale legend-${colormap.type === 'interval' ? 'interval' : 'continuous'}`;
  scale.dataset.colormap = colormap.name;
  units.textContent = legendUnits(colormap, layer);
  if (!stops.length) return;

  if (colormap.type === 'interval') {
    stops.forEach((stop, i) => {
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.backgroundColor = stop.color;
      swatch.dataset.value = String(stop.value);
      swatch.dataset.color = stop.color;
      const upper = i + 1 < stops.length ? ` to ${formatTick(values[i + 1])}` : ' and above';
      swatch.title = `${formatTick(values[i])}${upper} ${units.textContent}`.trim();
      const label = document.createElement('span');
      label.className = 'tick';
      label.textContent = formatTick(values[i]);
      swatch.append(label);
      scale.append(swatch);
    });
    return;
  }

  const lo = values[0];
  const hi = values[values.length - 1];
  const at = (v) => (hi > lo ? ((v - lo) / (hi - lo)) * 100 : 0);
  const gradient = stops.map((s, i) => `${s.color} ${at(values[i]).toFixed(2)}%`).join(', ');
  const bar = document.createElement('span');
  bar.className = 'gradient';
  bar.style.backgroundImage = `linear-gradient(to right, ${gradient})`;
  scale.append(bar);
  // Labels at the stops, skipping those that would overlap their neighbour.
  let last = -Infinity;
  stops.forEach((stop, i) => {
    const pos = at(values[i]);
    const isLast = i === stops.length - 1;
    if (pos - last < (isLast ? 8 : 11)) return;
    last = pos;
    const mark = document.createElement('span');
    mark.className = 'tick';
    mark.style.left = `${pos}%`;
    mark.dataset.value = String(values[i]);
    mark.textContent = formatTick(values[i]);
    scale.append(mark);
  });
}
