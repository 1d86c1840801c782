import { startLocalMode, type LocalBroker, type LocalEnv, type LocalOptions } from '../lib/local/app';

export type { LocalBroker, LocalEnv, LocalOptions };
import { makeHandler } from './http';

// Local mode serves the very HTTP handler Lambda runs. lib/local runs the parts (dynalite, the files, the SigV4
// server); this entry hands it the handler, so that lib/ never imports functions/.

export function startLocalBroker(env: LocalEnv, opts: LocalOptions = {}): Promise<LocalBroker> {
  return startLocalMode(env, makeHandler, opts);
}
