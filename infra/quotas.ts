import { readFileSync } from 'node:fs';
import type { IPolicyValidationContextBeta1, IPolicyValidationPluginBeta1, PolicyValidationPluginReportBeta1 } from 'aws-cdk-lib';

// The AWS quotas a synthesized template must meet, and the rendering that measures it as AWS counts it: the value
// CloudFormation deploys, after its intrinsics are resolved, not the template's text. Where a value is only known
// at deploy time (the region, the account, a generated name) the longest plausible value stands in, so a stack
// that passes here passes in any region and account.

/** IAM's quotas (IAM and AWS STS quotas, "IAM object quotas" and "IAM and STS character limits"). */
export const IAM_QUOTAS = {
  /** A customer managed policy's document, in characters without whitespace. */
  managedPolicyCharacters: 6_144,
  /** All inline policies of one role together, in characters without whitespace. */
  roleInlineCharacters: 10_240,
  /** Managed policies attached to one role (the default quota; it can be raised to 20). */
  managedPoliciesPerRole: 10,
} as const;

/**
 * CloudFormation's quotas. The CDK CLI uploads every template to the bootstrap bucket and deploys it from there,
 * so the 1 MB template body of an S3 object applies (51,200 bytes is for a body passed in the request).
 */
export const CLOUDFORMATION_QUOTAS = { templateBytes: 1_000_000, resources: 500, outputs: 200 } as const;

/** EventBridge: "Event pattern size", 2,048 characters by default (adjustable). */
export const EVENT_PATTERN_CHARACTERS = 2_048;

/** Lambda: all of a function's environment variables together, 4 KB. */
export const LAMBDA_ENVIRONMENT_BYTES = 4_096;

/**
 * The longest values a pseudo parameter renders as: a 14-character region (ap-southeast-2), a 12-digit account,
 * the aws-us-gov partition, the China regions' URL suffix.
 */
export const LONGEST_PSEUDO: Readonly<Record<string, string>> = {
  'AWS::Region': 'ap-southeast-2',
  'AWS::AccountId': '123456789012',
  'AWS::Partition': 'aws-us-gov',
  'AWS::URLSuffix': 'amazonaws.com.cn',
  'AWS::StackName': 'x'.repeat(128),
  'AWS::NoValue': '',
};

const x = (n: number) => 'x'.repeat(n);
const arn = (service: string, resource: string) => `arn:${LONGEST_PSEUDO['AWS::Partition']}:${service}:${LONGEST_PSEUDO['AWS::Region']}:${LONGEST_PSEUDO['AWS::AccountId']}:${resource}`;

/**
 * What a Ref or Fn::GetAtt of a resource renders as at most, by its type (names at the longest the service allows,
 * which bounds what CloudFormation generates). A type not listed fails the check rather than being guessed.
 */
const LONGEST_ATTRIBUTE: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'AWS::Logs::LogGroup': { Ref: x(512), Arn: arn('logs', `log-group:${x(512)}:*`) },
  'AWS::SQS::Queue': { Ref: `https://sqs.${LONGEST_PSEUDO['AWS::Region']}.amazonaws.com/123456789012/${x(80)}`, Arn: arn('sqs', x(80)), QueueName: x(80) },
  'AWS::Lambda::Function': { Ref: x(64), Arn: arn('lambda', `function:${x(64)}`) },
  'AWS::KMS::Key': { Ref: x(36), Arn: arn('kms', `key/${x(36)}`), KeyId: x(36) },
  'AWS::DynamoDB::Table': { Ref: x(255), Arn: arn('dynamodb', `table/${x(255)}`) },
  'AWS::IAM::Role': { Ref: x(64), Arn: `arn:aws-us-gov:iam::123456789012:role/${x(64)}`, RoleId: x(128) },
  'AWS::IAM::ManagedPolicy': { Ref: `arn:aws-us-gov:iam::123456789012:policy/${x(128)}`, PolicyArn: `arn:aws-us-gov:iam::123456789012:policy/${x(128)}` },
  'AWS::SNS::Topic': { Ref: arn('sns', x(256)), TopicArn: arn('sns', x(256)) },
  'AWS::S3::Bucket': { Ref: x(63), Arn: `arn:aws-us-gov:s3:::${x(63)}` },
  'AWS::ApiGateway::RestApi': { Ref: x(10), RootResourceId: x(10) },
  'AWS::ApiGateway::Stage': { Ref: x(128) },
};

/** A template as the quota checks read it. */
export interface TemplateJson {
  Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown } }>;
  [k: string]: unknown;
}

/** Renders the values other templates export (Fn::ImportValue), by export name. */
export type Exports = ReadonlyMap<string, () => unknown>;

