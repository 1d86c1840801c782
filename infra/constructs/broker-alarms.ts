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
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

// What an operator is woken for, and what they look at: alarms on exchange failures, cooldowns, the API's 5xx,
// Lambda throttles and the dead-letter queue, all sent to one topic; one dashboard.

export interface BrokerAlarmsProps {
  stage: string;
  api: SpecRestApi;
  functions: Record<string, IFunction>;
  deadLetters: IQueue;
  topic: ITopic;
}

const NAMESPACE = 'TokenBroker';
const brokerMetric = (name: string, dimensions: Record<string, string> = {}) =>
  new Metric({ namespace: NAMESPACE, metricName: name, dimensionsMap: { service: 'token-broker', ...dimensions }, statistic: 'Sum', period: Duration.minutes(5) });

export class BrokerAlarms extends Construct {
  readonly alarms: Alarm[] = [];

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

    alarm('ExchangeFailures', brokerMetric('ExchangeFailures'), 3, 'Vendor exchanges failed (3 or more in 5 minutes): credentials, outage or protocol change');
    alarm('Cooldowns', brokerMetric('Cooldowns'), 1, 'A connection is cooling down after a failed exchange: callers may be refused');
    alarm('Api5xx', props.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }), 5, 'The API answered 5xx 5 or more times in 5 minutes');
    for (const [name, fn] of Object.entries(props.functions)) {
      alarm(`${name}Throttles`, fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }), 1, `The ${name} function was throttled`);
    }
    alarm(
      'DeadLetters',
      props.deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      1,
      'A pre-warm or rotation invocation failed for good: see the dead-letter queue',
    );

    const dashboard = new Dashboard(this, 'Dashboard', { dashboardName: `token-broker-${props.stage}` });
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
        left: [brokerMetric('Exchanges'), brokerMetric('ExchangeFailures'), brokerMetric('Cooldowns'), brokerMetric('LeaseWaits'), brokerMetric('StoreDegraded')],
        width: 12,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Exchange latency (ms)',
        left: ['p50', 'p99'].map((statistic) => new Metric({ namespace: NAMESPACE, metricName: 'ExchangeLatency', dimensionsMap: { service: 'token-broker' }, statistic, period: Duration.minutes(5) })),
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
  }
}
