import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

// The region requests are signed for: the one an API Gateway host name carries (abc.execute-api.eu-west-1.amazonaws.com)
// is the only one that host accepts, so it comes first; then the AWS profile's, then the environment's.

const EXECUTE_API_HOST = /\.execute-api\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$/;
export const DEFAULT_REGION = 'us-east-1';

/** The region in an `execute-api` host name, or undefined for any other host (a custom domain, local mode). */
export function regionOfHost(baseUrl: string): string | undefined {
  try {
    return EXECUTE_API_HOST.exec(new URL(baseUrl).hostname)?.[1];
  } catch {
    return undefined;
  }
}

/** `region` of the profile AWS_PROFILE names (else `default`) in the AWS config file; undefined when there is none. */
export function regionOfProfile(env: Record<string, string | undefined>): string | undefined {
  const file = env.AWS_CONFIG_FILE ?? join(env.HOME ?? homedir(), '.aws', 'config');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const profile = env.AWS_PROFILE ?? 'default';
  const wanted = profile === 'default' ? ['default', 'profile default'] : [`profile ${profile}`];
  let inside = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const section = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (section) inside = wanted.includes(section[1]!);
    else if (inside) {
      const m = /^region\s*=\s*([A-Za-z0-9-]+)/.exec(line);
      if (m) return m[1];
    }
  }
  return undefined;
}

/** The region to sign for, when none is given: the host name's, the profile's, AWS_REGION, else us-east-1. */
export function defaultRegion(baseUrl: string, env: Record<string, string | undefined> = process.env): string {
  return regionOfHost(baseUrl) ?? regionOfProfile(env) ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? DEFAULT_REGION;
}

/** The region API Gateway says the signature should have been scoped to (its 403 text), when that was the refusal. */
export function isWrongRegion(text: string | undefined): boolean {
  return text !== undefined && /credential should be scoped to a valid region/i.test(text);
}
