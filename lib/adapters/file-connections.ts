import type { BrokerConfig, Connection } from '../config';
import type { ConnectionCatalog } from '../ports';

// The connections of the connections file, parsed once at cold start (lib/config.ts): the catalog a broker uses
// when it is given no other.

export class FileConnections implements ConnectionCatalog {
  constructor(private readonly config: Pick<BrokerConfig, 'byId'>) {}

  find(id: string): Promise<Connection | undefined> {
    return Promise.resolve(this.config.byId.get(id));
  }
}
