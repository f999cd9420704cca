/**
 * A strict well-formedness check for the XML this tool writes (SVG): one root element, every tag
 * closed in order, attributes quoted and unique, and no raw '<' or stray '&' in text or attribute
 * values. Returns the problem, or undefined when well-formed. Enough for SVG without DTDs or CDATA.
 */
export function xmlProblem(text: string): string | undefined {
  let s = text.replace(/^\uFEFF/, '');
  s = s.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const entity = /&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);/y;
  const checkText = (chunk: string, where: number): string | undefined => {
    for (let k = chunk.indexOf('&'); k >= 0; k = chunk.indexOf('&', k + 1)) {
      entity.lastIndex = k;
      if (!entity.test(chunk)) return `stray '&' at ${where + k}`;
    }
    return undefined;
  };
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const text = lt < 0 ? s.slice(i) : s.slice(i, lt);
    if (stack.length === 0 && text.trim() !== '') return `text outside the root element at ${i}`;
    const bad = checkText(text, i);
    if (bad) return bad;
    if (lt < 0) break;
    if (s.startsWith('<!--', lt)) {
      const end = s.indexOf('-->', lt + 4);
      if (end < 0) return `unterminated comment at ${lt}`;
      i = end + 3;
      continue;
    }
    const gt = s.indexOf('>', lt);
    if (gt < 0) return `unterminated tag at ${lt}`;
    const tag = s.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== name) return `closing </${name}> at ${lt} does not match <${open ?? '(none)'}>`;
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*"[^"<]*")*)\s*$/.exec(body);
      if (!m) return `malformed tag <${tag.slice(0, 60)}> at ${lt}`;
      const names = [...m[2]!.matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*"([^"]*)"/g)];
      const seen = new Set<string>();
      for (const [, attr, value] of names) {
        if (seen.has(attr!)) return `duplicate attribute ${attr} at ${lt}`;
        seen.add(attr!);
        const badValue = checkText(value!, lt);
        if (badValue) return badValue;
      }
      if (stack.length === 0) roots += 1;
      if (roots > 1) return `second root element <${m[1]}> at ${lt}`;
      if (!selfClosing) stack.push(m[1]!);
    }
    i = gt + 1;
  }
  if (stack.length > 0) return `unclosed <${stack.join('> <')}>`;
  if (roots !== 1) return 'no root element';
  return undefined;
}
