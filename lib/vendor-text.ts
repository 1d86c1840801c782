// What of a vendor's own words may reach a log line. An allow-list, not a blacklist of spellings: the
// error_description is kept only when no run of RUN characters of any secret value can be found in it, in any case,
// after undoing every encoding a vendor (or an attacker choosing the secret) could plausibly wrap it in.

/** The shortest run of a secret's characters that withholds a description (shorter values must not appear whole). */
export const SECRET_RUN = 8;
/** Values shorter than this are left alone: they would match ordinary words. */
const MIN_SECRET_LENGTH = 4;
/** Longer descriptions are not worth the decoding: they are withheld, never cut and then checked. */
const MAX_CHECKED_LENGTH = 4096;
/** How many encodings deep a secret is looked for (base64 of a percent-encoded form body is two). */
const MAX_DEPTH = 3;
/** A bound on the decoded variants looked at, whatever the text. */
const MAX_VARIANTS = 256;
export const LOGGED_DESCRIPTION_LENGTH = 200;

/** What the log says instead of a description that echoes a secret. */
export const WITHHELD = '(withheld: it holds characters of a secret)';
const TOO_LONG = '(withheld: too long to check)';

// Zero-width and other invisible format characters, which split a secret without changing how it reads.
const INVISIBLE = /[\p{Cf}\u034F\u115F\u1160\u3164\uFFA0]/gu;
const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", sol: '/', bsol: '\\', num: '#', percnt: '%', plus: '+',
  equals: '=', colon: ':', semi: ';', comma: ',', period: '.', lowbar: '_', hyphen: '-', dash: '-', nbsp: ' ',
};

const normalise = (text: string) => text.normalize('NFKC').replace(INVISIBLE, '');

function decodeEntities(text: string): string {
  return text.replace(/&(#[xX][0-9a-fA-F]{1,6}|#\d{1,7}|[A-Za-z]{2,8});?/g, (all, body: string) => {
    if (body.startsWith('#')) {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return code <= 0x10ffff ? String.fromCodePoint(code) : all;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? all;
  });
}

function decodeJsonEscapes(text: string): string {
  return text.replace(/\\(u[0-9a-fA-F]{4}|[\\/"bfnrt])/g, (_, e: string) =>
    e.startsWith('u') ? String.fromCharCode(parseInt(e.slice(1), 16)) : (({ b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }) as Record<string, string>)[e] ?? e,
  );
}

// Each %XX on its own, so that one malformed escape does not leave the rest encoded; `+` is a form's space.
const decodePercent = (text: string) =>
  text.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

/** The text with its character-level escapes undone, layer after layer (double percent-encoding is two). */
function unescapeAll(text: string): string {
  let out = normalise(text);
  for (let i = 0; i < MAX_DEPTH + 1; i++) {
    const next = normalise(decodePercent(decodeEntities(decodeJsonEscapes(out))));
    if (next === out) break;
    out = next;
  }
  return out;
}

const bytesToText = (bytes: Buffer) => [bytes.toString('latin1'), bytes.toString('utf8')];

/** Hex and base64 runs decoded, at every alignment: a secret inside a longer encoded text starts anywhere. */
function binaryDecodings(text: string): string[] {
  const out: string[] = [];
  for (const [run] of text.matchAll(/[0-9a-fA-F]{16,}/g)) {
    for (const at of [0, 1]) out.push(...bytesToText(Buffer.from(run.slice(at, at + ((run.length - at) & ~1)), 'hex')));
  }
  // Node's base64 decoder reads both alphabets (+/ and -_).
  for (const [run] of text.matchAll(/[A-Za-z0-9+/_-]{12,}/g)) {
    for (const at of [0, 1, 2, 3]) out.push(...bytesToText(Buffer.from(run.slice(at), 'base64')));
  }
  return out;
}

/** Every reading of the text worth checking: as written, unescaped, and decoded from hex or base64, a few layers deep. */
function readings(text: string): string[] {
  const seen = new Set<string>();
  let layer = [text];
  for (let depth = 0; depth < MAX_DEPTH && layer.length > 0; depth++) {
    const next: string[] = [];
    for (const t of layer) {
      for (const r of [normalise(t), unescapeAll(t)]) {
        if (seen.has(r) || seen.size >= MAX_VARIANTS) continue;
        seen.add(r);
        next.push(...binaryDecodings(r));
      }
    }
    layer = next;
  }
  return [...seen];
}

/** The secret's runs of SECRET_RUN characters (or the whole value, when shorter), in lower case. */
export function secretRuns(secrets: readonly string[]): Set<string> {
  const runs = new Set<string>();
  // A PEM's armor (`-----BEGIN PRIVATE KEY-----`) is public words: only its body's lines are secret.
  const pieces = secrets.flatMap((raw) => normalise(raw).replace(/-----[A-Z0-9 ]+-----/g, '\n').split(/\r?\n/));
  for (const piece of pieces) {
    const s = piece.trim().toLowerCase();
    if (s.length < MIN_SECRET_LENGTH) continue;
    if (s.length < SECRET_RUN) runs.add(s);
    for (let i = 0; i + SECRET_RUN <= s.length; i++) runs.add(s.slice(i, i + SECRET_RUN));
  }
  return runs;
}

function holdsRun(text: string, runs: ReadonlySet<string>): boolean {
  const t = text.toLowerCase();
  for (const run of runs) if (run.length < SECRET_RUN && t.includes(run)) return true;
  for (let i = 0; i + SECRET_RUN <= t.length; i++) if (runs.has(t.slice(i, i + SECRET_RUN))) return true;
  return false;
}

/** Whether any reading of the text holds a run of a secret's characters. */
export function echoesSecret(text: string, secrets: readonly string[]): boolean {
  const runs = secretRuns(secrets);
  return runs.size > 0 && readings(text).some((r) => holdsRun(r, runs));
}

/**
 * The vendor's error_description as the log may show it: checked whole before anything is stripped, then printable
 * ASCII cut to 200 characters; or a fixed note saying why it was withheld. Undefined when there is none.
 */
export function loggableDescription(value: string | undefined, secrets: readonly string[]): string | undefined {
  if (!value) return undefined;
  if (value.length > MAX_CHECKED_LENGTH) return TOO_LONG;
  if (echoesSecret(value, secrets)) return WITHHELD;
  const clean = value.replace(/[^\x20-\x7E]/g, ' ').trim();
  if (!clean) return undefined;
  const cut = clean.length > LOGGED_DESCRIPTION_LENGTH ? `${clean.slice(0, LOGGED_DESCRIPTION_LENGTH)}...` : clean;
  // What is logged is checked too: stripping must never be what makes a secret appear.
  return echoesSecret(cut, secrets) ? WITHHELD : cut;
}
