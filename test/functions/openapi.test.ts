import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openApiDocument, openApiText } from '../../functions/openapi';

describe('OpenAPI document', () => {
  it('is checked in exactly as the zod schemas generate it (npm run openapi)', () => {
    expect(readFileSync(new URL('../../openapi.json', import.meta.url), 'utf8')).toBe(openApiText());
  });

  it('describes every route of the API with its problem codes', () => {
    const doc = openApiDocument();
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/v1/connections',
      '/v1/connections/{id}',
      '/v1/connections/{id}/refresh',
      '/v1/connections/{id}/status',
      '/v1/connections/{id}/token',
      '/v1/connections/{id}/token/invalidate',
      '/v1/connections/{id}/verify',
      '/v1/status',
    ]);
    const change = doc.paths['/v1/connections/{id}'];
    expect(Object.keys(change.put.responses).sort()).toEqual(['200', '201', '400', '401', '403', '409', '412', '503']);
    expect(Object.keys(change.delete.responses).sort()).toEqual(['204', '400', '401', '403', '409', '412', '503']);
    const token = doc.paths['/v1/connections/{id}/token'].get;
    expect(Object.keys(token.responses).sort()).toEqual(['200', '400', '401', '403', '502', '503', '504']);
    expect(token.parameters[1]).toMatchObject({ name: 'min_ttl', in: 'query', schema: { pattern: '^\\d{1,4}$' } });
    expect(doc.components.schemas.TokenAnswer).toMatchObject({
      required: ['connection', 'access_token', 'token_type', 'expires_in', 'expires_at', 'authorization'],
    });
  });
});
