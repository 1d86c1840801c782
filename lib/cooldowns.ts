import type { Clock } from './clock';
import {
  BrokerError,
  VendorProtocolError,
  VendorRejectedCredentialsError,
  VendorTimeoutError,
  VendorUnavailableError,
} from './errors';
import type { RecordedFailure } from './ports';

// After a failed exchange a connection cools down: for a while every caller gets the failure again, without
// another call to the vendor, unless a still-valid token can be served. One object keeps this instance's
// cooldowns and reads the table's; a cooldown from the table is believed only within bounds (a code the broker
// writes, a length it would write), and what callers are told is always written here, never read from the table.

export const VENDOR_FAILURE_CODES = [
  'vendor_rejected_credentials',
  'vendor_protocol_error',
  'vendor_unavailable',
  'vendor_timeout',
] as const;
export type VendorFailureCode = (typeof VENDOR_FAILURE_CODES)[number];

/** The error codes of RFC 6749 section 5.2: the only words of a vendor's error a caller or the table may see. */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
] as const;

export function oauthErrorCode(value: unknown): string | undefined {
  return typeof value === 'string' && (OAUTH_ERROR_CODES as readonly string[]).includes(value) ? value : undefined;
}

export interface CooldownOptions {
  /** After a failed exchange, how long every instance answers with that failure instead of calling again. */
  cooldownMs: number;
  /** The longest cooldown: a vendor's Retry-After is believed up to this, and a recorded cooldown beyond it is ignored. */
  maxCooldownMs: number;
}

export const COOLDOWN_DEFAULTS: CooldownOptions = { cooldownMs: 30_000, maxCooldownMs: 300_000 };

/** The pre-warm run's schedule, for the hold its failures put on callers. */
export interface PrewarmHold {
  intervalMs: number;
  marginMs: number;
}

export interface Cooldown {
  connection: string;
  /** Epoch ms. */
  until: number;
  /**
   * Epoch ms: when the vendor may be asked again (the default cooldown or its Retry-After). Earlier than `until` only
   * for a pre-warm run's hold, which keeps callers off until after the run that will probe at this time.
   */
  probeAfter?: number;
  code: VendorFailureCode;
  vendorStatus?: number;
  vendorError?: string;
}

const isVendorCode = (code: string): code is VendorFailureCode => (VENDOR_FAILURE_CODES as readonly string[]).includes(code);

/** A failure's facts a caller may see: the vendor's HTTP status and RFC 6749 code, nothing the vendor wrote. */
export function vendorFacts(err: BrokerError): { vendorStatus?: number; vendorError?: string } {
  const status = err.context.vendorStatus;
  const code = oauthErrorCode(err.context.vendorError);
  return {
    ...(typeof status === 'number' && Number.isInteger(status) ? { vendorStatus: status } : {}),
    ...(code ? { vendorError: code } : {}),
  };
}

export class Cooldowns {
  private readonly mine = new Map<string, Cooldown>();

  constructor(
    private readonly clock: Clock,
    private readonly options: CooldownOptions = COOLDOWN_DEFAULTS,
  ) {}

  /**
   * The cooldown a failed exchange starts (noted here), or undefined when the failure starts none: the broker's
   * own set-up (misconfigured) and anything that is not the vendor's.
   */
  start(connection: string, err: unknown, hold?: PrewarmHold): Cooldown | undefined {
    if (!(err instanceof BrokerError) || !isVendorCode(err.code)) return undefined;
    const now = this.clock.now();
    const retryAfterMs = Math.min((err.retryAfter ?? 0) * 1000, this.options.maxCooldownMs);
    const probeAfter = now + Math.max(this.options.cooldownMs, retryAfterMs);
    // A pre-warm run's hold: callers stay off until the margin after the first run at or past probeAfter.
    const held = hold ? now + Math.ceil((probeAfter - now) / hold.intervalMs) * hold.intervalMs + hold.marginMs : probeAfter;
    const cooldown: Cooldown = {
      connection,
      until: Math.min(Math.max(held, probeAfter), now + this.options.maxCooldownMs),
      probeAfter,
      code: err.code,
      ...vendorFacts(err),
    };
    this.mine.set(connection, cooldown);
    return cooldown;
  }

