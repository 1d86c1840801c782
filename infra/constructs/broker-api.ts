import { createHash } from 'node:crypto';
import { Fn, Stack, Validations } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  ApiDefinition,
  EndpointType,
  LogGroupLogDestination,
  MethodLoggingLevel,
  SpecRestApi,
} from 'aws-cdk-lib/aws-apigateway';
import { InterfaceVpcEndpoint } from 'aws-cdk-lib/aws-ec2';
import { AccountPrincipal, AnyPrincipal, Effect, PolicyDocument, PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CfnSamplingRule } from 'aws-cdk-lib/aws-xray';
import { Construct } from 'constructs';
import { openApiDocument } from '../../functions/openapi';
import { problemType, type ProblemCode } from '../../lib/contract';
import { accessLogFormat } from '../observability';

// The REST API, defined by the project's own openapi.json (generated from the zod schemas) plus API Gateway's
// extensions: AWS_IAM on every method, request validation, the Lambda proxy integration, problem+json answers
// for what API Gateway refuses itself (and for paths and methods that are no route), and a resource policy that
// admits only the configured accounts (and, for a private API, only through the named VPC endpoints).

export interface BrokerApiProps {
  stage: string;
  handler: IFunction;
  /** Accounts whose principals may call; ignored when organizationId is set. */
  allowedAccounts: string[];
  organizationId?: string;
  throttle: { rateLimit: number; burstLimit: number };
  /** REGIONAL (default) or PRIVATE; a private API needs vpcEndpointIds. */
  endpointType?: 'REGIONAL' | 'PRIVATE';
  vpcEndpointIds?: string[];
  /** Create the region's AWS::ApiGateway::Account CloudWatch role (one per account and region, shared by every API). */
  cloudWatchRole?: boolean;
  /** X-Ray on the stage, sampled by a rule scoped to it; undefined: no tracing. */
  tracing?: { fixedRate: number; reservoirSize: number } | undefined;
}

/** X-Ray sampling rule names are at most 32 characters and unique in the account and region. */
export function samplingRuleName(stage: string): string {
  const name = `token-broker-${stage}`;
  return name.length <= 32 ? name : `${name.slice(0, 23)}-${createHash('sha256').update(stage).digest('hex').slice(0, 8)}`;
}

type Operation = Record<string, unknown>;

/** An answer API Gateway writes itself, as the OpenAPI extension x-amazon-apigateway-gateway-responses spells it. */
export interface GatewayResponse {
  statusCode: string;
  responseParameters: Record<string, string>;
  responseTemplates: { 'application/json': string };
}

/** Seconds a throttled caller waits (the stage's rate limit refills every second), and after a gateway failure. */
export const GATEWAY_RETRY_AFTER = { rate_limited: 1, service_unavailable: 5 } as const;

/**
 * A problem+json body as a mapping template. `$context.error.messageString` is already a quoted JSON string, so it
 * goes in bare; `$context.requestId` is an id of letters, digits and dashes, so quoting it is enough.
 */
export function problemTemplate(status: number, code: ProblemCode, title: string, detail: string): string {
  return `{"type":${JSON.stringify(problemType(code))},"title":${JSON.stringify(title)},"status":${status},"code":${JSON.stringify(code)},"detail":${detail},"instance":"$context.requestId"}`;
}

function gatewayProblem(status: number, code: keyof typeof TITLES): GatewayResponse {
  const retryAfter = (GATEWAY_RETRY_AFTER as Record<string, number>)[code];
  return {
    statusCode: String(status),
    responseParameters: {
      'gatewayresponse.header.Content-Type': "'application/problem+json'",
      'gatewayresponse.header.Cache-Control': "'no-store'",
      ...(retryAfter ? { 'gatewayresponse.header.Retry-After': `'${retryAfter}'` } : {}),
    },
    responseTemplates: { 'application/json': problemTemplate(status, code, TITLES[code], '$context.error.messageString') },
  };
}

const TITLES = {
  unauthenticated: 'Unauthenticated',
  forbidden: 'Forbidden',
  invalid_request: 'Invalid request',
  not_found: 'Not found',
  rate_limited: 'Too many requests',
  service_unavailable: 'A service the broker depends on is unavailable',
} as const;

/**
 * Every answer API Gateway may write itself, keyed by its response type. MISSING_AUTHENTICATION_TOKEN is also
 * what API Gateway answers for a path or method with no method behind it; every path here has one (the not-found
 * catch-all below), so this type only ever means an unsigned request.
 */
