// The client lives in its own package (packages/client, published as @token-broker/client); the repo's code and
// tests use its source through this path.
export * from '../packages/client/src/index';
