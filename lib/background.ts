import type { Connection } from './config';
import { mint, retireBefore } from './minting';
import { PREWARM_HOLD_MARGIN_MS, type Parts } from './parts';
import type { ConnectionRecord } from './ports';
import { secretOf } from './secret-exchange';

/** No token is minted with this secret version: deleting tokens "not of this version" deletes any. */
const ANY_VERSION = '\u0000connection-changed';

// What the broker does on its own schedule, not for a caller: the pre-warm run (functions/prewarm.ts) and the
// rotation of a changed secret (functions/rotation.ts, and the pre-warm run when it notices a change).

export type PrewarmOutcome = 'minted' | 'fresh' | 'busy' | 'cooling-down' | 'static';

export class Background {
  constructor(private readonly parts: Parts) {}

  /**
   * Pre-warming: mints when the stored token is missing or would enter its refreshBefore window before the next run,
   * through the same lease as every other path (never waiting on it), so it never adds an exchange a caller would not
   * have caused. While the vendor fails, the run is the connection's only probe: it tries once per run, past a
   * cooldown that would end before the next run, and a failure cools the connection down until after the next run,
   * so that callers of a pre-warmed connection never wait on a failing vendor (they are served the held token, or
   * the failure at once). A longer cooldown (a vendor's Retry-After) is honoured to within one run.
   */
  async prewarm(connection: Connection, known?: ConnectionRecord): Promise<PrewarmOutcome> {
    const { parts } = this;
    if (connection.dialect.grantType === 'static') return 'static';
    const record = known ?? (await parts.store.read(connection.id));
    const stored = record.token;
    if (stored && !this.prewarmDue(connection, stored)) return 'fresh';
    // The run probes once the vendor may be asked again: its own hold ends later, for callers only; a cooldown
    // another instance recorded (a vendor's Retry-After) is honoured to its end.
    const own = parts.cooldowns.active(connection.id);
    const recorded = parts.cooldowns.fromTable(connection.id, record.failure);
    const probeAfter = Math.max(
      own ? (own.probeAfter ?? own.until) : 0,
      recorded && !(own && recorded.until <= own.until) ? recorded.until : 0,
    );
    if (parts.clock.now() < probeAfter) return 'cooling-down';
    const served = await mint(parts, connection, (t) => !this.prewarmDue(connection, t), {
      wait: false,
      ignoreCooldown: true,
      hold: { intervalMs: parts.opts.prewarmIntervalMs, marginMs: PREWARM_HOLD_MARGIN_MS },
    });
    if (!served) return 'busy';
    return served.source === 'vendor' ? 'minted' : 'fresh';
  }

  /**
   * A token the pre-warm run replaces now: one that would be inside its refreshBefore window by the next run. A
   * token the vendor issues for no longer than that would be due as soon as minted: it is replaced when it would
   * expire before the next run (at most one mint per run).
   */
  private prewarmDue(connection: Connection, token: { expiresAt: number; lifetime: number }): boolean {
    const interval = this.parts.opts.prewarmIntervalMs;
    const due = connection.refreshBefore * 1000 + interval;
    const left = token.expiresAt - this.parts.clock.now();
    return token.lifetime * 1000 <= due ? left <= interval : left <= due;
  }

  /** A connection was deleted or changed: its token, whatever it was minted with, is evicted and retired. */
  async evictAll(id: string): Promise<boolean> {
    const retired = await this.parts.store.deleteToken(id, { notSecretVersion: ANY_VERSION });
    if (retired === undefined) return false;
    await this.parts.retired.retire(id, retired);
    return true;
  }

  /**
   * A connection's secret changed: evict tokens minted with another version of it (everywhere: the table, and this
   * instance's memory; other instances' memory lapses within 30 s) and mint one with the new version. Idempotent.
   * Every token minted before the new version's is retired, the evicted one and any the ordinary path had already
   * replaced (a cold instance that read the new secret before this rotation ran): put back, none is served again.
   */
  async rotate(connection: Connection): Promise<{ evicted: boolean; minted: boolean; secretVersion: string }> {
    const { parts } = this;
    const secret = await secretOf(parts, connection, { forceRefresh: true });
    const id = connection.id;
    parts.instance.drop(id, (held) => held.secretVersion !== secret.versionId);
    if (connection.dialect.grantType === 'static') return { evicted: false, minted: false, secretVersion: secret.versionId };
    const retired = await parts.store.deleteToken(id, { notSecretVersion: secret.versionId });
    // A token of the old secret is retired fleet-wide: put back, it would be served by a fresh instance.
    if (retired !== undefined) await parts.retired.retire(id, retired);
    const evicted = retired !== undefined;
    const current = (await parts.store.read(id)).token;
    if (current?.secretVersion === secret.versionId && current.expiresAt > parts.clock.now()) {
      await parts.retired.retire(id, current.mintedAt - 1);
      return { evicted, minted: false, secretVersion: secret.versionId };
    }
    parts.cooldowns.end(id);
    const served = await mint(parts, connection, (t) => t.secretVersion === secret.versionId, { wait: true, ignoreCooldown: true });
    if (served) await retireBefore(parts, connection, served.held);
    return { evicted, minted: served?.source === 'vendor', secretVersion: secret.versionId };
  }
}
