import { NodeHttpHandler } from '@smithy/node-http-handler';

/** Every AWS call of the broker has a deadline: a second to connect, two to answer (each of 3 attempts at most). */
export function awsCallTimeouts(): NodeHttpHandler {
  return new NodeHttpHandler({ connectionTimeout: 1_000, requestTimeout: 2_000 });
}