/** Resolves intrinsics to the longest values they may deploy as. Throws on one it cannot bound. */
export function renderValue(value: unknown, template: TemplateJson, exports: Exports = new Map()): unknown {
  const render = (v: unknown): unknown => renderValue(v, template, exports);
  if (Array.isArray(value)) return value.map(render);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length !== 1 || !(entries[0]![0] === 'Ref' || entries[0]![0].startsWith('Fn::'))) {
    return Object.fromEntries(entries.map(([k, v]) => [k, render(v)]));
  }
  const [fn, arg] = entries[0]!;
  const at = (i: number): unknown => (arg as unknown[])[i];
  const text = (i: number) => String(at(i));
  switch (fn) {
    case 'Ref':
      return LONGEST_PSEUDO[String(arg)] ?? attribute(template, String(arg), 'Ref');
    case 'Fn::GetAtt':
      return attribute(template, text(0), text(1));
    case 'Fn::Join':
      return (render(at(1)) as unknown[]).map(String).join(text(0));
    case 'Fn::Sub':
      return substitute(arg as string | [string, Record<string, unknown>], template, exports);
    case 'Fn::Select':
      return (render(at(1)) as unknown[])[Number(render(at(0)))];
    case 'Fn::Split':
      return String(render(at(1))).split(text(0));
    case 'Fn::If': {
      // Either branch may deploy: the longer one counts.
      const [a, b] = [render(at(1)), render(at(2))];
      return JSON.stringify(a).length >= JSON.stringify(b).length ? a : b;
    }
    case 'Fn::ImportValue': {
      const name = String(render(arg));
      const exported = exports.get(name);
      if (!exported) throw new Error(`cannot render Fn::ImportValue ${name}: no template exports it`);
      return exported();
    }
    default:
      throw new Error(`cannot render ${fn}`);
  }
}

function attribute(template: TemplateJson, logicalId: string, name: string): string {
  const type = template.Resources?.[logicalId]?.Type;
  const value = type ? LONGEST_ATTRIBUTE[type]?.[name] : undefined;
  if (value === undefined) throw new Error(`cannot render ${name} of ${logicalId} (${type ?? 'no such resource'}): add its longest value to LONGEST_ATTRIBUTE`);
  return value;
}

function substitute(arg: string | [string, Record<string, unknown>], template: TemplateJson, exports: Exports): string {
  const [text, vars] = typeof arg === 'string' ? [arg, {}] : arg;
  return text.replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
    if (name in vars) return String(renderValue(vars[name], template, exports));
    const [id, att] = name.split('.') as [string, string | undefined];
    return LONGEST_PSEUDO[name] ?? attribute(template, id, att ?? 'Ref');
  });
}

/** A document's size as IAM counts it: its JSON without whitespace, intrinsics rendered. */
export function policySize(document: unknown, template: TemplateJson, exports?: Exports): number {
  return JSON.stringify(renderValue(document, template, exports)).replace(/\s/g, '').length;
}

/** What every template in an assembly exports, rendered on demand in the template that exports it. */
export function exportsOf(templates: readonly TemplateJson[]): Exports {
  const out = new Map<string, () => unknown>();
  for (const t of templates) {
    for (const o of Object.values(t.Outputs ?? {})) {
      if (o.Export) out.set(String(renderValue(o.Export.Name, t)), () => renderValue(o.Value, t, out));
    }
  }
  return out;
}

/** One quota a template exceeds: what, where, by how much. */
export interface QuotaFinding {
  rule: string;
  resource: string;
  message: string;
}

/** Every quota of this module, checked on one template. */
export function checkTemplate(template: TemplateJson, exports: Exports = exportsOf([template])): QuotaFinding[] {
  return [...checkIamPolicies(template, exports), ...checkCloudFormation(template), ...checkEventPatterns(template), ...checkLambdaEnvironments(template, exports)];
}

const refsOf = (roles: unknown): string[] =>
  Array.isArray(roles) ? roles.flatMap((r: unknown) => (r && typeof r === 'object' && 'Ref' in r ? [String((r).Ref)] : [])) : [];

