import { Duration } from 'aws-cdk-lib';
import type { SpecRestApi } from 'aws-cdk-lib/aws-apigateway';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
  Unit,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { FilterPattern, MetricFilter, type ILogGroup } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE, REQUEST_FAILED, SERVICE_NAME, TOKEN_HANDED_OUT, type MetricName } from '../../lib/contract';

// What an operator is woken for, and what they look at: alarms on what they must act on (exchange failures,
// cooldowns, a degraded table, tokens that do not decrypt, the broker's own 500s, each function's errors and
// throttles, the dead-letter queue), all sent to one topic; one dashboard. The API's 5xx are not an alarm: most are
// the vendor's 502/503/504 that the broker is meant to pass on, and those already raise ExchangeFailures.

export interface BrokerAlarmsProps {
  stage: string;
  api: SpecRestApi;
  functions: Record<string, IFunction>;
  /** The HTTP function's log group: its `request failed` lines with status 500 are the broker's own errors. */
  httpLogs: ILogGroup;
  deadLetters: IQueue;
  topic: ITopic;
}


/**
 * The broker's own 500s, counted from functions/http.ts's log line for an error it did not expect (`request failed`
 * with status 500); a vendor's failure it passes on logs the same message with 502, 503 or 504.
 */
export const INTERNAL_ERRORS = {
  metricName: 'InternalErrors',
  message: REQUEST_FAILED,
  status: 500,
  filterPattern: () =>
    FilterPattern.all(FilterPattern.stringValue('$.message', '=', INTERNAL_ERRORS.message), FilterPattern.numberValue('$.status', '=', INTERNAL_ERRORS.status)),
};
/**
 * Tokens served, by source, counted from the HTTP function's audit line for each token it hands out (with the same
 * dimensions as the EMF metric the other functions emit), so a warm request writes that one line and no EMF document.
 */
export const TOKENS_SERVED = {
  metricName: 'TokensServed' satisfies MetricName,
  message: TOKEN_HANDED_OUT,
  /** Each dimension and the field of the audit line that gives its value. */
  dimensions: { service: '$.service', source: '$.source' },
  filterPattern: () => FilterPattern.stringValue('$.message', '=', TOKENS_SERVED.message),
};
const brokerMetric = (name: MetricName, dimensions: Record<string, string> = {}) =>
  new Metric({ namespace: METRIC_NAMESPACE, metricName: name, dimensionsMap: { service: SERVICE_NAME, ...dimensions }, statistic: 'Sum', period: Duration.minutes(5) });

export class BrokerAlarms extends Construct {
  readonly alarms: Alarm[] = [];
  /** The broker's one dashboard: the console (broker-console.ts) adds its widgets to it. */
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: BrokerAlarmsProps) {
    super(scope, id);
    const action = new SnsAction(props.topic);
    const alarm = (name: string, metric: Metric | MathExpression, threshold: number, description: string) => {
      const a = new Alarm(this, name, {
        alarmName: `token-broker-${props.stage}-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms.push(a);
      return a;
    };

    const internalErrors = new MetricFilter(this, 'InternalErrorsFilter', {
      logGroup: props.httpLogs,
      filterPattern: INTERNAL_ERRORS.filterPattern(),
      metricNamespace: METRIC_NAMESPACE,
      metricName: INTERNAL_ERRORS.metricName,
      metricValue: '1',
    }).metric({ statistic: 'Sum', period: Duration.minutes(5) });

    new MetricFilter(this, 'TokensServedFilter', {
      logGroup: props.httpLogs,
      filterPattern: TOKENS_SERVED.filterPattern(),
      metricNamespace: METRIC_NAMESPACE,
      metricName: TOKENS_SERVED.metricName,
      metricValue: '1',
      dimensions: TOKENS_SERVED.dimensions,
      unit: Unit.COUNT,
    });

    alarm('ExchangeFailures', brokerMetric('ExchangeFailures'), 3, 'Vendor exchanges failed (3 or more in 5 minutes): credentials, outage or protocol change');
    alarm('Cooldowns', brokerMetric('Cooldowns'), 1, 'A connection is cooling down after a failed exchange: callers may be refused');
    alarm('StoreDegraded', brokerMetric('StoreDegraded'), 1, 'The token table did not answer in time: tokens are served from memory or refused with 503');
    alarm('DecryptionFailures', brokerMetric('DecryptionFailures'), 1, 'A cached token could not be decrypted (key access, key policy or a tampered item): it is re-minted');
    alarm('RetiredMarks', brokerMetric('RetiredMarkWriteFailures'), 1, 'A retired token\'s mark could not be raised: were that token put back into the token table, a fresh instance could serve it');
    alarm('RetiredMarkReads', brokerMetric('RetiredMarkReadFailures'), 5, 'The retired marks could not be read (5 or more in 5 minutes): tokens are served without them meanwhile');
    alarm('InternalErrors', internalErrors, 1, 'The broker answered 500 internal_error: a fault of its own, not a vendor failure passed on');
    for (const [name, fn] of Object.entries(props.functions)) {
      alarm(`${name}Errors`, fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }), 1, `The ${name} function failed (crash, timeout or out of memory)`);
      alarm(`${name}Throttles`, fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }), 1, `The ${name} function was throttled`);
    }
    alarm(
      'DeadLetters',
      props.deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      1,
      'A pre-warm or rotation invocation failed for good: see the dead-letter queue',
    );

    const dashboard = (this.dashboard = new Dashboard(this, 'Dashboard', { dashboardName: `token-broker-${props.stage}` }));
    dashboard.addWidgets(
      new TextWidget({
        markdown: `# token-broker (${props.stage})\nTokens served by source, vendor exchanges, failures and cooldowns; the API; the functions.`,
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Tokens served, by source',
        left: ['memory', 'table', 'vendor', 'secret'].map((source) => brokerMetric('TokensServed', { source })),
        width: 12,
      }),
      new GraphWidget({
        title: 'Exchanges, failures, cooldowns, lease waits',
        left: [brokerMetric('Exchanges'), brokerMetric('ExchangeFailures'), brokerMetric('Cooldowns'), brokerMetric('LeaseWaits')],
        right: [brokerMetric('StoreDegraded'), brokerMetric('DecryptionFailures'), internalErrors],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Exchange latency (ms)',
        left: ['p50', 'p99'].map((statistic) => new Metric({ namespace: METRIC_NAMESPACE, metricName: 'ExchangeLatency' satisfies MetricName, dimensionsMap: { service: SERVICE_NAME }, statistic, period: Duration.minutes(5) })),
        width: 8,
      }),
      new GraphWidget({
        title: 'API: requests, 4xx, 5xx',
        left: [props.api.metricCount(), props.api.metricClientError(), props.api.metricServerError()],
        right: [props.api.metricLatency({ statistic: 'p99' })],
        width: 8,
      }),
      new GraphWidget({
        title: 'Functions: errors and throttles',
        left: Object.values(props.functions).flatMap((fn) => [fn.metricErrors(), fn.metricThrottles()]),
        right: Object.values(props.functions).map((fn) => fn.metricDuration({ statistic: 'p99' })),
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Dead-letter queue: messages waiting',
        left: [props.deadLetters.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum' })],
        width: 24,
      }),
    );
  }
}
