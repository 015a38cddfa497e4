// Time-series charts with uPlot: a component that draws series of {timestamp, value} points
// (the shape of /execution/{id}/metrics) and redraws in place when new data comes.
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLOURS = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#14b8a6"];

// series: [{label, points: [{timestamp, value}]}]; all share the first one's x values when
// they line up, else each is aligned on the union of timestamps.
function columns(series) {
  const xs = new Set();
  for (const s of series) for (const p of s.points) xs.add(Date.parse(p.timestamp) / 1000);
  const x = [...xs].sort((a, b) => a - b);
  const at = new Map(x.map((v, i) => [v, i]));
  const cols = [x];
  for (const s of series) {
    const y = new Array(x.length).fill(null);
    for (const p of s.points) y[at.get(Date.parse(p.timestamp) / 1000)] = p.value;
    cols.push(y);
  }
  return cols;
}

export function Chart({ title, series, unit = "", height = 180, name }) {
  const el = useRef(null);
  const plot = useRef(null);
  const n = series.reduce((a, s) => a + s.points.length, 0);
  useEffect(() => {
    const data = columns(series);
    if (!plot.current) {
      const opts = {
        title,
        width: Math.max(300, el.current.clientWidth || 600),
        height,
        series: [{}, ...series.map((s, i) => ({
          label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
          value: (u, v) => (v === null || v === undefined ? "-" : (+v.toFixed(2)) + unit),
        }))],
        axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => v + unit) }],
      };
      plot.current = new uPlot(opts, data, el.current);
    } else {
      plot.current.setData(data);
    }
  }, [JSON.stringify(series.map((s) => s.points.length)), series]);
  useEffect(() => () => { if (plot.current) plot.current.destroy(); plot.current = null; }, []);
  return h("div", { class: "chart", ref: el, "data-chart": name || title, "data-points": n });
}