/** Every role's inline total, managed count, and each managed policy's size. */
export function checkIamPolicies(template: TemplateJson, exports?: Exports): QuotaFinding[] {
  const findings: QuotaFinding[] = [];
  const resources = Object.entries(template.Resources ?? {});
  // A managed policy is attached by the role's ManagedPolicyArns or by the policy's Roles: counted once either way.
  const roles = new Map<string, { inline: number; managed: Set<string> }>();
  for (const [id, r] of resources) {
    if (r.Type !== 'AWS::IAM::Role') continue;
    const own = (r.Properties?.Policies ?? []) as { PolicyDocument: unknown }[];
    roles.set(id, {
      inline: own.reduce((n, p) => n + policySize(p.PolicyDocument, template, exports), 0),
      managed: new Set(((r.Properties?.ManagedPolicyArns ?? []) as unknown[]).map((a) => JSON.stringify(a))),
    });
  }
  for (const [id, r] of resources) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const size = policySize(r.Properties?.PolicyDocument, template, exports);
    if (r.Type === 'AWS::IAM::ManagedPolicy' && size > IAM_QUOTAS.managedPolicyCharacters) {
      findings.push({ rule: 'managed-policy-size', resource: id, message: `managed policy ${id} is ${size} characters; IAM allows ${IAM_QUOTAS.managedPolicyCharacters}` });
    }
    for (const role of refsOf(r.Properties?.Roles)) {
      const totals = roles.get(role);
      if (!totals) continue;
      if (r.Type === 'AWS::IAM::Policy') totals.inline += size;
      else totals.managed.add(JSON.stringify({ Ref: id }));
    }
  }
  for (const [id, { inline, managed: attached }] of roles) {
    const managed = attached.size;
    if (inline > IAM_QUOTAS.roleInlineCharacters) {
      findings.push({ rule: 'role-inline-size', resource: id, message: `role ${id}'s inline policies are ${inline} characters in all; IAM allows ${IAM_QUOTAS.roleInlineCharacters}` });
    }
    if (managed > IAM_QUOTAS.managedPoliciesPerRole) {
      findings.push({ rule: 'role-managed-count', resource: id, message: `role ${id} has ${managed} managed policies; IAM allows ${IAM_QUOTAS.managedPoliciesPerRole}` });
    }
  }
  return findings;
}

export function checkCloudFormation(template: TemplateJson): QuotaFinding[] {
  const findings: QuotaFinding[] = [];
  // The CDK writes templates indented; CloudFormation reads them as uploaded, so the bytes of that text count.
  const bytes = Buffer.byteLength(JSON.stringify(template, undefined, 1));
  if (bytes > CLOUDFORMATION_QUOTAS.templateBytes) findings.push({ rule: 'template-size', resource: '(template)', message: `the template is ${bytes} bytes; CloudFormation deploys at most ${CLOUDFORMATION_QUOTAS.templateBytes} from S3` });
  const count = Object.keys(template.Resources ?? {}).length;
  if (count > CLOUDFORMATION_QUOTAS.resources) findings.push({ rule: 'template-resources', resource: '(template)', message: `the template has ${count} resources; CloudFormation allows ${CLOUDFORMATION_QUOTAS.resources} a stack` });
  const outputs = Object.keys(template.Outputs ?? {}).length;
  if (outputs > CLOUDFORMATION_QUOTAS.outputs) findings.push({ rule: 'template-outputs', resource: '(template)', message: `the template has ${outputs} outputs; CloudFormation allows ${CLOUDFORMATION_QUOTAS.outputs}` });
  return findings;
}

export function checkEventPatterns(template: TemplateJson): QuotaFinding[] {
  return Object.entries(template.Resources ?? {}).flatMap(([id, r]) => {
    if (r.Type !== 'AWS::Events::Rule' || r.Properties?.EventPattern === undefined) return [];
    const size = JSON.stringify(renderValue(r.Properties.EventPattern, template)).length;
    return size > EVENT_PATTERN_CHARACTERS ? [{ rule: 'event-pattern-size', resource: id, message: `rule ${id}'s event pattern is ${size} characters; EventBridge allows ${EVENT_PATTERN_CHARACTERS}` }] : [];
  });
}

export function checkLambdaEnvironments(template: TemplateJson, exports?: Exports): QuotaFinding[] {
  return Object.entries(template.Resources ?? {}).flatMap(([id, r]) => {
    const variables = r.Type === 'AWS::Lambda::Function' ? (r.Properties?.Environment as { Variables?: unknown } | undefined)?.Variables : undefined;
    if (!variables) return [];
    const bytes = Buffer.byteLength(JSON.stringify(renderValue(variables, template, exports)));
    return bytes > LAMBDA_ENVIRONMENT_BYTES ? [{ rule: 'lambda-environment-size', resource: id, message: `function ${id}'s environment is ${bytes} bytes; Lambda allows ${LAMBDA_ENVIRONMENT_BYTES}` }] : [];
  });
}

/**
 * The checks above as a policy validation plugin of the CDK app: they read the templates the synth wrote (exactly
 * what CloudFormation receives), and a finding fails the synth, naming the resource and the quota.
 */
export class AwsQuotaChecks implements IPolicyValidationPluginBeta1 {
  readonly name = 'AwsQuotas';

  validate(context: IPolicyValidationContextBeta1): PolicyValidationPluginReportBeta1 {
    const templates = context.templatePaths.map((path) => ({ path, template: JSON.parse(readFileSync(path, 'utf8')) as TemplateJson }));
    const exports = exportsOf(templates.map((t) => t.template));
    const violations = templates.flatMap(({ path, template }) =>
      checkTemplate(template, exports).map((f) => ({
        ruleName: f.rule,
        description: f.message,
        fix: 'docs/operations.md, "Quotas the synth checks": move file connections\' secrets under the secret prefix (context secretPrefix).',
        violatingResources: [{ resourceLogicalId: f.resource, templatePath: path, locations: [] }],
      })),
    );
    return { success: violations.length === 0, violations };
  }
}