export const GATEWAY_RESPONSES: Record<string, GatewayResponse> = {
  MISSING_AUTHENTICATION_TOKEN: gatewayProblem(401, 'unauthenticated'),
  INVALID_SIGNATURE: gatewayProblem(401, 'unauthenticated'),
  EXPIRED_TOKEN: gatewayProblem(401, 'unauthenticated'),
  UNAUTHORIZED: gatewayProblem(401, 'unauthenticated'),
  ACCESS_DENIED: gatewayProblem(403, 'forbidden'),
  WAF_FILTERED: gatewayProblem(403, 'forbidden'),
  INVALID_API_KEY: gatewayProblem(403, 'forbidden'),
  RESOURCE_NOT_FOUND: gatewayProblem(404, 'not_found'),
  BAD_REQUEST_BODY: gatewayProblem(400, 'invalid_request'),
  BAD_REQUEST_PARAMETERS: gatewayProblem(400, 'invalid_request'),
  REQUEST_TOO_LARGE: gatewayProblem(413, 'invalid_request'),
  UNSUPPORTED_MEDIA_TYPE: gatewayProblem(415, 'invalid_request'),
  THROTTLED: gatewayProblem(429, 'rate_limited'),
  QUOTA_EXCEEDED: gatewayProblem(429, 'rate_limited'),
  DEFAULT_4XX: gatewayProblem(400, 'invalid_request'),
  INTEGRATION_FAILURE: gatewayProblem(502, 'service_unavailable'),
  INTEGRATION_TIMEOUT: gatewayProblem(504, 'service_unavailable'),
  DEFAULT_5XX: gatewayProblem(500, 'service_unavailable'),
};

/** The method every path that is no route answers with: a signed request to it gets 404 not_found. */
export const NOT_FOUND_METHOD: Operation = {
  summary: 'No route: 404 not_found',
  responses: {
    '404': {
      description: 'No such route',
      headers: { 'Content-Type': { schema: { type: 'string' } }, 'Cache-Control': { schema: { type: 'string' } } },
    },
  },
  'x-amazon-apigateway-auth': { type: 'AWS_IAM' },
  'x-amazon-apigateway-integration': {
    type: 'mock',
    // A mock answers the status named in its request template; other media types get 415 (UNSUPPORTED_MEDIA_TYPE).
    requestTemplates: { 'application/json': '{"statusCode": 404}' },
    passthroughBehavior: 'when_no_templates',
    responses: {
      default: {
        statusCode: '404',
        responseParameters: {
          'method.response.header.Content-Type': "'application/problem+json'",
          'method.response.header.Cache-Control': "'no-store'",
        },
        responseTemplates: {
          'application/json': problemTemplate(404, 'not_found', TITLES.not_found, JSON.stringify('no such route')),
        },
      },
    },
  },
};

const PROXY = '{proxy+}';

/**
 * Gives every resource of the API (each route's path and every prefix of it) an ANY method and a greedy child,
 * both answering not_found, so no request falls through to API Gateway's "Missing Authentication Token".
 * A route's own methods take precedence over ANY; a greedy child is added only where no variable child exists
 * (API Gateway allows one variable child per resource).
 */
export function addNotFoundRoutes(paths: Record<string, Operation>): void {
  const resources = new Set<string>(['/']);
  for (const path of Object.keys(paths)) {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) resources.add(`/${parts.slice(0, i).join('/')}`);
  }
  const parentOf = (r: string) => r.slice(0, r.lastIndexOf('/')) || '/';
  const isVariable = (r: string) => r.slice(r.lastIndexOf('/') + 1).startsWith('{');
  const hasVariableChild = (parent: string) => [...resources].some((r) => r !== '/' && parentOf(r) === parent && isVariable(r));
  for (const resource of [...resources]) {
    paths[resource] = { ...(paths[resource] ?? {}), 'x-amazon-apigateway-any-method': NOT_FOUND_METHOD };
    if (!hasVariableChild(resource)) {
      paths[resource === '/' ? `/${PROXY}` : `${resource}/${PROXY}`] = {
        'x-amazon-apigateway-any-method': { ...NOT_FOUND_METHOD, parameters: [{ name: 'proxy', in: 'path', required: true, schema: { type: 'string' } }] },
      };
    }
  }
}

export class BrokerApi extends Construct {
  readonly api: SpecRestApi;
  readonly accessLogs: LogGroup;
  readonly samplingRule: CfnSamplingRule | undefined;

