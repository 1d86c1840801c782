import { Fn, Stack } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  ApiDefinition,
  LogGroupLogDestination,
  MethodLoggingLevel,
  SpecRestApi,
} from 'aws-cdk-lib/aws-apigateway';
import { AccountPrincipal, AnyPrincipal, Effect, PolicyDocument, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { openApiDocument } from '../../functions/openapi';

// The REST API, defined by the project's own openapi.json (generated from the zod schemas) plus API Gateway's
// extensions: AWS_IAM on every method, request validation, the Lambda proxy integration, problem+json answers
// for what API Gateway refuses itself, and a resource policy that admits only the configured accounts.

export interface BrokerApiProps {
  stage: string;
  handler: IFunction;
  /** Accounts whose principals may call; ignored when organizationId is set. */
  allowedAccounts: string[];
  organizationId?: string;
  throttle: { rateLimit: number; burstLimit: number };
}

type Operation = Record<string, unknown>;

function problemResponse(status: string, code: string, title: string) {
  return {
    statusCode: status,
    responseTemplates: {
      'application/json': JSON.stringify({
        type: `https://token-broker.internal/problems/${code.replace(/_/g, '-')}`,
        title,
        status: Number(status),
        code,
        detail: '$context.error.messageString',
        instance: '$context.requestId',
      }),
    },
    responseParameters: { 'gatewayresponse.header.Content-Type': "'application/problem+json'" },
  };
}

export class BrokerApi extends Construct {
  readonly api: SpecRestApi;

  constructor(scope: Construct, id: string, props: BrokerApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
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
    doc['x-amazon-apigateway-request-validators'] = {
      all: { validateRequestBody: true, validateRequestParameters: true },
    };
    doc['x-amazon-apigateway-gateway-responses'] = {
      MISSING_AUTHENTICATION_TOKEN: problemResponse('401', 'unauthenticated', 'Unauthenticated'),
      INVALID_SIGNATURE: problemResponse('401', 'unauthenticated', 'Unauthenticated'),
      EXPIRED_TOKEN: problemResponse('401', 'unauthenticated', 'Unauthenticated'),
      ACCESS_DENIED: problemResponse('403', 'forbidden', 'Forbidden'),
      BAD_REQUEST_BODY: problemResponse('400', 'invalid_request', 'Invalid request'),
      BAD_REQUEST_PARAMETERS: problemResponse('400', 'invalid_request', 'Invalid request'),
      THROTTLED: problemResponse('429', 'rate_limited', 'Too many requests'),
      DEFAULT_5XX: problemResponse('500', 'internal_error', 'Internal error'),
    };

    // Accounts are named as account principals, so each caller still needs execute-api:Invoke in its own IAM
    // policy; an organization is admitted by condition.
    const invoke = stack.formatArn({ service: 'execute-api', resource: '*' });
    const admit = props.organizationId
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
        });

    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.THREE_MONTHS });
    this.api = new SpecRestApi(this, 'Api', {
      restApiName: `token-broker-${props.stage}`,
      description: 'token-broker: vendor OAuth access tokens for internal services (SigV4, AWS_IAM)',
      apiDefinition: ApiDefinition.fromInline(doc),
      policy: new PolicyDocument({ statements: [admit] }),
      cloudWatchRole: true,
      deployOptions: {
        stageName: props.stage,
        tracingEnabled: true,
        metricsEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        throttlingRateLimit: props.throttle.rateLimit,
        throttlingBurstLimit: props.throttle.burstLimit,
        accessLogDestination: new LogGroupLogDestination(accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields({
          caller: true,
          httpMethod: true,
          ip: true,
          protocol: true,
          requestTime: true,
          resourcePath: true,
          responseLength: true,
          status: true,
          user: true,
        }),
      },
    });
    props.handler.addPermission('InvokedByApi', {
      principal: new ServicePrincipal('apigateway.amazonaws.com'),
      sourceArn: this.api.arnForExecuteApi(),
    });
  }
}
