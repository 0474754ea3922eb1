// Builds frontend/outlines.json: coastlines, country borders and US state
// borders for the viewer's offline fallback (drawn when the basemap is
// unreachable). Run from frontend/ after `npm install`:
//
//   node tools/build-outlines.mjs
//
// Sources (devDependencies): world-atlas (Natural Earth 1:50m) and us-atlas
// (US Census 1:10m), both public domain. Lines are simplified, quantised to
// 0.01 degree and stored delta-encoded:
//   {"format": "wxtiles-outlines/1", "scale": 100,
//    "layers": {"coastline": [[x0, y0, dx1, dy1, ...], ...], "borders": [...], "states": [...]}}
// where lon = x / scale, lat = y / scale.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mesh } from 'topojson-client';
import { presimplify, simplify, quantile } from 'topojson-simplify';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, '..', 'node_modules');
const SCALE = 100;

function load(pkg, file, keep) {
  const topology = JSON.parse(readFileSync(join(modules, pkg, file), 'utf8'));
  const simplified = presimplify(topology);
  return simplify(simplified, quantile(simplified, keep));
}

// Lines that cross the antimeridian are cut there, or they would be drawn
// straight across the whole map.
function splitAtAntimeridian(line) {
  const parts = [[line[0]]];
  for (let i = 1; i < line.length; i += 1) {
    if (Math.abs(line[i][0] - line[i - 1][0]) > 180) parts.push([]);
    parts[parts.length - 1].push(line[i]);
  }
  return parts.filter((part) => part.length > 1);
}

function encode(multiLine) {
  const out = [];
  for (const line of multiLine.coordinates.flatMap(splitAtAntimeridian)) {
    const flat = [];
    let px = 0;
    let py = 0;
    for (const [lon, lat] of line) {
      const x = Math.round(lon * SCALE);
      const y = Math.round(lat * SCALE);
      if (flat.length && x === px && y === py) continue;
      flat.push(x - px, y - py);
      px = x;
      py = y;
    }
    if (flat.length >= 4) out.push(flat);
  }
  return out;
}

const world = load('world-atlas', 'countries-50m.json', 0.35);
const land = load('world-atlas', 'land-50m.json', 0.35);
const states = load('us-atlas', 'states-10m.json', 0.2);

const layers = {
  coastline: encode(mesh(land, land.objects.land)),
  borders: encode(mesh(world, world.objects.countries, (a, b) => a !== b)),
  states: encode(mesh(states, states.objects.states, (a, b) => a !== b)),
};
const body = JSON.stringify({
  format: 'wxtiles-outlines/1',
  scale: SCALE,
  attribution: 'Natural Earth; US Census Bureau',
  layers,
});
writeFileSync(join(here, '..', 'outlines.json'), body + '\n');
const counts = Object.entries(layers).map(([k, v]) => `${k} ${v.length} lines`).join(', ');
console.log(`outlines.json: ${(body.length / 1024).toFixed(0)} kB (${counts})`);
