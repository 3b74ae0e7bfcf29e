/**
 * Plain SVG charts for the bench's results (no dependency): panels of side-by-side bars (one
 * panel per measure of the main table) and line charts (the scale curves).
 */

export interface Bar {
  name: string;
  value: number;
}

export interface BarPanel {
  title: string;
  unit: string;
  /** "higher" or "lower" is better: printed under the title. */
  better: 'higher' | 'lower';
  bars: Bar[];
}

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

/** One colour per implementation or series, the same in every chart. */
const PALETTE: Record<string, string> = {
  ours: '#1f77b4',
  'ours-nats': '#17becf',
  'ocpp-ws-io': '#ff7f0e',
  'ocpp-rpc': '#2ca02c',
  ws: '#7f7f7f',
  'naive-relay': '#9467bd',
};
const SPARE = ['#d62728', '#8c564b', '#e377c2', '#bcbd22', '#aec7e8'];

function colour(name: string, index: number): string {
  return PALETTE[name] ?? SPARE[index % SPARE.length];
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function number(value: number): string {
  if (Number.isInteger(value) || value >= 10_000) return Math.round(value).toLocaleString('en-US');
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** A round step for about `ticks` ticks from 0 to `max`. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const residual = raw / magnitude;
  return (residual > 5 ? 10 : residual > 2 ? 5 : residual > 1 ? 2 : 1) * magnitude;
}

const FONT = 'font-family="sans-serif"';

/** The opening of a chart: white canvas, title and subtitle (the machine and run it came from). */
function svgOpen(width: number, height: number, title: string, subtitle: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text x="10" y="42" font-size="11" fill="#555">${escape(subtitle)}</text>`,
  ];
}

/** Panels side by side (wrapping every `perRow`), each with one bar per implementation. */
export function barPanels(title: string, subtitle: string, panels: BarPanel[], perRow = 3): string {
  const panelWidth = 300;
  const panelHeight = 240;
  const rows = Math.ceil(panels.length / perRow);
  const parts = svgOpen(panelWidth * Math.min(perRow, panels.length), 60 + rows * panelHeight, title, subtitle);
  panels.forEach((panel, index) => {
    const x0 = (index % perRow) * panelWidth;
    const y0 = 60 + Math.floor(index / perRow) * panelHeight;
    const plotTop = y0 + 50;
    const plotHeight = panelHeight - 105;
    const max = Math.max(...panel.bars.map((bar) => bar.value), 0) || 1;
    const slot = (panelWidth - 40) / Math.max(panel.bars.length, 1);
    parts.push(`<text x="${x0 + 10}" y="${y0 + 14}" font-size="12" font-weight="bold">${escape(panel.title)}</text>`);
    parts.push(`<text x="${x0 + 10}" y="${y0 + 28}" font-size="10" fill="#555">${escape(`${panel.unit}, ${panel.better} is better`)}</text>`);
    parts.push(`<line x1="${x0 + 20}" y1="${plotTop + plotHeight}" x2="${x0 + panelWidth - 20}" y2="${plotTop + plotHeight}" stroke="#999"/>`);
    panel.bars.forEach((bar, barIndex) => {
      const barHeight = (bar.value / max) * plotHeight;
      const x = x0 + 20 + barIndex * slot + slot * 0.15;
      const barWidth = slot * 0.7;
      const y = plotTop + plotHeight - barHeight;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${barHeight.toFixed(1)}" fill="${colour(bar.name, barIndex)}"/>`);
      parts.push(`<text x="${(x + barWidth / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" font-size="10" text-anchor="middle">${escape(number(bar.value))}</text>`);
      parts.push(
        `<text x="${(x + barWidth / 2).toFixed(1)}" y="${plotTop + plotHeight + 14}" font-size="10" text-anchor="middle">${escape(bar.name)}</text>`,
      );
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Line charts side by side (wrapping every `perRow`), x and y from 0, one line per series. */
export function lineCharts(title: string, subtitle: string, charts: LineChart[], perRow = 2): string {
  const chartWidth = 420;
  const chartHeight = 300;
  const rows = Math.ceil(charts.length / perRow);
  const parts = svgOpen(chartWidth * Math.min(perRow, charts.length), 60 + rows * chartHeight, title, subtitle);
  charts.forEach((chart, index) => {
    const x0 = (index % perRow) * chartWidth;
    const y0 = 60 + Math.floor(index / perRow) * chartHeight;
    const left = x0 + 60;
    const right = x0 + chartWidth - 20;
    const top = y0 + 30;
    const bottom = y0 + chartHeight - 60;
    const points = chart.series.flatMap((series) => series.points);
    const xMax = Math.max(...points.map(([x]) => x), 1);
    const yMax = Math.max(...points.map(([, y]) => y), 0) || 1;
    const yMin = Math.min(...points.map(([, y]) => y), 0);
    const xStep = niceStep(xMax, 5);
    const yStep = niceStep(yMax - yMin, 5);
    const xTop = Math.ceil(xMax / xStep) * xStep;
    const yTop = Math.ceil(yMax / yStep) * yStep;
    const yBottom = Math.floor(yMin / yStep) * yStep;
    const px = (x: number): number => left + (x / xTop) * (right - left);
    const py = (y: number): number => bottom - ((y - yBottom) / (yTop - yBottom)) * (bottom - top);
    parts.push(`<text x="${x0 + 10}" y="${y0 + 16}" font-size="12" font-weight="bold">${escape(chart.title)}</text>`);
    for (let y = yBottom; y <= yTop + yStep / 2; y += yStep) {
      parts.push(`<line x1="${left}" y1="${py(y).toFixed(1)}" x2="${right}" y2="${py(y).toFixed(1)}" stroke="#eee"/>`);
      parts.push(`<text x="${left - 4}" y="${(py(y) + 3).toFixed(1)}" font-size="9" text-anchor="end">${escape(number(y))}</text>`);
    }
    for (let x = 0; x <= xTop + xStep / 2; x += xStep) {
      parts.push(`<text x="${px(x).toFixed(1)}" y="${bottom + 12}" font-size="9" text-anchor="middle">${escape(number(x))}</text>`);
    }
    parts.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#999"/>`);
    parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#999"/>`);
    parts.push(`<text x="${(left + right) / 2}" y="${bottom + 26}" font-size="10" text-anchor="middle">${escape(chart.xLabel)}</text>`);
    parts.push(
      `<text x="${x0 + 12}" y="${(top + bottom) / 2}" font-size="10" text-anchor="middle" transform="rotate(-90 ${x0 + 12} ${(top + bottom) / 2})">${escape(chart.yLabel)}</text>`,
    );
    chart.series.forEach((series, seriesIndex) => {
      const stroke = colour(series.name, seriesIndex);
      const sorted = [...series.points].sort((a, b) => a[0] - b[0]);
      if (sorted.length > 1) {
        const path = sorted.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
        parts.push(`<path d="${path}" fill="none" stroke="${stroke}" stroke-width="2"/>`);
      }
      for (const [x, y] of sorted) {
        parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${stroke}"><title>${escape(`${series.name}: ${number(x)} → ${number(y)}`)}</title></circle>`);
      }
      const legendY = bottom + 42 + Math.floor(seriesIndex / 3) * 12;
      const legendX = left + (seriesIndex % 3) * 115;
      parts.push(`<rect x="${legendX}" y="${legendY - 8}" width="10" height="10" fill="${stroke}"/>`);
      parts.push(`<text x="${legendX + 14}" y="${legendY + 1}" font-size="10">${escape(series.name)}</text>`);
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
