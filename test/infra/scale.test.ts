import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addChecks, buildApp } from '../../infra/app';
import { packExactGrants } from '../../infra/constructs/secret-grants';
import {
  CLOUDFORMATION_QUOTAS,
  EVENT_PATTERN_CHARACTERS,
  IAM_QUOTAS,
  checkTemplate,
  exportsOf,
  policySize,
  renderValue,
  type Exports,
  type TemplateJson,
} from '../../infra/quotas';
import { loadConfig } from '../../lib/config';
import { ENV } from '../../lib/contract';
import { iamMatches } from '../support/iam';

// Connections files of 10 to 10,000 connections, synthesized for real (bundling skipped: the bundle is not what
// is measured), and every policy of every template measured as IAM counts it. Most secrets are under the stage's
// prefix, some named freely as teams name them; a file whose free names cannot all be granted exactly must fail
// the synth, saying how many fit.

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const STAGE = 'scale';
const PREFIX = `token-broker/${STAGE}/`;
const SECRET = (name: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}`;

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'infra-scale-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A freely named secret, as long as teams write them (about 40 characters). */
const freeName = (i: number) => `teams/vendor-${i}/prod/oauth-client-credentials`;
const prefixedName = (i: number) => `${PREFIX}tenant-${i}`;

function connectionsFile(total: number, free: number): string {
  const path = join(work, `connections-${total}-${free}.json`);
  const connections = Array.from({ length: total }, (_, i) => ({
    id: `tenant-${i}`,
    dialect: 'digitaleo',
    tokenUrl: 'https://vendor.example/oauth/token',
    secretId: i < free ? freeName(i) : prefixedName(i),
    callers: [`arn:aws:iam::${ACCOUNT}:role/campaigns-*`],
    prewarm: true,
  }));
  writeFileSync(path, JSON.stringify({ connections }));
  return path;
}

interface Synthesized {
  templates: Record<string, TemplateJson>;
  exports: Exports;
}

function synth(file: string): Synthesized {
  const outdir = mkdtempSync(join(work, 'cdk-'));
  // The stack's own checks (cdk-nag and the quota plugin) run; CDK's built-in template validation is a fixed cost
  // of about 10 s a synth that the stack tests already pay.
  const app = new App({ outdir, builtinCloudFormationValidation: false, context: { stage: STAGE, connectionsFile: file, 'aws:cdk:bundling-stacks': [] } });
  buildApp(app, { account: ACCOUNT, region: REGION }).app.synth();
  const templates = Object.fromEntries(
    [`TokenBroker-${STAGE}`, `TokenBrokerData-${STAGE}`].map((name) => [name, JSON.parse(readFileSync(join(outdir, `${name}.template.json`), 'utf8')) as TemplateJson]),
  );
  return { templates, exports: exportsOf(Object.values(templates)) };
}

type Doc = { Statement: { Action: string | string[]; Resource: unknown }[] };
const list = <T,>(v: T | T[]) => (Array.isArray(v) ? v : [v]);

/** Every role's policies as IAM sees them: each inline and managed document rendered, and their sizes. */
function rolePolicies(t: TemplateJson, exports: Exports) {
  const resources = Object.entries(t.Resources ?? {});
  const attachedTo = (p: Record<string, unknown> | undefined, role: string) => list(p?.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify({ Ref: role }));
  return resources
    .filter(([, r]) => r.Type === 'AWS::IAM::Role')
    .map(([role, r]) => {
      const own = ((r.Properties?.Policies ?? []) as { PolicyDocument: unknown }[]).map((p) => p.PolicyDocument);
      const inline = [...own, ...resources.filter(([, p]) => p.Type === 'AWS::IAM::Policy' && attachedTo(p.Properties, role)).map(([, p]) => p.Properties!.PolicyDocument)];
      // Attached by the policy's Roles, or by the role's ManagedPolicyArns.
      const arns = ((r.Properties?.ManagedPolicyArns ?? []) as unknown[]).map((a) => JSON.stringify(a));
      const ours = resources.filter(([id, p]) => p.Type === 'AWS::IAM::ManagedPolicy' && (attachedTo(p.Properties, role) || arns.includes(JSON.stringify({ Ref: id }))));
      const managed = ours.map(([, p]) => p.Properties!.PolicyDocument);
      const external = arns.filter((a) => !ours.some(([id]) => a === JSON.stringify({ Ref: id }))).length;
      return {
        role,
        inlineSize: inline.reduce((n: number, d) => n + policySize(d, t, exports), 0),
        managedSizes: managed.map((d) => policySize(d, t, exports)),
        managedCount: managed.length + external,
        documents: [...inline, ...managed].map((d) => renderValue(d, t, exports) as Doc),
      };
    });
}

/** The resources a role may read secret values of, rendered for this account and region. */
const secretReaders = (documents: Doc[]) =>
  documents.flatMap((d) => d.Statement.filter((s) => list(s.Action).includes('secretsmanager:GetSecretValue')).flatMap((s) => list(s.Resource as string | string[])));
// The rendering stands in the longest partition and this stack's literal region and account.
const deployed = (arn: string) => arn.replace('arn:aws:', 'arn:aws-us-gov:');

describe('IAM policy size, as IAM counts it', () => {
  it('is the JSON without whitespace, its intrinsics resolved to the longest region, account and partition', () => {
    const doc = {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's:G', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':x:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }]] } }],
    };
    const counted = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s:G","Resource":"arn:aws-us-gov:x:ap-southeast-2:123456789012"}]}';
    expect(policySize(doc, {})).toBe(counted.length);
    // Whitespace does not count, in JSON or inside a string.
    expect(policySize({ ...doc, Statement: [{ ...doc.Statement[0], Sid: undefined, Action: ' s:G ' }] }, {})).toBe(counted.length);
    // A generated name is as long as the service allows: a log group's 512 characters.
    expect(renderValue({ 'Fn::GetAtt': ['Logs', 'Arn'] }, { Resources: { Logs: { Type: 'AWS::Logs::LogGroup' } } })).toBe(
      `arn:aws-us-gov:logs:ap-southeast-2:123456789012:log-group:${'x'.repeat(512)}:*`,
    );
    expect(() => renderValue({ Ref: 'Thing' }, { Resources: { Thing: { Type: 'AWS::Made::Up' } } })).toThrow('cannot render Ref of Thing');
  });
});

describe('connections at scale', () => {
  // [connections, of which named freely]: the free ones are as many as the quotas allow exact grants for.
  const sizes = [
    [10, 3],
    [300, 60],
    [3_000, 300],
    [10_000, 300],
  ] as const;
  const eventPatterns: number[] = [];

  for (const [total, free] of sizes) {
    it(`${total} connections (${free} named freely) synthesize, and every policy of every template is within IAM's quotas`, () => {
      const { templates, exports } = synth(connectionsFile(total, free));
      for (const [name, t] of Object.entries(templates)) {
        expect(checkTemplate(t, exports), name).toEqual([]);
        for (const r of rolePolicies(t, exports)) {
          expect(r.inlineSize, r.role).toBeLessThanOrEqual(IAM_QUOTAS.roleInlineCharacters);
          expect(r.managedCount, r.role).toBeLessThanOrEqual(IAM_QUOTAS.managedPoliciesPerRole);
          for (const size of r.managedSizes) expect(size, r.role).toBeLessThanOrEqual(IAM_QUOTAS.managedPolicyCharacters);
        }
        expect(Buffer.byteLength(JSON.stringify(t, undefined, 1))).toBeLessThanOrEqual(CLOUDFORMATION_QUOTAS.templateBytes);
        expect(Object.keys(t.Resources!).length).toBeLessThanOrEqual(CLOUDFORMATION_QUOTAS.resources);
      }

      const broker = templates[`TokenBroker-${STAGE}`]!;
      // The three that read secrets; the console's widget reads the table alone.
      const functions = Object.values(broker.Resources!).filter(
        (r) => r.Type === 'AWS::Lambda::Function' && !((r.Properties as { FunctionName?: string }).FunctionName ?? '').startsWith('customWidget-'),
      );
      expect(functions).toHaveLength(3);
      for (const f of functions) {
        expect((f.Properties!.Environment as { Variables: Record<string, unknown> }).Variables).toMatchObject({ [ENV.secretPrefix]: PREFIX, [ENV.secretKmsKeys]: '' });
      }
      // Each function reaches every configured secret (one free name in each hundred is enough to check), and no
      // other stage's.
      const readers = rolePolicies(broker, exports).filter((r) => /^(Http|Prewarm|Rotation)ServiceRole/.test(r.role));
      expect(readers).toHaveLength(3);
      for (const r of readers) {
        const granted = secretReaders(r.documents);
        for (let i = 0; i < total; i += i < free ? 97 : 997) {
          const real = deployed(SECRET(`${i < free ? freeName(i) : prefixedName(i)}-AbC123`));
          expect(granted.some((p) => iamMatches(p, real)), real).toBe(true);
        }
        for (const other of [`token-broker/${STAGE}2/tenant-1-AbC123`, `token-broker/dev/tenant-1-AbC123`, `${freeName(free)}-AbC123`]) {
          expect(granted.filter((p) => iamMatches(p, deployed(SECRET(other)))), other).toEqual([]);
        }
      }

      // The secret-change rule lists no secret: its pattern does not grow with the file.
      const rules = Object.values(broker.Resources!).filter((r) => r.Type === 'AWS::Events::Rule');
      expect(rules).toHaveLength(1);
      eventPatterns.push(JSON.stringify(rules[0]!.Properties!.EventPattern).length);
      expect(eventPatterns.at(-1)).toBeLessThanOrEqual(EVENT_PATTERN_CHARACTERS);
      expect(new Set(eventPatterns).size).toBe(1);
    }, 60_000);
  }

  it('a file whose freely named secrets cannot all be granted exactly fails the synth, saying how many fit and to move them under the prefix', () => {
    const file = connectionsFile(10_000, 10_000);
    const app = new App({ outdir: mkdtempSync(join(work, 'cdk-')), context: { stage: STAGE, connectionsFile: file, 'aws:cdk:bundling-stacks': [] } });
    let message = '';
    try {
      buildApp(app, { account: ACCOUNT, region: REGION });
    } catch (e) {
      message = (e as Error).message;
    }
    const [, total, fitting] = /(\d+) secrets are outside the prefix .* only (\d+) fit IAM's quotas/.exec(message) ?? [];
    expect(Number(total)).toBe(10_000);
    // About 90 characters a grant, 6,144 a policy, 10 policies a role.
    expect(Number(fitting)).toBeGreaterThan(500);
    expect(Number(fitting)).toBeLessThan(700);
    expect(message).toContain(`Move the secrets under ${PREFIX}`);

    // Exactly that many fit: a file of that many synthesizes within the quotas.
    const { templates, exports } = synth(connectionsFile(Number(fitting), Number(fitting)));
    for (const t of Object.values(templates)) expect(checkTemplate(t, exports)).toEqual([]);
    const managed = Object.values(templates[`TokenBroker-${STAGE}`]!.Resources!).filter((r) => r.Type === 'AWS::IAM::ManagedPolicy');
    expect(managed).toHaveLength(IAM_QUOTAS.managedPoliciesPerRole);
  }, 60_000);
});

