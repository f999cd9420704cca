const NUMERIC = /^(–|-?[\d,]+(\.\d+)?x?)$/;

/** A markdown table; columns of numbers align right, text left; cells are escaped for pipes. */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const line = (cells: readonly string[]): string => `| ${cells.map(esc).join(' | ')} |`;
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => NUMERIC.test(r[i] ?? '')));
  return [line(header), line(numeric.map((n) => (n ? '---:' : '---'))), ...rows.map(line)].join('\n');
}

export const n0 = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));
export const n2 = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));
export const ratio = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}x`);

/** "goal: ... — met (value)" as one line a reader can scan. */
export function verdict(goal: string, met: boolean | undefined, value: string): string {
  const word = met === undefined ? 'not measured' : met ? '**met**' : '**not met**';
  return `Goal: ${goal} — ${word} (${value}).`;
}

/** One section of docs/benchmarks.md. */
export interface Section {
  readonly title: string;
  readonly body: string;
}
