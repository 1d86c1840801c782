import type { Cooldown, LeaseResult, StoredToken, TokenMatch, TokenStore } from '../../lib/ports';

// INTERIM, bench only: a minimal in-memory TokenStore with the DynamoDB adapter's conditions, until the project's
// own in-memory store is on main; the simulator switches to that one then and this file goes.

export class InterimMemoryStore implements TokenStore {
  private readonly tokens = new Map<string, StoredToken>();
  private readonly leases = new Map<string, { owner?: string; until?: number; cooldown?: Cooldown }>();

  async getToken(connection: string): Promise<StoredToken | undefined> {
    return this.tokens.get(connection);
  }

  async putToken(token: StoredToken): Promise<void> {
    const current = this.tokens.get(token.connection);
    if (!current || current.mintedAt <= token.mintedAt) this.tokens.set(token.connection, token);
  }

  async deleteToken(connection: string, match: TokenMatch): Promise<boolean> {
    const t = this.tokens.get(connection);
    if (!t) return false;
    const hit =
      'fingerprint' in match
        ? t.fingerprint === match.fingerprint && (match.mintedBefore === undefined || t.mintedAt < match.mintedBefore)
        : t.secretVersion !== match.notSecretVersion;
    if (hit) this.tokens.delete(connection);
    return hit;
  }

  async acquireLease(connection: string, owner: string, now: number, until: number, opts: { overrideCooldown?: boolean } = {}): Promise<LeaseResult> {
    const l = this.leases.get(connection) ?? {};
    const free = l.until === undefined || l.until < now || l.owner === owner;
    const cooling = !opts.overrideCooldown && l.cooldown !== undefined && l.cooldown.until > now;
    if (free && !cooling) {
      this.leases.set(connection, { owner, until });
      return { acquired: true };
    }
    return cooling && l.cooldown ? { acquired: false, cooldown: l.cooldown } : { acquired: false };
  }

  async releaseLease(connection: string, owner: string): Promise<void> {
    if (this.leases.get(connection)?.owner === owner) this.leases.delete(connection);
  }

  async startCooldown(connection: string, owner: string, cooldown: Cooldown): Promise<void> {
    const l = this.leases.get(connection);
    if (l?.owner === undefined || l.owner === owner) this.leases.set(connection, { cooldown });
  }
}