describe('packing exact grants', () => {
  const grants = (n: number, length: number) => Array.from({ length: n }, (_, i) => [`${String(i).padStart(length, 'a')}`]);

  it('fills each managed policy up to 6,144 characters, in at most the policies allowed', () => {
    const packed = packExactGrants(grants(1_000, 97), (p) => p.length, 10);
    expect(packed.total).toBe(1_000);
    expect(packed.policies).toHaveLength(10);
    expect(packed.policies.flat()).toHaveLength(packed.fitting);
    for (const resources of packed.policies) {
      const size = policySize({ Version: '2012-10-17', Statement: [{ Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: resources }] }, {});
      expect(size).toBeLessThanOrEqual(IAM_QUOTAS.managedPolicyCharacters);
      // Full: one more grant would not fit.
      expect(size + 100).toBeGreaterThan(IAM_QUOTAS.managedPolicyCharacters);
    }
  });

  it("keeps a secret's patterns together, and counts secrets, not patterns", () => {
    const packed = packExactGrants([['a', 'b'], ['c'], ['d', 'e']], (p) => p.length, 1);
    expect(packed).toEqual({ policies: [['a', 'b', 'c', 'd', 'e']], fitting: 3, total: 3 });
    expect(packExactGrants([], (p) => p.length, 10)).toEqual({ policies: [], fitting: 0, total: 0 });
  });
});

