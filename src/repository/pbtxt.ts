/**
 * A parser for the protobuf text format (what Triton's config.pbtxt is written in), without a schema:
 * it yields a tree of named fields that pbtxt-config.ts then maps onto sluice's model configuration.
 * Supports comments, `name: value`, `name { ... }` / `name: { ... }` / `name < ... >`, lists
 * `name: [a, b]` and `name [ {..}, {..} ]`, optional `,`/`;` separators, quoted strings with C escapes
 * (adjacent strings concatenate), integers (decimal, hex, octal), floats, and identifiers.
 */

/** A scalar or nested message, as written in the text. */
export type PbValue =
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'ident'; readonly value: string }
  | { readonly kind: 'message'; readonly message: PbMessage };

/** One occurrence of a field; a repeated field occurs several times (a list gives one per element). */
export interface PbField {
  readonly name: string;
  readonly value: PbValue;
  /** 1-based line of the field's name, for error messages. */
  readonly line: number;
}

export interface PbMessage {
  readonly fields: readonly PbField[];
}

/** Thrown on malformed text; the message names the line and column. */
export class PbtxtSyntaxError extends Error {
  readonly line: number;
  constructor(line: number, column: number, reason: string) {
    super(`line ${line}, column ${column}: ${reason}`);
    this.name = 'PbtxtSyntaxError';
    this.line = line;
  }
}

type TokenKind = 'ident' | 'number' | 'string' | 'punct' | 'end';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly line: number;
  readonly column: number;
}

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
// Sign, then hex / decimal-with-fraction-or-exponent; `inf`/`nan` after a sign lex as identifiers.
const NUMBER = /[-+]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[fF]?)/y;
const SIGNED_WORD = /[-+](?:inf|infinity|nan)\b/iy;
// '.' and '/' only occur inside extension names and Any type URLs ([type.googleapis.com/pkg.Msg]).
const PUNCT = new Set(['{', '}', '<', '>', '[', ']', ':', ',', ';', '.', '/']);

class Lexer {
  readonly #text: string;
  #pos = 0;
  #line = 1;
  #lineStart = 0;

  constructor(text: string) {
    this.#text = text;
  }

  fail(line: number, column: number, reason: string): never {
    throw new PbtxtSyntaxError(line, column, reason);
  }

