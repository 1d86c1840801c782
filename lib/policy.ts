import type { BrokerConfig, Connection } from './config';

// Who may have what. Patterns are IAM role or user ARNs where `*` matches within one segment, never across `/`
// or `:`. Deny by default.

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