describe('the quota check in the CDK app', () => {
  it('fails the synth on a role whose inline policies exceed 10,240 characters, naming the role and the quota', () => {
    const outdir = mkdtempSync(join(work, 'cdk-'));
    const app = new App({ outdir, builtinCloudFormationValidation: false });
    const stack = new Stack(app, 'Big', { env: { account: ACCOUNT, region: REGION } });
    const role = new Role(stack, 'Reader', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    // CDK would split one large default policy into managed ones: these are separate inline policies instead.
    for (let i = 0; i < 3; i++) {
      role.attachInlinePolicy(
        new Policy(stack, `P${i}`, {
          statements: [new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: Array.from({ length: 45 }, (_, j) => SECRET(`${freeName(i * 100 + j)}-??????`)) })],
        }),
      );
    }
    addChecks(app);
    expect(() => app.synth()).toThrow();
    const report = readFileSync(join(outdir, 'validation-report.json'), 'utf8');
    expect(report).toMatch(/role Reader[0-9A-F]{8}'s inline policies are \d+ characters in all; IAM allows 10240/);
  });
});

describe('the bundled config at cold start', () => {
  it('is parsed once into a Map: a lookup does not walk the connections', () => {
    const config = loadConfig(connectionsFile(10_000, 0));
    expect(config.byId).toBeInstanceOf(Map);
    expect(config.byId.size).toBe(10_000);
    expect(config.byId.get('tenant-9999')?.secretId).toBe(prefixedName(9_999));
  });
});