  /** This instance's cooldown of the connection, while it lasts. */
  active(connection: string): Cooldown | undefined {
    const c = this.mine.get(connection);
    if (c && c.until > this.clock.now()) return c;
    if (c) this.mine.delete(connection);
    return undefined;
  }

  /** Throws the cooldown's error while this instance knows of one. */
  check(connection: string): void {
    const c = this.active(connection);
    if (c) throw this.error(c);
  }

  end(connection: string): void {
    this.mine.delete(connection);
  }

  /** A recorded cooldown ending after this was not written by a broker: the lease ignores it. */
  ceiling(): number {
    return this.clock.now() + this.options.maxCooldownMs;
  }

  /**
   * A cooldown recorded in the table, believed only within bounds: it ends no later than the ceiling, its code
   * is a vendor failure (anything else reads as vendor_unavailable), and only numbers and codes are taken from it.
   */
  fromTable(connection: string, failure: RecordedFailure | undefined): Cooldown | undefined {
    const now = this.clock.now();
    if (failure?.coolUntil === undefined || failure.coolUntil <= now || failure.coolUntil > this.ceiling()) return undefined;
    const status = failure.vendorStatus;
    const vendorError = oauthErrorCode(failure.vendorError);
    return {
      connection,
      until: failure.coolUntil,
      code: isVendorCode(failure.code) ? failure.code : 'vendor_unavailable',
      ...(status !== undefined && Number.isInteger(status) && status >= 100 && status <= 599 ? { vendorStatus: status } : {}),
      ...(vendorError ? { vendorError } : {}),
    };
  }

  /** fromTable, noted for this instance too. */
  adopt(connection: string, failure: RecordedFailure | undefined): Cooldown | undefined {
    const cooldown = this.fromTable(connection, failure);
    if (cooldown) this.mine.set(connection, cooldown);
    return cooldown;
  }

  /** The failure as the table records it: codes and numbers only. */
  record(cooldown: Cooldown): RecordedFailure {
    return {
      code: cooldown.code,
      at: this.clock.now(),
      coolUntil: cooldown.until,
      ...(cooldown.vendorStatus === undefined ? {} : { vendorStatus: cooldown.vendorStatus }),
      ...(cooldown.vendorError === undefined ? {} : { vendorError: cooldown.vendorError }),
    };
  }

  /** What a caller is told during a cooldown: written here from the code, the status and the connection. */
  error(cooldown: Cooldown, cause?: unknown): BrokerError {
    const retryAfter = Math.max(1, Math.ceil((cooldown.until - this.clock.now()) / 1000));
    const facts = [
      ...(cooldown.vendorStatus === undefined ? [] : [`HTTP ${cooldown.vendorStatus}`]),
      ...(cooldown.vendorError === undefined ? [] : [cooldown.vendorError]),
    ];
    const said = facts.length ? ` (${facts.join(', ')})` : '';
    const id = cooldown.connection;
    const opts = { retryAfter, context: { connection: id }, ...(cause === undefined ? {} : { cause }) };
    const messages: Record<VendorFailureCode, () => BrokerError> = {
      vendor_rejected_credentials: () =>
        new VendorRejectedCredentialsError(`${id}: the vendor refused the credentials${said}; cooling down`, opts),
      vendor_protocol_error: () =>
        new VendorProtocolError(`${id}: the vendor's answer was not a usable token${said}; cooling down`, opts),
      vendor_unavailable: () => new VendorUnavailableError(`${id}: the vendor is unavailable${said}; cooling down`, opts),
      vendor_timeout: () => new VendorTimeoutError(`${id}: the vendor did not answer in time; cooling down`, opts),
    };
    return messages[cooldown.code]();
  }
}
