// Coastlines, country borders and US state borders from outlines.json (built
// by tools/build-outlines.mjs), for when there is no basemap: the "Outlines
// only" basemap, or a basemap that cannot be reached (offline, blocked).

let loading = null;

function decode(lines, scale) {
  return lines.map((flat) => {
    const latlngs = [];
    let x = 0;
    let y = 0;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      x += flat[i];
      y += flat[i + 1];
      latlngs.push([y / scale, x / scale]);
    }
    return latlngs;
  });
}

async function load() {
  const resp = await fetch('outlines.json');
  if (!resp.ok) throw new Error(`outlines.json: HTTP ${resp.status}`);
  const data = await resp.json();
  const scale = data.scale || 100;
  const layers = data.layers || {};
  return {
    attribution: data.attribution || '',
    coastline: decode(layers.coastline || [], scale),
    borders: decode(layers.borders || [], scale),
    states: decode(layers.states || [], scale),
  };
}

const STYLE = {
  coastline: { color: '#44505c', weight: 1.1, opacity: 0.9 },
  borders: { color: '#44505c', weight: 1, opacity: 0.8 },
  states: { color: '#6b7785', weight: 0.7, opacity: 0.8, dashArray: null },
};

/** A layer group with the outlines, filled in once outlines.json has loaded. */
export function outlinesLayer(pane, after = Promise.resolve()) {
  const renderer = L.canvas({ pane, padding: 0.5 });
  const group = L.layerGroup([], { pane, attribution: 'Outlines: Natural Earth, US Census Bureau' });
  loading = loading || load();
  Promise.all([loading, after])
    .then(([data]) => {
      for (const name of ['states', 'borders', 'coastline']) {
        if (!data[name].length) continue;
        group.addLayer(L.polyline(data[name], { ...STYLE[name], renderer, pane, interactive: false, smoothFactor: 1 }));
      }
    })
    .catch((err) => {
      // Not fatal: the map keeps its plain background.
      console.warn(`wxtiles: no outlines (${err.message})`);
    });
  return group;
}
