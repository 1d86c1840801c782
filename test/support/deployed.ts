import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The Lambda functions as `cdk synth` bundled them, read from the cloud assembly (manifest, asset manifests,
// templates), and run the way the nodejs22.x runtime runs them: one Node process per instance, the task root as
// working directory, the template's environment plus what Lambda itself sets, the runtime's AWS SDK beside it.

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
const RUNNER = join(REPO, 'test/support/lambda-runner.mjs');

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> }>; Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown } }> };

export interface DeployedFunction {
  /** The construct id (Http, Prewarm, Rotation). */
  name: string;
  logicalId: string;
  /** The bundle's directory in the assembly: what Lambda unpacks into /var/task. */
  taskRoot: string;
  handler: string;
  runtime: string;
  timeout: number;
  memorySize: number;
  /** Environment.Variables as the template has them (values may be CloudFormation intrinsics). */
  environment: Record<string, unknown>;
  /** The IAM actions its execution role allows, from the policies attached to it in the template. */
  allowedActions: string[];
  /** The Allow statements of its role: actions and resources as the template writes them (intrinsics unresolved). */
  grants: Grant[];
  /** Its execution role's name as the template writes it (intrinsics unresolved: renderValue); undefined: CloudFormation makes one up. */
  roleName: unknown;
}

export interface Grant {
  actions: string[];
  resources: unknown[];
}

export interface Assembly {
  dir: string;
  templates: Record<string, Template>;
  functions: Record<string, DeployedFunction>;
}

/** Reads the synthesized assembly: every stack's template, and each function's asset, handler and environment. */
export function readAssembly(dir: string): Assembly {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<string, { type: string; properties?: { templateFile?: string } }>;
  };
  const templates: Record<string, Template> = {};
  const assetDirs = new Map<string, string>();
  for (const [id, a] of Object.entries(manifest.artifacts)) {
    if (a.type === 'aws:cloudformation:stack' && a.properties?.templateFile) {
      templates[id] = JSON.parse(readFileSync(join(dir, a.properties.templateFile), 'utf8')) as Template;
    }
  }
  for (const file of Object.values(manifest.artifacts)
    .filter((a) => a.type === 'cdk:asset-manifest')
    .map((a) => (a.properties as { file?: string } | undefined)?.file)
    .filter((f): f is string => !!f)) {
    const assets = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      files: Record<string, { source: { path: string; packaging?: string }; destinations: Record<string, { objectKey: string }> }>;
    };
    for (const f of Object.values(assets.files)) {
      for (const d of Object.values(f.destinations)) assetDirs.set(d.objectKey, join(dir, f.source.path));
    }
  }
  const functions: Record<string, DeployedFunction> = {};
  for (const template of Object.values(templates)) {
    for (const [logicalId, r] of Object.entries(template.Resources)) {
      if (r.Type !== 'AWS::Lambda::Function') continue;
      const p = r.Properties as {
        Handler: string;
        Runtime: string;
        Timeout?: number;
        MemorySize?: number;
        Code: { S3Key?: unknown };
        Environment?: { Variables?: Record<string, unknown> };
        Role?: { 'Fn::GetAtt'?: [string, string] };
      };
      const key = typeof p.Code.S3Key === 'string' ? p.Code.S3Key : undefined;
      const taskRoot = key ? assetDirs.get(key) : undefined;
      if (!taskRoot) continue; // CDK's own helper functions (inline code)
      // The construct id: the logical id without the hash CDK appends.
      const name = /^(.+?)[0-9A-F]{8}$/.exec(logicalId)?.[1] ?? logicalId;
      functions[name] = {
        name,
        logicalId,
        taskRoot,
        handler: p.Handler,
        runtime: p.Runtime,
        timeout: p.Timeout ?? 3,
        memorySize: p.MemorySize ?? 128,
        environment: p.Environment?.Variables ?? {},
        allowedActions: grantsOf(template, p.Role?.['Fn::GetAtt']?.[0]).flatMap((g) => g.actions),
        grants: grantsOf(template, p.Role?.['Fn::GetAtt']?.[0]),
        roleName: roleNameOf(template, p.Role?.['Fn::GetAtt']?.[0]),
      };
    }
  }
  return { dir, templates, functions };
}

type Statement = { Effect: string; Action: string | string[]; Resource?: unknown };

/**
 * The Allow statements of the role's policies: inline, attached AWS::IAM::Policy resources, and the stack's customer
 * managed policies attached either way (the role's ManagedPolicyArns, or the policy's Roles).
 */
