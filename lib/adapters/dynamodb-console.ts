import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { TTL_ATTRIBUTE } from '../contract';

// What the console (issue 21) adds to the token item: requests served by hour, one attribute per hour
// (`served_<hour>`, hour = epoch ms / 3,600,000). A flush adds to its hour and drops the hours before the last two
// in the same write: readers look at the current hour and the one before it, nothing older.

const SERVED = /^served_(\d{1,9})$/;
/** The hours a flush drops: 2 to this many hours back (a connection idle longer keeps one stray bucket, ignored). */
const DROPPED_HOURS = 24;
/** An item a flush creates (a connection with no token yet) goes with TTL a day after its hour, unless it has one. */
const SERVED_TTL_SECONDS = 86_400;

export const servedAttribute = (hour: number) => `served_${hour}`;

/** The UpdateItem expressions of one flush: ADD to this hour, REMOVE the older ones, one TTL if the item had none. */
export function servedUpdate(hour: number, count: number) {
  const dropped = Array.from({ length: DROPPED_HOURS - 1 }, (_, i) => servedAttribute(hour - 2 - i));
  return {
    UpdateExpression: `SET #ttl = if_not_exists(#ttl, :ttl) ADD #now :n REMOVE ${dropped.map((_, i) => `#old${i}`).join(', ')}`,
    ExpressionAttributeNames: {
      '#ttl': TTL_ATTRIBUTE,
      '#now': servedAttribute(hour),
      ...Object.fromEntries(dropped.map((name, i) => [`#old${i}`, name])),
    },
    ExpressionAttributeValues: {
      ':n': { N: String(count) } as AttributeValue,
      ':ttl': { N: String(Math.ceil(((hour + 1) * 3_600_000) / 1000) + SERVED_TTL_SECONDS) } as AttributeValue,
    },
  };
}

/**
 * What a console scan reads of an item (a ProjectionExpression): all but the token's ciphertext, which is most of
 * the item's size and which the console has no use for, and the counts of the hours asked for.
 */
export function consoleProjection(attributes: readonly string[], servedHours: readonly number[]) {
  const names = [...attributes, ...servedHours.map(servedAttribute)];
  return {
    ProjectionExpression: names.map((_, i) => `#p${i}`).join(', '),
    ExpressionAttributeNames: Object.fromEntries(names.map((n, i) => [`#p${i}`, n])),
  };
}

/** The hours an item holds counts for. */
export function servedOf(item: Record<string, AttributeValue>): { hour: number; count: number }[] {
  const served: { hour: number; count: number }[] = [];
  for (const [name, value] of Object.entries(item)) {
    const m = SERVED.exec(name);
    if (m && value.N !== undefined) served.push({ hour: Number(m[1]), count: Number(value.N) });
  }
  return served.sort((a, b) => a.hour - b.hour);
}
