import { readFileSync } from 'node:fs';
import { ConfigurationError } from '../errors';

// Local mode's files (connections, secrets, callers) are read here, so that a missing file and a malformed one get
// different messages, and a malformed one says where it breaks (line and column) but never quotes it: the secrets
// file's text must not reach a message.

/** Reads and parses a JSON file; `what` names it in errors, `variable` is where its path came from. */
export function readJsonFile(path: string, what: string, variable: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigurationError(`the ${what} ${path} does not exist (set ${variable} to the right path)`);
    throw new ConfigurationError(`the ${what} ${path} cannot be read (${code ?? 'unknown error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const { offset, reason } = jsonError(text, (err as Error).message);
    const { line, column } = lineAndColumn(text, offset);
    throw new ConfigurationError(`the ${what} ${path} is not valid JSON: ${reason} at line ${line}, column ${column}`);
  }
}

/** Where JSON.parse failed and why, in words that quote nothing from the text. */
export function jsonError(text: string, message: string): { offset: number; reason: string } {
  const at = / in JSON at position (\d+)/.exec(message);
  // What V8 says before the position names the expectation ("Expected ',' or '}' after property value"), not the text.
  if (at) return { offset: Number(at[1]), reason: message.slice(0, at.index) };
  if (/Unexpected end of JSON input/.test(message)) return { offset: text.length, reason: 'it ends too early' };
  // V8 quotes the text instead of giving a position for some errors: find the position ourselves.
  return { offset: firstInvalidOffset(text), reason: 'unexpected character' };
}

export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, offset));
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

/** Unwinds the scanner to the offset where the text stopped being JSON. */
class InvalidAt extends Error {
  constructor(readonly offset: number) {
    super(`not JSON at offset ${offset}`);
  }
}

/** The offset of the first character that cannot continue a JSON text (a small validating scanner). */
export function firstInvalidOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new InvalidAt(i);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const literal = (word: string) => {
    for (const ch of word) {
      if (text[i++] !== ch) {
        i--;
        fail();
      }
    }
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === '-') fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    fail();
  };
  try {
    value();
    ws();
    return i < text.length ? i : text.length;
  } catch (err) {
    if (err instanceof InvalidAt) return err.offset;
    throw err;
  }
}
