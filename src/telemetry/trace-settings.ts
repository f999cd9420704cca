import type { TraceConfig } from '../config/schema.ts';
import { InvalidTraceSetting, Unimplemented } from '../core/errors.ts';

export type TraceLevel = 'OFF' | 'TIMESTAMPS' | 'TENSORS';
export type TraceMode = 'triton' | 'opentelemetry';

/** One scope's trace settings (global, or a model's effective ones), in Triton's terms. */
export interface TraceSettings {
  readonly file: string;
  /** ['OFF'], or TIMESTAMPS and/or TENSORS (TENSORS traces timestamps: sluice records no tensors). */
  readonly level: readonly TraceLevel[];
  readonly rate: number;
  /** -1 = unlimited. */
  readonly count: number;
  readonly logFrequency: number;
  readonly mode: TraceMode;
}

/** Fields a client may change; null clears a model's override (or, globally, restores the start value). */
export type TraceSettingsUpdate = { -readonly [K in 'level' | 'rate' | 'count' | 'logFrequency']?: TraceSettings[K] | null };

/** A setting as both wires carry it: a list of strings (REST scalars become one-item lists), null = clear. */
export type WireSettings = Readonly<Record<string, readonly string[] | null>>;

/** Triton's field name of each setting. */
export const FIELD = { level: 'trace_level', rate: 'trace_rate', count: 'trace_count', logFrequency: 'log_frequency', file: 'trace_file', mode: 'trace_mode' } as const;

const U32_MAX = 4_294_967_295;
const I32_MAX = 2_147_483_647;

/** The start-up settings from the validated config. */
export function settingsFromConfig(c: TraceConfig): TraceSettings {
  return { file: c.file, level: c.level as TraceLevel[], rate: c.rate, count: c.count, logFrequency: c.logFrequency, mode: c.mode };
}

/** Whether requests under these settings are traced at all. */
export function tracingOn(s: TraceSettings): boolean {
  return !s.level.includes('OFF') && s.level.length > 0;
}

/** The settings as Triton answers them: strings, trace_level a list; file fields only in mode triton. */
export function settingsWire(s: TraceSettings): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { trace_level: [...s.level], trace_rate: String(s.rate), trace_count: String(s.count) };
  if (s.mode === 'triton') {
    out['log_frequency'] = String(s.logFrequency);
    out['trace_file'] = s.file;
  }
  out['trace_mode'] = s.mode;
  return out;
}

/** A REST body field as the shared list form (numbers are tolerated where Triton wants strings). */
export function restValue(field: string, v: unknown): readonly string[] | null {
  if (v === null) return null;
  if (typeof v === 'string') return [v];
  if (typeof v === 'number' && Number.isSafeInteger(v)) return [String(v)];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw InvalidTraceSetting(field, `expected a string${field === FIELD.level ? ' or a list of strings' : ''} or null, got ${JSON.stringify(v)}`);
}

function one(field: string, values: readonly string[]): string {
  if (values.length !== 1) throw InvalidTraceSetting(field, `expected one value, got ${values.length}`);
  return values[0]!;
}

function integer(field: string, values: readonly string[], min: number, max: number): number {
  const text = one(field, values).trim();
  if (!/^-?\d+$/.test(text)) throw InvalidTraceSetting(field, `'${text.slice(0, 40)}' is not an integer`);
  const n = Number(text);
  if (n < min || n > max) throw InvalidTraceSetting(field, `${n} is outside ${min}..${max}`);
  return n;
}

function levels(values: readonly string[]): TraceLevel[] {
  const field = FIELD.level;
  if (values.length === 0) throw InvalidTraceSetting(field, 'expected OFF or TIMESTAMPS');
  const out: TraceLevel[] = [];
  for (const v of values) {
    if (v !== 'OFF' && v !== 'TIMESTAMPS' && v !== 'TENSORS') throw InvalidTraceSetting(field, `'${v.slice(0, 40)}' is not one of OFF, TIMESTAMPS, TENSORS`);
    if (!out.includes(v)) out.push(v);
  }
  if (out.includes('OFF') && out.length > 1) throw InvalidTraceSetting(field, "only 'OFF' may be given when tracing is off");
  return out;
}

/**
 * Parses an update request. As in Triton, trace_file cannot change over the network (a client must not
 * pick paths the server writes), nor trace_mode (the sink is chosen at start); any other field name is
 * refused rather than silently ignored.
 */
export function parseUpdate(settings: WireSettings): TraceSettingsUpdate {
  const update: TraceSettingsUpdate = {};
  for (const [field, values] of Object.entries(settings)) {
    switch (field) {
      case FIELD.level: update.level = values === null ? null : levels(values); break;
      case FIELD.rate: update.rate = values === null ? null : integer(field, values, 1, U32_MAX); break;
      case FIELD.count: update.count = values === null ? null : integer(field, values, -1, I32_MAX); break;
      case FIELD.logFrequency: update.logFrequency = values === null ? null : integer(field, values, 0, U32_MAX); break;
      case FIELD.file: throw Unimplemented("updating 'trace_file' through the protocol (set it at start with --trace-file)");
      case FIELD.mode: throw Unimplemented("updating 'trace_mode' through the protocol (set it at start with --trace-mode)");
      default: throw InvalidTraceSetting(field.slice(0, 60), 'unknown setting (trace_level, trace_rate, trace_count, log_frequency)');
    }
  }
  return update;
}
