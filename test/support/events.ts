import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyEvent, Context } from 'aws-lambda';

/** An API Gateway REST proxy event as AWS sends it for an AWS_IAM-authorized call. */
export function restEvent(opts: {
  method: string;
  path: string;
  userArn?: string | null;
  query?: Record<string, string | string[]>;
  body?: string | null;
  isBase64Encoded?: boolean;
  headers?: Record<string, string>;
}): APIGatewayProxyEvent {
  const query: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(opts.query ?? {})) {
    const list = Array.isArray(v) ? v : [v];
    multi[k] = list;
    query[k] = list[list.length - 1] ?? '';
  }
  const hasQuery = Object.keys(query).length > 0;
  const userArn = opts.userArn === undefined ? 'arn:aws:sts::111111111111:assumed-role/campaigns-api/i-0123456789abcdef0' : opts.userArn;
  const account = userArn ? /::(\d{12}):/.exec(userArn)?.[1] ?? null : null;
  return {
    resource: '/{proxy+}',
    path: opts.path,
    httpMethod: opts.method,
    headers: { Host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'User-Agent': 'test', ...(opts.headers ?? {}) },
    multiValueHeaders: {},
    queryStringParameters: hasQuery ? query : null,
    multiValueQueryStringParameters: hasQuery ? multi : null,
    pathParameters: { proxy: opts.path.replace(/^\//, '') },
    stageVariables: null,
    body: opts.body ?? null,
    isBase64Encoded: opts.isBase64Encoded ?? false,
    requestContext: {
      accountId: '111111111111',
      apiId: 'abc123',
      authorizer: null,
      protocol: 'HTTP/1.1',
      httpMethod: opts.method,
      path: `/prod${opts.path}`,
      stage: 'prod',
      requestId: randomUUID(),
      requestTimeEpoch: Date.parse('2026-11-23T10:00:00Z'),
      resourceId: 'abc0de',
      resourcePath: '/{proxy+}',
      identity: {
        accessKey: 'ASIAEXAMPLEEXAMPLE01',
        accountId: account,
        apiKey: null,
        apiKeyId: null,
        caller: userArn ? 'AROAEXAMPLEEXAMPLE01:i-0123456789abcdef0' : null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: 'o-exampleorg',
        sourceIp: '10.0.0.1',
        user: userArn ? 'AROAEXAMPLEEXAMPLE01:i-0123456789abcdef0' : null,
        userAgent: 'test',
        userArn,
      },
    },
  };
}

export function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'token-broker-http',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111111111111:function:token-broker-http',
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/token-broker-http',
    logStreamName: '2026/11/23/[$LATEST]abc',
    getRemainingTimeInMillis: () => 10_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

// The shapes EventBridge delivers for Secrets Manager through CloudTrail (as in the AWS documentation).

/** "AWS API Call via CloudTrail": a call someone made to Secrets Manager (PutSecretValue, UpdateSecret, ...). */
export function cloudTrailApiCall(eventName: string, requestParameters: Record<string, unknown>, responseElements: Record<string, unknown> | null = null) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS API Call via CloudTrail',
    source: 'aws.secretsmanager',
    account: '111111111111',
    time: '2026-11-23T10:00:00Z',
    region: 'eu-west-1',
    resources: [],
    detail: {
      eventVersion: '1.08',
      userIdentity: {
        type: 'AssumedRole',
        arn: 'arn:aws:sts::111111111111:assumed-role/secrets-rotation/rotation',
        accountId: '111111111111',
      },
      eventTime: '2026-11-23T10:00:00Z',
      eventSource: 'secretsmanager.amazonaws.com',
      eventName,
      awsRegion: 'eu-west-1',
      sourceIPAddress: '10.0.0.1',
      userAgent: 'aws-sdk-js/3',
      requestParameters,
      responseElements,
      requestID: randomUUID(),
      eventID: randomUUID(),
      readOnly: false,
      eventType: 'AwsApiCall',
      managementEvent: true,
      recipientAccountId: '111111111111',
    },
  };
}

/** "AWS Service Event via CloudTrail": Secrets Manager's own event about a secret (RotationSucceeded, ...). */
export function cloudTrailServiceEvent(eventName: string, secretArn: string) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'AWS Service Event via CloudTrail',
    source: 'aws.secretsmanager',
    account: '111111111111',
    time: '2026-11-23T10:00:00Z',
    region: 'eu-west-1',
    resources: [],
    detail: {
      eventVersion: '1.08',
      userIdentity: { accountId: '111111111111', invokedBy: 'secretsmanager.amazonaws.com' },
      eventTime: '2026-11-23T10:00:00Z',
      eventSource: 'secretsmanager.amazonaws.com',
      eventName,
      awsRegion: 'eu-west-1',
      sourceIPAddress: 'secretsmanager.amazonaws.com',
      userAgent: 'secretsmanager.amazonaws.com',
      requestParameters: null,
      responseElements: null,
      additionalEventData: { SecretId: secretArn },
      eventType: 'AwsServiceEvent',
      managementEvent: true,
      recipientAccountId: '111111111111',
    },
  };
}