  constructor(scope: Construct, id: string, props: BrokerApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const endpointType = props.endpointType ?? 'REGIONAL';
    const vpcEndpointIds = props.vpcEndpointIds ?? [];
    if (endpointType === 'PRIVATE' && vpcEndpointIds.length === 0) {
      throw new Error('endpointType PRIVATE needs vpcEndpointIds: the interface VPC endpoints (vpce-...) callers reach the API through');
    }
    if (endpointType !== 'PRIVATE' && vpcEndpointIds.length > 0) {
      throw new Error('vpcEndpointIds is only used with endpointType PRIVATE');
    }

    const doc = openApiDocument() as ReturnType<typeof openApiDocument> & Record<string, unknown>;
    const uri = Fn.sub('arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Arn}/invocations', {
      Arn: props.handler.functionArn,
    });
    for (const path of Object.values(doc.paths) as Record<string, Operation>[]) {
      for (const op of Object.values(path)) {
        op['x-amazon-apigateway-auth'] = { type: 'AWS_IAM' };
        op['x-amazon-apigateway-request-validator'] = 'all';
        op['x-amazon-apigateway-integration'] = {
          type: 'aws_proxy',
          httpMethod: 'POST',
          uri,
          passthroughBehavior: 'when_no_match',
        };
      }
    }
    addNotFoundRoutes(doc.paths);
    doc['x-amazon-apigateway-request-validators'] = {
      all: { validateRequestBody: true, validateRequestParameters: true },
    };
    doc['x-amazon-apigateway-gateway-responses'] = GATEWAY_RESPONSES;

    // Accounts are named as account principals, so each caller still needs execute-api:Invoke in its own IAM
    // policy; an organization is admitted by condition.
    const invoke = stack.formatArn({ service: 'execute-api', resource: '*' });
    const statements = [
      props.organizationId
        ? new PolicyStatement({
            effect: Effect.ALLOW,
            principals: [new AnyPrincipal()],
            actions: ['execute-api:Invoke'],
            resources: [invoke],
            conditions: { StringEquals: { 'aws:PrincipalOrgID': props.organizationId } },
          })
        : new PolicyStatement({
            effect: Effect.ALLOW,
            principals: props.allowedAccounts.map((a) => new AccountPrincipal(a)),
            actions: ['execute-api:Invoke'],
            resources: [invoke],
          }),
    ];
    if (endpointType === 'PRIVATE') {
      // A private API is reachable only through interface endpoints; this names which ones.
      statements.push(
        new PolicyStatement({
          effect: Effect.DENY,
          principals: [new AnyPrincipal()],
          actions: ['execute-api:Invoke'],
          resources: [invoke],
          conditions: { StringNotEquals: { 'aws:SourceVpce': vpcEndpointIds } },
        }),
      );
    }

    const restApiName = `token-broker-${props.stage}`;
    this.accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.THREE_MONTHS });
    this.api = new SpecRestApi(this, 'Api', {
      restApiName,
      description: 'token-broker: vendor OAuth access tokens for internal services (SigV4, AWS_IAM)',
      apiDefinition: ApiDefinition.fromInline(doc),
      policy: new PolicyDocument({ statements }),
      endpointConfiguration:
        endpointType === 'PRIVATE'
          ? {
              types: [EndpointType.PRIVATE],
              vpcEndpoints: vpcEndpointIds.map((vpcEndpointId) =>
                InterfaceVpcEndpoint.fromInterfaceVpcEndpointAttributes(this, `Endpoint-${vpcEndpointId}`, { vpcEndpointId, port: 443 }),
              ),
            }
          : { types: [EndpointType.REGIONAL] },
      cloudWatchRole: props.cloudWatchRole ?? false,
      deployOptions: {
        stageName: props.stage,
        tracingEnabled: props.tracing !== undefined,
        metricsEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        throttlingRateLimit: props.throttle.rateLimit,
        throttlingBurstLimit: props.throttle.burstLimit,
        accessLogDestination: new LogGroupLogDestination(this.accessLogs),
        accessLogFormat: AccessLogFormat.custom(accessLogFormat()),
      },
    });
    // API Gateway samples by the first matching rule (lowest priority number): this one names the stage, so the
    // account's default rule (1 a second and 5%, which records every request of a quiet API) does not apply.
    this.samplingRule = props.tracing
      ? new CfnSamplingRule(this, 'SamplingRule', {
          samplingRule: {
            ruleName: samplingRuleName(props.stage),
            priority: 100,
            fixedRate: props.tracing.fixedRate,
            reservoirSize: props.tracing.reservoirSize,
            serviceName: `${restApiName}/${props.stage}`,
            serviceType: 'AWS::ApiGateway::Stage',
            resourceArn: `arn:${stack.partition}:apigateway:${stack.region}::/restapis/${this.api.restApiId}/stages/${props.stage}`,
            host: '*',
            httpMethod: '*',
            urlPath: '*',
            version: 1,
          },
        })
      : undefined;
    if (!props.tracing) {
      Validations.of(this.api.deploymentStage).acknowledge({
        id: 'Serverless::Serverless-APIGWXrayEnabled',
        reason: 'Tracing is turned off by the tracingRate=0 setting (docs/operations.md says how to turn it on).',
      });
    }
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions::AwsSolutions-APIG2',
      reason: 'Request validation is in the OpenAPI body (x-amazon-apigateway-request-validators "all" on every route, asserted by test/infra); cdk-nag looks for separate RequestValidator resources.',
    });
    Validations.of(this.api.deploymentStage).acknowledge({
      id: 'AwsSolutions::AwsSolutions-APIG3',
      reason: 'An internal API: every method is AWS_IAM with SigV4, the resource policy admits only the configured accounts or organization, and stage throttling is set. WAF adds cost without a threat it would stop here.',
    });
    const cloudWatchRole = this.api.node.tryFindChild('CloudWatchRole');
    if (cloudWatchRole) {
      Validations.of(cloudWatchRole).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason: "The managed policy AWS documents for API Gateway's account-level logging role.",
      });
    }
    props.handler.addPermission('InvokedByApi', {
      principal: new ServicePrincipal('apigateway.amazonaws.com'),
      sourceArn: this.api.arnForExecuteApi(),
    });
  }
}
