import { randomUUID } from 'node:crypto';
import { Admin, type ConnectionStatus } from './admin';
import { Background, type PrewarmOutcome } from './background';
import { TableHealth } from './budget';
import type { BrokerConfig, Connection } from './config';
import { Cooldowns } from './cooldowns';
import { FileConnections } from './adapters/file-connections';
import { Instance } from './instance';
import { Lease } from './lease';
import { BROKER_DEFAULTS, type BrokerDeps, type IssuedToken, type Parts } from './parts';
import { noLogger, noMetrics, type ConnectionRecord } from './ports';
import { NO_SHARED_MARKS, Retirements } from './retired';
import { TokenPath } from './token-path';

// The broker as its front ends see it (functions/, lib/local/, bench/): one object with the use cases' methods.
// Each use case lives in its own module and reads top-down there:
//   token-path.ts  getToken: authorize → memory → table → mint under the lease → answer
//   minting.ts     the lease held as one object: mint, store, fail, release
//   admin.ts       list, invalidate, refresh, verify, status
//   background.ts  pre-warm and rotation
//   instance.ts    what this instance remembers (tokens, high-water marks, work in flight)
//   retired.ts     tokens retired for cause, fleet-wide: what no instance serves again
// This file only builds their shared parts from the ports (lib/compose.ts builds the ports) and delegates.

export { BROKER_DEFAULTS, PREWARM_HOLD_MARGIN_MS } from './parts';
export type { BrokerDeps, BrokerOptions, IssuedToken, RefreshAhead } from './parts';
export type { ConnectionStatus } from './admin';
export type { PrewarmOutcome } from './background';

export class Broker {
  readonly config: BrokerConfig;
  readonly instanceId: string;
  private readonly instance: Instance;
  private readonly tokens: TokenPath;
  private readonly admin: Admin;
  private readonly background: Background;

  constructor(deps: BrokerDeps) {
    const opts = { ...BROKER_DEFAULTS, ...(deps.options ?? {}) };
    const instanceId = deps.instanceId ?? randomUUID();
    const random = deps.random ?? Math.random;
    const instance = new Instance(deps.clock, opts.clockSkewMs);
    const metrics = deps.metrics ?? noMetrics;
    const log = deps.logger ?? noLogger;
    const parts: Parts = {
      config: deps.config,
      connections: deps.connections ?? new FileConnections(deps.config),
      store: deps.store,
      secrets: deps.secrets,
      cipher: deps.cipher,
      clock: deps.clock,
      http: deps.http,
      metrics,
      log,
      random,
      instanceId,
      opts,
      lease: new Lease({ store: deps.store, clock: deps.clock, holder: instanceId, random, options: opts }),
      cooldowns: new Cooldowns(deps.clock, opts),
      tableHealth: new TableHealth(deps.clock, opts),
      instance,
      retired: new Retirements(deps.marks ?? NO_SHARED_MARKS, { clock: deps.clock, instance, log, metrics, skewMs: opts.clockSkewMs }),
    };
    this.config = deps.config;
    this.instanceId = instanceId;
    this.instance = parts.instance;
    this.tokens = new TokenPath(parts);
    this.admin = new Admin(parts, this.tokens);
    this.background = new Background(parts);
  }

  /** A token valid for at least `minTtl` seconds, for a caller allowed to have it. */
  getToken(callerArn: string, connectionId: string, minTtl?: number): Promise<IssuedToken> {
    return this.tokens.getToken(callerArn, connectionId, minTtl);
  }

  /** The connection a caller may use; unknown and forbidden look the same. */
  authorize(callerArn: string, connectionId: string): Promise<Connection> {
    return this.tokens.authorize(callerArn, connectionId);
  }

  /** getToken without the authorization, for the broker's own triggers. */
  tokenFor(connection: Connection, minTtl?: number): Promise<IssuedToken> {
    return this.tokens.tokenFor(connection, minTtl);
  }

  listConnections(callerArn: string): { id: string; dialect: string }[] {
    return this.admin.listConnections(callerArn);
  }

  invalidate(callerArn: string, connectionId: string, accessToken: string): Promise<boolean> {
    return this.admin.invalidate(callerArn, connectionId, accessToken);
  }

  refresh(callerArn: string, connectionId: string): Promise<IssuedToken> {
    return this.admin.refresh(callerArn, connectionId);
  }

  verify(callerArn: string, connectionId: string, versionStage: string): Promise<{ expiresIn: number }> {
    return this.admin.verify(callerArn, connectionId, versionStage);
  }

  verifyConnection(connection: Connection, versionStage: string): Promise<{ expiresIn: number }> {
    return this.admin.verifyConnection(connection, versionStage);
  }

  status(callerArn: string, connectionId: string): Promise<ConnectionStatus> {
    return this.admin.status(callerArn, connectionId);
  }

  prewarm(connection: Connection, known?: ConnectionRecord): Promise<PrewarmOutcome> {
    return this.background.prewarm(connection, known);
  }

  rotate(connection: Connection): Promise<{ evicted: boolean; minted: boolean; secretVersion: string }> {
    return this.background.rotate(connection);
  }

  /** A connection was deleted or changed: this instance serves nothing it held for it. */
  forget(connectionId: string): void {
    this.instance.forget(connectionId);
  }

  /**
   * A connection was deleted or changed: its tokens are evicted from the table and retired, so that no instance
   * serves one of them again, even put back. True if a token was evicted.
   */
  async evictTokens(connectionId: string): Promise<boolean> {
    this.forget(connectionId);
    return this.background.evictAll(connectionId);
  }

  /** Resolves when background refreshes started so far have settled (the local server's shutdown, tests). */
  drain(): Promise<void> {
    return this.instance.drain();
  }

  /** How many tasks of this broker are still running: after a Lambda handler answers, this must be 0. */
  pendingWork(): number {
    return this.instance.pendingWork();
  }
}
