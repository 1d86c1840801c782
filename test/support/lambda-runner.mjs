// One Lambda instance, as the nodejs22.x runtime runs a bundle: loads the handler module once (the cold start) and
// invokes it once per event the test sends over IPC, one at a time, with a Lambda context. The function's own
// output (logs, EMF) goes to stdout/stderr untouched; results travel over IPC.
// Usage: node lambda-runner.mjs <task root> <handler, e.g. index.handler> <timeout seconds>
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, handlerSpec, timeoutSeconds] = process.argv.slice(2);
const dot = handlerSpec.lastIndexOf('.');
const file = handlerSpec.slice(0, dot);
const exported = handlerSpec.slice(dot + 1);
const path = ['.mjs', '.js', '.cjs'].map((ext) => join(root, file + ext)).find((p) => existsSync(p));
if (!path) throw new Error(`no handler module ${file} in ${root}`);
const handler = (await import(pathToFileURL(path).href))[exported];
if (typeof handler !== 'function') throw new Error(`${handlerSpec} is not a function`);

let queue = Promise.resolve();
process.on('message', (msg) => {
  queue = queue.then(async () => {
    const deadline = Date.now() + Number(timeoutSeconds) * 1000;
    const context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:111111111111:function:${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: randomUUID(),
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    try {
      const result = await handler(msg.event, context);
      process.send({ id: msg.id, result });
    } catch (err) {
      // Lambda reports errorType and errorMessage; the test scans these like any other output.
      process.send({ id: msg.id, error: { errorType: err?.name ?? 'Error', errorMessage: String(err?.message ?? err) } });
    }
  });
});
process.send({ ready: true });
