/** IAM's wildcard match of a resource ARN or an action: `*` any run of characters, `?` exactly one. */
export function iamMatches(pattern: string, arn: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(arn);
}
