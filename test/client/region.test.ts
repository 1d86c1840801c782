import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_RESPONSES } from '../../infra/constructs/broker-api';
import { TokenBrokerClient, TokenBrokerError } from '../../packages/client/src/index';
import { defaultRegion } from '../../packages/client/src/region';
import { renderGatewayResponse, SAMPLE_VARIABLES } from '../support/gateway-responses';
import { listenOnLoopback } from '../support/loopback';

// The region a request is signed for: an execute-api host name names the only one it accepts, then the AWS profile,
// then AWS_REGION. A signature API Gateway refuses for its region says so in the client's words.

const API = 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod';
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'region-'));
  writeFileSync(join(dir, 'config'), '[default]\nregion = eu-central-1\n\n[profile ops]\noutput = json\nregion=ap-southeast-2\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the region a request is signed for', () => {
  const env = (extra: Record<string, string> = {}) => ({ AWS_CONFIG_FILE: join(dir, 'config'), AWS_REGION: 'us-west-2', ...extra });

  it("is the execute-api host name's first, whatever the profile and AWS_REGION say", () => {
    expect(defaultRegion(API, env())).toBe('eu-west-1');
    expect(defaultRegion('https://xyz.execute-api.cn-north-1.amazonaws.com.cn', env())).toBe('cn-north-1');
  });

  it("else the profile's (AWS_PROFILE, else default), else AWS_REGION, else us-east-1", () => {
    expect(defaultRegion('https://broker.example.com', env())).toBe('eu-central-1');
    expect(defaultRegion('https://broker.example.com', env({ AWS_PROFILE: 'ops' }))).toBe('ap-southeast-2');
    expect(defaultRegion('https://broker.example.com', env({ AWS_PROFILE: 'nobody' }))).toBe('us-west-2');
    expect(defaultRegion('http://127.0.0.1:8080', { AWS_CONFIG_FILE: join(dir, 'missing') })).toBe('us-east-1');
  });

  it('is what the client signs with when none is given', () => {
    const saved = { ...process.env };
    try {
      process.env.AWS_REGION = 'us-west-2';
      process.env.AWS_CONFIG_FILE = join(dir, 'missing');
      expect(new TokenBrokerClient({ baseUrl: API }).region).toBe('eu-west-1');
      expect(new TokenBrokerClient({ baseUrl: API, region: 'us-east-2' }).region).toBe('us-east-2');
    } finally {
      process.env = saved;
    }
  });
});

describe('a signature refused for the wrong region', () => {
  const message = "Credential should be scoped to a valid region, not 'us-east-1'. ";
  let server: Server;
  let url: string;
  let answer: { status: number; headers: Record<string, string>; body: string };

  beforeAll(async () => {
    server = createServer((_req, res) => {
      res.writeHead(answer.status, { ...answer.headers, 'x-amzn-requestid': SAMPLE_VARIABLES.requestId });
      res.end(answer.body);
    });
    url = `http://127.0.0.1:${await listenOnLoopback(server)}`;
  });
  afterAll(() => server.close());

  it.each([
    ['as this stack renders it (INVALID_SIGNATURE, 401)', () => renderGatewayResponse('INVALID_SIGNATURE', GATEWAY_RESPONSES.INVALID_SIGNATURE!, { ...SAMPLE_VARIABLES, message })],
    ["as API Gateway's own 403", () => ({ status: 403, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message }) })],
  ])('says so, %s', async (_how, render) => {
    answer = render();
    const client = new TokenBrokerClient({ baseUrl: url, region: 'us-east-1', credentials: { accessKeyId: 'AKIAREGIONTEST000001', secretAccessKey: 'region-test-secret' }, maxRetries: 0 });
    const err = (await client.getToken('jwt').catch((e: unknown) => e)) as TokenBrokerError;
    expect(err).toBeInstanceOf(TokenBrokerError);
    expect(err.message).toContain("signed for region us-east-1, which is not the broker's");
    expect(err.requestId).toBe(SAMPLE_VARIABLES.requestId);
  });
});
