/**
 * The 'ascii' tokenizer: one token per character, ' '..'~' as 0..94, '\n' as 95; the end token follows.
 * A character outside it is refused with its position, never dropped or replaced.
 */
import { InvalidParameter } from '../core/errors.ts';

const FIRST = 0x20;
const LAST = 0x7e;
const NEWLINE_TOKEN = LAST - FIRST + 1;

export function encodeAscii(text: string, field = 'text_input'): number[] {
  const tokens = new Array<number>(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= FIRST && c <= LAST) tokens[i] = c - FIRST;
    else if (c === 0x0a) tokens[i] = NEWLINE_TOKEN;
    else {
      const shown = c < FIRST || c === 0x7f ? `U+${c.toString(16).toUpperCase().padStart(4, '0')}` : JSON.stringify(text[i]);
      throw InvalidParameter(field, `character ${i} (${shown}) is outside the 'ascii' tokenizer's vocabulary (printable ASCII and '\\n')`);
    }
  }
  return tokens;
}

/** The text of tokens; the end token (and anything past the vocabulary) prints as nothing. */
export function decodeAscii(tokens: readonly number[]): string {
  let s = '';
  for (const t of tokens) {
    if (t < NEWLINE_TOKEN) s += String.fromCharCode(t + FIRST);
    else if (t === NEWLINE_TOKEN) s += '\n';
  }
  return s;
}