function grantsOf(template: Template, roleId: string | undefined): Grant[] {
  if (!roleId) return [];
  const statements: Statement[] = [];
  const role = template.Resources[roleId]?.Properties as { Policies?: { PolicyDocument: { Statement: Statement[] } }[]; ManagedPolicyArns?: { Ref?: string }[] } | undefined;
  for (const p of role?.Policies ?? []) statements.push(...p.PolicyDocument.Statement);
  const managed = new Set((role?.ManagedPolicyArns ?? []).map((a) => a.Ref));
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const p = r.Properties as { Roles?: { Ref?: string }[]; PolicyDocument: { Statement: Statement[] } };
    if (p.Roles?.some((x) => x.Ref === roleId) || (r.Type === 'AWS::IAM::ManagedPolicy' && managed.has(id))) statements.push(...p.PolicyDocument.Statement);
  }
  const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  return statements.filter((st) => st.Effect === 'Allow').map((st) => ({ actions: list(st.Action), resources: list(st.Resource) }));
}

/**
 * Whether the grants allow `action` on `resource` (an ARN, or `*` for an action that takes none), as IAM matches
 * them: actions case-insensitively, both with `*` and `?`. Resource ARNs are rendered for the given account and
 * region; a resource of another stack's (an import, an attribute) renders to nothing that matches an ARN here.
 */
export function grantsAllow(grants: readonly Grant[], action: string, resource: string, where: { region: string; account: string }): boolean {
  return grants.some((g) => allows(g.actions, action) && g.resources.some((r) => wildcard(renderValue(r, where), false).test(resource)));
}

function roleNameOf(template: Template, roleId: string | undefined): unknown {
  return ((roleId ? template.Resources[roleId]?.Properties : undefined) as { RoleName?: unknown } | undefined)?.RoleName;
}

/** A template value as the deployed stack would hold it: Fn::Join and the pseudo parameters rendered, else nothing. */
export function renderValue(value: unknown, where: { region: string; account: string }): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  const join = v['Fn::Join'] as [string, unknown[]] | undefined;
  if (join) return join[1].map((x) => renderValue(x, where)).join(join[0]);
  const pseudo: Record<string, string> = { 'AWS::Partition': 'aws', 'AWS::Region': where.region, 'AWS::AccountId': where.account };
  return (typeof v.Ref === 'string' && pseudo[v.Ref]) || '\u0000unresolved';
}

/**
 * Whether a Deny statement of the KMS key's own policy in the template refuses `action` to this principal (its ARN,
 * as `aws:PrincipalArn` holds it: a role's ARN for its sessions) for a request with this encryption context. It reads
 * the condition operators the stack writes (StringEquals on kms:EncryptionContext:…, ArnLike/ArnNotLike on
 * aws:PrincipalArn), with IAM's rule for a key absent from the request (a plain operator is false, a negated one
 * true); anything else in a Deny is an error, so a change to the key policy cannot pass here unread.
 */
export function keyPolicyDenies(
  template: Template,
  action: string,
  request: { context: Record<string, string>; principalArn: string },
  where: { region: string; account: string },
): boolean {
  const keys = Object.values(template.Resources).filter((r) => r.Type === 'AWS::KMS::Key');
  if (keys.length !== 1) throw new Error(`expected one KMS key in the template, found ${keys.length}`);
  const policy = (keys[0]!.Properties as { KeyPolicy: { Statement: (Statement & { Condition?: Record<string, Record<string, unknown>> })[] } }).KeyPolicy;
  const valueOf = (key: string): string | undefined => {
    if (key.startsWith('kms:EncryptionContext:')) return request.context[key.slice('kms:EncryptionContext:'.length)];
    if (key === 'aws:PrincipalArn') return request.principalArn;
    throw new Error(`the key policy's Deny uses a condition key this check does not read: ${key}`);
  };
  const list = (v: unknown) => (Array.isArray(v) ? v : [v]).map((x) => renderValue(x, where));
  const holds = (operator: string, conditions: Record<string, unknown>) =>
    Object.entries(conditions).every(([key, wanted]) => {
      const value = valueOf(key);
      switch (operator) {
        case 'StringEquals':
          return value !== undefined && list(wanted).includes(value);
        case 'ArnLike':
          return value !== undefined && list(wanted).some((p) => wildcard(p, false).test(value));
        case 'ArnNotLike':
          return value === undefined || !list(wanted).some((p) => wildcard(p, false).test(value));
        default:
          throw new Error(`the key policy's Deny uses a condition operator this check does not read: ${operator}`);
      }
    });
  return policy.Statement.some(
    (st) =>
      st.Effect === 'Deny' &&
      allows(Array.isArray(st.Action) ? st.Action : [st.Action], action) &&
      Object.entries(st.Condition ?? {}).every(([operator, conditions]) => holds(operator, conditions)),
  );
}

/** An IAM pattern (`*` any run, `?` one character) as a regular expression. */
function wildcard(pattern: string, ignoreCase: boolean): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, ignoreCase ? 'i' : '');
}

