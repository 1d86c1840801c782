import type { BrokerConfig, Connection } from './config';

// Who may have what. Patterns are IAM role or user ARNs where `*` matches within one segment, never across `/`
// or `:`. Deny by default.

const PATTERN = /^arn:(aws[a-z-]*):iam::([^:]*):(role|user)\/([A-Za-z0-9+=,.@_\-/*]+)$/;

/**
 * Why a caller or admin pattern can never be right, or undefined. The account is 12 digits (which accounts may
 * call at all is the API's resource policy); a role pattern has no IAM path, because callers arrive as sessions
 * (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION) whose ARN carries none, and role names are unique in an
 * account. User patterns may carry a path.
 */
export function principalPatternProblem(pattern: string): string | undefined {
  const m = PATTERN.exec(pattern);
  if (!m) return 'must be an IAM role or user ARN, e.g. arn:aws:iam::111111111111:role/name';
  const [, partition, account, kind, name] = m as unknown as [string, string, string, string, string];
  if (!/^\d{12}$/.test(account)) {
    return `the account must be 12 digits, without * (which accounts may call at all is the API's resource policy): e.g. arn:${partition}:iam::111111111111:${kind}/${name}`;
  }
  if (name.split('/').some((segment) => segment === '')) return 'has an empty path segment';
  if (kind === 'role' && name.includes('/')) {
    const role = name.slice(name.lastIndexOf('/') + 1);
    return (
      `a role pattern has no IAM path (callers arrive as sessions whose ARN carries none): write arn:${partition}:iam::${account}:role/${role}` +
      ' (IAM Identity Center roles: role/AWSReservedSSO_PermissionSet_*)'
    );
  }
  return undefined;
}

/** An assumed-role session ARN becomes its role's ARN; anything else is returned as it is. */
export function principalArn(arn: string): string {
  const m = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/[^/]+$/.exec(arn);
  return m ? `arn:${m[1]}:iam::${m[2]}:role/${m[3]}` : arn;
}

const compiled = new Map<string, RegExp>();

function patternRegex(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/:]*');
    re = new RegExp(`^${body}$`);
    compiled.set(pattern, re);
  }
  return re;
}

export function matchesAny(arn: string, patterns: readonly string[]): boolean {
  const principal = principalArn(arn);
  return patterns.some((p) => patternRegex(p).test(principal));
}

export function canUse(callerArn: string, connection: Connection): boolean {
  return matchesAny(callerArn, connection.callers);
}

export function isAdmin(callerArn: string, config: BrokerConfig): boolean {
  return matchesAny(callerArn, config.admins);
}
