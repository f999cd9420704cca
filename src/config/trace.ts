import type { TraceConfig } from './schema.ts';

/** A trace setting that does not validate; load.ts turns it into a ConfigError. */
export type TraceConfigProblem = string;

type MutableTrace = { -readonly [K in keyof TraceConfig]: TraceConfig[K] };

const LEVELS = ['OFF', 'TIMESTAMPS', 'TENSORS'];
const MODES = ['triton', 'opentelemetry'];

function integer(key: string, text: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim())) throw new Error(`--trace-config ${key}: '${text}' is not an integer`);
  const n = Number(text);
  if (n < min || n > max) throw new Error(`--trace-config ${key}: ${n} is outside ${min}..${max}`);
  return n;
}

/**
 * Folds Triton's `--trace-config [mode,]key=value` entries into the trace fields. The list option splits
 * its values on commas, so `triton,file=/tmp/t.json` arrives as two entries: a bare mode name scopes the
 * entry after it. `level` may be given more than once (levels add up, as in Triton). Throws a message
 * naming the entry.
 */
export function applyTraceSettings(trace: MutableTrace): void {
  let scope: string | undefined;
  let levels: string[] | undefined;
  for (const raw of trace.settings) {
    const entry = raw.trim();
    if (MODES.includes(entry)) {
      scope = entry;
      continue;
    }
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new Error(`--trace-config: '${entry}' is not key=value (or triton,key=value / opentelemetry,key=value)`);
    const key = entry.slice(0, eq).trim();
    const value = entry.slice(eq + 1).trim();
    const within = scope;
    scope = undefined;
    const need = (mode: string): void => {
      if (within !== undefined && within !== mode) throw new Error(`--trace-config ${within},${key}: '${key}' is a setting of mode ${mode}`);
    };
    switch (key) {
      case 'level':
        levels = [...(levels ?? []), value];
        break;
      case 'rate': trace.rate = integer(key, value, 1, 4_294_967_295); break;
      case 'count': trace.count = integer(key, value, -1, 2_147_483_647); break;
      case 'mode':
        if (!MODES.includes(value)) throw new Error(`--trace-config mode: '${value}' is not one of ${MODES.join(', ')}`);
        trace.mode = value as TraceConfig['mode'];
        break;
      case 'file': need('triton'); trace.file = value; break;
      case 'log-frequency': need('triton'); trace.logFrequency = integer(key, value, 0, 4_294_967_295); break;
      case 'url': need('opentelemetry'); trace.otlpUrl = value; break;
      default:
        throw new Error(`--trace-config: unknown setting '${key}' (level, rate, count, mode, triton,file, triton,log-frequency, opentelemetry,url)`);
    }
  }
  if (levels !== undefined) trace.level = levels;
}

/** Checks the folded trace settings; returns a message naming the setting at fault, or undefined. */
export function traceConfigProblem(trace: TraceConfig): TraceConfigProblem | undefined {
  const levels = trace.level.map((l) => l.toUpperCase());
  for (const l of levels) if (!LEVELS.includes(l)) return `--trace-level: '${l}' is not one of ${LEVELS.join(', ')}`;
  if (levels.length === 0) return '--trace-level: give OFF or TIMESTAMPS';
  if (levels.includes('OFF') && levels.length > 1) return `--trace-level: OFF cannot be combined with other levels (got ${levels.join(', ')})`;
  if (trace.otlpUrl !== '') {
    let url: URL;
    try {
      url = new URL(trace.otlpUrl);
    } catch {
      return `--trace-otlp-url: '${trace.otlpUrl}' is not a URL (expected http://host:4318)`;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return `--trace-otlp-url: '${trace.otlpUrl}' must use http: or https:`;
    if (trace.mode !== 'opentelemetry') return '--trace-otlp-url is the exporter of trace mode opentelemetry: add --trace-mode opentelemetry (or --trace-config mode=opentelemetry)';
  }
  if (trace.mode === 'opentelemetry' && trace.otlpUrl === '') return 'trace mode opentelemetry needs --trace-otlp-url (the collector, e.g. http://127.0.0.1:4318)';
  return undefined;
}

/** The level list upper-cased (Triton's spelling), once it validated. */
export function normalizedLevels(trace: TraceConfig): string[] {
  return trace.level.map((l) => l.toUpperCase());
}