/** Whether an IAM action pattern list allows `service:Operation` (IAM matches actions case-insensitively, `*` and `?`). */
export function allows(actions: readonly string[], action: string): boolean {
  return actions.some((pattern) => wildcard(pattern, true).test(action));
}

/**
 * Puts the runtime's SDK where the bundles' `import '@aws-sdk/…'` finds it: a node_modules beside the asset
 * directories holding only @aws-sdk (anything else a bundle forgot to carry fails to load, as it would in Lambda).
 */
export function provideRuntimeSdk(assemblyDir: string): void {
  const modules = join(assemblyDir, 'node_modules');
  mkdirSync(modules, { recursive: true });
  if (!existsSync(join(modules, '@aws-sdk'))) symlinkSync(join(REPO, 'node_modules/@aws-sdk'), join(modules, '@aws-sdk'), 'dir');
}

/**
 * Resolves the template's environment values: plain strings as they are, and the intrinsics CDK writes for
 * resources of the other stack (Fn::ImportValue of an export) through `physical`, keyed by that resource's logical
 * id and `Ref` or the attribute name. Anything else is an error, so a template change shows up here.
 */
export function resolveEnvironment(assembly: Assembly, fn: DeployedFunction, physical: Record<string, string>): Record<string, string> {
  const exports = new Map<string, unknown>();
  for (const t of Object.values(assembly.templates)) {
    for (const o of Object.values(t.Outputs ?? {})) if (typeof o.Export?.Name === 'string') exports.set(o.Export.Name, o.Value);
  }
  const resolveValue = (v: unknown, name: string): string => {
    if (typeof v === 'string') return v;
    const o = v as Record<string, unknown>;
    if (o['Fn::ImportValue'] !== undefined) return resolveValue(exports.get(typeof o['Fn::ImportValue'] === 'string' ? o['Fn::ImportValue'] : JSON.stringify(o['Fn::ImportValue'])), name);
    if (typeof o.Ref === 'string' && physical[`${o.Ref}.Ref`]) return physical[`${o.Ref}.Ref`]!;
    const getAtt = o['Fn::GetAtt'] as [string, string] | undefined;
    if (getAtt && physical[`${getAtt[0]}.${getAtt[1]}`]) return physical[`${getAtt[0]}.${getAtt[1]}`]!;
    throw new Error(`${fn.name}: cannot resolve ${name} = ${JSON.stringify(v)}`);
  };
  return Object.fromEntries(Object.entries(fn.environment).map(([k, v]) => [k, resolveValue(v, k)]));
}

/** The logical id of the one resource of a type in a template. */
export function logicalIdOf(template: Template, type: string): string {
  const ids = Object.entries(template.Resources).filter(([, r]) => r.Type === type).map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one ${type}, found ${ids.length}`);
  return ids[0]!;
}

export interface FunctionInstance {
  invoke<R = unknown>(event: unknown): Promise<R>;
  /** Everything the instance printed so far (stdout and stderr), line by line. */
  output(): string[];
  close(): Promise<void>;
}

/** Starts one instance of a function: a fresh Node process that loads the bundle once and takes invocations. */
export async function startInstance(fn: DeployedFunction, env: Record<string, string>): Promise<FunctionInstance> {
  const child: ChildProcess = spawn(process.execPath, [RUNNER, fn.taskRoot, fn.handler, String(fn.timeout)], {
    cwd: fn.taskRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let ready: () => void;
  const started = new Promise<void>((r) => (ready = r));
  child.on('message', (m: { ready?: boolean; id?: number; result?: unknown; error?: { errorType: string; errorMessage: string } }) => {
    if (m.ready) return ready();
    const p = pending.get(m.id!);
    pending.delete(m.id!);
    if (m.error) p?.reject(Object.assign(new Error(m.error.errorMessage), { name: m.error.errorType }));
    else p?.resolve(m.result);
  });
  const exited = once(child, 'exit');
  void exited.then(([code]) => {
    for (const p of pending.values()) p.reject(new Error(`${fn.name} exited (${code}): ${text.slice(-2000)}`));
  });
  await Promise.race([
    started,
    exited.then(([code]) => Promise.reject(new Error(`${fn.name} failed to start (${code}): ${text.slice(-2000)}`))),
  ]);
  let next = 0;
  return {
    invoke: <R>(event: unknown) =>
      new Promise<R>((resolveInvoke, reject) => {
        const id = next++;
        // Bounded like Lambda: the function's own timeout.
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${fn.name} timed out after ${fn.timeout} s`));
        }, fn.timeout * 1000);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolveInvoke(v as R);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, event });
      }),
    output: () => text.split('\n').filter(Boolean),
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
