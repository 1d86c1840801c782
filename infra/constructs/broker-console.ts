import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { AlarmStatusWidget, CustomWidget, GraphWidget, Metric, type CfnDashboard, type Dashboard, type IAlarm } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ENV } from '../../lib/contract';
import { BrokerFunction } from './broker-function';

// The operator's console on the broker's dashboard (issue 21): every connection's health as a CloudWatch custom
// widget, a small function that reads the token table and nothing else; beside it the alarms and the table's
// latency. The function is named customWidget-…: a console user needs lambda:InvokeFunction on it to see the view
// (docs/operations.md has the policy), and the prefix lets one statement cover every custom widget.

/** The only table actions the widget function is granted: reads (lib/adapters/dynamodb.ts scanRecords). */
export const CONSOLE_TABLE_ACTIONS = ['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:Query'] as const;

/** At most 58 characters (a stage is at most 24): within Lambda's 64. */
export const consoleFunctionName = (stage: string) => `customWidget-token-broker-${stage}-console`;

export interface BrokerConsoleProps {
  stage: string;
  table: ITable;
  /** The table's encryption key: DynamoDB reads it on the caller's behalf (kms:ViaService), nothing more. */
  key: IKey;
  connectionsFile: string;
  dashboard: Dashboard;
  alarms: IAlarm[];
}

export class BrokerConsole extends Construct {
  readonly widget: BrokerFunction;

  constructor(scope: Construct, id: string, props: BrokerConsoleProps) {
    super(scope, id);
    this.widget = new BrokerFunction(this, 'Widget', {
      entry: 'functions/console-widget.ts',
      description: 'token-broker console: every connection\'s health as a CloudWatch custom widget (reads the table only)',
      memorySize: 1024,
      // CloudWatch waits for a custom widget a little; the view itself answers in about a second at 10,000 connections.
      timeout: Duration.seconds(10),
      connectionsFile: props.connectionsFile,
      // Nothing upstream samples a dashboard's call, so PassThrough would trace nothing: no tracing, and no X-Ray grant.
      tracing: false,
    });
    (this.widget.node.defaultChild as CfnFunction).functionName = consoleFunctionName(props.stage);
    this.widget.addEnvironment(ENV.table, props.table.tableName);
    this.widget.addToRolePolicy(new PolicyStatement({ actions: [...CONSOLE_TABLE_ACTIONS], resources: [props.table.tableArn] }));
    // The table is encrypted with the broker's key: DynamoDB decrypts its pages for a reader through KMS, for this
    // table only. No other use of the key: the token envelopes are never opened here.
    this.widget.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [props.key.keyArn],
        conditions: {
          StringEquals: {
            'kms:ViaService': `dynamodb.${Stack.of(this).region}.amazonaws.com`,
            'kms:EncryptionContext:aws:dynamodb:tableName': props.table.tableName,
          },
        },
      }),
    );
    Validations.of(this.widget).acknowledge({
      id: 'Serverless::Serverless-LambdaTracing',
      reason: 'A dashboard view is no request anyone samples: the widget function answers CloudWatch, and a trace would show one table scan.',
    }, {
      id: 'Serverless::Serverless-LambdaDLQ',
      reason: 'CloudWatch invokes the widget function synchronously for a dashboard view: a failure is shown in the widget, there is nothing to re-drive.',
    });

    // The app's tags reach the dashboard as Tags, which AWS::CloudWatch::Dashboard's schema (cfn-lint E3002) does not have.
    (props.dashboard.node.defaultChild as CfnDashboard).addPropertyDeletionOverride('Tags');

    const latency = (operation: string) =>
      new Metric({
        namespace: 'AWS/DynamoDB',
        metricName: 'SuccessfulRequestLatency',
        dimensionsMap: { TableName: props.table.tableName, Operation: operation },
        statistic: 'p99',
        period: Duration.minutes(5),
      });
    props.dashboard.addWidgets(
      new AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: 24, height: 4 }),
      new GraphWidget({ title: 'Token table latency, p99 (ms)', left: ['GetItem', 'UpdateItem'].map(latency), width: 24 }),
      new CustomWidget({
        title: 'Connections: health, unhealthy first',
        functionArn: this.widget.functionArn,
        width: 24,
        height: 18,
        updateOnRefresh: true,
        updateOnResize: false,
        updateOnTimeRangeChange: false,
      }),
    );
  }
}