  #skipSpace(): void {
    const t = this.#text;
    while (this.#pos < t.length) {
      const c = t[this.#pos];
      if (c === '\n') {
        this.#pos++;
        this.#line++;
        this.#lineStart = this.#pos;
      } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v') this.#pos++;
      else if (c === '#') {
        while (this.#pos < t.length && t[this.#pos] !== '\n') this.#pos++;
      } else break;
    }
  }

  #match(re: RegExp): string | undefined {
    re.lastIndex = this.#pos;
    const m = re.exec(this.#text);
    return m === null ? undefined : m[0];
  }

  next(): Token {
    this.#skipSpace();
    const line = this.#line;
    const column = this.#pos - this.#lineStart + 1;
    if (this.#pos >= this.#text.length) return { kind: 'end', text: '', line, column };
    const c = this.#text[this.#pos] ?? '';
    const word = this.#match(IDENT);
    if (word !== undefined) return this.#take('ident', word, line, column);
    const signed = this.#match(SIGNED_WORD);
    if (signed !== undefined) return this.#take('number', signed, line, column);
    const num = this.#match(NUMBER);
    if (num !== undefined && /[0-9]/.test(num)) {
      // A number running into letters ("12abc") is a typo, not two tokens.
      const rest = /[A-Za-z0-9_.]*/y;
      rest.lastIndex = this.#pos + num.length;
      const after = rest.exec(this.#text)?.[0] ?? '';
      if (after !== '') this.fail(line, column, `malformed number '${num}${after}'`);
      return this.#take('number', num, line, column);
    }
    if (c === '"' || c === "'") return { kind: 'string', text: this.#string(c, line, column), line, column };
    if (PUNCT.has(c)) return this.#take('punct', c, line, column);
    return this.fail(line, column, `unexpected character '${c}'`);
  }

  #take(kind: TokenKind, text: string, line: number, column: number): Token {
    this.#pos += text.length;
    return { kind, text, line, column };
  }

  // Collects bytes, since escapes (\xNN, octal) name bytes and a string field may hold UTF-8.
  #string(quote: string, line: number, column: number): string {
    const t = this.#text;
    const bytes: number[] = [];
    const pushText = (s: string): void => {
      for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
    };
    this.#pos++;
    for (;;) {
      if (this.#pos >= t.length || t[this.#pos] === '\n') this.fail(line, column, 'unterminated string');
      const c = t[this.#pos] ?? '';
      this.#pos++;
      if (c === quote) break;
      if (c !== '\\') {
        // Characters outside the BMP are two UTF-16 units: take both so UTF-8 encodes the pair.
        if ((t.codePointAt(this.#pos - 1) ?? 0) > 0xffff) {
          pushText(t.slice(this.#pos - 1, this.#pos + 1));
          this.#pos++;
        } else pushText(c);
        continue;
      }
      const e = t[this.#pos] ?? '';
      this.#pos++;
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63 };
      const mapped = simple[e];
      if (mapped !== undefined) bytes.push(mapped);
      else if (e === 'x' || e === 'X') {
        const hex = /[0-9a-fA-F]{1,2}/y;
        hex.lastIndex = this.#pos;
        const m = hex.exec(t);
        if (m === null) this.fail(this.#line, this.#pos - this.#lineStart, 'malformed \\x escape');
        bytes.push(parseInt(m[0], 16));
        this.#pos += m[0].length;
      } else if (/[0-7]/.test(e)) {
        const oct = /[0-7]{0,2}/y;
        oct.lastIndex = this.#pos;
        const m = oct.exec(t)?.[0] ?? '';
        bytes.push(parseInt(e + m, 8) & 0xff);
        this.#pos += m.length;
      } else this.fail(this.#line, this.#pos - this.#lineStart, `unknown escape '\\${e}' in string`);
    }
    return Buffer.from(bytes).toString('utf8');
  }
}

class Parser {
  readonly #lexer: Lexer;
  #token: Token;

  constructor(text: string) {
    this.#lexer = new Lexer(text);
    this.#token = this.#lexer.next();
  }

  #advance(): Token {
    const t = this.#token;
    this.#token = this.#lexer.next();
    return t;
  }

  #fail(reason: string, token: Token = this.#token): never {
    return this.#lexer.fail(token.line, token.column, reason);
  }

  #describe(t: Token): string {
    return t.kind === 'end' ? 'end of file' : `'${t.text}'`;
  }

  #isPunct(text: string): boolean {
    return this.#token.kind === 'punct' && this.#token.text === text;
  }

  parseDocument(): PbMessage {
    const fields = this.#parseFields(undefined);
    if (this.#token.kind !== 'end') this.#fail(`unexpected ${this.#describe(this.#token)}`);
    return { fields };
  }

  #parseFields(close: string | undefined): PbField[] {
    const fields: PbField[] = [];
    for (;;) {
      if (this.#token.kind === 'end') {
        if (close !== undefined) this.#fail(`expected '${close}' before end of file`);
        return fields;
      }
      if (close !== undefined && this.#isPunct(close)) {
        this.#advance();
        return fields;
      }
      this.#parseField(fields);
      if (this.#isPunct(',') || this.#isPunct(';')) this.#advance();
    }
  }

  #parseField(into: PbField[]): void {
    const nameToken = this.#token;
    let name: string;
    if (nameToken.kind === 'ident') name = this.#advance().text;
    else if (this.#isPunct('[')) {
      // An extension or Any type URL: [pkg.ext] — kept whole as the name.
      this.#advance();
      const parts: string[] = [];
      while (!this.#isPunct(']')) {
        if (this.#token.kind === 'end') this.#fail("expected ']' closing an extension name");
        parts.push(this.#advance().text);
      }
      this.#advance();
      name = `[${parts.join('')}]`;
    } else return this.#fail(`expected a field name but found ${this.#describe(nameToken)}`);
    const colon = this.#isPunct(':');
    if (colon) this.#advance();
    const push = (value: PbValue): void => void into.push({ name, value, line: nameToken.line });
    if (this.#isPunct('[')) {
      this.#advance();
      if (this.#isPunct(']')) {
        this.#advance();
        return;
      }
      for (;;) {
        // Without the colon only messages may be listed (`input [ {..} ]`), as in protobuf's own parser.
        push(this.#parseValue(name, colon));
        if (this.#isPunct(',')) this.#advance();
        else if (this.#isPunct(']')) {
          this.#advance();
          return;
        } else this.#fail(`expected ',' or ']' in the list of '${name}' but found ${this.#describe(this.#token)}`);
      }
    }
    if (!colon && !this.#isPunct('{') && !this.#isPunct('<')) this.#fail(`expected ':' or '{' after field name '${name}'`);
    push(this.#parseValue(name, colon));
  }

  #parseValue(name: string, scalarAllowed: boolean): PbValue {
    if (this.#isPunct('{') || this.#isPunct('<')) {
      const close = this.#advance().text === '{' ? '}' : '>';
      return { kind: 'message', message: { fields: this.#parseFields(close) } };
    }
    if (!scalarAllowed) this.#fail(`expected '{' for the message '${name}' but found ${this.#describe(this.#token)}`);
    const t = this.#token;
    if (t.kind === 'string') {
      let value = '';
      while (this.#token.kind === 'string') value += this.#advance().text;
      return { kind: 'string', value };
    }
    if (t.kind === 'number') return { kind: 'number', text: this.#advance().text };
    if (t.kind === 'ident') return { kind: 'ident', value: this.#advance().text };
    return this.#fail(`expected a value for '${name}' but found ${this.#describe(t)}`);
  }
}

/** Parses protobuf text; throws PbtxtSyntaxError naming line and column on malformed input. */
export function parsePbtxt(text: string): PbMessage {
  return new Parser(text).parseDocument();
}
