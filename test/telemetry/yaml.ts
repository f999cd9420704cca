/**
 * A YAML reader for the subset the deploy/ files use (no YAML package is a dependency): block mappings,
 * block sequences (also of mappings), plain / single- / double-quoted scalars, flow sequences of scalars,
 * literal blocks (|) and comments. Anything else (anchors, tags, flow mappings, tabs) throws with its
 * line number, so that a file drifting outside the subset fails its test loudly instead of parsing wrong.
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  readonly no: number;
  readonly indent: number;
  readonly text: string;
}

export function parseYaml(source: string): YamlValue {
  const raw = source.split(/\r?\n/);
  const lines: Line[] = [];
  for (let i = 0; i < raw.length; i++) {
    const full = raw[i]!;
    if (/^\s*\t/.test(full)) throw new Error(`line ${i + 1}: tab indentation`);
    const text = stripComment(full).trimEnd();
    if (text.trim() === '') continue;
    lines.push({ no: i + 1, indent: full.length - full.trimStart().length, text: text.trim() });
  }
  const reader = { lines, pos: 0, raw };
  if (lines.length === 0) return null;
  const value = parseBlock(reader, lines[0]!.indent);
  if (reader.pos < lines.length) throw new Error(`line ${lines[reader.pos]!.no}: unexpected indentation`);
  return value;
}

interface Reader {
  readonly lines: Line[];
  pos: number;
  readonly raw: string[];
}

function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function parseBlock(r: Reader, indent: number): YamlValue {
  const first = r.lines[r.pos]!;
  return first.text.startsWith('- ') || first.text === '-' ? parseSequence(r, indent) : parseMapping(r, indent);
}

function parseSequence(r: Reader, indent: number): YamlValue[] {
  const out: YamlValue[] = [];
  while (r.pos < r.lines.length) {
    const line = r.lines[r.pos]!;
    if (line.indent < indent) break;
    if (line.indent > indent || !(line.text.startsWith('- ') || line.text === '-')) throw new Error(`line ${line.no}: expected a sequence item`);
    const rest = line.text.slice(1).trimStart();
    if (rest === '') {
      r.pos++;
      out.push(parseNested(r, indent));
    } else if (isMappingEntry(rest)) {
      // "- key: value" opens a mapping whose further keys sit two columns in.
      const itemIndent = indent + (line.text.length - rest.length);
      r.lines[r.pos] = { no: line.no, indent: itemIndent, text: rest };
      out.push(parseMapping(r, itemIndent));
    } else {
      r.pos++;
      out.push(parseScalar(rest, line.no));
    }
  }
  return out;
}

function parseMapping(r: Reader, indent: number): { [key: string]: YamlValue } {
  const out: { [key: string]: YamlValue } = {};
  while (r.pos < r.lines.length) {
    const line = r.lines[r.pos]!;
    if (line.indent < indent) break;
    if (line.indent > indent) throw new Error(`line ${line.no}: unexpected indentation`);
    const m = /^("[^"]*"|'[^']*'|[^\s:'"][^:]*?)\s*:(?:\s+(.*))?$/.exec(line.text);
    if (!m) throw new Error(`line ${line.no}: expected 'key: value', got '${line.text}'`);
    const key = unquote(m[1]!);
    if (Object.hasOwn(out, key)) throw new Error(`line ${line.no}: duplicate key '${key}'`);
    const value = m[2];
    r.pos++;
    if (value === undefined || value === '') out[key] = parseNested(r, indent, true);
    else if (value === '|' || value === '|-' || value === '>') out[key] = parseLiteral(r, indent, line.no);
    else out[key] = parseScalar(value, line.no);
  }
  return out;
}

/** The block under a key or bare "-": deeper lines, or (for a key) a sequence at the same indent. */
function parseNested(r: Reader, indent: number, sequenceMayAlign = false): YamlValue {
  const next = r.lines[r.pos];
  if (next === undefined) return null;
  if (next.indent > indent) return parseBlock(r, next.indent);
  if (sequenceMayAlign && next.indent === indent && next.text.startsWith('- ')) return parseSequence(r, indent);
  return null;
}

function parseLiteral(r: Reader, indent: number, keyLine: number): string {
  const parts: string[] = [];
  let blockIndent = -1;
  while (r.pos < r.lines.length && r.lines[r.pos]!.indent > indent) {
    const line = r.lines[r.pos]!;
    if (blockIndent < 0) blockIndent = line.indent;
    parts.push(r.raw[line.no - 1]!.slice(blockIndent));
    r.pos++;
  }
  if (parts.length === 0) throw new Error(`line ${keyLine}: empty literal block`);
  return `${parts.join('\n')}\n`;
}

function isMappingEntry(text: string): boolean {
  return /^("[^"]*"|'[^']*'|[^\s:'"[{][^:]*?)\s*:(\s|$)/.test(text);
}

function unquote(text: string): string {
  if (text.startsWith('"')) return JSON.parse(text) as string;
  if (text.startsWith("'")) return text.slice(1, -1).replaceAll("''", "'");
  return text;
}

function parseScalar(text: string, no: number): YamlValue {
  if (/^[&*!{]/.test(text)) throw new Error(`line ${no}: anchors, aliases, tags and flow mappings are outside the supported subset`);
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new Error(`line ${no}: unterminated flow sequence`);
    const inner = text.slice(1, -1).trim();
    if (inner === '') return [];
    return splitFlow(inner, no).map((item) => parseScalar(item, no));
  }
  if (text.startsWith('"') || text.startsWith("'")) {
    const quote = text[0]!;
    if (text.length < 2 || !text.endsWith(quote)) throw new Error(`line ${no}: unterminated quoted scalar ${text}`);
    try {
      return unquote(text);
    } catch {
      throw new Error(`line ${no}: invalid quoted scalar ${text}`);
    }
  }
  if (text === 'true' || text === 'false') return text === 'true';
  if (text === 'null' || text === '~') return null;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

function splitFlow(inner: string, no: number): string[] {
  const items: string[] = [];
  let quote = '';
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') throw new Error(`line ${no}: nested flow collections are outside the supported subset`);
    else if (c === ',') {
      items.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  items.push(inner.slice(start).trim());
  return items;
}
