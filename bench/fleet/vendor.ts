import { randomBytes } from 'node:crypto';
import type { HttpClient, HttpRequest, HttpResponse } from '../../lib/http';
import { LATENCY, VENDOR_TRANSIENT_FAILURE } from './latency';
import { logNormal } from './random';
import { activeRequest, type SimEnv } from './services';

// The vendors' token endpoints, in process: an HttpClient (lib/http.ts's interface) that answers after a vendor's
// latency, checks the client's credentials (Basic), issues tokens of each client's lifetime, and fails as told
// (an outage window, rare transient 500s, a client secret revoked some time after a rotation).

export interface VendorOutage {
  vendor: number;
  fromMs: number;
  untilMs: number;
}

/** After a rotation the vendor keeps accepting the old client secret this long (a two-secret rotation). */
export const OLD_SECRET_GRACE_MS = 10 * 60_000;
/** Bytes of an access token (a typical signed JWT). */
export const TOKEN_BYTES = 1_000;

const latency = logNormal(LATENCY.vendor!);

export function vendorHost(vendor: number): string {
  return `vendor-${vendor}.example`;
}

export class SimVendors {
  /** client_id → accepted secrets, each until when (Infinity for the current one). */
  private readonly accepted = new Map<string, Map<string, number>>();
  private readonly lifetimes = new Map<string, number>();
  /** client_id → when the newest token issued expires, for "could a held token have served?". */
  readonly newestExpiry = new Map<string, number>();
  readonly issued = new Map<string, number>();
  readonly attempts = new Map<string, number>();

  constructor(
    private readonly env: SimEnv,
    private readonly outages: VendorOutage[],
  ) {}

  register(clientId: string, lifetimeSeconds: number): void {
    this.lifetimes.set(clientId, lifetimeSeconds);
  }

  /** A new client secret: the previous ones stop working after the grace period. */
  issueSecret(clientId: string, secret: string): void {
    const m = this.accepted.get(clientId) ?? new Map<string, number>();
    const now = this.env.clock.now();
    for (const [s, until] of m) if (until === Infinity) m.set(s, now + OLD_SECRET_GRACE_MS);
    m.set(secret, Infinity);
    this.accepted.set(clientId, m);
  }

  readonly http: HttpClient = async (req: HttpRequest): Promise<HttpResponse> => {
    const { clock, rng, tally } = this.env;
    const r = activeRequest();
    if (r) r.vendorCalls += 1;
    const vendor = Number(/^vendor-(\d+)\./.exec(req.url.hostname)?.[1] ?? -1);
    tally.add('vendor.requests');
    await clock.sleep(latency(rng));
    if (req.signal.aborted) throw req.signal.reason;
    const now = clock.now();
    if (this.outages.some((o) => o.vendor === vendor && now >= o.fromMs && now < o.untilMs)) {
      tally.add('vendor.outageAnswers');
      return answer(503, { error: 'temporarily_unavailable' });
    }
    if (rng() < VENDOR_TRANSIENT_FAILURE) {
      tally.add('vendor.transientFailures');
      return answer(500, { error: 'server_error' });
    }
    const [clientId, secret] = basicCredentials(req.headers.authorization);
    if (!clientId) return answer(401, { error: 'invalid_client' });
    this.attempts.set(clientId, (this.attempts.get(clientId) ?? 0) + 1);
    const until = this.accepted.get(clientId)?.get(secret ?? '');
    if (until === undefined || until <= now) {
      tally.add('vendor.refusedCredentials');
      return answer(401, { error: 'invalid_client' });
    }
    const lifetime = this.lifetimes.get(clientId) ?? 3600;
    this.issued.set(clientId, (this.issued.get(clientId) ?? 0) + 1);
    this.newestExpiry.set(clientId, now + lifetime * 1000);
    tally.add('vendor.tokensIssued');
    return answer(200, { access_token: randomBytes((TOKEN_BYTES * 3) / 4).toString('base64url'), token_type: 'Bearer', expires_in: lifetime });
  };
}

function answer(status: number, body: unknown): HttpResponse {
  return { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) };
}

function basicCredentials(header: string | undefined): [string | undefined, string | undefined] {
  const m = /^Basic (.+)$/.exec(header ?? '');
  if (!m?.[1]) return [undefined, undefined];
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? [undefined, undefined] : [decoded.slice(0, i), decoded.slice(i + 1)];
}
