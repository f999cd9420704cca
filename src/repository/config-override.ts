import { InvalidModelConfig } from '../core/errors.ts';
import type { ConfigDraft } from './draft.ts';
import { readPbtxtConfig } from './pbtxt-config.ts';

const IDENT = /^[A-Z][A-Z0-9_]*$/;
/** The fields whose values are enums (written bare in the text format; every other string is quoted). */
const ENUM_FIELDS = new Set(['data_type', 'kind', 'timeout_action', 'format']);
/** Fields that are proto map<string, string> (an ensemble step's tensor maps). */
const MAP_FIELDS = new Set(['input_map', 'output_map']);
const NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
/** How deep an override may nest (a model config is a few levels; this bounds a hostile one). */
const MAX_DEPTH = 16;

function scalar(key: string, v: unknown, path: string): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw InvalidModelConfig('(load override)', `${path}: ${v} is not a number a config can hold`);
    return String(v);
  }
  if (typeof v === 'string') {
    // Protobuf's JSON writes enums as their names and 64-bit integers as strings.
    if ((ENUM_FIELDS.has(key) && IDENT.test(v)) || NUMBER.test(v)) return v;
    return JSON.stringify(v);
  }
  throw InvalidModelConfig('(load override)', `${path}: expected a value, got ${v === null ? 'null' : typeof v}`);
}

function fields(obj: Record<string, unknown>, path: string, depth: number, out: string[]): void {
  if (depth > MAX_DEPTH) throw InvalidModelConfig('(load override)', `${path}: nested deeper than ${MAX_DEPTH} levels`);
  for (const [key, value] of Object.entries(obj)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw InvalidModelConfig('(load override)', `${path}${key}: not a field name`);
    const at = `${path}${key}`;
    if (Array.isArray(value)) {
      if (value.every((x) => typeof x === 'object' && x !== null && !Array.isArray(x))) {
        out.push(`${key} [`);
        value.forEach((x, i) => {
          out.push(`${i > 0 ? ',' : ''}{`);
          fields(x as Record<string, unknown>, `${at}[${i}].`, depth + 1, out);
          out.push('}');
        });
        out.push(']');
      } else {
        out.push(`${key}: [${value.map((x, i) => scalar(key, x, `${at}[${i}]`)).join(', ')}]`);
      }
    } else if (MAP_FIELDS.has(key) && typeof value === 'object' && value !== null) {
      // A proto map<string, string> in JSON is an object; the text format writes one entry per key.
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) out.push(`${key} { key: ${JSON.stringify(k)} value: ${scalar(key, v, `${at}.${k}`)} }`);
    } else if (typeof value === 'object' && value !== null) {
      out.push(`${key} {`);
      fields(value as Record<string, unknown>, `${at}.`, depth + 1, out);
      out.push('}');
    } else {
      out.push(`${key}: ${scalar(key, value, at)}`);
    }
  }
}

/**
 * The `config` parameter of a load request (Triton's model repository extension): a model config as
 * JSON in protobuf's JSON mapping (snake_case fields as in config.pbtxt, enums by name, 64-bit
 * integers as strings), used instead of the config on disk. It is written out in the text format and
 * read by the same reader as config.pbtxt, so it is checked exactly as a file would be.
 */
export function readConfigOverride(text: string): ConfigDraft {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw InvalidModelConfig('(load override)', `the config parameter is not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw InvalidModelConfig('(load override)', 'the config parameter must be a JSON object');
  const out: string[] = [];
  fields(doc as Record<string, unknown>, '', 0, out);
  return readPbtxtConfig(out.join('\n'));
}
